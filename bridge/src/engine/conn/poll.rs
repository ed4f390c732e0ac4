//! The poll task: connecting with backoff, the event loop, the source role (matching
//! routes, the gate's read-pause) and the destination role's acknowledgements.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc_next::mqttbytes::QoS;
use rumqttc_next::mqttbytes::v5::Publish;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::gate::{AckerWakes, Gate, Pending, Settle, Ticket};
use super::setup::Setup;
use super::{Conn, Policy, RouteCtx, RouteHits, lock};
use crate::engine::backoff::Backoff;
use crate::engine::forward::{self, Limits, Shape};
use crate::engine::metrics::{DropReason, RouteMetrics};
use crate::engine::mqtt::{EventLoop, Outgoing, PollError, Polled};

/// Everything the poll task of one connection needs.
pub(crate) struct PollCtx {
    /// This connection.
    pub(crate) conn: Arc<Conn>,
    /// The routes whose source is this connection's broker.
    pub(crate) routes: Vec<Arc<RouteCtx>>,
    /// Where messages that match no route are counted.
    pub(crate) unroutable: Arc<RouteMetrics>,
    /// The destination connection's publisher queue (shared with its other origins).
    pub(crate) forward_tx: mpsc::Sender<Pending>,
    /// Capacity of the destination's queue kept free for the QoS ≥ 1 messages of all its
    /// origins (QoS 0 ones are dropped beyond it).
    pub(crate) reserve: usize,
    /// Connection setup.
    pub(crate) setup: Setup,
    /// Forwarding settings.
    pub(crate) policy: Policy,
    /// Stop taking new messages (then drain).
    pub(crate) shutdown: CancellationToken,
    /// Stop now.
    pub(crate) stop: CancellationToken,
}

/// The most messages with unsettled forwards a source session holds before it reconnects as
/// a last resort: the Receive Maximum it announces, with room for brokers that do not honour it
/// (mosquitto 2.0.11 keeps sending once acknowledgements flow, and sends a session's whole
/// backlog on reconnect). See [`pause_limit`] for the first line of defence.
pub(crate) fn gate_limit(window: u16) -> usize {
    usize::from(window) * 4 + 256
}

/// Above this many messages whose forwards are not settled, the poll task stops reading
/// (TCP backpressure) until forwards settle, for at most [`MAX_PAUSE`] at a time. A broker
/// that honours the Receive Maximum never gets there.
pub(super) fn pause_limit(window: u16) -> usize {
    usize::from(window) * 2 + 64
}

/// The longest a poll task pauses in one go: it keeps handling its destination role (and
/// keep-alive) at least this often, so that two sessions that wait for each other's
/// acknowledgements cannot deadlock.
pub(super) const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Waits while the gate is over the pause limit. Returns false when stopping.
pub(super) async fn pause_while_full(gate: &Gate, window: u16, stop: &CancellationToken) -> bool {
    if gate.unsettled() < pause_limit(window) {
        return true;
    }
    let deadline = tokio::time::Instant::now() + MAX_PAUSE;
    while gate.unsettled() >= pause_limit(window) {
        tokio::select! {
            biased;
            () = stop.cancelled() => return false,
            () = gate.space.notified() => {}
            () = tokio::time::sleep_until(deadline) => return true,
        }
    }
    true
}

/// Polls the connection's event loop until shutdown.
pub(crate) async fn run_poll(mut eventloop: EventLoop, mut ctx: PollCtx) {
    let mut backoff = Backoff::new(ctx.policy.backoff);
    let mut need_connect = true;
    let mut connected_once = false;
    let mut subscribe_pending = false;
    let gate_limit = gate_limit(ctx.policy.window);
    let mut over_window_warned = false;
    let mut stall_warned = false;
    let mut wakes = AckerWakes::default();
    // One waiter on the stop token for the whole task, not one registered and dropped per event.
    let stopped = ctx.stop.clone().cancelled_owned();
    tokio::pin!(stopped);
    loop {
        // The events of one network read are handled before the ackers they concern are
        // woken, so that an acker sends a batch of acknowledgements rather than one at a time.
        if !eventloop.has_buffered_events() {
            wakes.wake_all();
        }
        if need_connect {
            if ctx.shutdown.is_cancelled() {
                break;
            }
            if let Err(cause) = ctx.setup.prepare(&mut eventloop).await {
                if !ctx.failed(cause, &mut backoff).await {
                    break;
                }
                continue;
            }
            need_connect = false;
        }
        if !pause_while_full(&ctx.conn.gate, ctx.policy.window, &ctx.stop).await {
            break;
        }
        // A buffered event is taken without a poll future (see `take_buffered`), after stop.
        let buffered = if ctx.stop.is_cancelled() {
            None
        } else {
            eventloop.take_buffered()
        };
        let event = match buffered {
            Some(polled) => Ok(polled),
            None => tokio::select! {
                biased;
                () = &mut stopped => break,
                event = eventloop.poll() => event,
            },
        };
        let mut force_reconnect = None;
        match event {
            Ok(Polled::ConnAck {
                session_present,
                limits,
            }) => {
                backoff.reset();
                subscribe_pending = !ctx.conn.filters.is_empty();
                if subscribe_pending {
                    subscribe_pending = !ctx.try_subscribe();
                }
                ctx.on_connack(session_present, limits, connected_once);
                ctx.setup.connected();
                connected_once = true;
            }
            Ok(Polled::Reauthenticated(outcome)) => ctx.on_reauthenticated(outcome),
            Ok(Polled::Publish(publish)) => {
                if !over_window_warned
                    && publish.qos != QoS::AtMostOnce
                    && ctx.conn.gate.unsettled() >= usize::from(ctx.policy.window)
                {
                    over_window_warned = true;
                    warn!(
                        broker = ctx.conn.side.as_str(),
                        client_id = %ctx.conn.client_id,
                        "the broker sends more unacknowledged messages than the Receive \
                         Maximum of {} it was given (mosquitto 2.0.11 does); reading pauses \
                         while {} forwards are pending",
                        ctx.policy.window,
                        pause_limit(ctx.policy.window)
                    );
                }
                if !ctx.on_publish(publish, gate_limit) {
                    force_reconnect = Some(format!(
                        "the broker sent more than {gate_limit} messages beyond what the \
                         bridge could forward (Receive Maximum {}); reconnecting",
                        ctx.policy.window
                    ));
                }
            }
            Ok(Polled::Ack { pkid, refused }) => ctx.on_ack(pkid, refused, &mut wakes),
            Ok(Polled::SubAck(codes)) => ctx.on_suback(&codes),
            Ok(Polled::Outgoing(Outgoing::Publish(pkid) | Outgoing::AwaitAck(pkid))) => {
                ctx.on_outgoing_publish(pkid, &mut wakes);
            }
            Ok(Polled::Outgoing(Outgoing::Disconnect)) => {
                if ctx.shutdown.is_cancelled() {
                    debug!(client_id = %ctx.conn.client_id, broker = ctx.conn.side.as_str(),
                        "disconnected");
                    break;
                }
            }
            Ok(Polled::Outgoing(Outgoing::PingReq)) => {
                // A stalled session still answers pings: say so once per stall.
                match ctx.conn.stalled() {
                    Some(waited) if !stall_warned => {
                        stall_warned = true;
                        let (broker, client_id, endpoint) = ctx.label();
                        warn!(
                            broker,
                            client_id,
                            endpoint,
                            "the {broker} broker has acknowledged none of the messages the \
                             bridge published for {}s; the session is reported not ready until \
                             it does",
                            waited.as_secs()
                        );
                    }
                    Some(_) => {}
                    None => stall_warned = false,
                }
                ctx.conn.wake_publisher_if_blocked(None);
            }
            Ok(Polled::Outgoing(_)) => ctx.conn.wake_publisher_if_blocked(None),
            Ok(Polled::Other) => {}
            Err(PollError::Done) => break,
            Err(PollError::Lost(mut cause)) => {
                wakes.wake_all();
                ctx.on_lost(&mut eventloop);
                if let Some(hint) = &ctx.setup.hint {
                    cause = format!("{cause} ({hint})");
                }
                if cause.contains("CONNACK reason")
                    && let Some(hint) = ctx.setup.refusal_hint(&cause)
                {
                    cause = format!("{cause}: {hint}");
                }
                if !ctx.failed(cause, &mut backoff).await {
                    break;
                }
                need_connect = true;
                continue;
            }
        }
        if let Some(cause) = force_reconnect {
            wakes.wake_all();
            ctx.on_lost(&mut eventloop);
            if !ctx.failed(cause, &mut backoff).await {
                break;
            }
            need_connect = true;
            continue;
        }
        if subscribe_pending {
            subscribe_pending = !ctx.try_subscribe();
        }
    }
    wakes.wake_all();
    ctx.on_lost(&mut eventloop);
    // Nothing will settle the forwards this connection held.
    let abandoned = {
        let mut outbox = lock(&ctx.conn.outbox);
        outbox.connected = false;
        let mut all: Vec<Pending> = outbox.inflight.drain(..).map(|(_, p)| p).collect();
        all.extend(outbox.resend.drain(..));
        all
    };
    for pending in abandoned {
        pending.settle.abandon(DropReason::Disconnected);
    }
    ctx.conn.wake_publisher.notify_one();
}

impl PollCtx {
    pub(super) fn label(&self) -> (&'static str, &str, &str) {
        (
            self.conn.side.as_str(),
            self.conn.client_id.as_str(),
            self.conn.endpoint.as_str(),
        )
    }

    /// Records and logs a failed attempt, then waits the backoff. Returns false when the
    /// bridge is shutting down.
    pub(super) async fn failed(&mut self, cause: String, backoff: &mut Backoff) -> bool {
        let delay = backoff.next_delay();
        let (broker, client_id, endpoint) = self.label();
        warn!(
            broker,
            client_id,
            endpoint,
            retry_in = ?delay,
            "connection to the {broker} broker {endpoint} failed: {cause}"
        );
        self.conn.metrics.failed.inc();
        self.conn.set_status(|status| {
            status.connected = false;
            status.subscribed = false;
            status.last_error = Some(cause);
        });
        tokio::select! {
            biased;
            () = self.shutdown.cancelled() => false,
            () = self.stop.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }

    pub(super) fn try_subscribe(&self) -> bool {
        match self.conn.client.try_subscribe(&self.conn.filters) {
            Ok(()) => true,
            Err(error) => {
                debug!(%error, "subscribe deferred");
                false
            }
        }
    }

    pub(super) fn on_connack(&mut self, session_present: bool, limits: Limits, reconnect: bool) {
        let (broker, client_id, endpoint) = self.label();
        info!(
            broker,
            client_id,
            endpoint,
            session_present,
            "connected to the {broker} broker {endpoint} as {client_id}"
        );
        if reconnect && !session_present {
            self.conn.metrics.session_lost.inc();
            warn!(
                broker,
                client_id, "the {broker} broker had no session for {client_id}; resubscribing"
            );
        }
        self.conn.gate.reset(true);
        {
            let mut outbox = lock(&self.conn.outbox);
            outbox.connected = true;
            outbox.limits = limits;
        }
        self.conn.metrics.up.set(1);
        let subscribed = self.conn.filters.is_empty();
        self.conn.set_status(|status| {
            status.connected = true;
            status.subscribed = subscribed;
            status.publishes_refused = false;
            if subscribed {
                status.last_error = None;
            }
        });
        self.conn.wake_publisher.notify_one();
    }

    pub(super) fn on_suback(&self, codes: &[Option<String>]) {
        let refused: Vec<String> = codes
            .iter()
            .zip(&self.conn.filters)
            .filter_map(|(code, filter)| {
                code.as_ref()
                    .map(|reason| format!("{} ({reason})", filter.path))
            })
            .collect();
        let (broker, client_id, endpoint) = self.label();
        if refused.is_empty() {
            debug!(broker, client_id, "subscribed");
            self.conn.set_status(|status| {
                status.subscribed = true;
                status.last_error = None;
            });
        } else {
            let cause = format!(
                "the {broker} broker refused the subscription to {}",
                refused.join(", ")
            );
            error!(broker, client_id, endpoint, "{cause}");
            self.conn.set_status(|status| {
                status.subscribed = false;
                status.last_error = Some(cause);
            });
        }
    }

    /// A received message. Returns false when the gate overflowed.
    pub(super) fn on_publish(&mut self, mut publish: Publish, gate_limit: usize) -> bool {
        if self.shutdown.is_cancelled() {
            // Neither forwarded nor acknowledged: the broker keeps it in the session.
            return true;
        }
        let received = Instant::now();
        let topic = std::str::from_utf8(&publish.topic).ok(); // not UTF-8: matches no route
        let hits = topic.map_or_else(RouteHits::default, |t| RouteHits::of(&self.routes, t));
        let (topic, matching) = (topic.unwrap_or(""), hits.count);
        let place = if publish.qos == QoS::AtMostOnce {
            None
        } else {
            match self
                .conn
                .gate
                .push(publish.pkid, publish.qos, matching, gate_limit)
            {
                Some(place) => Some(place),
                None => return false,
            }
        };
        if matching == 0 {
            debug!(topic, "message matches no route");
            self.unroutable.drop_unforwarded(DropReason::Unroutable);
            return true;
        }
        let mut properties = publish.properties.take();
        let mut left = matching;
        for (i, route) in self.routes.iter().enumerate() {
            if left == 0 {
                break;
            }
            if !hits.hit(i, route, topic) {
                continue;
            }
            left -= 1;
            route.metrics.begin();
            if publish.dup {
                route.metrics.duplicate.inc();
            }
            let settle = Settle {
                ticket: place.map(|(generation, seq)| Ticket {
                    gate: Arc::clone(&self.conn.gate),
                    generation,
                    seq,
                }),
                metrics: Arc::clone(&route.metrics),
                spool: None,
            };
            let props = if left == 0 {
                properties.take()
            } else {
                properties.clone()
            };
            let shape = Shape {
                target: route.target.as_deref(),
                qos: route.qos,
                retain: self.policy.retain,
                hop_limit: self.policy.hop_limit,
            };
            let message = match forward::shape(&publish, topic, props, shape, received) {
                Ok(message) => message,
                Err(reason) => {
                    if reason == DropReason::HopLimit {
                        debug!(topic, route = %route.name, "hop limit reached; dropped");
                    }
                    settle.finish(Err(reason));
                    continue;
                }
            };
            let pending = Pending {
                message,
                settle,
                written: false,
            };
            if publish.qos == QoS::AtMostOnce && self.forward_tx.capacity() <= self.reserve {
                pending.settle.finish(Err(DropReason::Busy));
                continue;
            }
            if let Err(error) = self.forward_tx.try_send(pending) {
                let pending = match error {
                    mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p) => p,
                };
                if publish.qos == QoS::AtMostOnce {
                    pending.settle.finish(Err(DropReason::Busy));
                } else {
                    error!(route = %route.name, "forwarding queue full; reconnecting");
                    pending.settle.abandon(DropReason::Overflow);
                    return false;
                }
            }
        }
        true
    }

    pub(super) fn on_outgoing_publish(&self, pkid: u16, wakes: &mut AckerWakes) {
        let (settled, queued) = {
            let mut outbox = lock(&self.conn.outbox);
            let settled = if pkid != 0 && outbox.inflight.iter().any(|(id, _)| *id == pkid) {
                // `AwaitAck(pkid)`: the next publish collided with `pkid`, which is still in
                // flight. rumqttc stashes it and writes it (`Publish(pkid)`) once that
                // PUBACK has arrived; it stays first in `queued` and is bound then.
                None
            } else {
                match outbox.queued.pop_front() {
                    Some(pending) if pkid == 0 => {
                        outbox.progressed();
                        self.conn.metrics.published.inc();
                        Some(pending)
                    }
                    Some(pending) => {
                        outbox.inflight.push_back((pkid, pending));
                        None
                    }
                    None => {
                        warn!(pkid, "outgoing publish without a queued forward");
                        None
                    }
                }
            };
            (settled, outbox.queued.len())
        };
        if let Some(pending) = settled {
            let latency = pending.message.received.elapsed();
            pending.settle.finish_deferred(Ok(latency), wakes);
        }
        self.conn.wake_publisher_if_blocked(Some(queued));
    }

    pub(super) fn on_ack(&self, pkid: u16, refused: Option<String>, wakes: &mut AckerWakes) {
        let pending = {
            let mut outbox = lock(&self.conn.outbox);
            let pending = outbox
                .inflight
                .iter()
                .position(|(id, _)| *id == pkid)
                .and_then(|index| outbox.inflight.remove(index))
                .map(|(_, pending)| pending);
            if pending.is_some() {
                outbox.progressed();
            }
            pending
        };
        let Some(pending) = pending else {
            debug!(pkid, "acknowledgement for an unknown packet");
            return;
        };
        if let Some(reason) = refused {
            let (broker, client_id, _) = self.label();
            let cause = format!(
                "the {broker} broker refused a message the bridge published on `{}`: {reason}",
                pending.message.topic,
            );
            warn!(broker, client_id, "{cause}; dropped");
            pending
                .settle
                .finish_deferred(Err(DropReason::Rejected), wakes);
            self.conn.set_status(|status| {
                status.publishes_refused = true;
                status.last_error = Some(cause);
            });
        } else {
            self.conn.metrics.published.inc();
            let latency = pending.message.received.elapsed();
            pending.settle.finish_deferred(Ok(latency), wakes);
            self.conn.set_status(|status| {
                if status.publishes_refused {
                    status.publishes_refused = false;
                    status.last_error = None;
                }
            });
        }
        self.conn.wake_publisher_if_blocked(None);
    }

    /// The broker answered a re-authentication.
    pub(super) fn on_reauthenticated(&self, outcome: Result<(), String>) {
        let (broker, client_id, _) = self.label();
        match outcome {
            Ok(()) => {
                self.conn.metrics.reauthenticated.inc();
                debug!(broker, client_id, "re-authenticated");
            }
            Err(reason) => {
                self.conn.metrics.reauth_failed.inc();
                let cause = format!(
                    "the {broker} broker refused the new token ({reason}); the session ends when \
                     the current one expires"
                );
                warn!(broker, client_id, "{cause}");
                self.conn
                    .set_status(|status| status.last_error = Some(cause));
            }
        }
    }

    /// The connection is gone: take back what rumqttc would resend on its own, and mark
    /// every unsettled forward for publication on the next connection.
    pub(super) fn on_lost(&self, eventloop: &mut EventLoop) {
        if let Some(sessions) = &self.setup.sessions {
            sessions.send_replace(None);
        }
        let lost_qos0 = {
            let mut outbox = lock(&self.conn.outbox);
            outbox.connected = false;
            // rumqtt#1056/#1014: a publish stashed on a packet-id collision is never
            // cleared and wedges the client; it is in our resend list anyway.
            eventloop.on_lost();
            let mut all: VecDeque<Pending> = outbox
                .inflight
                .drain(..)
                .map(|(_, mut pending)| {
                    pending.written = true;
                    pending
                })
                .collect();
            all.append(&mut outbox.queued);
            all.append(&mut outbox.resend);
            let (qos0, rest): (Vec<Pending>, Vec<Pending>) = all
                .into_iter()
                .partition(|pending| pending.message.qos == QoS::AtMostOnce);
            outbox.resend = rest.into();
            outbox.waiting_since = None;
            qos0
        };
        for pending in lost_qos0 {
            pending.settle.finish(Err(DropReason::Disconnected));
        }
        self.conn.gate.reset(false);
        self.conn.metrics.up.set(0);
        self.conn.set_status(|status| {
            status.connected = false;
            status.subscribed = false;
        });
    }
}
