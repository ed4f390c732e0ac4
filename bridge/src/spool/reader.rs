//! Reading a queue's messages back, in seq order, across its segments (what the spool hands
//! the destination once the recent ones are no longer in memory).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

use super::record::{self, FILE_MAGIC, HEADER, Header, Record, SpooledMessage};
use super::segment::{Pos, Queue, corrupt, io_error, segment_name};
use crate::error::BridgeError;

/// Reads messages back in seq order, across segments.
#[derive(Debug)]
pub(crate) struct Reader {
    pub(super) pos: Pos,
    file: Option<BufReader<File>>,
    body: Vec<u8>,
}

impl Reader {
    /// A reader whose first record is at `pos` (opened on the first read).
    pub(super) fn new(pos: Pos) -> Reader {
        Reader {
            pos,
            file: None,
            body: Vec::new(),
        }
    }

    /// The next message, `None` when every written record has been read.
    pub(crate) fn next(
        &mut self,
        queue: &Queue,
    ) -> Result<Option<(u64, SpooledMessage, Pos)>, BridgeError> {
        loop {
            let written = queue.written_len(self.pos.seg);
            if self.pos.offset + HEADER as u64 > written {
                // The end of this segment: the next one, if any and this one is done.
                if self.pos.seg == queue.active_id() {
                    return Ok(None);
                }
                let Some(next) = queue.segment_after(self.pos.seg) else {
                    return Ok(None);
                };
                self.pos = Pos {
                    seg: next.id,
                    offset: FILE_MAGIC.len() as u64,
                };
                self.file = None;
                continue;
            }
            let path = queue.dir.join(segment_name(self.pos.seg));
            if self.file.is_none() {
                let mut file = File::open(&path).map_err(|e| io_error(&path, e))?;
                file.seek(SeekFrom::Start(self.pos.offset))
                    .map_err(|e| io_error(&path, e))?;
                self.file = Some(BufReader::with_capacity(64 * 1024, file));
            }
            let Some(file) = self.file.as_mut() else {
                return Ok(None);
            };
            let mut head = [0u8; HEADER];
            file.read_exact(&mut head).map_err(|e| io_error(&path, e))?;
            let Header::Sound { len, crc } = record::header(&head) else {
                return Err(corrupt(
                    &path,
                    self.pos.offset,
                    "a record header fails its checksum",
                ));
            };
            self.body.resize(len as usize, 0);
            file.read_exact(&mut self.body)
                .map_err(|e| io_error(&path, e))?;
            if crc32fast::hash(&self.body) != crc {
                return Err(corrupt(
                    &path,
                    self.pos.offset,
                    "a record fails its checksum",
                ));
            }
            let at = self.pos;
            self.pos.offset += HEADER as u64 + u64::from(len);
            match record::decode(&self.body).map_err(|reason| corrupt(&path, at.offset, reason))? {
                Record::Message(seq, message) => return Ok(Some((seq, message, at))),
                Record::Ack(_) => {}
            }
        }
    }
}
