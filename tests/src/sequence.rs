//! Sequence numbers through the bridge, for the tests that count what arrives: a QoS 1
//! publisher of `0, 1, 2, ...` (rumqttc, as fast as the broker takes them or paced), a
//! subscriber in a persistent session that counts each number, the [`Tally`] of what is
//! missing, duplicated or never published, and the missing numbers as ranges for failure
//! messages.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::sync::oneshot;

use crate::faults::Published;

/// Polls `eventloop` forever (reconnecting after errors, 100 ms apart), counting PUBACKs in
/// `acks` and passing received publishes (topic, payload) to `on_publish`; the receiver fires
/// at the first SUBACK, or at the first CONNACK when `wait_suback` is off.
pub fn drive(
    mut eventloop: EventLoop,
    acks: Arc<AtomicU64>,
    wait_suback: bool,
    mut on_publish: impl FnMut(&[u8], &[u8]) + Send + 'static,
) -> (tokio::task::JoinHandle<()>, oneshot::Receiver<()>) {
    let (ready_tx, ready_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) if !wait_suback => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acks.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    on_publish(&publish.topic, &publish.payload);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    (task, ready_rx)
}

/// A QoS 1 publisher of sequence numbers (their decimal text) on a plain broker, counting the
/// broker's PUBACKs.
#[derive(Debug)]
pub struct Publisher {
    client: AsyncClient,
    acks: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Publisher {
    /// Connects as `id` to the broker at 127.0.0.1:`port` with `capacity` requests in the
    /// client's channel; panics when it is not connected within `wait`.
    pub async fn connect(port: u16, id: &str, capacity: usize, wait: Duration) -> Publisher {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_max_packet_size(Some(1024 * 1024));
        let (client, eventloop) = AsyncClient::new(options, capacity);
        let acks: Arc<AtomicU64> = Arc::default();
        let (task, ready) = drive(eventloop, Arc::clone(&acks), false, |_, _| {});
        tokio::time::timeout(wait, ready)
            .await
            .expect("publisher did not connect")
            .unwrap();
        Publisher { client, acks, task }
    }

    /// Publishes each number of `range` on `topic` at QoS 1, as fast as the client takes
    /// them.
    pub async fn publish(&self, topic: &str, range: Range<u64>) {
        for seq in range {
            self.client
                .publish(topic, QoS::AtLeastOnce, false, seq.to_string())
                .await
                .unwrap();
        }
    }

    /// Waits until the broker acknowledged `n` publishes; panics after `timeout`.
    pub async fn wait_acked(&self, n: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.acks.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "the local broker acknowledged {} of {n}",
                self.acks.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Publishes `first, first + 1, ...` on `topic`, `per_tick` messages every 10 ms for
    /// `duration`, then waits up to `wait` until the broker acknowledged every one (the task
    /// panics otherwise); `sent` is the next number to publish, counted from 0.
    pub fn paced(
        self,
        topic: &str,
        first: u64,
        per_tick: u64,
        duration: Duration,
        wait: Duration,
    ) -> tokio::task::JoinHandle<Published> {
        let topic = topic.to_owned();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut sent = first;
            while started.elapsed() < duration {
                tick.tick().await;
                self.publish(&topic, sent..sent + per_tick).await;
                sent += per_tick;
            }
            let elapsed = started.elapsed();
            self.wait_acked(sent - first, wait).await;
            #[allow(clippy::cast_precision_loss)]
            let rate = (sent - first) as f64 / elapsed.as_secs_f64();
            Published { sent, rate }
        })
    }
}

/// How often each sequence number arrived.
#[derive(Debug, Default, Clone)]
pub struct Counts(Vec<u32>);

impl Counts {
    /// Counts one arrival of `seq`.
    pub fn record(&mut self, seq: usize) {
        if self.0.len() <= seq {
            self.0.resize(seq + 1, 0);
        }
        self.0[seq] += 1;
    }

    /// What arrived of the `n` numbers `0..n` that were published.
    #[must_use]
    pub fn tally(&self, n: u64) -> Tally {
        let n = usize::try_from(n).unwrap();
        let mut tally = Tally::default();
        for i in 0..n.max(self.0.len()) {
            let count = self.0.get(i).copied().unwrap_or(0);
            if i >= n {
                tally.unexpected += u64::from(count);
            } else if count == 0 {
                tally.missing.push(i as u64);
            } else {
                tally.received += u64::from(count);
                tally.duplicates += u64::from(count - 1);
            }
        }
        tally
    }
}

/// What arrived of `0..n`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Arrivals of numbers below `n`, duplicates included.
    pub received: u64,
    /// Arrivals beyond the first of each number below `n`.
    pub duplicates: u64,
    /// The numbers below `n` that never arrived.
    pub missing: Vec<u64>,
    /// Arrivals of numbers at or beyond `n` (never published).
    pub unexpected: u64,
}

impl Tally {
    /// The missing numbers as ranges, for a readable failure.
    #[must_use]
    pub fn missing_ranges(&self) -> String {
        ranges(&self.missing)
    }
}

/// A subscriber (rumqttc) in a persistent session (clean start off, 600 s expiry), counting
/// each sequence number it receives at QoS 1.
#[derive(Debug)]
pub struct Subscriber {
    counts: Arc<Mutex<Counts>>,
    task: tokio::task::JoinHandle<()>,
    _client: AsyncClient,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscriber {
    /// Connects with `options`, subscribes `filter` and waits up to `wait` for the SUBACK.
    pub async fn start(mut options: MqttOptions, filter: &str, wait: Duration) -> Subscriber {
        options
            .set_clean_start(false)
            .set_session_expiry_interval(Some(600))
            .set_max_packet_size(Some(1024 * 1024));
        let (client, eventloop) = AsyncClient::new(options, 100);
        let counts: Arc<Mutex<Counts>> = Arc::default();
        let sink = Arc::clone(&counts);
        let (task, ready) = drive(eventloop, Arc::default(), true, move |_, payload| {
            let n: usize = std::str::from_utf8(payload).unwrap().parse().unwrap();
            sink.lock().unwrap().record(n);
        });
        client
            .subscribe_many([Filter::new(filter, QoS::AtLeastOnce)])
            .await
            .unwrap();
        tokio::time::timeout(wait, ready)
            .await
            .expect("subscriber got no SUBACK")
            .unwrap();
        Subscriber {
            counts,
            task,
            _client: client,
        }
    }

    /// Waits until each of `0..n` arrived, or `timeout`; the tally then.
    pub async fn wait_all(&self, n: u64, timeout: Duration) -> Tally {
        let deadline = Instant::now() + timeout;
        loop {
            let tally = self.tally(n);
            if tally.missing.is_empty() || Instant::now() > deadline {
                return tally;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What arrived of `0..n` so far.
    #[must_use]
    pub fn tally(&self, n: u64) -> Tally {
        self.counts.lock().unwrap().tally(n)
    }
}

/// `numbers` (ascending) as ranges, `a..=b` or `a`, at most 20 of them then `...`, for
/// failure messages.
#[must_use]
pub fn ranges(numbers: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = numbers.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        if out.len() == 20 {
            out.push("...".into());
            break;
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}..={end}")
        });
    }
    out.join(", ")
}
