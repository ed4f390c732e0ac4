//! Taking forwards in: appending them to the queue, group commit, and releasing the sources'
//! gate places once durable.

use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinHandle;
use tracing::{error, info};

use super::MEMORY_BYTES;
use super::{Incoming, LINGER, MemEntry, RETRY, Task, now_ms};
use crate::engine::conn::{Pending, Settle};
use crate::spool::record::SpooledMessage;

impl Task {
    /// Encodes the forwards taken (and any to retry) into the queue's write buffer.
    pub(super) fn append(&mut self, incoming: &mut Vec<Pending>) {
        if self.retry_at.is_some() {
            return;
        }
        let fresh = incoming.len();
        let mut batch: Vec<Incoming> = std::mem::take(&mut self.retry);
        batch.extend(incoming.drain(..).map(|pending| {
            let Pending {
                message,
                settle: Settle {
                    ticket, metrics, ..
                },
                ..
            } = pending;
            Incoming {
                message,
                ticket,
                metrics,
            }
        }));
        if batch.is_empty() {
            return;
        }
        self.pace.arrived(fresh, Instant::now());
        let now = now_ms();
        let mut pushed = Vec::with_capacity(batch.len());
        let mut failed = None;
        for item in batch {
            if failed.is_some() {
                self.retry.push(item);
                continue;
            }
            let age = u64::try_from(item.message.received.elapsed().as_millis()).unwrap_or(0);
            let spooled = SpooledMessage {
                route: item.metrics.route_name().to_owned(),
                topic: item.message.topic.clone(),
                qos: item.message.qos,
                retain: item.message.retain,
                payload: item.message.payload.clone(),
                properties: item.message.properties.clone(),
                expiry: item.message.expiry,
                received_ms: now.saturating_sub(age),
            };
            match self.lane.queue.push(&spooled) {
                Ok((seq, pos)) => pushed.push((seq, pos, item, spooled.received_ms)),
                Err(error) => {
                    failed = Some(error);
                    self.retry.push(item);
                }
            }
        }
        let result = match failed {
            Some(error) => Err(error),
            None => self.lane.queue.write(),
        };
        if let Err(error) = result {
            // Nothing of this batch is on disk: its seqs become a gap.
            for (_, _, item, _) in pushed {
                self.retry.push(item);
            }
            self.write_failed(&error);
            return;
        }
        let arrived = Instant::now();
        for (seq, pos, item, received_ms) in pushed {
            self.messages += 1;
            if let Some(ticket) = item.ticket {
                self.waiting.push_back((seq, ticket, arrived));
            }
            let bytes = item.message.payload.len() + item.message.topic.len() + 64;
            self.mem.push_back(MemEntry {
                seq,
                pos,
                message: item.message,
                metrics: item.metrics,
                received_ms,
                bytes,
            });
            self.mem_bytes += bytes;
        }
        // The oldest undelivered messages of this run move to disk only.
        while self.mem_bytes > MEMORY_BYTES {
            let Some(entry) = self.mem.pop_front() else {
                break;
            };
            self.mem_bytes -= entry.bytes;
            if self.dispatch >= self.mem_start && self.reader.is_none() {
                self.reader = Some(self.lane.queue.reader(entry.pos));
            }
            self.mem_start = self
                .mem
                .front()
                .map_or(self.lane.queue.next_seq(), |e| e.seq);
        }
        if self.state == "write_error" {
            self.state = "ok";
            self.last_error = None;
            info!(queue = %self.lane.name, "spool writes work again");
        }
    }

    pub(super) fn write_failed(&mut self, error: &std::io::Error) {
        self.lane.metrics.write_errors.inc();
        if self.state != "write_error" {
            error!(
                queue = %self.lane.name,
                %error,
                "spool write failed; the messages stay unacknowledged at their source and \
                 the write is retried every {}s",
                RETRY.as_secs()
            );
        }
        self.state = "write_error";
        self.last_error = Some(error.to_string());
        self.retry_at = Some(Instant::now() + RETRY);
    }

    pub(super) fn fail(&mut self, state: &'static str, reason: &str) {
        if self.state != state {
            error!(queue = %self.lane.name, "spool: {reason}");
        }
        self.state = state;
        self.last_error = Some(reason.to_owned());
    }

    /// When the next group commit is due: at once when [`min_batch`](Task::min_batch)
    /// sources wait for one, otherwise [`LINGER`] after the oldest began to wait (so that one
    /// fsync covers more messages: its CPU cost is per call, not per byte); `None` when no
    /// source waits.
    pub(super) fn sync_due(&self) -> Option<Instant> {
        let (_, _, oldest) = self.waiting.front()?;
        if self.waiting.len() >= self.min_batch {
            Some(*oldest)
        } else {
            Some(*oldest + LINGER)
        }
    }

    pub(super) fn start_sync(&mut self) -> Option<(u64, JoinHandle<std::io::Result<()>>)> {
        let upto = self.lane.queue.next_seq();
        let segment = self.lane.queue.segments.back().map_or(0, |s| s.id);
        let file = match &self.sync_file {
            Some((id, file)) if *id == segment => Arc::clone(file),
            _ => match self.lane.queue.sync_handle() {
                Ok(file) => {
                    let file = Arc::new(file);
                    self.sync_file = Some((segment, Arc::clone(&file)));
                    file
                }
                Err(error) => {
                    self.write_failed(&error);
                    return None;
                }
            },
        };
        self.lane.metrics.fsyncs.inc();
        Some((upto, tokio::task::spawn_blocking(move || file.sync_data())))
    }

    /// A sync returned: what was written before it began is durable.
    pub(super) fn synced(
        &mut self,
        upto: u64,
        done: Result<std::io::Result<()>, tokio::task::JoinError>,
    ) {
        match done {
            Ok(Ok(())) => {
                self.durable = self.durable.max(upto);
                while self
                    .waiting
                    .front()
                    .is_some_and(|(seq, ..)| *seq < self.durable)
                {
                    if let Some((_, ticket, _)) = self.waiting.pop_front() {
                        ticket.complete();
                    }
                }
            }
            Ok(Err(error)) => self.write_failed(&error),
            Err(error) => self.write_failed(&std::io::Error::other(error.to_string())),
        }
    }
}
