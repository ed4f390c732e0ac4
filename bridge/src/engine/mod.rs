//! The routing engine: connects both brokers and forwards messages along the routes.
//!
//! # Links
//!
//! The unit of work is a *link*: a client session on a route's source broker and the
//! session on the other broker that publishes what it receives. Each source session has its
//! own ordering, acknowledgement gate and in-flight window; a destination session may
//! publish for several source sessions (see `conn`).
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
//! Sessions speak MQTT 5, or MQTT 3.1.1 with `protocol: v3` (see `mqtt` for what 3.1.1
//! leaves out: properties, No Local, Receive Maximum, session expiry, enhanced
//! authentication). Every session is persistent (Clean Start off, the configured session expiry),
//! announce a Receive Maximum (the in-flight window) and a maximum packet size, and use
//! manual acknowledgements: a message is acknowledged to its source only after the
//! destination acknowledged it, in arrival order (see `conn`). Subscriptions use No Local
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
mod plan;
#[cfg(target_os = "linux")]
pub(crate) mod process;
pub(crate) mod reauth;
pub(crate) mod spooler;
pub(crate) mod tls;
pub(crate) mod token;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, info, info_span, warn};

pub use self::backoff::BackoffPolicy;
pub use self::forward::{HOPS_PROPERTY, RetainPolicy};
pub use self::health::{ConnectionStatus, Readiness};
pub use self::metrics::DropReason;
use self::plan::{Plan, open_lanes, spawn};
pub use self::spooler::SpoolStatus;
pub use self::token::EntraCredential;

use self::conn::{Conn, Policy, PollCtx, RouteCtx, Setup};
use self::metrics::Metrics;
use crate::config::{BridgeConfig, Route};
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
