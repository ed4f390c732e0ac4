//! The routing engine: connects both brokers and forwards messages along the routes.
//!
//! # Links
//!
//! The unit of work is a *link*: one client session on each broker and the routes they
//! carry, independent of every other link (its own ordering, acknowledgement gate and
//! in-flight window). Both sessions of a link use the same client ID.
//!
//! - Instance `k`'s **main link** (`{prefix}-{k}`) carries every route without a shared
//!   subscription, in both directions: each session subscribes the sources of its broker and
//!   publishes what the other session received.
//! - Each **shared-subscription member** `m` of a route is its own link
//!   (`{prefix}-{route}-{m}`), whose source session subscribes `$share/<group>/<source>`.
//! - With `bridgeInstances` > 1, a route without a shared subscription would be forwarded
//!   once per instance; the main links therefore subscribe it as the implicit shared
//!   subscription `$share/{prefix}-{route}/<source>`, so that each message is forwarded once.
//!
//! [`RunOptions::instance`] (`--instance-index`) runs one instance's links, as one pod of a
//! StatefulSet would; without it every instance runs in this process.
//!
//! # Sessions
//!
//! Both sessions of a link are persistent (Clean Start off, the configured session expiry),
//! announce a Receive Maximum (the in-flight window) and a maximum packet size, and use
//! manual acknowledgements: a message is acknowledged to its source only after the
//! destination acknowledged it, in arrival order (see [`conn`]). Subscriptions use No Local
//! on the main links (a session never receives what it published itself; shared
//! subscriptions cannot use it, so the `e4k-hops` user property is the loop guard there),
//! Retain As Published, and "send retained messages on new subscriptions only", and are made
//! at QoS ≤ 1: the bridge never receives QoS 2 (whose acknowledgement rumqttc cannot resume
//! across reconnects). Publishing toward the remote broker is capped at QoS 1.
//!
//! # Shutdown
//!
//! When the token passed to [`Bridge::run`] is cancelled, the bridge stops taking new
//! messages (they are neither forwarded nor acknowledged, so the brokers keep them in the
//! sessions), waits up to [`RunOptions::drain_timeout`] for in-flight forwards to be
//! acknowledged and their sources acknowledged in order, disconnects every session cleanly
//! and returns once every task has ended.

pub(crate) mod backoff;
pub(crate) mod conn;
pub(crate) mod describe;
pub(crate) mod forward;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod tls;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::NetworkOptions;
use rumqttc::v5::MqttOptions;
use rumqttc::v5::mqttbytes::QoS as MqttQoS;
use rumqttc::v5::mqttbytes::v5::{Filter, RetainForwardRule};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, info, info_span, warn};

pub use self::backoff::BackoffPolicy;
pub use self::forward::{HOPS_PROPERTY, RetainPolicy};
pub use self::health::{ConnectionStatus, Readiness};
pub use self::metrics::DropReason;

use self::conn::{Conn, Credentials, Policy, PollCtx, RouteCtx, Setup, Side};
use self::metrics::Metrics;
use self::tls::ReloadingIdentity;
use crate::config::{
    Authentication, BridgeConfig, BrokerConnection, Direction, QoS, Route, SessionRole, Transport,
};
use crate::error::BridgeError;

/// Default hop limit.
pub const DEFAULT_HOP_LIMIT: u32 = 8;
/// Default time allowed for in-flight forwards to finish at shutdown.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default address of `/metrics`, `/healthz` and `/readyz`.
pub const DEFAULT_METRICS_LISTEN: &str = "0.0.0.0:9102";

/// QoS 0 messages beyond this many queued forwards are dropped (counted as `busy`); QoS ≥ 1
/// messages are bounded by the Receive Maximum instead.
const QOS0_QUEUE: usize = 256;

/// Runtime settings that the CRDs do not have.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunOptions {
    /// Run only this instance (`--instance-index`); `None` runs every instance.
    pub instance: Option<u32>,
    /// Where to serve `/metrics`, `/healthz` and `/readyz`; `None` serves nothing.
    pub metrics_listen: Option<SocketAddr>,
    /// What to do with the retain flag.
    pub retain: RetainPolicy,
    /// Messages that crossed this many bridges are dropped.
    pub hop_limit: u32,
    /// Receive Maximum announced to both brokers (the in-flight window per session);
    /// `None` uses the configuration's.
    pub receive_maximum: Option<u16>,
    /// Reconnect backoff.
    pub backoff: BackoffPolicy,
    /// How long shutdown waits for in-flight forwards.
    pub drain_timeout: Duration,
    /// TCP + TLS + CONNACK timeout, whole seconds (at least 1).
    pub connect_timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            instance: None,
            metrics_listen: None,
            retain: RetainPolicy::Keep,
            hop_limit: DEFAULT_HOP_LIMIT,
            receive_maximum: None,
            backoff: BackoffPolicy::default(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// State shared by the tasks, the HTTP endpoints and [`BridgeHandle`].
pub(crate) struct Shared {
    pub(crate) metrics: Metrics,
    conns: Vec<Arc<Conn>>,
    shutting_down: CancellationToken,
    /// The first task failure, reported by [`Bridge::run`].
    failure: Mutex<Option<BridgeError>>,
}

impl Shared {
    pub(crate) fn readiness(&self) -> Readiness {
        let connections: Vec<ConnectionStatus> = self
            .conns
            .iter()
            .map(|conn| {
                let status = conn.status();
                ConnectionStatus {
                    bridge: conn.bridge.clone(),
                    broker: conn.side.as_str(),
                    client_id: conn.client_id.clone(),
                    endpoint: conn.endpoint.clone(),
                    connected: status.connected,
                    subscribed: status.subscribed,
                    publishes_refused: status.publishes_refused,
                    last_error: status.last_error,
                }
            })
            .collect();
        let shutting_down = self.shutting_down.is_cancelled();
        Readiness {
            ready: !shutting_down && connections.iter().all(ConnectionStatus::is_ready),
            shutting_down,
            connections,
        }
    }

    fn drained(&self) -> bool {
        self.metrics.outstanding() == 0
            && self
                .conns
                .iter()
                .all(|conn| conn.outbox_empty() && !conn.gate.has_ready())
    }
}

/// A view of a running bridge: readiness and metrics, for tests and embedding.
#[derive(Clone)]
pub struct BridgeHandle(Arc<Shared>);

impl std::fmt::Debug for BridgeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeHandle").finish_non_exhaustive()
    }
}

impl BridgeHandle {
    /// What `/readyz` reports.
    pub fn readiness(&self) -> Readiness {
        self.0.readiness()
    }

    /// What `/metrics` serves.
    pub fn metrics(&self) -> String {
        self.0.metrics.encode()
    }
}

/// One connection before its tasks start.
struct Prepared {
    conn: Arc<Conn>,
    eventloop: rumqttc::v5::EventLoop,
    routes: Vec<Arc<RouteCtx>>,
    unroutable: Arc<metrics::RouteMetrics>,
    setup: Setup,
    /// The queue this connection's publisher reads; the peer's poll task writes it.
    rx: mpsc::Receiver<conn::Pending>,
    tx: mpsc::Sender<conn::Pending>,
    reserve: usize,
}

/// A configured bridge, ready to [`run`](Bridge::run).
pub struct Bridge {
    shared: Arc<Shared>,
    /// Pairs of (local, remote) connections.
    links: Vec<(Prepared, Prepared)>,
    options: RunOptions,
    window: u16,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("links", &self.links.len())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A route of a link, with the filter its source session subscribes.
struct LinkRoute<'a> {
    route: &'a Route,
    subscription: String,
    no_local: bool,
}

impl Bridge {
    /// Plans the links of `configs` (one per connector) and creates their sessions; nothing
    /// connects until [`run`](Bridge::run).
    ///
    /// # Errors
    ///
    /// [`BridgeError::Unsupported`] for MQTT over WebSocket, [`BridgeError::InstanceOutOfRange`]
    /// when [`RunOptions::instance`] is not below a connector's `bridgeInstances`.
    pub fn new(configs: &[BridgeConfig], options: RunOptions) -> Result<Self, BridgeError> {
        let metrics = Metrics::new();
        let mut links = Vec::new();
        let mut window = 0;
        for config in configs {
            for side in [&config.remote, &config.local] {
                if side.transport == Transport::WebSocket {
                    return Err(BridgeError::Unsupported {
                        what: "MQTT over WebSocket".to_owned(),
                        hint: "use protocol: mqtt (port 8883)".to_owned(),
                    });
                }
            }
            let instances: Vec<u32> = match options.instance {
                Some(index) if index >= config.bridge_instances => {
                    return Err(BridgeError::InstanceOutOfRange {
                        bridge: config.name.clone(),
                        index,
                        instances: config.bridge_instances,
                    });
                }
                Some(index) => vec![index],
                None => (0..config.bridge_instances).collect(),
            };
            let window_here = options
                .receive_maximum
                .unwrap_or(config.local.session.receive_maximum)
                .max(1);
            window = window.max(window_here);
            let implicit_share = config.bridge_instances > 1;
            for route in config
                .routes
                .iter()
                .filter(|r| r.shared_subscription.is_none())
            {
                if implicit_share {
                    info!(
                        bridge = %config.name,
                        route = %route.name,
                        "bridgeInstances is {}: route `{}` is subscribed as $share/{}-{}/{} so \
                         that each message is forwarded once",
                        config.bridge_instances,
                        route.name,
                        config.client_id_prefix,
                        route.name,
                        route.source
                    );
                }
            }
            for &instance in &instances {
                let main: Vec<LinkRoute<'_>> = config
                    .routes
                    .iter()
                    .filter(|r| r.shared_subscription.is_none())
                    .map(|route| LinkRoute {
                        route,
                        subscription: if implicit_share {
                            format!(
                                "$share/{}-{}/{}",
                                config.client_id_prefix, route.name, route.source
                            )
                        } else {
                            route.source.to_string()
                        },
                        no_local: !implicit_share,
                    })
                    .collect();
                if !main.is_empty() {
                    let id = config.client_id(instance, SessionRole::Main);
                    links.push(prepare_link(
                        config,
                        &id,
                        &main,
                        window_here,
                        &metrics,
                        &options,
                    ));
                }
                for route in config
                    .routes
                    .iter()
                    .filter(|r| r.shared_subscription.is_some())
                {
                    for member in config.shared_members(route, instance) {
                        let role = SessionRole::SharedMember {
                            route: &route.name,
                            member,
                        };
                        let id = config.client_id(instance, role);
                        let routes = [LinkRoute {
                            route,
                            subscription: route.subscription_filter(),
                            no_local: false,
                        }];
                        links.push(prepare_link(
                            config,
                            &id,
                            &routes,
                            window_here,
                            &metrics,
                            &options,
                        ));
                    }
                }
            }
        }
        let conns = links
            .iter()
            .flat_map(|(local, remote)| [Arc::clone(&local.conn), Arc::clone(&remote.conn)])
            .collect();
        Ok(Bridge {
            shared: Arc::new(Shared {
                metrics,
                conns,
                shutting_down: CancellationToken::new(),
                failure: Mutex::new(None),
            }),
            links,
            options,
            window: window.max(1),
        })
    }

    /// A handle for readiness and metrics, usable while [`run`](Bridge::run) runs.
    pub fn handle(&self) -> BridgeHandle {
        BridgeHandle(Arc::clone(&self.shared))
    }

    /// Connects, forwards until `shutdown` is cancelled, drains and disconnects. Returns only
    /// after every task has ended. Connection problems are logged, reported on `/readyz` and
    /// retried; they never end the run.
    ///
    /// # Errors
    ///
    /// [`BridgeError::MetricsListen`] when the metrics address cannot be bound (nothing is
    /// started then), [`BridgeError::Task`] when a task panicked.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BridgeError> {
        let Bridge {
            shared,
            links,
            options,
            window,
        } = self;
        let listener = match options.metrics_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| BridgeError::MetricsListen { addr, source })?,
            ),
            None => None,
        };
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();
        let policy = Policy {
            backoff: options.backoff,
            hop_limit: options.hop_limit,
            retain: options.retain,
            window,
        };
        if let Some(listener) = listener {
            if let Ok(addr) = listener.local_addr() {
                info!(%addr, "serving /metrics, /healthz and /readyz");
            }
            spawn(
                &tracker,
                &shared,
                &stop,
                "metrics",
                health::serve(listener, Arc::clone(&shared), stop.clone()),
            );
        }
        let mut polls = Vec::new();
        for (local, remote) in links {
            // Each side's poll task writes the other side's publisher queue.
            let local_queue = (local.tx.clone(), local.reserve);
            let remote_queue = (remote.tx.clone(), remote.reserve);
            for (prepared, (peer_tx, reserve)) in [(local, remote_queue), (remote, local_queue)] {
                let Prepared {
                    conn,
                    eventloop,
                    routes,
                    unroutable,
                    setup,
                    rx,
                    tx,
                    ..
                } = prepared;
                drop(tx);
                let span = info_span!(
                    "session",
                    broker = conn.side.as_str(),
                    client_id = %conn.client_id
                );
                let ctx = PollCtx {
                    conn: Arc::clone(&conn),
                    routes,
                    unroutable,
                    forward_tx: peer_tx,
                    reserve,
                    setup,
                    policy,
                    shutdown: shutdown.clone(),
                    stop: stop.clone(),
                };
                polls.push(spawn(
                    &tracker,
                    &shared,
                    &stop,
                    "poll",
                    conn::run_poll(eventloop, ctx).instrument(span.clone()),
                ));
                spawn(
                    &tracker,
                    &shared,
                    &stop,
                    "publisher",
                    conn::run_publisher(Arc::clone(&conn), rx, stop.clone())
                        .instrument(span.clone()),
                );
                spawn(
                    &tracker,
                    &shared,
                    &stop,
                    "acker",
                    conn::run_acker(conn, stop.clone()).instrument(span),
                );
            }
        }
        tracker.close();

        tokio::select! {
            () = shutdown.cancelled() => {}
            () = stop.cancelled() => {}
        }
        shared.shutting_down.cancel();
        info!(
            in_flight = shared.metrics.outstanding(),
            "shutting down: no new messages; draining in-flight forwards"
        );
        let deadline = tokio::time::Instant::now() + options.drain_timeout;
        while !shared.drained() && !stop.is_cancelled() {
            if tokio::time::Instant::now() >= deadline {
                warn!(
                    in_flight = shared.metrics.outstanding(),
                    "drain timeout: forwards still in flight stay unacknowledged at their \
                     source and will be delivered again"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for conn in &shared.conns {
            if conn.status().connected {
                let _ = conn.client.try_disconnect();
            }
        }
        // Poll tasks end when their DISCONNECT is written (or right away when not connected).
        let polls_done = async {
            for poll in polls {
                let _ = poll.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(3), polls_done)
            .await
            .is_err()
        {
            warn!("some sessions did not disconnect in time");
        }
        stop.cancel();
        tracker.wait().await;
        info!("bridge stopped");
        let failure = shared
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// Spawns a task on `tracker`; if it panics, the failure is recorded and everything stops.
fn spawn<F>(
    tracker: &TaskTracker,
    shared: &Arc<Shared>,
    stop: &CancellationToken,
    name: &'static str,
    task: F,
) -> tokio::task::JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let inner = tokio::spawn(tracing::instrument::WithSubscriber::with_current_subscriber(task));
    let shared = Arc::clone(shared);
    let stop = stop.clone();
    tracker.spawn(async move {
        if let Err(error) = inner.await
            && error.is_panic()
        {
            let reason = error.into_panic();
            let reason = reason
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| reason.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(task = name, %reason, "bridge task panicked; stopping");
            let mut failure = shared
                .failure
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            failure.get_or_insert(BridgeError::Task {
                task: name.to_owned(),
                reason,
            });
            stop.cancel();
        }
    })
}

fn mqtt_qos(qos: QoS) -> MqttQoS {
    match qos {
        QoS::AtMostOnce => MqttQoS::AtMostOnce,
        QoS::AtLeastOnce => MqttQoS::AtLeastOnce,
        QoS::ExactlyOnce => MqttQoS::ExactlyOnce,
    }
}

/// Creates both sessions of one link.
fn prepare_link(
    config: &BridgeConfig,
    client_id: &str,
    routes: &[LinkRoute<'_>],
    window: u16,
    metrics: &Metrics,
    options: &RunOptions,
) -> (Prepared, Prepared) {
    let local = prepare_conn(
        config,
        Side::Local,
        client_id,
        routes,
        window,
        metrics,
        options,
    );
    let remote = prepare_conn(
        config,
        Side::Remote,
        client_id,
        routes,
        window,
        metrics,
        options,
    );
    (local, remote)
}

fn prepare_conn(
    config: &BridgeConfig,
    side: Side,
    client_id: &str,
    routes: &[LinkRoute<'_>],
    window: u16,
    metrics: &Metrics,
    options: &RunOptions,
) -> Prepared {
    let (connection, source_direction) = match side {
        Side::Local => (&config.local, Direction::LocalToRemote),
        Side::Remote => (&config.remote, Direction::RemoteToLocal),
    };
    let direction = source_direction.as_str();
    let mine: Vec<&LinkRoute<'_>> = routes
        .iter()
        .filter(|r| r.route.direction == source_direction)
        .collect();
    let filters: Vec<Filter> = mine
        .iter()
        .map(|r| Filter {
            path: r.subscription.clone(),
            // QoS 2 is never received: rumqttc cannot resume its PUBREL flow (rumqtt PR #1053).
            qos: mqtt_qos(r.route.qos.min(QoS::AtLeastOnce)),
            nolocal: r.no_local,
            preserve_retain: true,
            retain_forward_rule: RetainForwardRule::OnNewSubscribe,
        })
        .collect();
    let route_ctxs: Vec<Arc<RouteCtx>> = mine
        .iter()
        .map(|r| {
            // Toward the remote broker (Event Grid) QoS 2 becomes 1.
            let qos = match side {
                Side::Local => r.route.qos.min(QoS::AtLeastOnce),
                Side::Remote => r.route.qos,
            };
            Arc::new(RouteCtx {
                name: r.route.name.clone(),
                filter: r.route.source.clone(),
                target: r.route.target.clone(),
                qos: mqtt_qos(qos),
                metrics: metrics.route(&config.name, &r.route.name, direction),
            })
        })
        .collect();
    let unroutable = metrics.route(&config.name, "-", direction);
    let mqtt = mqtt_options(connection, client_id, window, options);
    let conn_metrics = metrics.connection(&config.name, side.as_str(), client_id);
    let channel = usize::from(window).clamp(10, 1024);
    let (conn, eventloop) = Conn::new(
        side,
        &config.name,
        connection.endpoint.to_string(),
        mqtt,
        filters,
        conn_metrics,
        channel,
    );
    // The publisher queue of this connection is fed by the peer, which holds at most
    // `gate_limit` unacknowledged messages, each forwarded once per matching route.
    let peer_routes = routes.len().saturating_sub(mine.len()).max(1);
    let reserve = conn::gate_limit(window) * peer_routes;
    let (tx, rx) = mpsc::channel(reserve + QOS0_QUEUE);
    Prepared {
        conn,
        eventloop,
        routes: route_ctxs,
        unroutable,
        setup: setup(connection),
        rx,
        tx,
        reserve,
    }
}

fn mqtt_options(
    connection: &BrokerConnection,
    client_id: &str,
    window: u16,
    options: &RunOptions,
) -> MqttOptions {
    let session = &connection.session;
    let mut mqtt = MqttOptions::new(
        client_id,
        connection.endpoint.host.clone(),
        connection.endpoint.port,
    );
    mqtt.set_keep_alive(session.keep_alive.max(Duration::from_secs(5)))
        .set_clean_start(session.clean_start)
        .set_session_expiry_interval(Some(
            u32::try_from(session.session_expiry.as_secs()).unwrap_or(u32::MAX),
        ))
        .set_receive_maximum(Some(window))
        .set_max_packet_size(Some(session.max_packet_size))
        .set_outgoing_inflight_upper_limit(window)
        .set_manual_acks(true)
        .set_connection_timeout(options.connect_timeout.as_secs().max(1));
    // Acknowledgements and forwards are small packets that gate each other: Nagle's
    // algorithm would hold them back for the peer's delayed ACK (tens of milliseconds).
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(options.connect_timeout.as_secs().max(1));
    mqtt.set_network_options(network);
    mqtt
}

fn setup(connection: &BrokerConnection) -> Setup {
    let identity = match &connection.authentication {
        Authentication::X509(files) => Some(Arc::new(ReloadingIdentity::new(files.clone()))),
        _ => None,
    };
    let credentials = match &connection.authentication {
        Authentication::ServiceAccountToken { token_file } => {
            Credentials::Token(token_file.clone())
        }
        Authentication::UsernamePassword {
            username_file,
            password_file,
            ..
        } => Credentials::UserPass {
            username: username_file.clone(),
            password: password_file.clone(),
        },
        Authentication::X509(_) | Authentication::Anonymous => Credentials::None,
    };
    Setup::new(connection.tls.clone(), identity, credentials)
}
