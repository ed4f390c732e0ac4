//! The durable spool (`e4k bridge run --spool-dir`): store-and-forward on local disk.
//!
//! With a spool, a QoS ≥ 1 message is acknowledged to its source broker once it is durable in
//! the spool (written and `fdatasync`ed, one sync covering every message that arrived while the
//! previous one ran), and is removed after the destination acknowledged it. An outage of
//! either broker therefore fills the spool, not the other broker's queue (mosquitto drops
//! beyond `max_queued_messages`, 1,000 by default; Event Grid ends a session whose offline
//! queue passes 100 messages).
//!
//! # Layout
//!
//! `DIR/lock` is held (`flock`) by the running bridge; a second bridge on the same directory
//! is refused. `DIR/queues/<queue>/` holds one queue per destination session
//! (`<bridge>~<broker>~<client id>`, percent-encoded), each a directory of segment files
//! (see `segment` and `record` for the format). Why a segment log rather than an embedded
//! database: the access pattern is a FIFO (append at the tail, delete at the head), which a log
//! does with one write and one `fdatasync` per batch, whole-file deletes and no compaction, and
//! whose torn tail after a crash is detected by checksums and cut off (docs/BENCHMARKS.md has
//! the measurements that decided it).
//!
//! # Bounds
//!
//! Disk use stays below `max_bytes` plus one segment (a sixteenth of it, between 4 KiB and
//! 64 MiB). When it is reached, [`WhenFull::Block`] stops acknowledging the sources (they
//! keep the messages, as without a spool) and [`WhenFull::DropOldest`] deletes the oldest
//! segment, counting its undelivered messages per route (`reason="spool_full"`). Memory does
//! not grow with the backlog: the spool reads messages back from disk as the destination
//! takes them.

pub(crate) mod reader;
pub(crate) mod record;
pub(crate) mod segment;

mod inspect;
mod report;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

pub use self::inspect::{QueueReport, RouteReport, SpoolReport, inspect};
use crate::error::BridgeError;

/// Default `--spool-max-bytes`: 1 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// What a full spool does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Stop acknowledging the sources until the destination takes messages (backpressure).
    #[default]
    Block,
    /// Delete the oldest messages to make room, counted per route.
    DropOldest,
}

impl WhenFull {
    /// `block` or `drop-oldest`.
    pub fn as_str(self) -> &'static str {
        match self {
            WhenFull::Block => "block",
            WhenFull::DropOldest => "drop-oldest",
        }
    }
}

/// The most messages per second the spool sends to one destination (`--spool-drain-rate`).
///
/// A backlog (an outage's worth of messages) would otherwise leave as fast as the destination
/// broker acknowledges, which is far faster than its consumers read: mosquitto at its defaults
/// queues 1,000 messages per consumer and drops the rest, so a drained backlog would be lost
/// there. Live traffic is not held back by [`DrainRate::Auto`]: it allows several times the
/// rate messages arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DrainRate {
    /// [`DrainRate::AUTO_FACTOR`] times the rate messages arrived at the spool in the last
    /// second, at least [`DrainRate::AUTO_FLOOR`] per second.
    #[default]
    Auto,
    /// At most this many messages per second.
    PerSecond(std::num::NonZeroU32),
    /// As fast as the destination acknowledges.
    Unlimited,
}

impl DrainRate {
    /// `auto` allows this many times the arrival rate (a backlog drains at three times the
    /// live rate on top of it).
    pub const AUTO_FACTOR: u32 = 4;
    /// `auto` allows at least this many messages per second (Event Grid's inbound rate per
    /// session; a consumer that reads 1,000/s never queues).
    pub const AUTO_FLOOR: u32 = 1_000;

    /// Parses `auto`, `unlimited` or a positive number of messages per second.
    ///
    /// # Errors
    /// A message naming the text and the accepted forms.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "auto" => Ok(DrainRate::Auto),
            "unlimited" => Ok(DrainRate::Unlimited),
            number => number
                .parse::<std::num::NonZeroU32>()
                .map(DrainRate::PerSecond)
                .map_err(|_| {
                    format!(
                        "`{text}` is not a drain rate; use auto, unlimited or messages per \
                         second (e.g. 500)"
                    )
                }),
        }
    }
}

impl std::fmt::Display for DrainRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrainRate::Auto => f.write_str("auto"),
            DrainRate::PerSecond(n) => write!(f, "{n}"),
            DrainRate::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// Where and how much to spool.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpoolOptions {
    /// The spool directory (created, mode 0700).
    pub dir: PathBuf,
    /// The most bytes the spool's files take (plus one segment).
    pub max_bytes: u64,
    /// What to do when full.
    pub when_full: WhenFull,
    /// How fast messages leave the spool toward one destination.
    pub drain_rate: DrainRate,
}

impl SpoolOptions {
    /// A spool in `dir` with the default size and policy.
    pub fn new(dir: PathBuf) -> Self {
        SpoolOptions {
            dir,
            max_bytes: DEFAULT_MAX_BYTES,
            when_full: WhenFull::Block,
            drain_rate: DrainRate::Auto,
        }
    }

    /// The size of one segment file.
    pub(crate) fn segment_bytes(&self) -> u64 {
        (self.max_bytes / 16).clamp(4 * 1024, 64 * 1024 * 1024)
    }
}

/// Parses a size: bytes, or a number with `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024) or
/// `KB`/`MB`/`GB`/`TB` (powers of 1000); `K`, `M`, `G` and `Ki`, `Mi`, `Gi` are accepted too.
///
/// # Errors
/// A message naming the text and the accepted forms.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (value, unit) = crate::units::split_quantity(text)
        .ok_or_else(|| format!("`{text}` is not a size; use e.g. 1GiB, 512MiB or 1000000"))?;
    let multiplier: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024.0 * 1024.0,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "ti" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`; use KiB, MiB, GiB, KB, MB or GB"
            ));
        }
    };
    let bytes = value * multiplier;
    if !(1.0..=1.8e19).contains(&bytes) {
        return Err(format!("`{text}` is out of range"));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(bytes as u64)
}

/// The directory name of a queue: its name with every byte outside `[A-Za-z0-9._-]`
/// percent-encoded (so `~` separates the parts).
pub(crate) fn queue_dir_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The queue name of a directory name ([`queue_dir_name`] reversed).
pub(crate) fn queue_name(dir_name: &str) -> String {
    let bytes = dir_name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(byte) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The queues directory of a spool.
pub(crate) fn queues_dir(dir: &Path) -> PathBuf {
    dir.join("queues")
}

/// An open spool: the lock is held until it is dropped.
#[derive(Debug)]
pub(crate) struct Spool {
    pub(crate) options: SpoolOptions,
    /// Bytes on disk of every queue.
    pub(crate) usage: Arc<AtomicU64>,
    _lock: File,
}

impl Spool {
    /// Creates the directory if needed and takes its lock.
    ///
    /// # Errors
    /// [`BridgeError::SpoolLocked`] when another process holds it, [`BridgeError::SpoolIo`]
    /// when it cannot be created.
    pub(crate) fn open(options: SpoolOptions) -> Result<Spool, BridgeError> {
        let dir = &options.dir;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| BridgeError::SpoolIo { path, source }
        };
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(queues_dir(dir)).map_err(io(dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(BridgeError::SpoolLocked { dir: dir.clone() });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(BridgeError::SpoolIo {
                    path: lock_path,
                    source,
                });
            }
        }
        Ok(Spool {
            options,
            usage: Arc::new(AtomicU64::new(0)),
            _lock: lock,
        })
    }

    /// Opens (creating and recovering) the queue `name`.
    pub(crate) fn queue(
        &self,
        name: &str,
    ) -> Result<(segment::Queue, segment::Recovered), BridgeError> {
        let dir = queues_dir(&self.options.dir).join(queue_dir_name(name));
        segment::Queue::open(&dir, self.options.segment_bytes(), Arc::clone(&self.usage))
    }

    /// The queues on disk whose names are not in `used`, with the messages they hold.
    pub(crate) fn unused(&self, used: &[String]) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(queues_dir(&self.options.dir)) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().map(queue_name))
            .filter(|name| !used.contains(name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2Mi"), Ok(2 << 20));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert!(parse_size("0").is_err());
        assert!(parse_size("ten").is_err());
        assert!(parse_size("1PB").is_err());
    }

    #[test]
    fn queue_names_round_trip() {
        let name = "my-bridge~remote~e4k/0 +#";
        let dir = queue_dir_name(name);
        assert!(!dir.contains('/'), "{dir}");
        assert_eq!(queue_name(&dir), name);
    }

    #[test]
    fn a_second_open_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Spool::open(SpoolOptions::new(dir.path().to_owned())).unwrap();
        let second = Spool::open(SpoolOptions::new(dir.path().to_owned()));
        assert!(matches!(second, Err(BridgeError::SpoolLocked { .. })));
        drop(first);
        Spool::open(SpoolOptions::new(dir.path().to_owned())).unwrap();
    }
}

#[cfg(test)]
mod crash_tests;
