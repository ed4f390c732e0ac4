//! The spool task of one destination connection (with `--spool-dir`).
//!
//! Without a spool the origins' forwards go straight to the destination's publisher and the
//! source is acknowledged after the destination's PUBACK. With one, the spool task sits
//! between them:
//!
//! 1. it takes the origins' forwards in batches, appends them to the queue with one `write`
//!    and makes them durable with one `fdatasync` per batch, run on the blocking pool while
//!    the next batch is written (group commit: a message waits at most for the sync in
//!    progress and its own); then it releases their gate places, so the sources are
//!    acknowledged;
//! 2. it hands messages to the publisher in seq order, at most [`budget`] unsettled at a
//!    time, from memory while they are recent (the last few MiB) and read back from disk
//!    otherwise, so memory does not grow with the backlog;
//! 3. it takes the settlements (PUBACK, or a deliberate drop) and moves the queue's floor,
//!    which removes whole segments;
//! 4. when the spool is full it blocks (takes no more forwards, so the sources' gates fill
//!    and they stop being read) or drops the oldest segment, counted per route.
//!
//! A write that fails (ENOSPC) is cut back, counted, and retried every second with the same
//! messages, which stay unacknowledged at their source meanwhile.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Shared;
use super::conn::{Pending, Ticket};
use super::forward::Message;
use super::metrics::{DropReason, RouteMetrics, SpoolMetrics};
use crate::spool::segment::{Pos, Queue, Reader, Recovered};
use crate::spool::{DrainRate, Spool, WhenFull};

mod dispatch;
mod intake;
mod pace;

/// Messages written with one `write` at most.
const BATCH: usize = 1024;
/// Bytes of undelivered messages kept in memory; older ones are read back from disk.
const MEMORY_BYTES: usize = 4 * 1024 * 1024;
/// How long a source waits at most for more messages to share its group commit.
const LINGER: Duration = Duration::from_millis(1);
/// How often a failed write, a full spool or a dropped sync is retried.
const RETRY: Duration = Duration::from_secs(1);

/// Forwards handed to the publisher and not settled yet, at most.
pub(crate) fn budget(window: u16) -> usize {
    usize::from(window) * 2 + 64
}

/// What `/readyz` shows of a spool queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpoolStatus {
    /// `<bridge>~<broker>~<client id>` of the destination session.
    pub queue: String,
    /// `ok`, `full` (blocking or dropping the oldest), `write_error` or `corrupt`.
    pub state: &'static str,
    /// Messages not yet acknowledged by the destination.
    pub messages: u64,
    /// Bytes of the queue's files.
    pub bytes: u64,
    /// Seconds since the oldest message arrived.
    pub oldest_age_secs: u64,
    /// The last write or read error.
    pub last_error: Option<String>,
}

impl SpoolStatus {
    /// Whether the queue takes messages.
    pub fn is_ready(&self) -> bool {
        self.state == "ok"
    }
}

/// A destination's queue, opened and recovered before the bridge runs.
pub(crate) struct Lane {
    pub(crate) name: String,
    pub(crate) bridge: String,
    pub(crate) direction: &'static str,
    pub(crate) queue: Queue,
    pub(crate) recovered: Recovered,
    /// The metrics of the routes that forward to this destination, by name.
    pub(crate) routes: HashMap<String, Arc<RouteMetrics>>,
    pub(crate) metrics: SpoolMetrics,
    pub(crate) status: Arc<Mutex<SpoolStatus>>,
}

impl Lane {
    /// Opens the queue `name` of `spool`.
    pub(crate) fn open(
        spool: &Spool,
        name: String,
        bridge: String,
        direction: &'static str,
        metrics: SpoolMetrics,
    ) -> Result<Lane, crate::BridgeError> {
        let (queue, recovered) = spool.queue(&name)?;
        if recovered.torn > 0 {
            warn!(
                queue = %name,
                "spool: cut off {} torn record(s) at the end of the queue (a crash in the middle \
                 of a write; they had not been acknowledged to their source)",
                recovered.torn
            );
        }
        if recovered.pending > 0 {
            info!(
                queue = %name,
                "spool: {} message(s) waiting from the last run are delivered first",
                recovered.pending
            );
        }
        metrics.torn.inc_by(recovered.torn);
        let status = Arc::new(Mutex::new(SpoolStatus {
            queue: name.clone(),
            state: "ok",
            messages: recovered.pending,
            bytes: 0,
            oldest_age_secs: 0,
            last_error: None,
        }));
        Ok(Lane {
            name,
            bridge,
            direction,
            queue,
            recovered,
            routes: HashMap::new(),
            metrics,
            status,
        })
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A message received in this run, waiting in memory for the publisher.
struct MemEntry {
    seq: u64,
    pos: Pos,
    message: Message,
    metrics: Arc<RouteMetrics>,
    received_ms: u64,
    bytes: usize,
}

/// A forward taken from an origin, not durable yet.
struct Incoming {
    message: Message,
    ticket: Option<Ticket>,
    metrics: Arc<RouteMetrics>,
}

/// The settlement state of one seq between the floor and the dispatch cursor.
#[derive(Clone, Copy)]
struct Slot {
    done: bool,
    received_ms: u64,
}

struct Task {
    lane: Lane,
    shared: Arc<Shared>,
    out: mpsc::Sender<Pending>,
    acks_tx: mpsc::UnboundedSender<u64>,
    budget: usize,
    max_bytes: u64,
    when_full: WhenFull,
    /// Seqs below this were recovered from disk (their forwards begin when read).
    run_start: u64,
    /// Every seq below this is durable.
    durable: u64,
    /// Gate places released once their seq is durable, and when they began to wait.
    waiting: VecDeque<(u64, Ticket, Instant)>,
    /// Sources waiting for a sync that start one at once (half the sources' window: the
    /// window bounds how many can wait).
    min_batch: usize,
    mem: VecDeque<MemEntry>,
    mem_bytes: usize,
    /// Seqs in `[dispatch, mem_start)` are on disk only.
    mem_start: u64,
    reader: Option<Reader>,
    /// The next seq to hand to the publisher.
    dispatch: u64,
    /// Seqs `[floor, dispatch)`.
    slots: VecDeque<Slot>,
    floor: u64,
    messages: u64,
    /// Forwards of a write that failed, to append again.
    retry: Vec<Incoming>,
    retry_at: Option<Instant>,
    /// Set while the spool is full: since when, and how many were dropped.
    full_since: Option<(Instant, u64)>,
    state: &'static str,
    last_error: Option<String>,
    sync_file: Option<(u64, Arc<File>)>,
    /// The drain pace, and when it allows the next batch (while it holds messages back).
    pace: pace::Pace,
    pace_wait: Option<Instant>,
}

/// Runs the spool of one destination until `stop`.
pub(crate) async fn run(
    lane: Lane,
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Pending>,
    out: mpsc::Sender<Pending>,
    budget: usize,
    stop: CancellationToken,
) {
    let (acks_tx, mut acks_rx) = mpsc::unbounded_channel();
    let options = shared.spool.as_ref().map(|s| {
        (
            s.options.max_bytes,
            s.options.when_full,
            s.options.drain_rate,
        )
    });
    let (max_bytes, when_full, drain_rate) =
        options.unwrap_or((u64::MAX, WhenFull::Block, DrainRate::Unlimited));
    let next = lane.queue.next_seq();
    let floor = lane.queue.floor();
    let reader = lane.recovered.first.map(|pos| lane.queue.reader(pos));
    let messages = lane.recovered.pending;
    let mut task = Task {
        lane,
        shared,
        out,
        acks_tx,
        budget,
        max_bytes,
        when_full,
        run_start: next,
        durable: next,
        waiting: VecDeque::new(),
        min_batch: (budget.saturating_sub(64) / 4).max(1),
        mem: VecDeque::new(),
        mem_bytes: 0,
        mem_start: next,
        reader,
        dispatch: floor,
        slots: VecDeque::new(),
        floor,
        messages,
        retry: Vec::new(),
        retry_at: None,
        full_since: None,
        state: "ok",
        last_error: None,
        sync_file: None,
        pace: pace::Pace::new(drain_rate, Instant::now()),
        pace_wait: None,
    };
    let mut syncing: Option<(u64, JoinHandle<std::io::Result<()>>)> = None;
    let mut incoming: Vec<Pending> = Vec::new();
    let mut acks: Vec<u64> = Vec::new();
    let mut closed = false;
    loop {
        // Settlements first: they make room.
        while let Ok(seq) = acks_rx.try_recv() {
            acks.push(seq);
        }
        task.settled(&mut acks);
        let accepting = task.accepting();
        if accepting {
            while incoming.len() < BATCH {
                match rx.try_recv() {
                    Ok(pending) => incoming.push(pending),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        task.append(&mut incoming);
        if let Err(error) = task.lane.queue.write() {
            task.write_failed(&error);
        }
        let sync_due = if syncing.is_none() {
            task.sync_due()
        } else {
            None
        };
        if sync_due.is_some_and(|due| due <= Instant::now()) || (closed && sync_due.is_some()) {
            syncing = task.start_sync();
        }
        let linger = syncing.is_none().then_some(sync_due).flatten();
        task.fill_publisher();
        task.publish_status();

        let retry_in = task
            .retry_at
            .map(|at| at.saturating_duration_since(Instant::now()));
        let blocked = !task.accepting();
        let pace_wait = task.pace_wait;
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            done = async {
                match syncing.as_mut() {
                    Some((_, handle)) => handle.await,
                    None => std::future::pending().await,
                }
            } => {
                let upto = syncing.take().map_or(0, |(upto, _)| upto);
                task.synced(upto, done);
            }
            Some(seq) = acks_rx.recv() => acks.push(seq),
            item = rx.recv(), if !blocked && !closed => match item {
                Some(pending) => incoming.push(pending),
                None => closed = true,
            },
            () = tokio::time::sleep_until(linger.unwrap_or_else(Instant::now).into()), if linger.is_some() => {}
            () = tokio::time::sleep_until(pace_wait.unwrap_or_else(Instant::now).into()), if pace_wait.is_some() => {}
            () = tokio::time::sleep(retry_in.unwrap_or(RETRY)), if retry_in.is_some() || blocked => {
                task.retry_at = None;
            }
        }
    }
    // Durable state for the next start: the floor, and what was written.
    while let Ok(seq) = acks_rx.try_recv() {
        acks.push(seq);
    }
    task.settled(&mut acks);
    if let Some((_, handle)) = syncing {
        let _ = handle.await;
    }
    let _ = task.lane.queue.write();
    if let Ok(file) = task.lane.queue.sync_handle() {
        let _ = tokio::task::spawn_blocking(move || file.sync_data()).await;
    }
}

impl Task {
    /// Whether new forwards are taken: no failed write pending, and room (or `drop-oldest`).
    fn accepting(&mut self) -> bool {
        if !self.retry.is_empty() {
            return false;
        }
        let usage = self.usage();
        // The full episode ends once a quarter of the spool is free again (so that
        // `drop-oldest`, which frees a segment at a time, is one episode, not one per segment).
        if usage < self.max_bytes / 4 * 3 || (usage < self.max_bytes && self.full_since.is_none()) {
            if let Some((since, dropped)) = self.full_since.take() {
                self.lane.metrics.full.set(0);
                info!(
                    queue = %self.lane.name,
                    "spool no longer full after {:.1}s{}",
                    since.elapsed().as_secs_f64(),
                    if dropped > 0 {
                        format!("; {dropped} oldest message(s) were dropped to make room")
                    } else {
                        String::new()
                    }
                );
                self.state = "ok";
            }
            return true;
        }
        if usage < self.max_bytes && self.when_full == WhenFull::Block {
            // Still draining after a full episode: take messages again.
            return true;
        }
        if self.full_since.is_none() {
            self.full_since = Some((Instant::now(), 0));
            self.lane.metrics.full.set(1);
            self.state = "full";
            warn!(
                queue = %self.lane.name,
                max_bytes = self.max_bytes,
                "spool full ({usage} bytes); {}",
                match self.when_full {
                    WhenFull::Block => "sources are not acknowledged until the destination \
                                        takes messages",
                    WhenFull::DropOldest => "dropping the oldest messages (counted as \
                                             reason=\"spool_full\")",
                }
            );
        }
        if self.when_full == WhenFull::DropOldest {
            while self.usage() >= self.max_bytes {
                if !self.drop_oldest() {
                    break;
                }
            }
            return self.usage() < self.max_bytes;
        }
        false
    }

    fn usage(&self) -> u64 {
        self.shared
            .spool
            .as_ref()
            .map_or(0, |s| s.usage.load(Ordering::Acquire))
    }

    /// Deletes the oldest segment; false when there is none to delete.
    fn drop_oldest(&mut self) -> bool {
        let until_disk = self.mem_start;
        let from = self.dispatch;
        let dropped = match self
            .lane
            .queue
            .drop_oldest(from, until_disk, self.run_start)
        {
            Ok(Some(dropped)) => dropped,
            Ok(None) => return false,
            Err(error) => {
                self.fail("corrupt", &error.to_string());
                return false;
            }
        };
        let (end_seq, routes) = dropped;
        let mut count = 0;
        for (route, begun, n) in routes {
            let metrics = self.route_metrics(&route);
            for _ in 0..n {
                if !begun {
                    metrics.begin();
                }
                metrics.end(Err(DropReason::SpoolFull));
            }
            count += n;
        }
        while self.mem.front().is_some_and(|e| e.seq < end_seq) {
            if let Some(entry) = self.mem.pop_front() {
                self.mem_bytes -= entry.bytes;
                entry.metrics.end(Err(DropReason::SpoolFull));
                count += 1;
            }
        }
        self.mem_start = self.mem_start.max(end_seq);
        if self.dispatch < end_seq {
            self.skip_to(end_seq);
            self.reader = if self.dispatch < self.mem_start {
                self.lane.queue.reader_at_front()
            } else {
                None
            };
        }
        self.messages = self.messages.saturating_sub(count);
        if let Some((_, dropped)) = self.full_since.as_mut() {
            *dropped += count;
        }
        true
    }

    pub(super) fn route_metrics(&mut self, route: &str) -> Arc<RouteMetrics> {
        if let Some(metrics) = self.lane.routes.get(route) {
            return Arc::clone(metrics);
        }
        let metrics = self
            .shared
            .metrics
            .route(&self.lane.bridge, route, self.lane.direction);
        self.lane
            .routes
            .insert(route.to_owned(), Arc::clone(&metrics));
        metrics
    }

    /// Marks `[dispatch, to)` as settled without forwarding (dropped or never written).
    pub(super) fn skip_to(&mut self, to: u64) {
        while self.dispatch < to {
            self.slots.push_back(Slot {
                done: true,
                received_ms: 0,
            });
            self.dispatch += 1;
        }
        self.advance_floor();
    }
}
