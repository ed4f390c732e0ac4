//! The routing engine: connects both brokers and forwards messages along the routes.
//!
//! # Links
//!
//! The unit of work is a *link*: a client session on a route's source broker and the
//! session on the other broker that publishes what it receives. Each source session has its
//! own ordering, acknowledgement gate and in-flight window; a destination session may
//! publish for several source sessions (see [`conn`]).
//!
//! - Instance `k`'s **main link** (`{prefix}-{k}`, the same client ID on both brokers)
//!   carries every route without a shared subscription, in both directions: each session
//!   subscribes the sources of its broker and publishes what the other session received.
//! - Each **shared-subscription member** `m` of a route (`{prefix}-{route}-{m}`, belonging to
//!   instance `m % bridgeInstances`) is a session on the route's *source* broker only,
//!   subscribing `$share/<group>/<source>`. Its messages are published over the main session
//!   of its instance on the destination broker, so a local-to-remote shared route adds no
//!   session on the remote broker (Event Grid limits sessions per authentication name). With
//!   the connector annotation `e4k.dev/shared-subscription-sessions: both` a member has a
//!   destination session of its own instead (same client ID), so that a shared route spreads
//!   over that many destination sessions (Event Grid's quota is per session). A
//!   main session exists on a broker whenever a member of its instance publishes through it,
//!   even when the main link has no routes of its own there; it then subscribes nothing.
//! - With `bridgeInstances` > 1, a route without a shared subscription would be forwarded
//!   once per instance; the main links therefore subscribe it as the implicit shared
//!   subscription `$share/{prefix}-{route}/<source>`, so that each message is forwarded once.
//!
//! [`RunOptions::instance`] (`--instance-index`) runs one instance's links, as one pod of a
//! StatefulSet would; without it every instance runs in this process.
//!
//! # Sessions
//!
//! Sessions speak MQTT 5, or MQTT 3.1.1 with `protocol: v3` (see [`mqtt`] for what 3.1.1
//! leaves out: properties, No Local, Receive Maximum, session expiry, enhanced
//! authentication). Every session is persistent (Clean Start off, the configured session expiry),
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
pub(crate) mod mqtt;
#[cfg(target_os = "linux")]
pub(crate) mod process;
pub(crate) mod reauth;
pub(crate) mod spooler;
pub(crate) mod tls;
pub(crate) mod token;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::NetworkOptions;
use rumqttc_next::mqttbytes::QoS as MqttQoS;
use rumqttc_next::mqttbytes::v5::{RetainForwardRule, SubscribeFilter as Filter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, info, info_span, warn};

pub use self::backoff::BackoffPolicy;
pub use self::forward::{HOPS_PROPERTY, RetainPolicy};
pub use self::health::{ConnectionStatus, Readiness};
pub use self::metrics::DropReason;
pub use self::spooler::SpoolStatus;
pub use self::token::EntraCredential;

use self::conn::{Conn, Credentials, Policy, PollCtx, RouteCtx, Setup, Side};
use self::metrics::Metrics;
use self::tls::ReloadingIdentity;
use crate::config::{
    Authentication, BridgeConfig, BrokerConnection, Direction, MemberSessions, MqttVersion, QoS,
    Route, SessionRole, Transport,
};
use crate::error::BridgeError;
use crate::spool::{Spool, SpoolOptions};

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
    /// Store-and-forward on disk (`--spool-dir`); `None` keeps messages only in the brokers.
    pub spool: Option<SpoolOptions>,
    /// Where Microsoft Entra ID tokens come from, for a remote connection with
    /// `systemAssignedManagedIdentity`.
    pub entra_credential: Option<EntraCredential>,
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
            spool: None,
            entra_credential: None,
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
    /// The spool, when there is one (its lock is held while the bridge lives).
    pub(crate) spool: Option<Spool>,
    /// The state of each spool queue, for `/readyz`.
    spool_status: Vec<Arc<Mutex<SpoolStatus>>>,
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
                    stalled_secs: status.stalled.map(|waited| waited.as_secs()),
                }
            })
            .collect();
        let shutting_down = self.shutting_down.is_cancelled();
        let spool: Vec<SpoolStatus> = self
            .spool_status
            .iter()
            .map(|status| {
                status
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            })
            .collect();
        // With a spool, a broker that is down or stalled is what the spool is for: the
        // bridge stays ready while every queue takes messages. Refusals still count.
        let spooling = self.spool.is_some();
        let connection_ready = |c: &ConnectionStatus| {
            c.is_ready()
                || (spooling && !c.publishes_refused && (!c.connected || c.stalled_secs.is_some()))
        };
        Readiness {
            ready: !shutting_down
                && connections.iter().all(connection_ready)
                && spool.iter().all(SpoolStatus::is_ready),
            shutting_down,
            connections,
            spool,
        }
    }

    fn drained(&self) -> bool {
        if self.spool.is_some() {
            // Every message received is durable and acknowledged to its source; what the
            // destinations have not acknowledged stays in the spool for the next start.
            return self.conns.iter().all(|conn| conn.gate.is_idle());
        }
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
    eventloop: mqtt::EventLoop,
    routes: Vec<Arc<RouteCtx>>,
    unroutable: Arc<metrics::RouteMetrics>,
    setup: Setup,
    /// The connection (index in [`Bridge::conns`]) that publishes what this one receives;
    /// `None` when it has no routes of its own.
    dest: Option<usize>,
    /// Queue capacity of this connection's publisher kept for the QoS ≥ 1 forwards of every
    /// connection that publishes through it.
    reserve: usize,
    /// This connection's spool queue, when it is a destination and there is a spool.
    lane: Option<spooler::Lane>,
}

/// A configured bridge, ready to [`run`](Bridge::run).
pub struct Bridge {
    shared: Arc<Shared>,
    /// Every connection, in `/readyz` order.
    conns: Vec<Prepared>,
    options: RunOptions,
    window: u16,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("connections", &self.conns.len())
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
    /// [`BridgeError::InstanceOutOfRange`] when [`RunOptions::instance`] is not below a
    /// connector's `bridgeInstances`.
    pub fn new(configs: &[BridgeConfig], options: RunOptions) -> Result<Self, BridgeError> {
        let metrics = Metrics::new();
        let mut conns: Vec<Prepared> = Vec::new();
        let mut window = 0;
        for config in configs {
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
            let mut plan = Plan {
                config,
                window: window_here,
                metrics: &metrics,
                options: &options,
                conns: &mut conns,
            };
            for &instance in &instances {
                plan.instance(instance, implicit_share)?;
            }
        }
        let spool = match &options.spool {
            Some(spool_options) => Some(open_lanes(spool_options, &mut conns, &metrics)?),
            None => None,
        };
        let spool_status = conns
            .iter()
            .filter_map(|c| c.lane.as_ref().map(|lane| Arc::clone(&lane.status)))
            .collect();
        let shared_conns = conns.iter().map(|c| Arc::clone(&c.conn)).collect();
        Ok(Bridge {
            shared: Arc::new(Shared {
                metrics,
                conns: shared_conns,
                shutting_down: CancellationToken::new(),
                failure: Mutex::new(None),
                spool,
                spool_status,
            }),
            conns,
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
            conns,
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
        // One publisher queue per connection, written by the poll task of every connection
        // that forwards through it (a main session carries its shared-subscription members'
        // forwards too).
        let (txs, rxs): (Vec<_>, Vec<_>) = conns
            .iter()
            .map(|prepared| mpsc::channel::<conn::Pending>(prepared.reserve + QOS0_QUEUE))
            .unzip();
        let reserves: Vec<usize> = conns.iter().map(|prepared| prepared.reserve).collect();
        let mut polls = Vec::new();
        for (prepared, rx) in conns.into_iter().zip(rxs) {
            let Prepared {
                conn,
                eventloop,
                routes,
                unroutable,
                setup,
                dest,
                lane,
                ..
            } = prepared;
            // With a spool the origins' forwards go to the spool task, which feeds the
            // publisher from the queue.
            let rx = match lane {
                Some(lane) => {
                    let budget = spooler::budget(window);
                    let (out_tx, out_rx) = mpsc::channel::<conn::Pending>(budget + 1);
                    spawn(
                        &tracker,
                        &shared,
                        &stop,
                        "spool",
                        spooler::run(lane, Arc::clone(&shared), rx, out_tx, budget, stop.clone()),
                    );
                    out_rx
                }
                None => rx,
            };
            let (forward_tx, reserve) = match dest {
                Some(dest) => (txs[dest].clone(), reserves[dest]),
                // No routes: nothing is ever forwarded (every message counts as unroutable).
                None => (mpsc::channel(1).0, 0),
            };
            let span = info_span!(
                "session",
                broker = conn.side.as_str(),
                client_id = %conn.client_id
            );
            let mut setup = setup;
            // A JWT connection refreshes its token on the live session (MQTT 5 AUTH).
            if let Some(source) = setup.token_source()
                && conn.client.can_reauthenticate()
            {
                let (sessions, sessions_rx) = tokio::sync::watch::channel(None);
                setup.sessions = Some(sessions);
                spawn(
                    &tracker,
                    &shared,
                    &stop,
                    "reauth",
                    reauth::run(Arc::clone(&conn), source, sessions_rx, stop.clone())
                        .instrument(span.clone()),
                );
            }
            let ctx = PollCtx {
                conn: Arc::clone(&conn),
                routes,
                unroutable,
                forward_tx,
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
                conn::run_publisher(Arc::clone(&conn), rx, stop.clone()).instrument(span.clone()),
            );
            spawn(
                &tracker,
                &shared,
                &stop,
                "acker",
                conn::run_acker(conn, stop.clone()).instrument(span),
            );
        }
        // Only the poll tasks hold senders now: a publisher's queue closes when they end.
        drop(txs);
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

/// Plans the connections of one connector.
struct Plan<'a, 'c> {
    config: &'a BridgeConfig,
    window: u16,
    metrics: &'a Metrics,
    options: &'a RunOptions,
    conns: &'c mut Vec<Prepared>,
}

impl Plan<'_, '_> {
    /// Adds the connections of instance `instance`: its main session on each broker that
    /// needs one, then its shared-subscription members (each only on its source broker,
    /// publishing through the main session on the other broker).
    fn instance(&mut self, instance: u32, implicit_share: bool) -> Result<(), BridgeError> {
        let config = self.config;
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
        let members: Vec<(&Route, u32)> = config
            .routes
            .iter()
            .filter(|r| r.shared_subscription.is_some())
            .flat_map(|route| {
                config
                    .shared_members(route, instance)
                    .into_iter()
                    .map(move |member| (route, member))
            })
            .collect();
        let own_sessions = config.member_sessions == MemberSessions::BothBrokers;
        let publishes_to = |side: Side| {
            let source = match side {
                Side::Local => Direction::RemoteToLocal,
                Side::Remote => Direction::LocalToRemote,
            };
            !own_sessions && members.iter().any(|(route, _)| route.direction == source)
        };
        let main_id = config.client_id(instance, SessionRole::Main);
        let main_conn = |plan: &mut Self, side: Side| {
            (!main.is_empty() || publishes_to(side))
                .then(|| plan.push(side, &main_id, &main))
                .transpose()
        };
        let local_main = main_conn(self, Side::Local)?;
        let remote_main = main_conn(self, Side::Remote)?;
        if let (Some(local), Some(remote)) = (local_main, remote_main) {
            self.connect(local, remote);
            self.connect(remote, local);
        }
        for (route, member) in members {
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
            let (side, dest_side, dest) = match route.direction {
                Direction::LocalToRemote => (Side::Local, Side::Remote, remote_main),
                Direction::RemoteToLocal => (Side::Remote, Side::Local, local_main),
            };
            let index = self.push(side, &id, &routes)?;
            // A destination session of the member's own (same client ID, subscribing
            // nothing there), or its instance's main session.
            let dest = if own_sessions {
                Some(self.push(dest_side, &id, &routes)?)
            } else {
                dest
            };
            if let Some(dest) = dest {
                self.connect(index, dest);
            }
        }
        Ok(())
    }

    /// Adds a connection whose source routes are those of `routes` that start on `side`.
    fn push(
        &mut self,
        side: Side,
        client_id: &str,
        routes: &[LinkRoute<'_>],
    ) -> Result<usize, BridgeError> {
        let prepared = prepare_conn(
            self.config,
            side,
            client_id,
            routes,
            self.window,
            self.metrics,
            self.options,
        )?;
        self.conns.push(prepared);
        Ok(self.conns.len() - 1)
    }

    /// Makes `dest` publish what `source` receives, and sizes `dest`'s queue for it: the
    /// source holds at most `gate_limit` unsettled messages, each forwarded once per route.
    fn connect(&mut self, source: usize, dest: usize) {
        let routes = self.conns[source].routes.len();
        self.conns[source].dest = Some(dest);
        if routes > 0 {
            self.conns[dest].reserve += conn::gate_limit(self.window) * routes;
        }
    }
}

fn prepare_conn(
    config: &BridgeConfig,
    side: Side,
    client_id: &str,
    routes: &[LinkRoute<'_>],
    window: u16,
    metrics: &Metrics,
    options: &RunOptions,
) -> Result<Prepared, BridgeError> {
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
    let client_error = |reason: String| BridgeError::Client {
        bridge: config.name.clone(),
        side: side.as_str(),
        reason,
    };
    let mqtt = mqtt_options(connection, config.protocol, client_id, window, options)
        .map_err(client_error)?;
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
    )
    .map_err(client_error)?;
    Ok(Prepared {
        conn,
        eventloop,
        routes: route_ctxs,
        unroutable,
        setup: setup(connection, options),
        dest: None,
        reserve: 0,
        lane: None,
    })
}

/// Opens the spool and the queue of every destination connection.
fn open_lanes(
    options: &SpoolOptions,
    conns: &mut [Prepared],
    metrics: &Metrics,
) -> Result<Spool, BridgeError> {
    let spool = Spool::open(options.clone())?;
    let destinations: Vec<usize> = conns.iter().filter_map(|c| c.dest).collect();
    let mut names = Vec::new();
    for (index, prepared) in conns.iter_mut().enumerate() {
        if !destinations.contains(&index) {
            continue;
        }
        let conn = &prepared.conn;
        let name = format!("{}~{}~{}", conn.bridge, conn.side.as_str(), conn.client_id);
        let direction = match conn.side {
            Side::Remote => Direction::LocalToRemote,
            Side::Local => Direction::RemoteToLocal,
        };
        let lane = spooler::Lane::open(
            &spool,
            name.clone(),
            conn.bridge.clone(),
            direction.as_str(),
            metrics.spool(&name),
        )?;
        names.push(name);
        prepared.lane = Some(lane);
    }
    let origins: Vec<(usize, Vec<Arc<RouteCtx>>)> = conns
        .iter()
        .filter_map(|c| c.dest.map(|d| (d, c.routes.clone())))
        .collect();
    for (dest, routes) in origins {
        if let Some(lane) = conns[dest].lane.as_mut() {
            for route in routes {
                lane.routes
                    .insert(route.name.clone(), Arc::clone(&route.metrics));
            }
        }
    }
    for unused in spool.unused(&names) {
        warn!(
            queue = %unused,
            "spool: queue {unused} belongs to no session of this configuration (a renamed \
             bridge, route or client ID?); its messages stay on disk undelivered \
             (`e4k bridge spool inspect` shows them)"
        );
    }
    info!(
        dir = %options.dir.display(),
        max_bytes = options.max_bytes,
        when_full = options.when_full.as_str(),
        queues = names.len(),
        "spool open"
    );
    Ok(spool)
}

fn mqtt_options(
    connection: &BrokerConnection,
    protocol: MqttVersion,
    client_id: &str,
    window: u16,
    options: &RunOptions,
) -> Result<mqtt::Options, String> {
    let session = &connection.session;
    let keep_alive = session.keep_alive.max(Duration::from_secs(5));
    let connect_timeout = options.connect_timeout.as_secs().max(1);
    let port = connection.endpoint.port;
    let host = connection.endpoint.host.clone();
    // Event Grid serves MQTT over WebSocket on `/mqtt`.
    let websocket = connection.transport == Transport::WebSocket;
    let tls = connection.tls.is_some();
    let url = |scheme: &str| format!("{scheme}://{host}:{port}/mqtt");
    // TLS (`Tls`/`Wss`) is set before each connection attempt (see `Setup`).
    match protocol {
        MqttVersion::V5 => {
            let mut mqtt = match (websocket, tls) {
                (false, _) => rumqttc_next::MqttOptions::new(
                    client_id,
                    rumqttc_next::Broker::tcp(host.clone(), port),
                ),
                (true, false) => rumqttc_next::MqttOptions::new(
                    client_id,
                    rumqttc_next::Broker::websocket(url("ws"))
                        .map_err(|error| format!("WebSocket URL {}: {error}", url("ws")))?,
                ),
                // A `wss://` broker needs a TLS configuration from the start: this one trusts
                // nothing and is replaced before the first attempt.
                (true, true) => rumqttc_next::MqttOptions::websocket_with_tls_config(
                    client_id,
                    url("wss"),
                    rumqttc_next::TlsConfiguration::Rustls(
                        tls::placeholder_config().map_err(|error| error.to_string())?,
                    ),
                )
                .map_err(|error| format!("WebSocket URL {}: {error}", url("wss")))?,
            };
            // Acknowledgements and forwards are small packets that gate each other: Nagle's
            // algorithm would hold them back for the peer's delayed ACK (tens of ms).
            let mut network = rumqttc_next::NetworkOptions::new();
            network.set_tcp_nodelay(true);
            network.set_connection_timeout(connect_timeout);
            mqtt.set_keep_alive(u16::try_from(keep_alive.as_secs()).unwrap_or(u16::MAX))
                .set_clean_start(session.clean_start)
                .set_session_expiry_interval(Some(
                    u32::try_from(session.session_expiry.as_secs()).unwrap_or(u32::MAX),
                ))
                .set_max_packet_size(Some(session.max_packet_size.max(1)))
                .set_connect_timeout(Duration::from_secs(connect_timeout))
                .set_network_options(network);
            let mqtt = mqtt::v5_options(mqtt, window);
            mqtt.validate().map_err(|error| error.to_string())?;
            Ok(mqtt::Options::V5(Box::new(mqtt)))
        }
        MqttVersion::V3 => {
            let mut network = NetworkOptions::new();
            network.set_tcp_nodelay(true);
            network.set_connection_timeout(connect_timeout);
            // rumqttc 0.25 takes the WebSocket URL as the host.
            let host = match (websocket, tls) {
                (false, _) => host.clone(),
                (true, false) => url("ws"),
                (true, true) => url("wss"),
            };
            // MQTT 3.1.1 has no session expiry (a persistent session lives as long as the
            // broker keeps it), no Receive Maximum (the broker's own in-flight setting applies;
            // the gate's read pause bounds what the bridge holds) and no Maximum Packet Size
            // in CONNACK: the configured maximum is assumed for the broker too.
            let max_packet = usize::try_from(session.max_packet_size).unwrap_or(usize::MAX);
            let mut mqtt = rumqttc::MqttOptions::new(client_id, host, port);
            mqtt.set_keep_alive(keep_alive)
                .set_clean_session(session.clean_start)
                .set_max_packet_size(max_packet, max_packet)
                .set_inflight(window)
                .set_manual_acks(true);
            if websocket && !tls {
                mqtt.set_transport(rumqttc::Transport::Ws);
            }
            Ok(mqtt::Options::V3(
                Box::new(mqtt),
                network,
                session.max_packet_size,
            ))
        }
    }
}

fn setup(connection: &BrokerConnection, options: &RunOptions) -> Setup {
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
        Authentication::EntraToken { audience } => {
            Credentials::Jwt(Arc::new(token::TokenSource::Entra {
                audience: audience.clone(),
                credential: options.entra_credential.clone(),
            }))
        }
        Authentication::JwtFile { token_file } => {
            Credentials::Jwt(Arc::new(token::TokenSource::File(token_file.clone())))
        }
        Authentication::X509(_) | Authentication::Anonymous => Credentials::None,
    };
    Setup::new(
        connection.tls.clone(),
        identity,
        credentials,
        connection.transport == Transport::WebSocket,
    )
}
