//! The gate (ordered acknowledgements of the source role), the settlement of each forward,
//! and the acker task that sends the source's PUBACKs in arrival order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc_next::mqttbytes::QoS;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::{Conn, lock};
use crate::engine::forward::Message;
use crate::engine::metrics::{DropReason, RouteMetrics};

/// One received QoS ≥ 1 message waiting for its forwards.
#[derive(Debug)]
pub(super) struct GateEntry {
    pub(super) pkid: u16,
    pub(super) qos: QoS,
    /// Forwards not settled yet; 0 = ready to acknowledge.
    pub(super) remaining: usize,
}

#[derive(Debug, Default)]
pub(super) struct GateState {
    /// Bumped when the connection is lost: tickets of older generations are ignored.
    pub(super) generation: u64,
    /// Sequence number of `entries[0]`.
    pub(super) base: u64,
    pub(super) entries: VecDeque<GateEntry>,
    /// Entries whose forwards are not all settled.
    pub(super) unsettled: usize,
    /// Whether acknowledgements can be sent (the connection is up).
    pub(super) connected: bool,
}

/// The ordered acknowledgement gate of one source connection.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    pub(super) state: Mutex<GateState>,
    /// Wakes the acker: the front entry is ready.
    pub(super) wake: Notify,
    /// Wakes a paused poll task: entries were acknowledged.
    pub(super) space: Notify,
    /// Whether the acker holds acknowledgements it has not handed to rumqttc yet.
    pub(super) busy: AtomicBool,
}

/// A forward's claim on a gate place.
#[derive(Debug)]
pub(crate) struct Ticket {
    pub(super) gate: Arc<Gate>,
    pub(super) generation: u64,
    pub(super) seq: u64,
}

impl Ticket {
    /// Releases the place at once.
    pub(crate) fn complete(self) {
        if let Some(gate) = self.release() {
            gate.wake.notify_one();
        }
    }

    /// Releases the place; the acker is woken later, by [`AckerWakes::wake_all`] (the poll
    /// task of the destination wakes each acker once per batch of acknowledgements).
    pub(super) fn complete_deferred(self, wakes: &mut AckerWakes) {
        if let Some(gate) = self.release() {
            wakes.add(gate);
        }
    }

    /// Releases the place; the gate when its acker has acknowledgements to send.
    pub(super) fn release(self) -> Option<Arc<Gate>> {
        let mut state = lock(&self.gate.state);
        if state.generation != self.generation {
            return None;
        }
        let index = self
            .seq
            .checked_sub(state.base)
            .and_then(|i| usize::try_from(i).ok())?;
        let entry = state.entries.get_mut(index)?;
        if entry.remaining == 0 {
            return None;
        }
        entry.remaining -= 1;
        let settled = entry.remaining == 0;
        if settled {
            state.unsettled = state.unsettled.saturating_sub(1);
        }
        let front_ready = state.entries.front().is_some_and(|e| e.remaining == 0);
        drop(state);
        if settled {
            self.gate.space.notify_one();
        }
        front_ready.then_some(self.gate)
    }
}

/// Gates whose ackers are to be woken once the poll task has handled the events at hand.
#[derive(Debug, Default)]
pub(super) struct AckerWakes(Vec<Arc<Gate>>);

impl AckerWakes {
    pub(super) fn add(&mut self, gate: Arc<Gate>) {
        if !self.0.iter().any(|known| Arc::ptr_eq(known, &gate)) {
            self.0.push(gate);
        }
    }

    pub(super) fn wake_all(&mut self) {
        for gate in self.0.drain(..) {
            gate.wake.notify_one();
        }
    }
}

impl Gate {
    /// Adds a received message with `forwards` forwards; returns the generation and
    /// sequence number for its tickets, or `None` when more than `limit` messages have
    /// unsettled forwards (the broker ignored our Receive Maximum by far). Settled entries
    /// waiting for their acknowledgement are small and bounded by the packet identifier
    /// space.
    pub(super) fn push(
        &self,
        pkid: u16,
        qos: QoS,
        forwards: usize,
        limit: usize,
    ) -> Option<(u64, u64)> {
        let mut state = lock(&self.state);
        if state.unsettled >= limit || state.entries.len() >= usize::from(u16::MAX) {
            return None;
        }
        let seq = state.base + state.entries.len() as u64;
        state.entries.push_back(GateEntry {
            pkid,
            qos,
            remaining: forwards,
        });
        if forwards > 0 {
            state.unsettled += 1;
        }
        let ready = forwards == 0 && state.entries.len() == 1;
        let generation = state.generation;
        drop(state);
        if ready {
            self.wake.notify_one();
        }
        Some((generation, seq))
    }

    /// Moves the acknowledgeable front entries into `out`.
    pub(super) fn take_ready(&self, out: &mut Vec<(u16, QoS)>) {
        let mut state = lock(&self.state);
        if !state.connected {
            return;
        }
        while state.entries.front().is_some_and(|e| e.remaining == 0) {
            if let Some(entry) = state.entries.pop_front() {
                state.base += 1;
                out.push((entry.pkid, entry.qos));
            }
        }
        if !out.is_empty() {
            self.busy.store(true, Ordering::Release);
        }
    }

    /// Discards every entry: the packet identifiers belong to a connection that is gone.
    pub(super) fn reset(&self, connected: bool) {
        let mut state = lock(&self.state);
        state.generation += 1;
        state.base += state.entries.len() as u64;
        state.entries.clear();
        state.unsettled = 0;
        state.connected = connected;
        drop(state);
        self.space.notify_one();
    }

    /// Whether every received message has been acknowledged to the source.
    pub(crate) fn is_idle(&self) -> bool {
        lock(&self.state).entries.is_empty() && !self.busy.load(Ordering::Acquire)
    }

    /// Messages held whose forwards are not all settled.
    pub(super) fn unsettled(&self) -> usize {
        lock(&self.state).unsettled
    }

    /// Whether acknowledgements are waiting to be sent.
    pub(crate) fn has_ready(&self) -> bool {
        let state = lock(&self.state);
        self.busy.load(Ordering::Acquire)
            || (state.connected && state.entries.front().is_some_and(|e| e.remaining == 0))
    }
}

// ---------------------------------------------------------------------------------------------
// The outbox: unacknowledged forwards of the destination role.

/// How a forward ends.
#[derive(Debug)]
pub(crate) struct Settle {
    /// The origin's gate place (none for QoS 0, and for forwards read from the spool, whose
    /// source was acknowledged when they became durable).
    pub(crate) ticket: Option<Ticket>,
    pub(crate) metrics: Arc<RouteMetrics>,
    /// The spool record to remove once the forward is settled.
    pub(crate) spool: Option<SpoolAck>,
}

/// Tells the spool that the record `seq` is settled.
#[derive(Debug)]
pub(crate) struct SpoolAck {
    pub(crate) seq: u64,
    pub(crate) tx: mpsc::UnboundedSender<u64>,
}

impl Settle {
    /// Counts the outcome and releases the gate place.
    pub(super) fn finish(self, outcome: Result<Duration, DropReason>) {
        self.metrics.end(outcome);
        if let Some(ticket) = self.ticket {
            ticket.complete();
        }
        if let Some(ack) = self.spool {
            let _ = ack.tx.send(ack.seq);
        }
    }

    /// [`finish`](Self::finish), with the acker's wake-up deferred to `wakes`.
    pub(super) fn finish_deferred(
        self,
        outcome: Result<Duration, DropReason>,
        wakes: &mut AckerWakes,
    ) {
        self.metrics.end(outcome);
        if let Some(ticket) = self.ticket {
            ticket.complete_deferred(wakes);
        }
        if let Some(ack) = self.spool {
            let _ = ack.tx.send(ack.seq);
        }
    }

    /// Counts the drop but keeps the gate place: the message is not acknowledged, so the
    /// source broker delivers it again after the reconnect that follows. A spooled forward
    /// is not a drop: it stays in the spool for the next start.
    pub(super) fn abandon(self, reason: DropReason) {
        if self.spool.is_some() {
            self.metrics.end_unsettled();
        } else {
            self.metrics.end(Err(reason));
        }
    }
}

/// A forward on its way to the destination.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) message: Message,
    pub(crate) settle: Settle,
    /// Written to a connection that was lost before the acknowledgement: publishing it again
    /// is a retry (a forward rumqttc had not written yet is merely published late).
    pub(crate) written: bool,
}

/// Sends the source role's acknowledgements in arrival order.
pub(crate) async fn run_acker(conn: Arc<Conn>, stop: CancellationToken) {
    let mut ready = Vec::new();
    loop {
        conn.gate.busy.store(false, Ordering::Release);
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = conn.gate.wake.notified() => {}
        }
        conn.gate.take_ready(&mut ready);
        for (pkid, qos) in ready.drain(..) {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                result = conn.client.ack(pkid, qos) => if result.is_err() { return },
            }
        }
    }
}
