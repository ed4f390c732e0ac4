//! One spool queue on disk: a directory of segment files holding checksummed records
//! (see [`super::record`]), appended in sequence order.
//!
//! - **Appending** encodes records into one buffer and writes it with a single `write`, so that
//!   a failed write (ENOSPC) is truncated back to the last whole record and nothing is
//!   half-written; durability is one `fdatasync` per batch (group commit), issued by the caller
//!   on a clone of the active file so that writing goes on meanwhile.
//! - **Removal** appends an acknowledgement marker (every message below its seq is settled)
//!   and deletes segment files whose messages are all settled. A new segment starts with a
//!   marker, so the newest settled floor survives the deletion of older segments.
//! - **Recovery** reads every segment: the highest marker is the floor, messages at or above it
//!   are delivered again. A record cut short at the end of the newest segment (a crash in the
//!   middle of a write) is truncated and counted; any other damage is
//!   [`BridgeError::SpoolCorrupt`] naming the file and offset. Each start writes a new segment.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) use super::reader::Reader;
use super::record::{self, FILE_MAGIC, HEADER, Header, SpooledMessage, Summary};
use crate::error::BridgeError;

/// Where a record starts: segment id and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) seg: u64,
    pub(crate) offset: u64,
}

/// A segment file.
#[derive(Debug, Clone)]
pub(crate) struct SegMeta {
    pub(crate) id: u64,
    pub(crate) path: PathBuf,
    /// One past the highest message seq in it (0 when it holds none).
    pub(crate) end_seq: u64,
    /// Bytes on disk.
    pub(crate) bytes: u64,
}

/// How a segment ended when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanEnd {
    /// Bytes of whole records (and the file header).
    pub(crate) valid_len: u64,
    /// Whether a torn record followed them.
    pub(crate) torn: bool,
}

pub(super) fn io_error(path: &Path, source: io::Error) -> BridgeError {
    BridgeError::SpoolIo {
        path: path.to_owned(),
        source,
    }
}

pub(super) fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> BridgeError {
    BridgeError::SpoolCorrupt {
        file: path.to_owned(),
        offset,
        reason: reason.into(),
    }
}

/// The file name of segment `id`.
pub(crate) fn segment_name(id: u64) -> String {
    format!("{id:020}.seg")
}

/// The segments of a queue directory, oldest first.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, BridgeError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        found.push((id, entry.path()));
    }
    found.sort_unstable();
    Ok(found)
}

/// Reads the records of a segment, calling `visit(offset, record length, summary, body)` for
/// each whole one. `last` says whether it is the newest segment, where a torn tail is expected
/// after a crash; elsewhere it is corruption.
pub(crate) fn scan(
    path: &Path,
    last: bool,
    mut visit: impl FnMut(u64, u64, &Summary, &[u8]) -> Result<(), BridgeError>,
) -> Result<ScanEnd, BridgeError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let file_len = file.metadata().map_err(|e| io_error(path, e))?.len();
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    if file_len < FILE_MAGIC.len() as u64 {
        if last {
            return Ok(ScanEnd {
                valid_len: 0,
                torn: file_len > 0,
            });
        }
        return Err(corrupt(path, 0, "the file is shorter than its header"));
    }
    let mut magic = [0u8; FILE_MAGIC.len()];
    reader
        .read_exact(&mut magic)
        .map_err(|e| io_error(path, e))?;
    if magic != FILE_MAGIC {
        return Err(corrupt(path, 0, "not an e4k spool segment (bad magic)"));
    }
    let mut offset = FILE_MAGIC.len() as u64;
    let mut body = Vec::new();
    let torn = |offset: u64, what: &str| {
        if last {
            Ok(ScanEnd {
                valid_len: offset,
                torn: true,
            })
        } else {
            Err(corrupt(path, offset, what.to_owned()))
        }
    };
    loop {
        let remaining = file_len - offset;
        if remaining == 0 {
            return Ok(ScanEnd {
                valid_len: offset,
                torn: false,
            });
        }
        if remaining < HEADER as u64 {
            return torn(offset, "a record header is cut short");
        }
        let mut head = [0u8; HEADER];
        reader
            .read_exact(&mut head)
            .map_err(|e| io_error(path, e))?;
        let (len, crc) = match record::header(&head) {
            Header::Sound { len, crc } => (len, crc),
            Header::Damaged => {
                // A crash can leave zero-filled blocks at the end of the file.
                let mut rest = Vec::new();
                reader
                    .by_ref()
                    .take(remaining - HEADER as u64)
                    .read_to_end(&mut rest)
                    .map_err(|e| io_error(path, e))?;
                if head.iter().chain(&rest).all(|b| *b == 0) {
                    return torn(offset, "zero-filled tail");
                }
                return Err(corrupt(path, offset, "a record header fails its checksum"));
            }
        };
        let end = offset + HEADER as u64 + u64::from(len);
        if end > file_len {
            return torn(offset, "a record is cut short");
        }
        body.resize(len as usize, 0);
        reader
            .read_exact(&mut body)
            .map_err(|e| io_error(path, e))?;
        if crc32fast::hash(&body) != crc {
            if end == file_len {
                return torn(offset, "the last record fails its checksum");
            }
            return Err(corrupt(path, offset, "a record fails its checksum"));
        }
        let summary = record::summarize(&body).map_err(|reason| corrupt(path, offset, reason))?;
        visit(offset, end - offset, &summary, &body)?;
        offset = end;
    }
}

/// What opening a queue found.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// Torn records truncated.
    pub(crate) torn: u64,
    /// Messages waiting to be delivered.
    pub(crate) pending: u64,
    /// Where the first of them is.
    pub(crate) first: Option<Pos>,
}

/// A spool queue, open for appending.
#[derive(Debug)]
pub(crate) struct Queue {
    pub(super) dir: PathBuf,
    /// Oldest first; the last is the active segment.
    pub(crate) segments: VecDeque<SegMeta>,
    active: File,
    /// Bytes of the active segment written to the file (not counting `buf`).
    active_len: u64,
    buf: Vec<u8>,
    next_seq: u64,
    floor: u64,
    marker_floor: u64,
    segment_max: u64,
    /// Bytes on disk of every queue of the spool.
    usage: Arc<AtomicU64>,
}

impl Queue {
    /// Opens (creating) the queue in `dir`: recovers what is there and starts a new segment.
    pub(crate) fn open(
        dir: &Path,
        segment_max: u64,
        usage: Arc<AtomicU64>,
    ) -> Result<(Queue, Recovered), BridgeError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let found = list_segments(dir)?;
        let mut recovered = Recovered::default();
        let mut floor = 0u64;
        let mut next_seq = 0u64;
        let mut segments = VecDeque::new();
        let count = found.len();
        for (i, (id, path)) in found.iter().enumerate() {
            let last = i + 1 == count;
            let mut end_seq = 0;
            let end = scan(path, last, |_, _, summary, _| {
                match summary.message {
                    Some(_) => end_seq = end_seq.max(summary.seq + 1),
                    None => floor = floor.max(summary.seq),
                }
                Ok(())
            })?;
            if end.torn {
                recovered.torn += 1;
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| io_error(path, e))?;
                file.set_len(end.valid_len).map_err(|e| io_error(path, e))?;
                file.sync_all().map_err(|e| io_error(path, e))?;
            }
            if end.valid_len == 0 {
                std::fs::remove_file(path).map_err(|e| io_error(path, e))?;
                continue;
            }
            next_seq = next_seq.max(end_seq);
            segments.push_back(SegMeta {
                id: *id,
                path: path.clone(),
                end_seq,
                bytes: end.valid_len,
            });
        }
        next_seq = next_seq.max(floor);
        // Settled segments go; the first message at or above the floor is found.
        while let Some(front) = segments.front() {
            if front.end_seq > floor {
                break;
            }
            std::fs::remove_file(&front.path).map_err(|e| io_error(&front.path, e))?;
            segments.pop_front();
        }
        for seg in &segments {
            let last = false;
            scan(&seg.path, last, |offset, _, summary, _| {
                if summary.message.is_some() && summary.seq >= floor {
                    recovered.pending += 1;
                    if recovered.first.is_none() {
                        recovered.first = Some(Pos {
                            seg: seg.id,
                            offset,
                        });
                    }
                }
                Ok(())
            })?;
        }
        let bytes: u64 = segments.iter().map(|s| s.bytes).sum();
        let next_id = found.last().map_or(1, |(id, _)| id + 1);
        let (active, path) = create_segment(dir, next_id)?;
        usage.fetch_add(bytes + FILE_MAGIC.len() as u64, Ordering::AcqRel);
        segments.push_back(SegMeta {
            id: next_id,
            path,
            end_seq: 0,
            bytes: FILE_MAGIC.len() as u64,
        });
        let mut queue = Queue {
            dir: dir.to_owned(),
            segments,
            active,
            active_len: FILE_MAGIC.len() as u64,
            buf: Vec::with_capacity(64 * 1024),
            next_seq,
            floor,
            marker_floor: 0,
            segment_max,
            usage,
        };
        queue.mark_floor(true);
        queue
            .write()
            .map_err(|e| io_error(&queue.active_path(), e))?;
        Ok((queue, recovered))
    }

    fn active_path(&self) -> PathBuf {
        self.segments
            .back()
            .map(|s| s.path.clone())
            .unwrap_or_default()
    }

    /// The active segment's id.
    pub(super) fn active_id(&self) -> u64 {
        self.segments.back().map_or(0, |s| s.id)
    }

    /// The seq the next message gets.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Encodes a message into the write buffer; returns its seq and position. Starts a new
    /// segment first when the active one is full (writing what is buffered).
    pub(crate) fn push(&mut self, message: &SpooledMessage) -> io::Result<(u64, Pos)> {
        if self.active_len + self.buf.len() as u64 >= self.segment_max {
            self.roll()?;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let pos = Pos {
            seg: self.active_id(),
            offset: self.active_len + self.buf.len() as u64,
        };
        record::encode_message(&mut self.buf, seq, message);
        if let Some(active) = self.segments.back_mut() {
            active.end_seq = seq + 1;
        }
        Ok((seq, pos))
    }

    /// Writes the buffer with one `write`. On failure the segment is cut back to its last
    /// whole record and the buffer is discarded (the caller keeps the messages to retry).
    pub(crate) fn write(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = self.active.write_all(&self.buf);
        match result {
            Ok(()) => {
                let n = self.buf.len() as u64;
                self.active_len += n;
                if let Some(active) = self.segments.back_mut() {
                    active.bytes += n;
                }
                self.usage.fetch_add(n, Ordering::AcqRel);
                self.buf.clear();
                Ok(())
            }
            Err(error) => {
                self.buf.clear();
                let _ = self.active.set_len(self.active_len);
                let _ = self.active.seek(SeekFrom::Start(self.active_len));
                Err(error)
            }
        }
    }

    /// Replaces the active segment's file handle (tests: `/dev/full` makes every write fail
    /// with ENOSPC).
    #[cfg(test)]
    pub(crate) fn replace_active_file(&mut self, file: File) {
        self.active = file;
    }

    /// A handle on the active segment for `fdatasync` (everything written before is durable
    /// once it returns).
    pub(crate) fn sync_handle(&self) -> io::Result<File> {
        self.active.try_clone()
    }

    /// Writes what is buffered, makes the active segment durable and starts a new one, which
    /// opens with the current floor.
    fn roll(&mut self) -> io::Result<()> {
        self.write()?;
        self.active.sync_data()?;
        let id = self.active_id() + 1;
        let (file, path) = create_segment(&self.dir, id).map_err(|e| match e {
            BridgeError::SpoolIo { source, .. } => source,
            other => io::Error::other(other.to_string()),
        })?;
        self.active = file;
        self.active_len = FILE_MAGIC.len() as u64;
        self.usage
            .fetch_add(FILE_MAGIC.len() as u64, Ordering::AcqRel);
        self.segments.push_back(SegMeta {
            id,
            path,
            end_seq: 0,
            bytes: FILE_MAGIC.len() as u64,
        });
        self.mark_floor(true);
        Ok(())
    }

    /// Every message below `floor` is settled: deletes the segments that hold nothing else
    /// and buffers a marker (written with the next [`write`](Self::write)).
    pub(crate) fn settle(&mut self, floor: u64) -> io::Result<()> {
        if floor <= self.floor {
            return Ok(());
        }
        self.floor = floor;
        self.mark_floor(false);
        while self.segments.len() > 1 {
            let Some(front) = self.segments.front() else {
                break;
            };
            if front.end_seq > floor {
                break;
            }
            self.delete_front()?;
        }
        Ok(())
    }

    /// Buffers a marker of the floor when it moved since the last one (or always, at the
    /// start of a segment).
    fn mark_floor(&mut self, force: bool) {
        if force || self.floor > self.marker_floor {
            record::encode_ack(&mut self.buf, self.floor);
            self.marker_floor = self.floor;
        }
    }

    fn delete_front(&mut self) -> io::Result<()> {
        if let Some(front) = self.segments.pop_front() {
            std::fs::remove_file(&front.path)?;
            self.usage.fetch_sub(front.bytes, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Deletes the oldest segment that is not the active one (`drop-oldest`); returns its
    /// one-past-last seq and, per route, how many of its messages with a seq in
    /// `[from, until)` it held, split by whether the seq is at or above `run_start` (received
    /// in this run). `None` when only the active segment is left.
    #[allow(clippy::type_complexity)]
    pub(crate) fn drop_oldest(
        &mut self,
        from: u64,
        until: u64,
        run_start: u64,
    ) -> Result<Option<(u64, Vec<(String, bool, u64)>)>, BridgeError> {
        if self.segments.len() < 2 {
            return Ok(None);
        }
        let Some(front) = self.segments.front().cloned() else {
            return Ok(None);
        };
        let mut routes: Vec<(String, bool, u64)> = Vec::new();
        scan(&front.path, false, |_, _, summary, _| {
            if let Some((route, _)) = &summary.message
                && (from..until).contains(&summary.seq)
            {
                let begun = summary.seq >= run_start;
                match routes
                    .iter_mut()
                    .find(|(r, b, _)| r == route && *b == begun)
                {
                    Some((_, _, n)) => *n += 1,
                    None => routes.push((route.clone(), begun, 1)),
                }
            }
            Ok(())
        })?;
        self.delete_front().map_err(|e| io_error(&front.path, e))?;
        Ok(Some((front.end_seq, routes)))
    }

    /// The settled floor: every message below it is settled.
    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }

    /// A reader from the start of the oldest segment.
    pub(crate) fn reader_at_front(&self) -> Option<Reader> {
        self.segments.front().map(|s| {
            self.reader(Pos {
                seg: s.id,
                offset: FILE_MAGIC.len() as u64,
            })
        })
    }

    /// The segment after `id`, if any.
    pub(super) fn segment_after(&self, id: u64) -> Option<&SegMeta> {
        self.segments.iter().find(|s| s.id > id)
    }

    /// The bytes of segment `id` that are written (a reader never reads past them).
    pub(super) fn written_len(&self, id: u64) -> u64 {
        if id == self.active_id() {
            self.active_len
        } else {
            self.segments
                .iter()
                .find(|s| s.id == id)
                .map_or(0, |s| s.bytes)
        }
    }

    /// A reader of the messages from `pos` on.
    pub(crate) fn reader(&self, pos: Pos) -> Reader {
        Reader::new(pos)
    }
}

fn create_segment(dir: &Path, id: u64) -> Result<(File, PathBuf), BridgeError> {
    let path = dir.join(segment_name(id));
    let mut options = OpenOptions::new();
    options.create_new(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(|e| io_error(&path, e))?;
    file.write_all(&FILE_MAGIC)
        .map_err(|e| io_error(&path, e))?;
    file.sync_all().map_err(|e| io_error(&path, e))?;
    // The new name is durable too.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok((file, path))
}
