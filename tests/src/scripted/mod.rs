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

mod codec;
mod conn;

use conn::Conn;
