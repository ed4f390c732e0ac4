//! The TLS front end of the MQTT port: TLS (a client certificate is asked for; without one only
//! a v5 CONNECT with `OAUTH2-JWT` or `CUSTOM-JWT` authentication gets in), the first packet
//! (CONNECT) read and authenticated against the control-plane state (certificates in `auth`,
//! tokens in `jwt_session`), the session quota, then the CONNECT forwarded to mosquitto with the
//! client's broker username (and without its authentication properties) and the packets piped
//! both ways until either side closes. A JWT session's AUTH packets are answered here and never
//! reach mosquitto, and the session ends when its token expires. Client packets are framed on the way, to refuse
//! QoS 2 PUBLISH and packets over 512 KiB and to lower QoS 2 subscriptions to 1; mosquitto's
//! own `max_qos` is lost on its first reload (mosquitto 2.0.11), so it cannot be relied on.
//! A session that publishes faster than Event Grid's per-session quota is throttled
//! (`throttle`): the front end reads its packets more slowly, and TCP backpressure does the
//! rest.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::ViewSource;
use super::auth::{PeerCert, authenticate};
use super::broker::MAX_PACKET_SIZE;
use super::jwt_session::{self, AuthOutcome, JwtSession, NOT_AUTHORIZED, PROTOCOL_ERROR};
use super::model::{NamespaceView, broker_username};
use super::packet::{
    Connect, PacketError, Refusal, V5, cap_subscribe_qos, connack, disconnect, frame_len,
    publish_qos, with_max_qos_1,
};
use super::props::{self, AUTH};
use super::session::{ClientStats, LiveJwtClients, SessionGuard, Sessions};
use super::throttle::Throttle;
use crate::config::PublishLimit;

/// How long a client may take to complete TLS.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send CONNECT after TLS.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the broker's last packets may take once the client has stopped sending.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a refused connection stays open after the server's DISCONNECT.
const LINGER: Duration = Duration::from_millis(100);
/// v5 reason codes of a server DISCONNECT.
const QOS_NOT_SUPPORTED: u8 = 0x9B;
const PACKET_TOO_LARGE: u8 = 0x95;

/// What every connection task shares.
pub(crate) struct FrontEnd {
    /// The TLS configuration.
    pub(crate) acceptor: TlsAcceptor,
    /// The control-plane view.
    pub(crate) source: Arc<ViewSource>,
    /// mosquitto's loopback address.
    pub(crate) broker: SocketAddr,
    /// Live sessions per authentication name.
    pub(crate) sessions: Arc<Sessions>,
    /// The inbound publish quota of each session.
    pub(crate) publish_limit: Option<PublishLimit>,
    /// The CUSTOM-JWT clients connected now (the ACL has a section for each).
    pub(crate) live: Arc<LiveJwtClients>,
    /// Counters per client id.
    pub(crate) stats: Arc<ClientStats>,
}

/// A CONNECT the front end accepted: the broker username, the session slot, the JWT state.
type Admitted = (String, SessionGuard, Option<JwtSession>);

impl FrontEnd {
    /// Accepts connections until `token` is cancelled, then closes them and waits for their
    /// tasks.
    /// With `websocket`, each connection is MQTT over a WebSocket inside the TLS session.
    pub(crate) async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        token: CancellationToken,
        websocket: bool,
    ) {
        let tracker = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                () = token.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let front = Arc::clone(&self);
                    let token = token.clone();
                    let span = tracing::debug_span!("mqtt", %peer);
                    tracker.spawn(
                        async move {
                            let outcome = tokio::select! {
                                () = token.cancelled() => Ok(()),
                                outcome = front.connection(tcp, websocket) => outcome,
                            };
                            if let Err(reason) = outcome {
                                tracing::debug!(%reason, "connection ended");
                            }
                        }
                        .instrument(span),
                    );
                }
                Err(error) => {
                    // e.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        tracker.close();
        tracker.wait().await;
    }

    async fn connection(&self, tcp: TcpStream, websocket: bool) -> Result<(), String> {
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp))
            .await
            .map_err(|_| "TLS handshake timed out".to_owned())?
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        let (_, session) = tls.get_ref();
        let chain: Vec<CertificateDer<'static>> = session
            .peer_certificates()
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        let sni = session.server_name().map(str::to_owned);
        if websocket {
            let ws = tokio::time::timeout(
                HANDSHAKE_TIMEOUT,
                async_tungstenite::tokio::accept_hdr_async(tls, mqtt_websocket),
            )
            .await
            .map_err(|_| "WebSocket handshake timed out".to_owned())?
            .map_err(|e| format!("WebSocket handshake failed: {e}"))?;
            self.session(ws_stream_tungstenite::WsStream::new(ws), &chain, sni)
                .await
        } else {
            self.session(tls, &chain, sni).await
        }
    }

    /// One MQTT session over `stream` (TLS, or a WebSocket inside TLS) from a client that
    /// presented `chain`.
    async fn session<S>(
        &self,
        mut tls: S,
        chain: &[CertificateDer<'static>],
        sni: Option<String>,
    ) -> Result<(), String>
    where
        S: AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let mut buffer = Vec::with_capacity(512);
        let (connect, used) =
            tokio::time::timeout(CONNECT_TIMEOUT, read_connect(&mut tls, &mut buffer))
                .await
                .map_err(|_| "no CONNECT in time".to_owned())??;
        let client_id = connect.client_id.clone();
        self.stats.update(&client_id, |s| s.connects += 1);
        let admitted = match connect.authentication() {
            Err(e) => return Err(format!("bad CONNECT: {e}")),
            Ok(Some(auth)) => jwt_session::admit(self, sni.as_deref(), &connect, &auth)
                .await
                .map(|(user, guard, jwt)| (user, guard, Some(jwt)))
                .map_err(|r| (r.refusal, r.cause, Some(auth.method))),
            Ok(None) => self
                .admit(chain, sni.as_deref(), &connect)
                .map(|(user, guard)| (user, guard, None))
                .map_err(|r| (r, "certificate authentication".to_owned(), None)),
        };
        let (username, guard, jwt): Admitted = match admitted {
            Ok(admitted) => admitted,
            Err((refusal, cause, method)) => {
                tracing::info!(
                    %client_id,
                    username = ?connect.username,
                    ?method,
                    ?refusal,
                    %cause,
                    "MQTT connection refused"
                );
                let code = refusal.code(connect.level);
                tls.write_all(&connack(connect.level, code))
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = tls.shutdown().await;
                return Ok(());
            }
        };
        self.stats.update(&client_id, |s| s.accepted += 1);
        tracing::info!(%client_id, %username, "MQTT client connected");
        let mut upstream = TcpStream::connect(self.broker)
            .await
            .map_err(|e| format!("cannot reach mosquitto at {}: {e}", self.broker))?;
        let forwarded = connect
            .without_authentication()
            .map_err(|e| format!("bad CONNECT: {e}"))?;
        upstream
            .write_all(&forwarded.with_credentials(&username).encode())
            .await
            .map_err(|e| format!("writing to mosquitto: {e}"))?;
        buffer.drain(..used);
        let throttle = self.publish_limit.map(Throttle::new);
        let ended = pipe(tls, upstream, connect.level, buffer, throttle, jwt).await;
        drop(guard);
        tracing::debug!(%username, %ended, "MQTT client disconnected");
        Ok(())
    }

    /// Chooses the namespace, authenticates the client and takes a session slot; returns the
    /// broker username.
    fn admit(
        &self,
        chain: &[CertificateDer<'static>],
        sni: Option<&str>,
        connect: &Connect,
    ) -> Result<(String, SessionGuard), Refusal> {
        let view = self.source.current();
        // Without a certificate only a JWT could have authenticated the client.
        let leaf = chain.first().ok_or(Refusal::BadCredentials)?;
        let peer = PeerCert::parse(leaf).map_err(|_| Refusal::BadCredentials)?;
        let enabled: Vec<&NamespaceView> = view.namespaces.iter().filter(|ns| ns.enabled).collect();
        if enabled.is_empty() {
            return Err(Refusal::Unavailable);
        }
        // A namespace whose hostname the client asked for (SNI) is tried alone; otherwise every
        // MQTT-enabled namespace is, in order, and the first that knows the client wins.
        let by_name: Vec<&NamespaceView> = sni
            .map(|sni| {
                enabled
                    .iter()
                    .copied()
                    .filter(|ns| {
                        ns.hostname
                            .as_deref()
                            .is_some_and(|h| h.eq_ignore_ascii_case(sni))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let candidates = if by_name.len() == 1 { by_name } else { enabled };
        let mut refusal = None;
        for namespace in candidates {
            match authenticate(namespace, chain, &peer, connect.username.as_deref()) {
                Ok(client) => {
                    let username = broker_username(&namespace.name, &client.client)
                        .ok_or(Refusal::BadCredentials)?;
                    let guard = self.sessions.acquire(
                        &namespace.name,
                        &client.authentication_name,
                        &connect.client_id,
                        namespace.max_sessions,
                    )?;
                    return Ok((username, guard));
                }
                Err(r) => {
                    refusal.get_or_insert(r);
                }
            }
        }
        Err(refusal.unwrap_or(Refusal::BadCredentials))
    }
}

/// Pipes packets between the client and mosquitto until both directions are done (or the
/// client broke a rule); says how it ended. `pending` holds client bytes already read.
async fn pipe<S>(
    client: S,
    broker: TcpStream,
    level: u8,
    pending: Vec<u8>,
    throttle: Option<Throttle>,
    jwt: Option<JwtSession>,
) -> String
where
    S: AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (client_read, mut client_write) = tokio::io::split(client);
    let (broker_read, broker_write) = broker.into_split();
    // One writer towards the client, fed by the broker direction and by the front end's own
    // DISCONNECTs; the bounded channel is the backpressure.
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    let writer = async move {
        while let Some(chunk) = rx.recv().await {
            // Flush each chunk: rustls may otherwise hold a record back.
            if client_write.write_all(&chunk).await.is_err() || client_write.flush().await.is_err()
            {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    let method = jwt.as_ref().map(|j| j.method().as_str());
    let down = to_client(broker_read, tx.clone(), level, method);
    let up = to_broker(client_read, broker_write, tx, level, pending, throttle, jwt);
    let relay = async move {
        tokio::pin!(down);
        tokio::pin!(up);
        tokio::select! {
            ended = &mut down => ended,
            ended = &mut up => {
                // The write half towards mosquitto is closed; let its last packets through.
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, &mut down).await;
                ended
            }
        }
    };
    let ((), ended) = tokio::join!(writer, relay);
    ended
}

/// Broker → client: the CONNACK (v5: with Maximum QoS 1 added, and a JWT session's
/// Authentication Method), then bytes as they come.
async fn to_client(
    mut broker: tokio::net::tcp::OwnedReadHalf,
    tx: mpsc::Sender<Vec<u8>>,
    level: u8,
    method: Option<&str>,
) -> String {
    let mut chunk = vec![0u8; 16 * 1024];
    let mut first = Vec::new();
    loop {
        match frame_len(&first, usize::MAX) {
            Ok(Some(len)) => {
                let mut out = with_max_qos_1(&first[..len], level);
                if let Some(method) = method {
                    out = props::with_authentication_method(&out, method);
                }
                out.extend_from_slice(&first[len..]);
                if tx.send(out).await.is_err() {
                    return "client gone".into();
                }
                break;
            }
            Ok(None) => {}
            Err(_) => {
                let _ = tx.send(first).await;
                break;
            }
        }
        match broker.read(&mut chunk).await {
            Ok(0) | Err(_) => return "broker closed before CONNACK".into(),
            Ok(n) => first.extend_from_slice(&chunk[..n]),
        }
    }
    loop {
        match broker.read(&mut chunk).await {
            Ok(0) => return "broker closed".into(),
            Err(e) => return format!("broker read failed: {e}"),
            Ok(n) => {
                if tx.send(chunk[..n].to_vec()).await.is_err() {
                    return "client gone".into();
                }
            }
        }
    }
}

/// Client → broker, packet by packet: QoS 2 PUBLISH and oversized packets end the connection
/// (v5: with a DISCONNECT saying why), QoS 2 subscriptions are lowered to 1, AUTH packets are
/// answered here (a JWT session's re-authentication), and a JWT session ends with DISCONNECT
/// 0x87 when its token expires.
async fn to_broker<R: AsyncRead + Unpin>(
    mut client: R,
    mut broker: tokio::net::tcp::OwnedWriteHalf,
    tx: mpsc::Sender<Vec<u8>>,
    level: u8,
    mut buffer: Vec<u8>,
    mut throttle: Option<Throttle>,
    mut jwt: Option<JwtSession>,
) -> String {
    let mut chunk = vec![0u8; 16 * 1024];
    let refuse = |reason: u8, why: &str| {
        let tx = tx.clone();
        let why = why.to_owned();
        async move {
            if level == V5 {
                let _ = tx.send(disconnect(reason)).await;
                // Some clients (rumqttc) drop a packet that arrives together with the close;
                // give the DISCONNECT a moment of its own.
                tokio::time::sleep(LINGER).await;
            }
            why
        }
    };
    loop {
        loop {
            let len = match frame_len(&buffer, MAX_PACKET_SIZE) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(PacketError::TooLarge(len)) => {
                    return refuse(PACKET_TOO_LARGE, &format!("packet of {len} bytes refused"))
                        .await;
                }
                Err(e) => return format!("bad packet: {e}"),
            };
            let mut packet: Vec<u8> = buffer.drain(..len).collect();
            if packet[0] == AUTH {
                let outcome = match jwt.as_mut() {
                    Some(session) => session.on_auth(&packet).await,
                    None => AuthOutcome::Disconnect(
                        PROTOCOL_ERROR,
                        "AUTH from a client that connected without an authentication method".into(),
                    ),
                };
                match outcome {
                    AuthOutcome::Reply(reply) => {
                        if tx.send(reply).await.is_err() {
                            return "client gone".into();
                        }
                    }
                    AuthOutcome::Disconnect(reason, why) => return refuse(reason, &why).await,
                }
                continue;
            }
            let qos = publish_qos(packet[0]);
            if qos == Some(2) {
                return refuse(QOS_NOT_SUPPORTED, "QoS 2 PUBLISH refused").await;
            }
            if qos.is_some()
                && let Some(until) = throttle.as_mut().and_then(|t| t.admit(packet.len()))
            {
                tokio::time::sleep_until(until.into()).await;
            }
            if let Err(e) = cap_subscribe_qos(&mut packet, level) {
                return format!("bad SUBSCRIBE: {e}");
            }
            if let Err(e) = broker.write_all(&packet).await {
                return format!("broker write failed: {e}");
            }
        }
        let read = match jwt.as_ref().map(JwtSession::deadline) {
            Some(deadline) => tokio::select! {
                read = client.read(&mut chunk) => read,
                () = tokio::time::sleep_until(deadline) => {
                    if let Some(session) = &jwt {
                        session.expire();
                    }
                    return refuse(NOT_AUTHORIZED, "token expired").await;
                }
            },
            None => client.read(&mut chunk).await,
        };
        match read {
            Ok(0) => return "client closed".into(),
            Err(e) => return format!("client read failed: {e}"),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Accepts the WebSocket upgrade of an MQTT client as Event Grid does: path `/mqtt` and the
/// `mqtt` subprotocol, which the answer names.
#[allow(clippy::result_large_err)] // the signature async-tungstenite's callback requires
fn mqtt_websocket(
    request: &async_tungstenite::tungstenite::handshake::server::Request,
    mut response: async_tungstenite::tungstenite::handshake::server::Response,
) -> Result<
    async_tungstenite::tungstenite::handshake::server::Response,
    async_tungstenite::tungstenite::handshake::server::ErrorResponse,
> {
    use async_tungstenite::tungstenite::http;
    let refuse = |status: http::StatusCode, why: &str| {
        let mut refusal = http::Response::new(Some(why.to_owned()));
        *refusal.status_mut() = status;
        refusal
    };
    if request.uri().path() != "/mqtt" {
        return Err(refuse(
            http::StatusCode::NOT_FOUND,
            "MQTT over WebSocket is served on /mqtt",
        ));
    }
    let offers_mqtt = request
        .headers()
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|protocol| protocol.trim() == "mqtt");
    if !offers_mqtt {
        return Err(refuse(
            http::StatusCode::BAD_REQUEST,
            "the WebSocket subprotocol must be mqtt",
        ));
    }
    response.headers_mut().insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        http::HeaderValue::from_static("mqtt"),
    );
    Ok(response)
}

/// Reads until `buffer` holds a whole CONNECT; returns it and its length (bytes after it, e.g.
/// a SUBSCRIBE sent without waiting for CONNACK, stay in `buffer`).
async fn read_connect<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffer: &mut Vec<u8>,
) -> Result<(Connect, usize), String> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(found) = Connect::parse(buffer, MAX_PACKET_SIZE).map_err(|e| e.to_string())? {
            return Ok(found);
        }
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before CONNECT".into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}
