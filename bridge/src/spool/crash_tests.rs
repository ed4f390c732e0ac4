//! Crash and damage tests of the segment log: every torn tail is cut off and counted with every
//! whole record kept; damage anywhere else is one error naming the file and offset.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use rumqttc_next::mqttbytes::QoS;
use rumqttc_next::mqttbytes::v5::PublishProperties;

use super::record::SpooledMessage;
use super::segment::{Queue, list_segments};
use crate::error::BridgeError;

fn message(n: u64) -> SpooledMessage {
    SpooledMessage {
        route: if n.is_multiple_of(3) {
            "alerts"
        } else {
            "telemetry"
        }
        .into(),
        topic: format!("factory/{n}"),
        qos: QoS::AtLeastOnce,
        retain: false,
        payload: Bytes::from(format!(
            "payload {n} {}",
            "x".repeat(usize::try_from(n % 50).unwrap())
        )),
        properties: PublishProperties::default(),
        expiry: None,
        received_ms: 1_700_000_000_000 + n,
    }
}

fn open(dir: &std::path::Path) -> Result<(Queue, super::segment::Recovered), BridgeError> {
    Queue::open(dir, 1 << 20, Arc::new(AtomicU64::new(0)))
}

/// Every message still in the queue, in order.
fn drain(queue: &Queue, first: Option<super::segment::Pos>) -> Vec<SpooledMessage> {
    let Some(pos) = first else { return Vec::new() };
    let mut reader = queue.reader(pos);
    let mut out = Vec::new();
    while let Some((_, m, _)) = reader.next(queue).unwrap() {
        out.push(m);
    }
    out
}

/// Writes `n` messages, settles the first `settled`, and closes the queue.
fn fill(dir: &std::path::Path, n: u64, settled: u64) {
    let (mut queue, _) = open(dir).unwrap();
    for i in 0..n {
        queue.push(&message(i)).unwrap();
        if i.is_multiple_of(7) {
            queue.write().unwrap();
        }
    }
    queue.write().unwrap();
    queue.settle(settled).unwrap();
    queue.write().unwrap();
}

#[test]
fn messages_survive_a_reopen_and_settled_ones_do_not_come_back() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 100, 40);
    let (queue, recovered) = open(dir.path()).unwrap();
    assert_eq!(recovered.pending, 60);
    assert_eq!(recovered.torn, 0);
    let got = drain(&queue, recovered.first);
    assert_eq!(got, (40..100).map(message).collect::<Vec<_>>());
    assert_eq!(queue.next_seq(), 100);
}

#[test]
fn a_torn_last_record_is_cut_off_at_every_offset_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 20, 0);
    // The newest segment ends with the settle marker; put one more message at the end of a
    // segment of its own after the others, then tear it at every offset.
    let (mut queue, _) = open(dir.path()).unwrap();
    queue.push(&message(20)).unwrap();
    queue.write().unwrap();
    drop(queue);
    let segments = list_segments(dir.path()).unwrap();
    let last = segments.last().unwrap().1.clone();
    let whole = std::fs::read(&last).unwrap();
    let pristine: Vec<(std::path::PathBuf, Vec<u8>)> = segments
        .iter()
        .map(|(_, p)| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    // The last record starts after the magic and the marker of that segment.
    let record_len = {
        let mut buf = Vec::new();
        super::record::encode_message(&mut buf, 20, &message(20));
        buf.len()
    };
    let start = whole.len() - record_len;
    for cut in start + 1..whole.len() {
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        for (path, bytes) in &pristine {
            std::fs::write(path, bytes).unwrap();
        }
        std::fs::write(&last, &whole[..cut]).unwrap();
        let (queue, recovered) = open(dir.path()).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        assert_eq!(recovered.torn, 1, "cut at {cut}");
        assert_eq!(recovered.pending, 20, "cut at {cut}");
        assert_eq!(
            drain(&queue, recovered.first),
            (0..20).map(message).collect::<Vec<_>>()
        );
        // The queue works on: the next message gets a fresh seq.
        assert_eq!(queue.next_seq(), 20);
    }
    // A zero-filled tail (blocks allocated, data not written) is a torn tail too.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    for (path, bytes) in &pristine {
        std::fs::write(path, bytes).unwrap();
    }
    let mut zeroed = whole[..start].to_vec();
    zeroed.extend(std::iter::repeat_n(0u8, 4096));
    std::fs::write(&last, &zeroed).unwrap();
    let (_, recovered) = open(dir.path()).unwrap();
    assert_eq!((recovered.torn, recovered.pending), (1, 20));
}

#[test]
fn a_flipped_byte_inside_a_segment_is_one_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 50, 0);
    // A second start adds a segment: the first is no longer the newest.
    drop(open(dir.path()).unwrap());
    let (_, path) = list_segments(dir.path()).unwrap().remove(0);
    let mut bytes = std::fs::read(&path).unwrap();
    for at in [3, 20, bytes.len() / 2, bytes.len() - 40, bytes.len() - 1] {
        let original = bytes[at];
        bytes[at] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        match open(dir.path()) {
            Err(e @ BridgeError::SpoolCorrupt { .. }) => {
                let text = e.to_string();
                assert!(text.contains(&path.display().to_string()), "{text}");
                assert!(text.contains("offset"), "{text}");
            }
            Err(other) => panic!("byte {at}: {other}"),
            Ok(_) => panic!("a flipped byte at {at} was not detected"),
        }
        bytes[at] = original;
        std::fs::write(&path, &bytes).unwrap();
    }
    let (_, recovered) = open(dir.path()).unwrap();
    assert_eq!(recovered.pending, 50);
}

#[test]
fn segments_roll_and_settled_ones_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let usage = Arc::new(AtomicU64::new(0));
    let (mut queue, _) = Queue::open(dir.path(), 64 * 1024, Arc::clone(&usage)).unwrap();
    for i in 0..5_000 {
        queue.push(&message(i)).unwrap();
        queue.write().unwrap();
    }
    let before = list_segments(dir.path()).unwrap().len();
    assert!(before > 3, "{before} segments");
    queue.settle(4_000).unwrap();
    queue.write().unwrap();
    let after = list_segments(dir.path()).unwrap().len();
    assert!(after < before, "{after} of {before}");
    let on_disk: u64 = list_segments(dir.path())
        .unwrap()
        .iter()
        .map(|(_, p)| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(usage.load(std::sync::atomic::Ordering::Acquire), on_disk);
    drop(queue);
    let (queue, recovered) = Queue::open(dir.path(), 64 * 1024, usage).unwrap();
    assert_eq!(recovered.pending, 1_000);
    assert_eq!(
        drain(&queue, recovered.first),
        (4_000..5_000).map(message).collect::<Vec<_>>()
    );
}

#[test]
fn a_write_that_fails_with_enospc_leaves_the_queue_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let usage = Arc::new(AtomicU64::new(0));
    let (mut queue, _) = Queue::open(dir.path(), 1 << 20, Arc::clone(&usage)).unwrap();
    queue.push(&message(0)).unwrap();
    queue.write().unwrap();
    let before = usage.load(std::sync::atomic::Ordering::Acquire);
    let real = queue.sync_handle().unwrap();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    queue.replace_active_file(full);
    queue.push(&message(1)).unwrap();
    let error = queue.write().unwrap_err();
    assert_eq!(error.raw_os_error(), Some(28), "{error}"); // ENOSPC
    assert_eq!(usage.load(std::sync::atomic::Ordering::Acquire), before);
    // The disk has room again: the next write appends after the last whole record.
    queue.replace_active_file(real);
    queue.push(&message(2)).unwrap();
    queue.write().unwrap();
    drop(queue);
    let (queue, recovered) = open(dir.path()).unwrap();
    assert_eq!((recovered.pending, recovered.torn), (2, 0));
    assert_eq!(drain(&queue, recovered.first), vec![message(0), message(2)]);
}
