//! One broker connection (a client session) and its three tasks.
//!
//! A connection plays two roles at once. As a **source** it subscribes the filters of the
//! routes that start on its broker and hands each matching message to its destination
//! connection's publisher; as a **destination** it publishes what its origin connections
//! received. A main session is the destination of the main session on the other broker and
//! of the shared-subscription members of its instance there, so one destination may carry
//! forwards from several origins.
//!
//! # Several origins on one destination
//!
//! Each forward ([`Pending`]) carries its origin: the [`Ticket`] in its settlement holds the
//! origin connection's [`Gate`] (and that gate's generation), and the route metrics it counts
//! on. The destination correlates its publishes with packet identifiers without caring about
//! origins (its publisher is the only caller of `try_publish`, so `Outgoing::Publish` events
//! come in publish order), and a PUBACK settles exactly the ticket of the forward it
//! acknowledges, in whichever gate that is. The publisher queue is shared by the origins and
//! preserves each origin's order (as do the outbox and its resend list after a session loss),
//! and it is sized for all of them: each origin holds at most [`gate_limit`] unsettled
//! messages per route. An origin never waits for another: a source's read-pause (at most
//! [`MAX_PAUSE`]) depends only on its own gate, and the destination publishes the origins'
//! forwards in the order they were queued.
//!
//! # Tasks
//!
//! - **poll** ([`run_poll`]) owns the rumqttc `EventLoop`, polls it and never blocks: it only
//!   takes short locks, uses `try_send` and wakes the other tasks. It never publishes (a
//!   publish from the polling task can freeze rumqttc under load, rumqtt#1025).
//! - **publisher** ([`run_publisher`]) is the only caller of `try_publish` on this
//!   connection, so the order of its calls is the order in which rumqttc reports
//!   `Outgoing::Publish(pkid)` events: that is how a PUBACK is matched to its message
//!   (rumqttc's `publish()` returns no packet identifier).
//! - **acker** ([`run_acker`]) sends the PUBACKs of the source role, in arrival order.
//!
//! # At-least-once and ordering
//!
//! Every QoS ≥ 1 message received takes a place in the connection's [`Gate`], in arrival
//! order. The place is released when each of its forwards is *settled*: acknowledged by the
//! destination, or deliberately dropped (and counted). The acker acknowledges from the front
//! of the gate while the front is released, so acknowledgements go out in arrival order (MQTT
//! v5 §4.6) and only after the destination took the message. The gate is bounded by the
//! Receive Maximum the bridge announces; the destination side keeps each unacknowledged
//! message (payload shared, not copied) until its PUBACK.
//!
//! # Reconnects
//!
//! After any connection error the poll task drops the client's own queue of unacknowledged
//! publishes and its protocol state ([`EventLoop::on_lost`]: rumqttc 0.25 would silently
//! discard the queue when the broker has no session, and a stale packet-id collision would
//! wedge it for good, rumqtt#1056/#1014; rumqttc-v5-next would replay it behind the engine's
//! back), and marks every unsettled forward for re-publication; the publisher publishes
//! them again, in order, before anything new.
//!
//! # Tokens
//!
//! A JWT connection (MQTT 5) has a fourth task, [`reauth::run`](super::reauth::run), that
//! refreshes the token on the live session before it expires; the poll task tells it about
//! each connection and reports the broker's answers. The gate is discarded: the source broker
//! redelivers what was not acknowledged (with a persistent session), and those arrivals are
//! counted as duplicates. Reconnection waits a capped, jittered exponential backoff.
//!
//! # Modules
//!
//! This file holds the connection shared by the tasks ([`Conn`]); `gate` the ordered
//! acknowledgements, each forward's settlement and the acker task; `outbox` the destination
//! role's outbox and the publisher task; `poll` the poll task; `setup` TLS and credentials.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rumqttc_next::mqttbytes::QoS;
use rumqttc_next::mqttbytes::v5::SubscribeFilter as Filter;
use tokio::sync::Notify;

use super::backoff::BackoffPolicy;
use super::forward::RetainPolicy;
use super::metrics::{ConnMetrics, RouteMetrics};
use super::mqtt::{self, Client, EventLoop};
use crate::config::TopicFilter;

/// Locks a mutex, ignoring poisoning: the state stays consistent because no code panics while
/// holding these locks.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which broker a connection goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The edge broker.
    Local,
    /// Event Grid (or a stand-in).
    Remote,
}

impl Side {
    /// `local` or `remote`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Side::Local => "local",
            Side::Remote => "remote",
        }
    }
}

/// A route as one source connection sees it.
#[derive(Debug)]
pub(crate) struct RouteCtx {
    /// The route's name.
    pub(crate) name: String,
    /// The route's source filter (without any `$share/` prefix), for matching.
    pub(crate) filter: TopicFilter,
    /// The static target topic.
    pub(crate) target: Option<String>,
    /// The publish QoS, already capped for the destination side.
    pub(crate) qos: QoS,
    /// Metric handles.
    pub(crate) metrics: Arc<RouteMetrics>,
}

/// Which of a connection's routes a received topic matches, each filter matched once per
/// message: how many, and which of the first 64 (a bit each; beyond them [`RouteHits::hit`]
/// matches again).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouteHits {
    bits: u64,
    /// How many routes match.
    pub(crate) count: usize,
}

impl RouteHits {
    pub(crate) fn of(routes: &[Arc<RouteCtx>], topic: &str) -> Self {
        let mut hits = RouteHits::default();
        for (i, route) in routes.iter().enumerate() {
            if route.filter.matches(topic) {
                hits.count += 1;
                hits.bits |= if i < 64 { 1 << i } else { 0 };
            }
        }
        hits
    }

    /// Whether `route`, the `i`-th of the routes [`RouteHits::of`] was given, matches `topic`.
    pub(crate) fn hit(&self, i: usize, route: &RouteCtx, topic: &str) -> bool {
        if i < 64 {
            self.bits & (1 << i) != 0
        } else {
            route.filter.matches(topic)
        }
    }
}

/// Engine-wide forwarding settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Reconnect backoff.
    pub(crate) backoff: BackoffPolicy,
    /// Hop limit.
    pub(crate) hop_limit: u32,
    /// Retain policy.
    pub(crate) retain: RetainPolicy,
    /// Receive Maximum announced to the broker: the in-flight window of the source role.
    pub(crate) window: u16,
}

mod gate;
mod outbox;
mod poll;
mod setup;

pub(crate) use self::gate::{Gate, Pending, Settle, SpoolAck, Ticket, run_acker};
use self::outbox::Outbox;
pub(crate) use self::outbox::run_publisher;
pub(crate) use self::poll::{PollCtx, gate_limit, run_poll};
pub(crate) use self::setup::{Credentials, Setup};

/// Health of a connection, for `/readyz`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Status {
    pub(crate) connected: bool,
    pub(crate) subscribed: bool,
    /// The broker refused the last message the bridge published (e.g. not authorized).
    pub(crate) publishes_refused: bool,
    pub(crate) last_error: Option<String>,
    /// How long the oldest published forward has waited for an acknowledgement, when that
    /// is longer than the connection's stall limit.
    pub(crate) stalled: Option<Duration>,
}

/// A broker connection shared by its tasks.
pub(crate) struct Conn {
    pub(crate) side: Side,
    pub(crate) bridge: String,
    pub(crate) client_id: String,
    pub(crate) endpoint: String,
    pub(crate) client: Client,
    outbox: Mutex<Outbox>,
    wake_publisher: Notify,
    /// Set by the publisher before it waits for rumqttc to take requests (or for the
    /// connection): only then do the poll task's events wake it.
    publisher_blocked: AtomicBool,
    /// A blocked publisher is woken once no more than this many of its publishes wait in
    /// rumqttc's request channel, so that it hands over a batch rather than one at a time.
    publisher_low_water: usize,
    pub(crate) gate: Arc<Gate>,
    status: Mutex<Status>,
    filters: Vec<Filter>,
    pub(crate) metrics: ConnMetrics,
    /// How long published forwards may wait for an acknowledgement before the connection
    /// counts as stalled.
    stall_after: Duration,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("side", &self.side)
            .field("client_id", &self.client_id)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// A connection that is not connected yet.
    pub(crate) fn new(
        side: Side,
        bridge: &str,
        endpoint: String,
        options: mqtt::Options,
        filters: Vec<Filter>,
        metrics: ConnMetrics,
        channel: usize,
    ) -> Result<(Arc<Conn>, EventLoop), String> {
        let client_id = options.client_id();
        let stall_after = options.keep_alive();
        let (client, eventloop) = mqtt::client(options, channel)?;
        let conn = Conn {
            side,
            bridge: bridge.to_owned(),
            client_id,
            endpoint,
            client,
            outbox: Mutex::new(Outbox::default()),
            wake_publisher: Notify::new(),
            publisher_blocked: AtomicBool::new(false),
            publisher_low_water: channel / 2,
            gate: Arc::new(Gate::default()),
            status: Mutex::new(Status::default()),
            filters,
            metrics,
            stall_after,
        };
        Ok((Arc::new(conn), eventloop))
    }

    /// The connection's health.
    pub(crate) fn status(&self) -> Status {
        let stalled = self.stalled();
        let mut status = lock(&self.status).clone();
        status.stalled = stalled;
        status
    }

    /// How long published forwards have waited for any acknowledgement while connected, when
    /// that exceeds the stall limit (a keep-alive): a broker acknowledges in milliseconds, so
    /// a session that takes messages but acknowledges none for that long is stuck, whatever
    /// its keep-alive says (a client wedged by rumqtt#1056 answers pings).
    pub(crate) fn stalled(&self) -> Option<Duration> {
        let outbox = lock(&self.outbox);
        let waited = outbox.waiting_since.filter(|_| outbox.connected)?.elapsed();
        (waited > self.stall_after).then_some(waited)
    }

    /// Whether every forward this connection publishes is settled.
    pub(crate) fn outbox_empty(&self) -> bool {
        lock(&self.outbox).is_empty()
    }

    /// Wakes the publisher if it waits for rumqttc to take requests and rumqttc has room for
    /// a batch; `queued` is the number of its publishes still in rumqttc's request channel
    /// (read under the outbox lock when `None`). While more are queued, rumqttc reports each
    /// one it takes with an event, so a later event wakes the publisher.
    fn wake_publisher_if_blocked(&self, queued: Option<usize>) {
        if self.publisher_blocked.load(Ordering::SeqCst) {
            let queued = queued.unwrap_or_else(|| lock(&self.outbox).queued.len());
            if queued <= self.publisher_low_water {
                self.wake_publisher.notify_one();
            }
        }
    }

    fn set_status(&self, update: impl FnOnce(&mut Status)) {
        update(&mut lock(&self.status));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::metrics::Metrics;

    #[test]
    fn route_hits_count_every_route_and_keep_the_first_64() {
        let metrics = Metrics::new();
        let routes: Vec<_> = (0..70)
            .map(|i| {
                let filter = if i % 3 == 0 { "a/#" } else { "b/+" };
                Arc::new(RouteCtx {
                    name: format!("r{i}"),
                    filter: TopicFilter::parse(filter).unwrap(),
                    target: None,
                    qos: QoS::AtLeastOnce,
                    metrics: metrics.route("b", "r", "local-to-remote"),
                })
            })
            .collect();
        let hits = RouteHits::of(&routes, "a/x");
        assert_eq!(hits.count, 24, "routes 0, 3, …, 69");
        for (i, route) in routes.iter().enumerate() {
            assert_eq!(hits.hit(i, route, "a/x"), i % 3 == 0, "route {i}");
        }
        assert_eq!(RouteHits::of(&routes, "c"), RouteHits::default());
    }
}
