//! Prometheus metrics of the engine, per route and direction and per broker connection.
//!
//! | Metric | Type | Labels |
//! |---|---|---|
//! | `e4k_bridge_messages_received_total` | counter | bridge, route, direction |
//! | `e4k_bridge_messages_forwarded_total` | counter | bridge, route, direction |
//! | `e4k_bridge_messages_dropped_total` | counter | bridge, route, direction, reason |
//! | `e4k_bridge_messages_duplicate_total` | counter | bridge, route, direction |
//! | `e4k_bridge_messages_retried_total` | counter | bridge, route, direction |
//! | `e4k_bridge_messages_inflight` | gauge | bridge, route, direction |
//! | `e4k_bridge_forward_latency_seconds` | histogram | bridge, route, direction |
//! | `e4k_bridge_connection_up` | gauge | bridge, broker, client_id |
//! | `e4k_bridge_connection_attempts_failed_total` | counter | bridge, broker, client_id |
//! | `e4k_bridge_connection_session_lost_total` | counter | bridge, broker, client_id |
//! | `e4k_bridge_connection_published_total` | counter | bridge, broker, client_id |
//! | `e4k_bridge_connection_reauthenticated_total` | counter | bridge, broker, client_id |
//! | `e4k_bridge_connection_reauthentication_failed_total` | counter | bridge, broker, client_id |
//! | `e4k_bridge_spool_bytes` | gauge | queue |
//! | `e4k_bridge_spool_messages` | gauge | queue |
//! | `e4k_bridge_spool_oldest_message_age_seconds` | gauge | queue |
//! | `e4k_bridge_spool_full` | gauge | queue |
//! | `e4k_bridge_spool_fsyncs_total` | counter | queue |
//! | `e4k_bridge_spool_write_errors_total` | counter | queue |
//! | `e4k_bridge_spool_torn_records_total` | counter | queue |
//!
//! `received` counts each message once per route that matched it; `forwarded` counts it once
//! the destination acknowledged it (PUBACK, or PUBREC for QoS 2; when it was written for
//! QoS 0); `dropped` names a [`DropReason`]; `duplicate` counts arrivals with the DUP flag;
//! `retried` counts re-publications, after a destination reconnect, of forwards that had been
//! written to the lost connection without an acknowledgement; `connection_published`
//! counts the messages the bridge published on a session and the broker acknowledged (QoS 0:
//! written), whichever routes they came from, so its rate shows how close a remote session is
//! to Event Grid's per-session quota (1,000 msg/s): one near it calls for more
//! `bridgeInstances`. The identity
//! `received = forwarded + dropped + inflight` holds per route. The latency is the time from
//! the message's arrival to the destination's acknowledgement.
//!
//! On Linux the standard process metrics are exported too (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, …; see `process.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Why a message was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Larger than the destination's maximum packet size.
    Oversize,
    /// Its message expiry interval ran out before it could be forwarded.
    Expired,
    /// Its `e4k-hops` user property reached the hop limit (a loop).
    HopLimit,
    /// The destination answered with a failure reason code.
    Rejected,
    /// A QoS 0 message arrived while the forwarding queue was full.
    Busy,
    /// A QoS 0 forward was lost when the destination connection dropped.
    Disconnected,
    /// The topic is not valid UTF-8 or matches no route.
    Unroutable,
    /// The source broker sent more unacknowledged messages than its Receive Maximum allows.
    Overflow,
    /// The spool was full and its oldest messages were dropped (`--spool-when-full drop-oldest`).
    SpoolFull,
}

impl DropReason {
    /// Every reason, in label order.
    pub const ALL: [DropReason; 9] = [
        DropReason::Oversize,
        DropReason::Expired,
        DropReason::HopLimit,
        DropReason::Rejected,
        DropReason::Busy,
        DropReason::Disconnected,
        DropReason::Unroutable,
        DropReason::Overflow,
        DropReason::SpoolFull,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Oversize => "oversize",
            DropReason::Expired => "expired",
            DropReason::HopLimit => "hop_limit",
            DropReason::Rejected => "rejected",
            DropReason::Busy => "busy",
            DropReason::Disconnected => "disconnected",
            DropReason::Unroutable => "unroutable",
            DropReason::Overflow => "overflow",
            DropReason::SpoolFull => "spool_full",
        }
    }

    fn index(self) -> usize {
        DropReason::ALL
            .iter()
            .position(|reason| *reason == self)
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    bridge: String,
    route: String,
    direction: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    bridge: String,
    route: String,
    direction: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnLabels {
    bridge: String,
    broker: String,
    client_id: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~52 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 20))
}

/// The metric families of one engine.
pub(crate) struct Metrics {
    registry: Registry,
    received: Family<RouteLabels, Counter>,
    forwarded: Family<RouteLabels, Counter>,
    dropped: Family<DropLabels, Counter>,
    duplicate: Family<RouteLabels, Counter>,
    retried: Family<RouteLabels, Counter>,
    inflight: Family<RouteLabels, Gauge>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    up: Family<ConnLabels, Gauge>,
    failed: Family<ConnLabels, Counter>,
    session_lost: Family<ConnLabels, Counter>,
    published: Family<ConnLabels, Counter>,
    reauthenticated: Family<ConnLabels, Counter>,
    reauth_failed: Family<ConnLabels, Counter>,
    /// Forwards created and not yet settled, over all routes (for the shutdown drain).
    outstanding: Arc<AtomicUsize>,
    spool: SpoolFamilies,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

/// The spool's families, per queue (`<bridge>~<broker>~<client id>` of the destination).
#[derive(Default)]
struct SpoolFamilies {
    bytes: Family<QueueLabels, Gauge>,
    messages: Family<QueueLabels, Gauge>,
    oldest: Family<QueueLabels, Gauge>,
    full: Family<QueueLabels, Gauge>,
    fsyncs: Family<QueueLabels, Counter>,
    write_errors: Family<QueueLabels, Counter>,
    torn: Family<QueueLabels, Counter>,
}

impl SpoolFamilies {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "spool_bytes",
            "Bytes of the spool queue's segment files",
            self.bytes.clone(),
        );
        registry.register(
            "spool_messages",
            "Messages in the spool queue not yet acknowledged by the destination",
            self.messages.clone(),
        );
        registry.register_with_unit(
            "spool_oldest_message_age",
            "Age of the oldest message in the spool queue",
            Unit::Seconds,
            self.oldest.clone(),
        );
        registry.register(
            "spool_full",
            "1 while the spool is full (block: sources are not acknowledged; drop-oldest: \
             the oldest messages are dropped)",
            self.full.clone(),
        );
        registry.register(
            "spool_fsyncs",
            "fdatasync calls of the spool queue (one covers a batch of messages)",
            self.fsyncs.clone(),
        );
        registry.register(
            "spool_write_errors",
            "Spool writes or syncs that failed (e.g. ENOSPC); the batch is retried",
            self.write_errors.clone(),
        );
        registry.register(
            "spool_torn_records",
            "Torn records cut off the end of the spool queue at startup (a crash mid-write)",
            self.torn.clone(),
        );
    }
}

/// The spool metric handles of one queue.
#[derive(Debug, Clone)]
pub(crate) struct SpoolMetrics {
    pub(crate) bytes: Gauge,
    pub(crate) messages: Gauge,
    pub(crate) oldest_secs: Gauge,
    pub(crate) full: Gauge,
    pub(crate) fsyncs: Counter,
    pub(crate) write_errors: Counter,
    pub(crate) torn: Counter,
}

impl Metrics {
    /// Registers every family.
    pub(crate) fn new() -> Self {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("e4k_bridge");
        let received = Family::default();
        let forwarded = Family::default();
        let dropped = Family::default();
        let duplicate = Family::default();
        let retried = Family::default();
        let inflight = Family::default();
        let latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let up = Family::default();
        let failed = Family::default();
        let session_lost = Family::default();
        let published = Family::default();
        let reauthenticated = Family::default();
        let reauth_failed = Family::default();
        registry.register(
            "messages_received",
            "Messages received from the source broker, per matching route",
            received.clone(),
        );
        registry.register(
            "messages_forwarded",
            "Messages acknowledged by the destination broker",
            forwarded.clone(),
        );
        registry.register(
            "messages_dropped",
            "Messages not forwarded, by reason",
            dropped.clone(),
        );
        registry.register(
            "messages_duplicate",
            "Messages that arrived with the DUP flag (redelivered by the source broker)",
            duplicate.clone(),
        );
        registry.register(
            "messages_retried",
            "Messages published again after the destination connection was lost",
            retried.clone(),
        );
        registry.register(
            "messages_inflight",
            "Messages received and not yet acknowledged by the destination",
            inflight.clone(),
        );
        registry.register_with_unit(
            "forward_latency",
            "Time from a message's arrival to the destination's acknowledgement",
            Unit::Seconds,
            latency.clone(),
        );
        registry.register(
            "connection_up",
            "1 while the connection to the broker is established",
            up.clone(),
        );
        registry.register(
            "connection_attempts_failed",
            "Connection attempts that failed and connections that were lost",
            failed.clone(),
        );
        registry.register(
            "connection_session_lost",
            "Reconnections on which the broker had no session for the bridge",
            session_lost.clone(),
        );
        registry.register(
            "connection_published",
            "Messages the bridge published on this connection that the broker acknowledged",
            published.clone(),
        );
        registry.register(
            "connection_reauthenticated",
            "Token refreshes (MQTT 5 AUTH re-authentication) the broker accepted",
            reauthenticated.clone(),
        );
        registry.register(
            "connection_reauthentication_failed",
            "Token refreshes that failed: no new token, or the broker refused it",
            reauth_failed.clone(),
        );
        let spool = SpoolFamilies::default();
        spool.register(registry);
        #[cfg(target_os = "linux")]
        root.register_collector(Box::new(super::process::ProcessCollector));
        Metrics {
            registry: root,
            received,
            forwarded,
            dropped,
            duplicate,
            retried,
            inflight,
            latency,
            up,
            failed,
            session_lost,
            published,
            reauthenticated,
            reauth_failed,
            outstanding: Arc::new(AtomicUsize::new(0)),
            spool,
        }
    }

    /// The spool handles of one queue.
    pub(crate) fn spool(&self, queue: &str) -> SpoolMetrics {
        let labels = QueueLabels {
            queue: queue.to_owned(),
        };
        let f = &self.spool;
        SpoolMetrics {
            bytes: f.bytes.get_or_create_owned(&labels),
            messages: f.messages.get_or_create_owned(&labels),
            oldest_secs: f.oldest.get_or_create_owned(&labels),
            full: f.full.get_or_create_owned(&labels),
            fsyncs: f.fsyncs.get_or_create_owned(&labels),
            write_errors: f.write_errors.get_or_create_owned(&labels),
            torn: f.torn.get_or_create_owned(&labels),
        }
    }

    /// The handles of one route and direction.
    pub(crate) fn route(&self, bridge: &str, route: &str, direction: &str) -> Arc<RouteMetrics> {
        let labels = RouteLabels {
            bridge: bridge.to_owned(),
            route: route.to_owned(),
            direction: direction.to_owned(),
        };
        let dropped = DropReason::ALL.map(|reason| {
            self.dropped
                .get_or_create_owned(&DropLabels {
                    bridge: bridge.to_owned(),
                    route: route.to_owned(),
                    direction: direction.to_owned(),
                    reason: reason.as_str().to_owned(),
                })
                .clone()
        });
        Arc::new(RouteMetrics {
            name: route.to_owned(),
            received: self.received.get_or_create_owned(&labels),
            forwarded: self.forwarded.get_or_create_owned(&labels),
            duplicate: self.duplicate.get_or_create_owned(&labels),
            retried: self.retried.get_or_create_owned(&labels),
            inflight: self.inflight.get_or_create_owned(&labels),
            latency: self.latency.get_or_create_owned(&labels),
            dropped,
            outstanding: Arc::clone(&self.outstanding),
        })
    }

    /// The handles of one broker connection.
    pub(crate) fn connection(&self, bridge: &str, broker: &str, client_id: &str) -> ConnMetrics {
        let labels = ConnLabels {
            bridge: bridge.to_owned(),
            broker: broker.to_owned(),
            client_id: client_id.to_owned(),
        };
        ConnMetrics {
            up: self.up.get_or_create_owned(&labels),
            failed: self.failed.get_or_create_owned(&labels),
            session_lost: self.session_lost.get_or_create_owned(&labels),
            published: self.published.get_or_create_owned(&labels),
            reauthenticated: self.reauthenticated.get_or_create_owned(&labels),
            reauth_failed: self.reauth_failed.get_or_create_owned(&labels),
        }
    }

    /// Forwards not settled yet.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    /// The Prometheus text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The metric handles of one route and direction, resolved once.
#[derive(Debug)]
pub(crate) struct RouteMetrics {
    name: String,
    pub(crate) received: Counter,
    pub(crate) forwarded: Counter,
    pub(crate) duplicate: Counter,
    pub(crate) retried: Counter,
    pub(crate) inflight: Gauge,
    pub(crate) latency: Histogram,
    dropped: [Counter; DropReason::ALL.len()],
    outstanding: Arc<AtomicUsize>,
}

impl RouteMetrics {
    /// The route's name.
    pub(crate) fn route_name(&self) -> &str {
        &self.name
    }

    /// A forward begins: counted as received and in flight.
    pub(crate) fn begin(&self) {
        self.received.inc();
        self.inflight.inc();
        self.outstanding.fetch_add(1, Ordering::AcqRel);
    }

    /// A forward ends.
    pub(crate) fn end(&self, outcome: Result<Duration, DropReason>) {
        self.inflight.dec();
        match outcome {
            Ok(latency) => {
                self.forwarded.inc();
                self.latency.observe(latency.as_secs_f64());
            }
            Err(reason) => {
                self.dropped[reason.index()].inc();
            }
        }
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
    }

    /// A spooled forward that ends unsettled (at shutdown): it stays in the spool.
    pub(crate) fn end_unsettled(&self) {
        self.inflight.dec();
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
    }

    /// A message that never became a forward (no route, invalid topic, overflow).
    pub(crate) fn drop_unforwarded(&self, reason: DropReason) {
        self.received.inc();
        self.dropped[reason.index()].inc();
    }
}

/// The metric handles of one broker connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnMetrics {
    pub(crate) up: Gauge,
    pub(crate) failed: Counter,
    pub(crate) session_lost: Counter,
    pub(crate) published: Counter,
    pub(crate) reauthenticated: Counter,
    pub(crate) reauth_failed: Counter,
}
