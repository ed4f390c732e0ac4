//! A scripted, misbehaving MQTT broker (MQTT 5 and 3.1.1) for regression tests of client bugs
//! that a real broker does not provoke (mosquitto acknowledges in order and on time).
//!
//! [`ScriptedBroker`] listens on a free loopback port, plain TCP, and treats each connection
//! as its [`Script`] says: it answers CONNECT with a CONNACK carrying the scripted
//! session-present flag (and, to an MQTT 5 client, the scripted Receive Maximum; MQTT 3.1.1
//! has none), then acknowledges QoS ≥ 1 publishes according to the
//! connection's [`Behaviour`] — at once and in order, never for the connection's first
//! publish (an out-of-order broker, the trigger of rumqttc's packet-id collision), or held
//! and sent in bursts. PINGREQ, SUBSCRIBE, UNSUBSCRIBE and PUBREL are always answered. Every
//! PUBLISH is handed to the test as a [`Received`], and per-connection
//! [`ConnectionStats`] tell what the client sent and what was acknowledged. The test can cut
//! a connection at any time ([`ScriptedBroker::disconnect`]: the socket is closed without a
//! DISCONNECT, as a broker crash or a network failure would).
//!
//! Each connection speaks the version of its CONNECT (protocol level 5 or 4). Packets are
//! parsed and written with rumqttc's own codecs (`rumqttc::v5::mqttbytes` and, for 3.1.1,
//! `rumqttc::mqttbytes::v4`), so the broker speaks exactly the dialect of the client under
//! test.

use std::{
    io,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use e4k_bridge::config::MqttVersion;
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::{
    self as mqttbytes, QoS,
    v5::{
        ConnAck, ConnAckProperties, ConnectReturnCode, Packet, PingResp, PubAck, PubComp, PubRec,
        SubAck, SubscribeReasonCode, UnsubAck, UnsubAckReason,
    },
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_util::{
    bytes::{Bytes, BytesMut},
    sync::CancellationToken,
};

/// How the broker acknowledges the QoS ≥ 1 publishes of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Acknowledges every publish at once, in arrival order.
    Behave,
    /// Never acknowledges the connection's first QoS ≥ 1 publish and acknowledges every later
    /// one at once: the acknowledgements are out of order, as with the brokers of
    /// rumqtt#1014/#1056.
    WithholdFirst,
    /// Holds acknowledgements and sends all of them, in arrival order, every `period`.
    AckInBursts(Duration),
    /// Acknowledges no publish at all (but answers pings and subscriptions): a stalled
    /// session.
    Silent,
}

/// What the broker does on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnScript {
    /// The CONNACK's session-present flag.
    pub session_present: bool,
    /// How publishes are acknowledged.
    pub behaviour: Behaviour,
}

impl ConnScript {
    /// A connection that behaves, with the given session-present flag.
    #[must_use]
    pub fn behave(session_present: bool) -> Self {
        Self {
            session_present,
            behaviour: Behaviour::Behave,
        }
    }
}

/// What the broker does on each connection, in the order in which clients connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The Receive Maximum announced in every MQTT 5 CONNACK: the most unacknowledged QoS ≥ 1
    /// publishes a client may have in flight (an MQTT 3.1.1 client sets its own limit).
    pub receive_maximum: u16,
    /// The first connections, in order.
    pub connections: Vec<ConnScript>,
    /// Every later connection.
    pub then: ConnScript,
}

impl Script {
    fn connection(&self, index: usize) -> ConnScript {
        self.connections.get(index).copied().unwrap_or(self.then)
    }
}

/// A PUBLISH the broker received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The connection it came on (0 for the first connection).
    pub connection: usize,
    /// Its packet identifier (0 at QoS 0).
    pub pkid: u16,
    /// Its QoS.
    pub qos: QoS,
    /// Its DUP flag.
    pub dup: bool,
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Bytes,
}

/// What happened on one connection so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStats {
    /// The client identifier of the CONNECT (empty until it arrived).
    pub client_id: String,
    /// The version the client speaks, from its CONNECT's protocol level (5, or 4 for MQTT
    /// 3.1.1); `None` until the CONNECT arrived.
    pub version: Option<MqttVersion>,
    /// The connection's script.
    pub script: ConnScript,
    /// The packet identifiers of the QoS ≥ 1 publishes received, in arrival order.
    pub publishes: Vec<u16>,
    /// The packet identifiers acknowledged (PUBACK or PUBREC written), in order.
    pub acked: Vec<u16>,
    /// The packet identifier never acknowledged ([`Behaviour::WithholdFirst`]).
    pub withheld: Option<u16>,
    /// When the last PUBLISH arrived.
    pub last_publish: Option<Instant>,
    /// PINGREQs received.
    pub pings: u32,
    /// The CONNECT's MQTT 5 authentication method and data, when it had them.
    pub authentication: Option<(String, Bytes)>,
    /// Whether the connection is still open.
    pub open: bool,
    /// How it ended, once it did.
    pub ended: Option<String>,
}

impl ConnectionStats {
    fn new(script: ConnScript) -> Self {
        Self {
            client_id: String::new(),
            version: None,
            script,
            publishes: Vec::new(),
            acked: Vec::new(),
            withheld: None,
            last_publish: None,
            pings: 0,
            authentication: None,
            open: true,
            ended: None,
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    stats: Mutex<Vec<ConnectionStats>>,
    cancels: Mutex<Vec<CancellationToken>>,
}

/// Locks a mutex, ignoring poisoning (a panicking test thread leaves consistent data here).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A scripted MQTT 5 / 3.1.1 broker on 127.0.0.1, plain TCP; stopped (every connection closed) on
/// drop. It runs on the Tokio runtime it was started on.
#[derive(Debug)]
pub struct ScriptedBroker {
    addr: SocketAddr,
    shared: Arc<Shared>,
    received: mpsc::UnboundedReceiver<Received>,
    stop: CancellationToken,
}

impl Drop for ScriptedBroker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl ScriptedBroker {
    /// Starts the broker on a free loopback port. Must be called within a Tokio runtime.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(script: Script) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let (tx, received) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            script,
            Arc::clone(&shared),
            tx,
            stop.clone(),
        ));
        Ok(Self {
            addr,
            shared,
            received,
            stop,
        })
    }

    /// The address clients connect to.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The publishes received so far, in arrival order across connections.
    pub fn received(&mut self) -> &mut mpsc::UnboundedReceiver<Received> {
        &mut self.received
    }

    /// A snapshot of every connection accepted so far, in accept order.
    #[must_use]
    pub fn connections(&self) -> Vec<ConnectionStats> {
        lock(&self.shared.stats).clone()
    }

    /// Closes connection `index` (0 for the first) without a DISCONNECT, as a crashed broker
    /// or a broken network would. Returns false when there is no such connection.
    pub fn disconnect(&self, index: usize) -> bool {
        match lock(&self.shared.cancels).get(index) {
            Some(cancel) => {
                cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Polls the connection stats until `check` holds; `Err(last snapshot)` after `timeout`.
    ///
    /// # Errors
    /// The last snapshot, when `check` did not hold in time.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        check: impl Fn(&[ConnectionStats]) -> bool,
    ) -> Result<Vec<ConnectionStats>, Vec<ConnectionStats>> {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.connections();
            if check(&stats) {
                return Ok(stats);
            }
            if Instant::now() > deadline {
                return Err(stats);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    script: Script,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Received>,
    stop: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let cancel = stop.child_token();
        let index = {
            let mut stats = lock(&shared.stats);
            let mut cancels = lock(&shared.cancels);
            let index = stats.len();
            stats.push(ConnectionStats::new(script.connection(index)));
            cancels.push(cancel.clone());
            index
        };
        let conn = Conn {
            index,
            script: script.connection(index),
            receive_maximum: script.receive_maximum,
            shared: Arc::clone(&shared),
            tx: tx.clone(),
            held: Vec::new(),
            version: MqttVersion::V5,
        };
        tokio::spawn(conn.run(stream, cancel));
    }
}

/// One connection's state.
struct Conn {
    index: usize,
    script: ConnScript,
    receive_maximum: u16,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Received>,
    /// Acknowledgements held for the next burst.
    held: Vec<(u16, Out)>,
    /// The version of the connection's CONNECT.
    version: MqttVersion,
}

/// What to do after a packet.
enum Next {
    Continue,
    Close(String),
}

/// A packet from the client, whatever its version.
#[derive(Debug)]
enum In {
    Connect {
        client_id: String,
        authentication: Option<(String, Bytes)>,
    },
    Publish(Publish),
    PubRel(u16),
    PingReq,
    Subscribe {
        pkid: u16,
        granted: Vec<QoS>,
    },
    Unsubscribe {
        pkid: u16,
        filters: usize,
    },
    Disconnect(String),
    /// Acknowledgements of publishes the broker never sends, AUTH: ignored.
    Other,
}

/// The parts of a PUBLISH the broker uses.
#[derive(Debug)]
struct Publish {
    pkid: u16,
    qos: QoS,
    dup: bool,
    topic: String,
    payload: Bytes,
}

/// A packet to the client, written in the connection's version.
#[derive(Debug)]
enum Out {
    /// A CONNACK; MQTT 5 echoes the CONNECT's authentication method, as brokers that accept
    /// enhanced authentication must.
    ConnAck {
        session_present: bool,
        authentication_method: Option<String>,
    },
    PubAck(u16),
    PubRec(u16),
    PubComp(u16),
    PingResp,
    SubAck {
        pkid: u16,
        granted: Vec<QoS>,
    },
    UnsubAck {
        pkid: u16,
        filters: usize,
    },
}

fn invalid(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}

/// The protocol level of the CONNECT at the start of `buf`, once its first bytes are there
/// (fixed header, remaining length, protocol name "MQTT", level).
fn protocol_level(buf: &[u8]) -> Option<u8> {
    let mut offset = 1;
    // The remaining length: up to four bytes, the high bit meaning "more".
    loop {
        let byte = *buf.get(offset)?;
        offset += 1;
        if byte & 0x80 == 0 || offset > 4 {
            break;
        }
    }
    // The protocol name: a 2-byte length and "MQTT".
    buf.get(offset + 6).copied()
}

/// The next complete packet in `buf`, if any, in `version`.
fn parse(buf: &mut BytesMut, version: MqttVersion) -> io::Result<Option<In>> {
    match version {
        MqttVersion::V5 => match Packet::read(buf, None) {
            Ok(packet) => Ok(Some(from_v5(packet))),
            Err(mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(error) => Err(invalid(error)),
        },
        MqttVersion::V3 => match v4::Packet::read(buf, usize::MAX) {
            Ok(packet) => Ok(Some(from_v311(packet))),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(error) => Err(invalid(error)),
        },
    }
}

fn from_v5(packet: Packet) -> In {
    match packet {
        Packet::Connect(connect, _, _) => In::Connect {
            client_id: connect.client_id,
            authentication: connect.properties.and_then(|p| {
                p.authentication_method
                    .map(|method| (method, p.authentication_data.unwrap_or_default()))
            }),
        },
        Packet::Publish(publish) => In::Publish(Publish {
            pkid: publish.pkid,
            qos: publish.qos,
            dup: publish.dup,
            topic: String::from_utf8_lossy(&publish.topic).into_owned(),
            payload: publish.payload,
        }),
        Packet::PubRel(pubrel) => In::PubRel(pubrel.pkid),
        Packet::PingReq(_) => In::PingReq,
        Packet::Subscribe(subscribe) => In::Subscribe {
            pkid: subscribe.pkid,
            granted: subscribe.filters.iter().map(|filter| filter.qos).collect(),
        },
        Packet::Unsubscribe(unsubscribe) => In::Unsubscribe {
            pkid: unsubscribe.pkid,
            filters: unsubscribe.filters.len(),
        },
        Packet::Disconnect(disconnect) => In::Disconnect(format!("{:?}", disconnect.reason_code)),
        _ => In::Other,
    }
}

fn from_v311(packet: v4::Packet) -> In {
    let qos = |qos: rumqttc::mqttbytes::QoS| match qos {
        rumqttc::mqttbytes::QoS::AtMostOnce => QoS::AtMostOnce,
        rumqttc::mqttbytes::QoS::AtLeastOnce => QoS::AtLeastOnce,
        rumqttc::mqttbytes::QoS::ExactlyOnce => QoS::ExactlyOnce,
    };
    match packet {
        v4::Packet::Connect(connect) => In::Connect {
            client_id: connect.client_id,
            authentication: None,
        },
        v4::Packet::Publish(publish) => In::Publish(Publish {
            pkid: publish.pkid,
            qos: qos(publish.qos),
            dup: publish.dup,
            topic: publish.topic,
            payload: publish.payload,
        }),
        v4::Packet::PubRel(pubrel) => In::PubRel(pubrel.pkid),
        v4::Packet::PingReq => In::PingReq,
        v4::Packet::Subscribe(subscribe) => In::Subscribe {
            pkid: subscribe.pkid,
            granted: subscribe
                .filters
                .iter()
                .map(|filter| qos(filter.qos))
                .collect(),
        },
        v4::Packet::Unsubscribe(unsubscribe) => In::Unsubscribe {
            pkid: unsubscribe.pkid,
            filters: unsubscribe.topics.len(),
        },
        v4::Packet::Disconnect => In::Disconnect("MQTT 3.1.1".to_owned()),
        _ => In::Other,
    }
}

/// Writes `packet` in `version`; `receive_maximum` goes into an MQTT 5 CONNACK.
fn write(
    packet: &Out,
    version: MqttVersion,
    receive_maximum: u16,
    out: &mut BytesMut,
) -> io::Result<()> {
    match version {
        MqttVersion::V5 => to_v5(packet, receive_maximum)
            .write(out, None)
            .map(drop)
            .map_err(invalid),
        MqttVersion::V3 => to_v311(packet)
            .write(out, usize::MAX)
            .map(drop)
            .map_err(invalid),
    }
}

fn to_v5(packet: &Out, receive_maximum: u16) -> Packet {
    match packet {
        Out::ConnAck {
            session_present,
            authentication_method,
        } => {
            let mut ack = connack(*session_present, receive_maximum);
            if let Some(props) = ack.properties.as_mut() {
                props
                    .authentication_method
                    .clone_from(authentication_method);
            }
            Packet::ConnAck(ack)
        }
        Out::PubAck(pkid) => Packet::PubAck(PubAck::new(*pkid, None)),
        Out::PubRec(pkid) => Packet::PubRec(PubRec::new(*pkid, None)),
        Out::PubComp(pkid) => Packet::PubComp(PubComp::new(*pkid, None)),
        Out::PingResp => Packet::PingResp(PingResp),
        Out::SubAck { pkid, granted } => Packet::SubAck(SubAck {
            pkid: *pkid,
            return_codes: granted
                .iter()
                .map(|qos| SubscribeReasonCode::Success(*qos))
                .collect(),
            properties: None,
        }),
        Out::UnsubAck { pkid, filters } => Packet::UnsubAck(UnsubAck {
            pkid: *pkid,
            reasons: vec![UnsubAckReason::Success; *filters],
            properties: None,
        }),
    }
}

fn to_v311(packet: &Out) -> v4::Packet {
    let qos = |qos: QoS| match qos {
        QoS::AtMostOnce => rumqttc::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::mqttbytes::QoS::ExactlyOnce,
    };
    match packet {
        Out::ConnAck {
            session_present, ..
        } => v4::Packet::ConnAck(v4::ConnAck::new(
            v4::ConnectReturnCode::Success,
            *session_present,
        )),
        Out::PubAck(pkid) => v4::Packet::PubAck(v4::PubAck::new(*pkid)),
        Out::PubRec(pkid) => v4::Packet::PubRec(v4::PubRec::new(*pkid)),
        Out::PubComp(pkid) => v4::Packet::PubComp(v4::PubComp::new(*pkid)),
        Out::PingResp => v4::Packet::PingResp,
        Out::SubAck { pkid, granted } => v4::Packet::SubAck(v4::SubAck::new(
            *pkid,
            granted
                .iter()
                .map(|q| v4::SubscribeReasonCode::Success(qos(*q)))
                .collect(),
        )),
        Out::UnsubAck { pkid, .. } => v4::Packet::UnsubAck(v4::UnsubAck::new(*pkid)),
    }
}

/// An MQTT 5 CONNACK with the scripted flag and Receive Maximum.
fn connack(session_present: bool, receive_maximum: u16) -> ConnAck {
    ConnAck {
        session_present,
        code: ConnectReturnCode::Success,
        properties: Some(ConnAckProperties {
            session_expiry_interval: None,
            receive_max: Some(receive_maximum),
            max_qos: None,
            retain_available: None,
            max_packet_size: None,
            assigned_client_identifier: None,
            topic_alias_max: None,
            reason_string: None,
            user_properties: Vec::new(),
            wildcard_subscription_available: None,
            subscription_identifiers_available: None,
            shared_subscription_available: None,
            server_keep_alive: None,
            response_information: None,
            server_reference: None,
            authentication_method: None,
            authentication_data: None,
        }),
    }
}

/// Waits for the next tick of `interval`, or forever when there is none.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Conn {
    async fn run(mut self, mut stream: TcpStream, cancel: CancellationToken) {
        let ended = match self.serve(&mut stream, &cancel).await {
            Ok(reason) => reason,
            Err(error) => format!("error: {error}"),
        };
        let _ = stream.shutdown().await;
        self.update(|stats| {
            stats.open = false;
            stats.ended = Some(ended);
        });
    }

    fn update(&self, change: impl FnOnce(&mut ConnectionStats)) {
        if let Some(stats) = lock(&self.shared.stats).get_mut(self.index) {
            change(stats);
        }
    }

    async fn serve(
        &mut self,
        stream: &mut TcpStream,
        cancel: &CancellationToken,
    ) -> io::Result<String> {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut out = BytesMut::with_capacity(4 * 1024);
        let mut connected = false;
        let mut bursts = match self.script.behaviour {
            Behaviour::AckInBursts(period) => Some(tokio::time::interval_at(
                tokio::time::Instant::now() + period,
                period,
            )),
            Behaviour::Behave | Behaviour::WithholdFirst | Behaviour::Silent => None,
        };
        loop {
            if !connected {
                match protocol_level(&buf) {
                    None => {}
                    Some(4) => self.version = MqttVersion::V3,
                    Some(_) => self.version = MqttVersion::V5,
                }
            }
            while let Some(packet) = parse(&mut buf, self.version)? {
                if !connected {
                    let In::Connect {
                        client_id,
                        authentication,
                    } = packet
                    else {
                        return Ok(format!("first packet not a CONNECT: {packet:?}"));
                    };
                    connected = true;
                    let version = self.version;
                    let authentication_method =
                        authentication.as_ref().map(|(method, _)| method.clone());
                    self.update(|stats| {
                        stats.client_id = client_id;
                        stats.version = Some(version);
                        stats.authentication = authentication;
                    });
                    self.write(
                        &Out::ConnAck {
                            session_present: self.script.session_present,
                            authentication_method,
                        },
                        &mut out,
                    )?;
                    continue;
                }
                if let Next::Close(reason) = self.handle(packet, &mut out)? {
                    stream.write_all(&out).await?;
                    return Ok(reason);
                }
            }
            if !out.is_empty() {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Ok("closed by the test".to_owned()),
                    written = stream.write_all(&out) => written?,
                }
                out.clear();
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok("closed by the test".to_owned()),
                () = tick(&mut bursts) => self.flush_held(&mut out)?,
                read = stream.read_buf(&mut buf) => {
                    if read? == 0 {
                        return Ok("closed by the client".to_owned());
                    }
                }
            }
        }
    }

    fn write(&self, packet: &Out, out: &mut BytesMut) -> io::Result<()> {
        write(packet, self.version, self.receive_maximum, out)
    }

    fn handle(&mut self, packet: In, out: &mut BytesMut) -> io::Result<Next> {
        match packet {
            In::Publish(publish) => {
                let pkid = publish.pkid;
                let qos = publish.qos;
                let _ = self.tx.send(Received {
                    connection: self.index,
                    pkid,
                    qos,
                    dup: publish.dup,
                    topic: publish.topic,
                    payload: publish.payload,
                });
                let ack = match qos {
                    QoS::AtMostOnce => None,
                    QoS::AtLeastOnce => Some(Out::PubAck(pkid)),
                    QoS::ExactlyOnce => Some(Out::PubRec(pkid)),
                };
                let mut withhold = false;
                let now = Instant::now();
                self.update(|stats| {
                    stats.last_publish = Some(now);
                    if ack.is_some() {
                        stats.publishes.push(pkid);
                        if self.script.behaviour == Behaviour::WithholdFirst
                            && stats.withheld.is_none()
                        {
                            stats.withheld = Some(pkid);
                            withhold = true;
                        }
                    }
                });
                match (ack, self.script.behaviour) {
                    (None, _) => {}
                    (Some(_), _) if withhold => {}
                    (Some(_), Behaviour::Silent) => {}
                    (Some(ack), Behaviour::AckInBursts(_)) => self.held.push((pkid, ack)),
                    (Some(ack), Behaviour::Behave | Behaviour::WithholdFirst) => {
                        self.write(&ack, out)?;
                        self.update(|stats| stats.acked.push(pkid));
                    }
                }
            }
            In::PubRel(pkid) => self.write(&Out::PubComp(pkid), out)?,
            In::PingReq => {
                self.update(|stats| stats.pings += 1);
                self.write(&Out::PingResp, out)?;
            }
            In::Subscribe { pkid, granted } => self.write(&Out::SubAck { pkid, granted }, out)?,
            In::Unsubscribe { pkid, filters } => {
                self.write(&Out::UnsubAck { pkid, filters }, out)?;
            }
            In::Disconnect(reason) => {
                return Ok(Next::Close(format!(
                    "DISCONNECT from the client ({reason})"
                )));
            }
            In::Connect { .. } => return Ok(Next::Close("a second CONNECT".to_owned())),
            In::Other => {}
        }
        Ok(Next::Continue)
    }

    /// Writes the held acknowledgements, in order.
    fn flush_held(&mut self, out: &mut BytesMut) -> io::Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let held = std::mem::take(&mut self.held);
        for (_, ack) in &held {
            self.write(ack, out)?;
        }
        self.update(|stats| stats.acked.extend(held.iter().map(|(pkid, _)| *pkid)));
        Ok(())
    }
}
