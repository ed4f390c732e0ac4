//! One MQTT client interface over two clients: MQTT 5 from `rumqttc-v5-next` (a maintained
//! fork of rumqttc's MQTT 5 client that adds AUTH re-authentication and batched writes), and
//! MQTT 3.1.1 from rumqttc 0.25 (its root module, "v4" in its terms), chosen by the
//! connector's `protocol`.
//!
//! The engine is written against MQTT 5 types: an MQTT 3.1.1 event is translated into its
//! MQTT 5 equivalent (a PUBLISH without properties, a CONNACK without limits), and what MQTT
//! 3.1.1 cannot carry is left out on the way back (message properties, No Local,
//! enhanced authentication). Both clients get the same workarounds after a connection loss
//! (see [`EventLoop::on_lost`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc_next::mqttbytes::QoS;
use rumqttc_next::mqttbytes::v5::{AuthProperties, Publish, PublishProperties, SubscribeFilter};

use super::describe;
use super::forward::Limits;

mod cork;
mod events;

use self::events::{v3_event, v3_qos, v5_event};

/// Settings of a session before it connects.
pub(crate) enum Options {
    /// MQTT 5.
    V5(Box<rumqttc_next::MqttOptions>),
    /// MQTT 3.1.1, with the limit on outgoing packets (MQTT 3.1.1 has no CONNACK to tell it).
    V3(Box<rumqttc::MqttOptions>, rumqttc::NetworkOptions, u32),
}

impl Options {
    /// The client ID.
    pub(crate) fn client_id(&self) -> String {
        match self {
            Options::V5(options) => options.client_id(),
            Options::V3(options, ..) => options.client_id(),
        }
    }

    /// The keep-alive interval.
    pub(crate) fn keep_alive(&self) -> Duration {
        match self {
            Options::V5(options) => options.keep_alive(),
            Options::V3(options, ..) => options.keep_alive(),
        }
    }
}

/// Requests written at once at the most (MQTT 5 sessions).
pub(crate) const REQUEST_BATCH: usize = 64;

/// The MQTT 5 settings of a session, with what every bridge session needs: manual
/// acknowledgements (the engine acknowledges after the destination took the message) and a
/// [`NothingInFlight`] session store.
///
/// Up to [`REQUEST_BATCH`] requests (publishes, acknowledgements) go out in one write: the
/// client's default of one request per write costs a syscall per message on both sides.
/// Batched writes drain a spooled backlog into a broker in bursts; the spool's drain pace
/// (`--spool-drain-rate`) is what keeps those from overflowing a lagging consumer's queue
/// (cli/tests/bridge_spool.rs, local broker restart).
pub(crate) fn v5_options(
    mut options: rumqttc_next::MqttOptions,
    window: u16,
) -> rumqttc_next::MqttOptions {
    options
        .set_ack_mode(rumqttc_next::AckMode::Manual)
        .set_outgoing_inflight_upper_limit(window.max(1))
        .set_receive_maximum(Some(window.max(1)))
        .set_max_request_batch(REQUEST_BATCH)
        // Coalesces the client's flushes (one per PUBACK otherwise) until it waits: see
        // `cork`. Its TCP options are the engine's own (TCP_NODELAY), not `NetworkOptions`.
        .set_socket_connector(|host, _network| cork::connect(host));
    let store = NothingInFlight {
        clean_start: options.clean_start(),
        inflight: options.get_outgoing_inflight_upper_limit(),
    };
    options.set_session_store(store);
    options
}

/// The client's view of a resumed session: nothing in flight, ever. It is read once, when
/// the session starts, and removed at the first CONNACK (see [`EventLoop::poll`]).
///
/// The engine keeps every unacknowledged forward itself and publishes it again after any
/// reconnect (see [`EventLoop::on_lost`]), so the client keeps no session state of its own.
/// The client refuses a broker that resumes a session it has no local state for (MQTT-3.2.2-4),
/// or in its lenient mode refuses to publish on it; this store tells it, at each session
/// start, that its local state is "nothing in flight", which is the truth after `on_lost`.
#[derive(Debug)]
struct NothingInFlight {
    clean_start: bool,
    inflight: Option<u16>,
}

type StoreFuture<'a, T> =
    std::pin::Pin<Box<dyn Future<Output = Result<T, rumqttc_next::SessionStoreError>> + Send + 'a>>;

impl rumqttc_next::SessionStore for NothingInFlight {
    fn load<'a>(
        &'a self,
        key: &'a rumqttc_next::SessionStoreKey,
    ) -> StoreFuture<'a, Option<rumqttc_next::PersistedSession>> {
        let session = rumqttc_next::PersistedSession {
            format_version: 1,
            client_id: key.client_id().to_owned(),
            clean_start: self.clean_start,
            session_expiry_interval: None,
            outgoing_inflight_upper_limit: self.inflight,
            ack_mode: rumqttc_next::PersistedAckMode::Manual,
            last_pkid: 0,
            last_puback: 0,
            replay: Vec::new(),
            incoming_qos2: Vec::new(),
        };
        Box::pin(std::future::ready(Ok(Some(session))))
    }

    fn save<'a>(
        &'a self,
        _key: &'a rumqttc_next::SessionStoreKey,
        _session: &'a rumqttc_next::PersistedSession,
    ) -> StoreFuture<'a, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn clear<'a>(&'a self, _key: &'a rumqttc_next::SessionStoreKey) -> StoreFuture<'a, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Creates a client and its event loop; `cap` bounds the request channels. Fails only when
/// the MQTT 5 settings contradict each other (say, a `wss://` broker without TLS).
pub(crate) fn client(options: Options, cap: usize) -> Result<(Client, EventLoop), String> {
    match options {
        Options::V5(options) => {
            let (client, eventloop) = rumqttc_next::AsyncClient::builder(*options)
                .capacity(cap)
                .try_build()
                .map_err(|error| error.to_string())?;
            Ok((Client::V5(client), EventLoop::V5(Box::new(eventloop))))
        }
        Options::V3(options, network, max_packet_size) => {
            let (client, mut eventloop) = rumqttc::AsyncClient::new(*options, cap);
            eventloop.set_network_options(network);
            Ok((
                Client::V3(client),
                EventLoop::V3(Box::new(eventloop), max_packet_size),
            ))
        }
    }
}

/// The handle that sends requests to a session's event loop.
#[derive(Clone)]
pub(crate) enum Client {
    /// MQTT 5.
    V5(rumqttc_next::AsyncClient),
    /// MQTT 3.1.1.
    V3(rumqttc::AsyncClient),
}

/// The request channel is full (or closed).
#[derive(Debug)]
pub(crate) struct Full;

impl Client {
    /// Queues a PUBLISH without waiting. MQTT 3.1.1 drops `properties`.
    pub(crate) fn try_publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Bytes,
        properties: PublishProperties,
    ) -> Result<(), Full> {
        match self {
            Client::V5(client) => client
                .try_publish(
                    topic,
                    payload,
                    rumqttc_next::PublishOptions::new(qos)
                        .retain(retain)
                        .properties(properties),
                )
                .map_err(|_| Full),
            // rumqttc's 3.1.1 client has no non-blocking publish of `Bytes`: the payload is
            // copied once here.
            Client::V3(client) => client
                .try_publish(topic, v3_qos(qos), retain, payload.to_vec())
                .map_err(|_| Full),
        }
    }

    /// Sends the acknowledgement of a received message (waits for room in the channel).
    pub(crate) async fn ack(&self, pkid: u16, qos: QoS) -> Result<(), Full> {
        match self {
            Client::V5(client) => {
                let publish = Publish {
                    qos,
                    pkid,
                    ..Publish::default()
                };
                client.ack(&publish).await.map_err(|_| Full)
            }
            Client::V3(client) => {
                let mut publish = rumqttc::Publish::new("", v3_qos(qos), Vec::new());
                publish.pkid = pkid;
                client.ack(&publish).await.map_err(|_| Full)
            }
        }
    }

    /// Queues a SUBSCRIBE for `filters` without waiting. MQTT 3.1.1 keeps only each filter's
    /// path and QoS.
    pub(crate) fn try_subscribe(&self, filters: &[SubscribeFilter]) -> Result<(), String> {
        match self {
            Client::V5(client) => client
                .try_subscribe_many(filters.iter().cloned())
                .map_err(|error| error.to_string()),
            Client::V3(client) => client
                .try_subscribe_many(
                    filters
                        .iter()
                        .map(|f| rumqttc::SubscribeFilter::new(f.path.clone(), v3_qos(f.qos))),
                )
                .map_err(|error| error.to_string()),
        }
    }

    /// Queues an MQTT 5 AUTH re-authentication with a new token (MQTT 3.1.1 has none: the
    /// configuration refuses JWTs over it).
    pub(crate) async fn reauth(&self, method: &str, data: Bytes) -> Result<(), String> {
        match self {
            Client::V5(client) => client
                .reauth(Some(AuthProperties {
                    method: Some(method.to_owned()),
                    data: Some(data),
                    reason: None,
                    user_properties: Vec::new(),
                }))
                .await
                .map_err(|error| error.to_string()),
            Client::V3(_) => Err("MQTT 3.1.1 has no re-authentication".to_owned()),
        }
    }

    /// Whether the session can refresh its token on the fly (MQTT 5).
    pub(crate) fn can_reauthenticate(&self) -> bool {
        matches!(self, Client::V5(_))
    }

    /// Queues a DISCONNECT without waiting.
    pub(crate) fn try_disconnect(&self) -> Result<(), Full> {
        match self {
            Client::V5(client) => client.try_disconnect().map_err(|_| Full),
            Client::V3(client) => client.try_disconnect().map_err(|_| Full),
        }
    }
}

/// A packet the event loop wrote (or held back), in the terms the engine needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outgoing {
    /// A PUBLISH with its packet identifier (0 at QoS 0).
    Publish(u16),
    /// The next PUBLISH waits: its packet identifier is still in flight.
    AwaitAck(u16),
    /// A DISCONNECT.
    Disconnect,
    /// A PINGREQ.
    PingReq,
    /// Anything else.
    Other,
}

/// What one poll of the event loop produced, in MQTT 5 terms.
#[derive(Debug)]
pub(crate) enum Polled {
    /// Connected.
    ConnAck {
        /// Whether the broker resumed the session.
        session_present: bool,
        /// What the broker allows the bridge to publish.
        limits: Limits,
    },
    /// A message.
    Publish(Publish),
    /// A PUBACK or PUBREC; `refused` is the reason code when it is a refusal.
    Ack { pkid: u16, refused: Option<String> },
    /// A SUBACK: per filter, `None` when granted, the reason when refused.
    SubAck(Vec<Option<String>>),
    /// Something was written.
    Outgoing(Outgoing),
    /// A re-authentication ended: `Ok` when the broker accepted the new token, else why not.
    Reauthenticated(Result<(), String>),
    /// Anything else.
    Other,
}

/// Why polling stopped.
#[derive(Debug)]
pub(crate) enum PollError {
    /// Every client handle is gone.
    Done,
    /// The connection failed or was lost, described for an operator.
    Lost(String),
}

/// An MQTT 5 event as the engine sees it; at CONNACK the session store is cleared.
fn v5_polled(eventloop: &mut rumqttc_next::EventLoop, event: rumqttc_next::Event) -> Polled {
    let polled = v5_event(event);
    if matches!(polled, Polled::ConnAck { .. }) {
        // The store was read when the session started; from now on the client knows its
        // (empty) local state, and a store would only make it checkpoint its in-flight
        // publishes at every write.
        eventloop.options.clear_session_store();
    }
    polled
}

/// A session's event loop.
pub(crate) enum EventLoop {
    /// MQTT 5.
    V5(Box<rumqttc_next::EventLoop>),
    /// MQTT 3.1.1, with the broker's assumed maximum packet size.
    V3(Box<rumqttc::EventLoop>, u32),
}

impl EventLoop {
    /// Connects when needed and returns the next event.
    ///
    /// The MQTT 3.1.1 client's future is boxed: it is about 10 KiB, more than twice the
    /// MQTT 5 one, and every call would otherwise create and move a future of its size.
    pub(crate) async fn poll(&mut self) -> Result<Polled, PollError> {
        match self {
            EventLoop::V5(eventloop) => match eventloop.poll().await {
                Ok(event) => Ok(v5_polled(eventloop, event)),
                Err(rumqttc_next::ConnectionError::RequestsDone) => Err(PollError::Done),
                Err(error) => Err(PollError::Lost(describe::connection_error(&error))),
            },
            EventLoop::V3(eventloop, max_packet_size) => {
                let max_packet_size = *max_packet_size;
                match Box::pin(eventloop.poll()).await {
                    Ok(event) => Ok(v3_event(event, max_packet_size)),
                    Err(rumqttc::ConnectionError::RequestsDone) => Err(PollError::Done),
                    Err(error) => Err(PollError::Lost(describe::connection_error_v3(&error))),
                }
            }
        }
    }

    /// The next event of the last network read or request batch, without creating a poll
    /// future (several KiB, copied at each creation): what [`poll`](Self::poll) would return
    /// at once.
    ///
    /// MQTT 5 only. Its `poll` returns a buffered event before anything else as long as the
    /// connection is up, and a lost connection clears the buffer; after a DISCONNECT this
    /// returns the notices of requests written before it, which `poll` would drop. The
    /// MQTT 3.1.1 client keeps its buffer across a lost connection and reconnects first, so it
    /// always goes through `poll`.
    pub(crate) fn take_buffered(&mut self) -> Option<Polled> {
        match self {
            EventLoop::V5(eventloop) => {
                let event = eventloop.state.events.pop_front()?;
                Some(v5_polled(eventloop, event))
            }
            EventLoop::V3(..) => None,
        }
    }

    /// Whether events of the last network read are still waiting to be returned by
    /// [`poll`](Self::poll) (which then returns without reading).
    pub(crate) fn has_buffered_events(&self) -> bool {
        match self {
            EventLoop::V5(eventloop) => !eventloop.state.events.is_empty(),
            EventLoop::V3(eventloop, _) => !eventloop.state.events.is_empty(),
        }
    }

    /// Sets the TLS configuration for the next connection (`wss://` over WebSocket).
    pub(crate) fn set_tls(&mut self, config: Arc<rustls::ClientConfig>, websocket: bool) {
        match self {
            EventLoop::V5(eventloop) => {
                let tls = rumqttc_next::TlsConfiguration::Rustls(config);
                eventloop.options.set_transport(if websocket {
                    rumqttc_next::Transport::Wss(tls)
                } else {
                    rumqttc_next::Transport::Tls(tls)
                });
            }
            EventLoop::V3(eventloop, _) => {
                let tls = rumqttc::TlsConfiguration::Rustls(config);
                eventloop.mqtt_options.set_transport(if websocket {
                    rumqttc::Transport::Wss(tls)
                } else {
                    rumqttc::Transport::Tls(tls)
                });
            }
        }
    }

    /// Sets the username and password for the next connection.
    pub(crate) fn set_credentials(&mut self, username: String, password: String) {
        match self {
            EventLoop::V5(eventloop) => {
                eventloop.options.set_credentials(username, password);
            }
            EventLoop::V3(eventloop, _) => {
                eventloop.mqtt_options.set_credentials(username, password);
            }
        }
    }

    /// Sets (or clears) MQTT 5 enhanced authentication for the next connection. MQTT 3.1.1
    /// has none: the configuration warns about it, and the session connects without it.
    pub(crate) fn set_authentication(&mut self, method: Option<String>, data: Option<Bytes>) {
        if let EventLoop::V5(eventloop) = self {
            eventloop.options.set_authentication_method(method);
            eventloop.options.set_authentication_data(data);
        }
    }

    /// The connection is gone: drops what the client would resend on its own (the engine
    /// resends its unsettled forwards itself, in order, whether or not the broker kept the
    /// session).
    ///
    /// MQTT 5: everything the client held for the next connection (unacknowledged
    /// publishes, requests not yet taken, a publish held back on a packet-id collision) is
    /// discarded, and the protocol state starts afresh, so that no packet identifier stays
    /// reserved for a publish that will never be acknowledged. MQTT 3.1.1 (rumqttc 0.25):
    /// the same, and the stashed collision cleared, which rumqttc never does and which would
    /// wedge the client for good (rumqtt#1056/#1014).
    pub(crate) fn on_lost(&mut self) {
        match self {
            EventLoop::V5(eventloop) => {
                eventloop.clean();
                eventloop.drain_pending_as_failed(rumqttc_next::NoticeFailureReason::SessionReset);
                let options = &eventloop.options;
                eventloop.state = rumqttc_next::MqttStateBuilder::new(
                    options
                        .get_outgoing_inflight_upper_limit()
                        .unwrap_or(u16::MAX),
                )
                .ack_mode(options.ack_mode())
                .topic_alias_policy(options.topic_alias_policy())
                .client_topic_alias_max(options.topic_alias_max().unwrap_or(0))
                .authentication_method(options.authentication_method())
                .build();
            }
            EventLoop::V3(eventloop, _) => {
                eventloop.clean();
                eventloop
                    .pending
                    .retain(|request| matches!(request, rumqttc::Request::PubRel(_)));
                eventloop.state.collision = None;
            }
        }
    }
}
