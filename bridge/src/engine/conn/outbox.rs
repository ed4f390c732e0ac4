//! The destination role: the outbox of forwards handed to the client (queued, in flight,
//! to resend after a loss) and the publisher task, the only caller of `try_publish`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::gate::Pending;
use super::{Conn, lock};
use crate::engine::forward::{self, Limits};
use crate::engine::metrics::DropReason;
use crate::engine::mqtt::Client;

#[derive(Debug, Default)]
pub(super) struct Outbox {
    pub(super) connected: bool,
    pub(super) limits: Limits,
    /// Published (handed to rumqttc), packet identifier not known yet.
    pub(super) queued: VecDeque<Pending>,
    /// Written with a packet identifier, waiting for PUBACK / PUBREC.
    pub(super) inflight: VecDeque<(u16, Pending)>,
    /// To publish again after a reconnect, before anything new.
    pub(super) resend: VecDeque<Pending>,
    /// Since when published forwards have waited without any acknowledgement (`None` when
    /// nothing published waits): how a stalled session shows.
    pub(super) waiting_since: Option<Instant>,
}

impl Outbox {
    pub(super) fn is_empty(&self) -> bool {
        self.queued.is_empty() && self.inflight.is_empty() && self.resend.is_empty()
    }

    /// A forward was handed to rumqttc.
    pub(super) fn sent(&mut self, pending: Pending) {
        self.queued.push_back(pending);
        if self.waiting_since.is_none() {
            self.waiting_since = Some(Instant::now());
        }
    }

    /// The destination acknowledged something (or a QoS 0 forward was written).
    pub(super) fn progressed(&mut self) {
        self.waiting_since =
            (!self.queued.is_empty() || !self.inflight.is_empty()).then(Instant::now);
    }
}

pub(super) enum Attempt {
    Sent(Pending),
    Full(Pending),
    Dropped(Pending, DropReason),
}

pub(super) fn attempt(client: &Client, pending: Pending, limits: &Limits) -> Attempt {
    let (qos, retain, properties) = match forward::finish(&pending.message, limits, Instant::now) {
        Ok(parts) => parts,
        Err(reason) => return Attempt::Dropped(pending, reason),
    };
    let message = &pending.message;
    match client.try_publish(
        message.topic.as_str(),
        qos,
        retain,
        message.payload.clone(),
        properties,
    ) {
        Ok(()) => Attempt::Sent(pending),
        Err(_) => Attempt::Full(pending),
    }
}

/// Publishes the forwards of the origin connections on this connection, in order.
pub(crate) async fn run_publisher(
    conn: Arc<Conn>,
    mut rx: mpsc::Receiver<Pending>,
    stop: CancellationToken,
) {
    let mut held: Option<Pending> = None;
    let mut dropped: Vec<(Pending, DropReason)> = Vec::new();
    let mut closed = false;
    loop {
        let mut blocked = true;
        {
            let mut outbox = lock(&conn.outbox);
            if outbox.connected {
                blocked = false;
                while let Some(pending) = outbox.resend.pop_front() {
                    match attempt(&conn.client, pending, &outbox.limits) {
                        Attempt::Sent(pending) => {
                            if pending.written {
                                pending.settle.metrics.retried.inc();
                            }
                            outbox.sent(pending);
                        }
                        Attempt::Full(pending) => {
                            outbox.resend.push_front(pending);
                            blocked = true;
                            break;
                        }
                        Attempt::Dropped(pending, reason) => dropped.push((pending, reason)),
                    }
                }
                while !blocked {
                    if held.is_none() && !closed {
                        match rx.try_recv() {
                            Ok(pending) => held = Some(pending),
                            Err(mpsc::error::TryRecvError::Empty) => {}
                            Err(mpsc::error::TryRecvError::Disconnected) => closed = true,
                        }
                    }
                    let Some(pending) = held.take() else { break };
                    match attempt(&conn.client, pending, &outbox.limits) {
                        Attempt::Sent(pending) => outbox.sent(pending),
                        Attempt::Full(pending) => {
                            held = Some(pending);
                            blocked = true;
                        }
                        Attempt::Dropped(pending, reason) => dropped.push((pending, reason)),
                    }
                }
            }
        }
        for (pending, reason) in dropped.drain(..) {
            if reason == DropReason::Oversize {
                warn!(
                    client_id = %conn.client_id,
                    topic = %pending.message.topic,
                    bytes = pending.message.payload.len(),
                    "message larger than the {} broker's maximum packet size; dropped",
                    conn.side.as_str()
                );
            }
            pending.settle.finish(Err(reason));
        }
        if blocked || held.is_some() || closed {
            // The poll task wakes the publisher only while this flag is set: try once more
            // after setting it, in case rumqttc took requests in between.
            if !conn.publisher_blocked.swap(true, Ordering::SeqCst) {
                continue;
            }
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = conn.wake_publisher.notified() => {}
            }
            conn.publisher_blocked.store(false, Ordering::SeqCst);
        } else {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = conn.wake_publisher.notified() => {}
                item = rx.recv() => match item {
                    Some(pending) => held = Some(pending),
                    None => closed = true,
                },
            }
        }
    }
    if let Some(pending) = held {
        pending.settle.abandon(DropReason::Disconnected);
    }
    rx.close();
    while let Ok(pending) = rx.try_recv() {
        pending.settle.abandon(DropReason::Disconnected);
    }
}
