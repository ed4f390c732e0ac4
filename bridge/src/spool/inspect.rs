//! `e4k bridge spool inspect`: what a spool holds, read without starting the bridge (and
//! without taking its lock, so that it works beside a running bridge).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::segment::{self, SegMeta};
use super::{queue_name, queues_dir};
use crate::error::BridgeError;

/// What a spool directory holds (the JSON shape of `e4k bridge spool inspect --output json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpoolReport {
    /// The spool directory.
    pub dir: String,
    /// Bytes of every segment file.
    pub bytes: u64,
    /// Messages waiting for delivery, over every queue.
    pub messages: u64,
    /// One entry per destination session.
    pub queues: Vec<QueueReport>,
}

/// One queue: the messages waiting for one destination session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueReport {
    /// `<bridge>~<broker>~<client id>`.
    pub name: String,
    /// Segment files.
    pub segments: usize,
    /// Bytes of its segment files.
    pub bytes: u64,
    /// Messages waiting.
    pub messages: u64,
    /// Seconds since the oldest waiting message arrived.
    pub oldest_age_secs: Option<u64>,
    /// Whether the newest segment ends in a torn record (a crash in the middle of a write; the
    /// bridge cuts it off at its next start).
    pub torn_tail: bool,
    /// Per route.
    pub routes: Vec<RouteReport>,
}

/// The waiting messages of one route in a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteReport {
    /// The route's name.
    pub route: String,
    /// Messages.
    pub messages: u64,
    /// Bytes of their records.
    pub bytes: u64,
    /// Seconds since the oldest arrived.
    pub oldest_age_secs: Option<u64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reads what the spool in `dir` holds.
///
/// # Errors
/// [`BridgeError::SpoolIo`] when the directory cannot be read (or is not a spool),
/// [`BridgeError::SpoolCorrupt`] for a damaged segment.
pub fn inspect(dir: &Path) -> Result<SpoolReport, BridgeError> {
    let queues_path = queues_dir(dir);
    let entries = std::fs::read_dir(&queues_path).map_err(|source| BridgeError::SpoolIo {
        path: queues_path.clone(),
        source,
    })?;
    let mut names: Vec<(String, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| Some((e.file_name().to_str().map(queue_name)?, e.path())))
        .collect();
    names.sort();
    let now = now_ms();
    let age = |ms: u64| now.saturating_sub(ms) / 1000;
    let mut queues = Vec::new();
    for (name, path) in names {
        let found = segment::list_segments(&path)?;
        let mut floor = 0u64;
        let mut metas = Vec::new();
        let mut torn_tail = false;
        let count = found.len();
        for (i, (id, seg_path)) in found.iter().enumerate() {
            let end = segment::scan(seg_path, i + 1 == count, |_, _, summary, _| {
                if summary.message.is_none() {
                    floor = floor.max(summary.seq);
                }
                Ok(())
            })?;
            torn_tail |= end.torn;
            let bytes = std::fs::metadata(seg_path).map_or(0, |m| m.len());
            metas.push((
                SegMeta {
                    id: *id,
                    path: seg_path.clone(),
                    end_seq: 0,
                    bytes,
                },
                i + 1 == count,
            ));
        }
        let mut routes: Vec<RouteReport> = Vec::new();
        for (meta, last) in &metas {
            segment::scan(&meta.path, *last, |_, len, summary, _| {
                if let Some((route, received)) = &summary.message
                    && summary.seq >= floor
                {
                    let entry = match routes.iter().position(|r| &r.route == route) {
                        Some(i) => &mut routes[i],
                        None => {
                            routes.push(RouteReport {
                                route: route.clone(),
                                messages: 0,
                                bytes: 0,
                                oldest_age_secs: None,
                            });
                            let last = routes.len() - 1;
                            &mut routes[last]
                        }
                    };
                    entry.messages += 1;
                    entry.bytes += len;
                    let a = age(*received);
                    entry.oldest_age_secs = Some(entry.oldest_age_secs.map_or(a, |o| o.max(a)));
                }
                Ok(())
            })?;
        }
        routes.sort_by(|a, b| a.route.cmp(&b.route));
        queues.push(QueueReport {
            name,
            segments: metas.len(),
            bytes: metas.iter().map(|(m, _)| m.bytes).sum(),
            messages: routes.iter().map(|r| r.messages).sum(),
            oldest_age_secs: routes.iter().filter_map(|r| r.oldest_age_secs).max(),
            torn_tail,
            routes,
        });
    }
    Ok(SpoolReport {
        dir: dir.display().to_string(),
        bytes: queues.iter().map(|q| q.bytes).sum(),
        messages: queues.iter().map(|q| q.messages).sum(),
        queues,
    })
}
