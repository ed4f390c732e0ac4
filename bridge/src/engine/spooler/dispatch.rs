//! Handing messages to the publisher in seq order (from memory, or read back from disk) and
//! taking their settlements, which move the queue's floor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Slot, Task, now_ms};
use crate::engine::conn::{Pending, Settle, SpoolAck};
use crate::engine::forward::Message;
use crate::engine::metrics::RouteMetrics;

impl Task {
    /// Takes settlements: the floor moves past every settled seq at its front.
    pub(super) fn settled(&mut self, acks: &mut Vec<u64>) {
        if acks.is_empty() {
            return;
        }
        for seq in acks.drain(..) {
            let Some(index) = seq
                .checked_sub(self.floor)
                .and_then(|i| usize::try_from(i).ok())
            else {
                continue;
            };
            if let Some(slot) = self.slots.get_mut(index)
                && !slot.done
            {
                slot.done = true;
                self.messages = self.messages.saturating_sub(1);
            }
        }
        self.advance_floor();
    }

    pub(super) fn advance_floor(&mut self) {
        let before = self.floor;
        while self.slots.front().is_some_and(|s| s.done) {
            self.slots.pop_front();
            self.floor += 1;
        }
        if self.floor > before
            && let Err(error) = self.lane.queue.settle(self.floor)
        {
            self.write_failed(&error);
        }
    }

    /// Hands messages to the publisher while the budget and the drain pace allow, in seq
    /// order.
    pub(super) fn fill_publisher(&mut self) {
        let now = Instant::now();
        self.pace_wait = None;
        while self.slots.len() < self.budget {
            if self.dispatch < self.lane.queue.next_seq() && !self.pace.take(now) {
                self.pace_wait = Some(self.pace.wake_at(now));
                break;
            }
            let next = if self.dispatch < self.mem_start {
                match self.next_from_disk() {
                    Some(next) => next,
                    None => break,
                }
            } else if let Some(entry) = self.mem.pop_front() {
                self.mem_bytes -= entry.bytes;
                (entry.seq, entry.message, entry.metrics, entry.received_ms)
            } else {
                let head = self.lane.queue.next_seq();
                if self.dispatch < head {
                    self.skip_to(head);
                }
                break;
            };
            let (seq, message, metrics, received_ms) = next;
            if seq > self.dispatch {
                self.skip_to(seq);
            }
            if seq < self.run_start {
                metrics.begin();
            }
            self.slots.push_back(Slot {
                done: false,
                received_ms,
            });
            self.dispatch = seq + 1;
            let pending = Pending {
                message,
                settle: Settle {
                    ticket: None,
                    metrics,
                    spool: Some(SpoolAck {
                        seq,
                        tx: self.acks_tx.clone(),
                    }),
                },
                written: false,
            };
            if let Err(error) = self.out.try_send(pending) {
                // Cannot happen: the channel holds the whole budget. Settle it as dropped
                // rather than lose track of it.
                let pending = match error {
                    mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p) => p,
                };
                pending.settle.metrics.end_unsettled();
                break;
            }
        }
    }

    /// The next message on disk only, `None` when there is none (or reading failed).
    pub(super) fn next_from_disk(&mut self) -> Option<(u64, Message, Arc<RouteMetrics>, u64)> {
        loop {
            let Some(reader) = self.reader.as_mut() else {
                self.skip_to(self.mem_start);
                return None;
            };
            match reader.next(&self.lane.queue) {
                Ok(Some((seq, spooled, _))) => {
                    if seq < self.dispatch {
                        continue;
                    }
                    if seq >= self.mem_start {
                        self.reader = None;
                        self.skip_to(self.mem_start);
                        return None;
                    }
                    let metrics = self.route_metrics(&spooled.route);
                    let age = now_ms().saturating_sub(spooled.received_ms);
                    let received = Instant::now()
                        .checked_sub(Duration::from_millis(age))
                        .unwrap_or_else(Instant::now);
                    let message = Message {
                        topic: spooled.topic,
                        qos: spooled.qos,
                        retain: spooled.retain,
                        payload: spooled.payload,
                        properties: spooled.properties,
                        expiry: spooled.expiry,
                        received,
                    };
                    return Some((seq, message, metrics, spooled.received_ms));
                }
                Ok(None) => {
                    // Everything on disk was read: the rest is in memory (or a gap).
                    self.reader = None;
                    self.skip_to(self.mem_start);
                    return None;
                }
                Err(error) => {
                    self.fail("corrupt", &error.to_string());
                    return None;
                }
            }
        }
    }

    pub(super) fn publish_status(&mut self) {
        let bytes: u64 = self.lane.queue.segments.iter().map(|s| s.bytes).sum();
        let oldest_ms = self
            .slots
            .iter()
            .find(|s| !s.done)
            .map(|s| s.received_ms)
            .or_else(|| self.mem.front().map(|e| e.received_ms));
        let oldest = oldest_ms.map_or(0, |ms| now_ms().saturating_sub(ms) / 1000);
        let metrics = &self.lane.metrics;
        metrics.bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        metrics
            .messages
            .set(i64::try_from(self.messages).unwrap_or(i64::MAX));
        metrics
            .oldest_secs
            .set(i64::try_from(oldest).unwrap_or(i64::MAX));
        let mut status = self
            .lane
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        status.state = self.state;
        status.messages = self.messages;
        status.bytes = bytes;
        status.oldest_age_secs = oldest;
        status.last_error.clone_from(&self.last_error);
    }
}
