//! Fault injection for the MQTT bridge, run in-process against real mosquitto brokers: a
//! plain local broker and a TLS remote standing in for Event Grid (client certificates,
//! persistence). A publisher sends sequence numbers at QoS 1 and at least 1,000 msg/s for 10 s
//! into the local broker while a fault hits the path to the remote one; a subscriber with a
//! persistent session on the remote checks that every sequence number arrives and counts the
//! duplicates, which must stay within the bridge's in-flight window.
//!
//! - a silent network cut between the bridge and the remote (a [`TcpProxy`] that blackholes
//!   traffic), which only keep-alive can detect;
//! - the remote broker stopped for a few seconds and started again on the same port with the
//!   same persistence file;
//! - the local broker restarted with its persistence while the bridge holds a window of
//!   unacknowledged forwards and a backlog waits in its session (duplicates up to twice the
//!   window there: see the test);
//! - the bridge's certificate files replaced while it runs: the next reconnect uses them;
//! - two bridges routing the same topic both ways between the same brokers: no endless loop.
//!
//! `kill -9` of the bridge needs a separate process: it is in `cli/tests/bridge_faults.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e4k_bridge::RunOptions;
use e4k_bridge::config::{self, BridgeConfig, ConfigOptions, RawConfig};
use e4k_bridge::engine::Readiness;
use e4k_tests::Mosquitto;
use e4k_tests::bridge::{ConnectorYaml, Running, metric};
use e4k_tests::faults::{self, BRIDGE_SECRET, FaultPki};
use e4k_tests::proxy::{Mode, TcpProxy};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::oneshot;

/// The bridge's in-flight window (Receive Maximum announced to both brokers).
const WINDOW: u16 = 100;
/// The bridge's keep-alive; the engine does not go below 5 s.
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// How long the publisher runs.
const PUBLISH_FOR: Duration = Duration::from_secs(10);
/// Messages per 10 ms tick: 1,100 msg/s, so that the achieved rate stays ≥ 1,000 msg/s.
const PER_TICK: u64 = 11;
/// The topic of the sequence numbers.
const TOPIC: &str = "e2e/seq";
/// How long a test waits for the bridge or the subscriber.
const WAIT: Duration = Duration::from_secs(20);

const OUT_ROUTE: &str = "    - direction: local-to-remote
      name: out
      source: e2e/seq
";

/// The remote broker is persistent in this directory, which outlives the broker process.
struct Env {
    dir: tempfile::TempDir,
    pki: FaultPki,
    local: Mosquitto,
    remote: Mosquitto,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let pki = FaultPki::new(dir.path()).unwrap();
        std::fs::create_dir_all(dir.path().join("remote-store")).unwrap();
        let remote =
            Mosquitto::start(&pki.remote_listener(Some(&dir.path().join("remote-store")))).unwrap();
        let local = Mosquitto::start(&faults::local_listener(None)).unwrap();
        Env {
            dir,
            pki,
            local,
            remote,
        }
    }

    fn remote_store(&self) -> PathBuf {
        self.dir.path().join("remote-store")
    }

    /// The bridge's configuration with `routes`, the remote reached at `remote_port`.
    fn config(&self, prefix: &str, routes: &str, remote_port: u16) -> Vec<BridgeConfig> {
        let yaml = ConnectorYaml {
            remote_secret: Some(BRIDGE_SECRET),
            ..ConnectorYaml::new(prefix, routes)
        }
        .render();
        let raw = RawConfig::parse_str(&yaml).unwrap();
        let mut options = ConfigOptions::default();
        options.secrets_dir = self.pki.secrets();
        options.configmaps_dir = self.pki.configmaps();
        options.remote_endpoint = Some(format!("localhost:{remote_port}"));
        options.local_endpoint = Some(format!("127.0.0.1:{}", self.local.port()));
        options.remote_ca_file = Some(self.pki.root());
        options.keep_alive = KEEP_ALIVE;
        options.check_files = false;
        match config::resolve(&raw, &options) {
            Ok(resolved) => resolved.bridges,
            Err(report) => panic!("invalid test config:\n{report}"),
        }
    }

    /// The remote broker's TLS options for a test client.
    fn remote_options(&self, id: &str, port: u16) -> MqttOptions {
        let (cert, key) = self.pki.tester();
        let mut options = MqttOptions::new(id, "localhost", port);
        options.set_transport(Transport::Tls(TlsConfiguration::Simple {
            ca: std::fs::read(self.pki.root()).unwrap(),
            alpn: None,
            client_auth: Some((std::fs::read(cert).unwrap(), std::fs::read(key).unwrap())),
        }));
        options
    }
}

/// Starts a bridge in this process, its waits lasting [`WAIT`].
fn start(configs: &[BridgeConfig], options: RunOptions) -> Running {
    Running::start(configs, options).unwrap().with_wait(WAIT)
}

fn run_options() -> RunOptions {
    let mut options = e4k_tests::bridge::fast_run_options();
    options.receive_maximum = Some(WINDOW);
    options
}

/// Polls `client`'s event loop forever (reconnecting after errors), counting PUBACKs and
/// passing received publishes to `on_publish`; `connected` fires at the first SUBACK (or
/// CONNACK when `wait_suback` is off).
fn drive(
    mut eventloop: rumqttc::v5::EventLoop,
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

/// A subscriber on the remote broker, in a persistent session, counting each sequence number.
struct Subscriber {
    counts: Arc<Mutex<Vec<u32>>>,
    task: tokio::task::JoinHandle<()>,
    _client: AsyncClient,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscriber {
    async fn start(mut options: MqttOptions, filter: &str) -> Subscriber {
        options
            .set_clean_start(false)
            .set_session_expiry_interval(Some(600))
            .set_max_packet_size(Some(1024 * 1024));
        let (client, eventloop) = AsyncClient::new(options, 100);
        let counts: Arc<Mutex<Vec<u32>>> = Arc::default();
        let sink = Arc::clone(&counts);
        let (task, ready) = drive(eventloop, Arc::default(), true, move |_, payload| {
            let n: usize = std::str::from_utf8(payload).unwrap().parse().unwrap();
            let mut counts = sink.lock().unwrap();
            if counts.len() <= n {
                counts.resize(n + 1, 0);
            }
            counts[n] += 1;
        });
        client
            .subscribe_many([Filter::new(filter, QoS::AtLeastOnce)])
            .await
            .unwrap();
        tokio::time::timeout(WAIT, ready)
            .await
            .expect("subscriber got no SUBACK")
            .unwrap();
        Subscriber {
            counts,
            task,
            _client: client,
        }
    }

    /// Waits until each of `0..n` arrived; then returns (duplicates, missing, unexpected).
    async fn wait_all(&self, n: u64, timeout: Duration) -> Tally {
        let deadline = Instant::now() + timeout;
        loop {
            let tally = self.tally(n);
            if tally.missing.is_empty() || Instant::now() > deadline {
                return tally;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn tally(&self, n: u64) -> Tally {
        let n = usize::try_from(n).unwrap();
        let counts = self.counts.lock().unwrap();
        let mut tally = Tally::default();
        for i in 0..n.max(counts.len()) {
            let count = counts.get(i).copied().unwrap_or(0);
            if i >= n {
                tally.unexpected += u64::from(count);
            } else if count == 0 {
                tally.missing.push(i);
            } else {
                tally.received += u64::from(count);
                tally.duplicates += u64::from(count - 1);
            }
        }
        tally
    }
}

#[derive(Debug, Default)]
struct Tally {
    received: u64,
    duplicates: u64,
    missing: Vec<usize>,
    unexpected: u64,
}

impl Tally {
    /// The missing numbers as ranges, for a readable failure.
    fn missing_ranges(&self) -> String {
        let mut out = Vec::new();
        let mut iter = self.missing.iter().copied().peekable();
        while let Some(start) = iter.next() {
            let mut end = start;
            while iter.peek() == Some(&(end + 1)) {
                end += 1;
                iter.next();
            }
            out.push(if start == end {
                format!("{start}")
            } else {
                format!("{start}..={end}")
            });
            if out.len() > 20 {
                out.push("...".into());
                break;
            }
        }
        out.join(", ")
    }
}

/// What the publisher did.
#[derive(Debug)]
struct Published {
    sent: u64,
    rate: f64,
}

/// Publishes `0, 1, 2, ...` at QoS 1 to the local broker at `PER_TICK` per 10 ms for
/// `PUBLISH_FOR`, then waits until the broker acknowledged every one.
async fn publish_sequence(port: u16, id: &str) -> tokio::task::JoinHandle<Published> {
    publish_range(port, id, 0, PUBLISH_FOR).await
}

/// Publishes `first, first + 1, ...` at QoS 1 to the local broker at `PER_TICK` per 10 ms for
/// `duration`, then waits until the broker acknowledged every one; `sent` counts from 0, i.e.
/// it is the next number to publish.
async fn publish_range(
    port: u16,
    id: &str,
    first: u64,
    duration: Duration,
) -> tokio::task::JoinHandle<Published> {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_max_packet_size(Some(1024 * 1024));
    let (client, eventloop) = AsyncClient::new(options, 2_000);
    let acks: Arc<AtomicU64> = Arc::default();
    let (task, ready) = drive(eventloop, Arc::clone(&acks), false, |_, _| {});
    tokio::time::timeout(WAIT, ready)
        .await
        .expect("publisher did not connect")
        .unwrap();
    tokio::spawn(async move {
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut sent = first;
        while started.elapsed() < duration {
            tick.tick().await;
            for _ in 0..PER_TICK {
                client
                    .publish(TOPIC, QoS::AtLeastOnce, false, sent.to_string())
                    .await
                    .unwrap();
                sent += 1;
            }
        }
        let elapsed = started.elapsed();
        let deadline = Instant::now() + WAIT;
        while acks.load(Ordering::Relaxed) < sent - first {
            assert!(
                Instant::now() < deadline,
                "the local broker acknowledged {} of {}",
                acks.load(Ordering::Relaxed),
                sent - first
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
        #[allow(clippy::cast_precision_loss)]
        let rate = (sent - first) as f64 / elapsed.as_secs_f64();
        Published { sent, rate }
    })
}

/// Asserts that every message arrived, with at most `allowed` duplicates, and reports.
async fn check_delivery(
    test: &str,
    subscriber: &Subscriber,
    published: &Published,
    allowed: u64,
    extra: &str,
) {
    let tally = subscriber.wait_all(published.sent, WAIT).await;
    // Let late duplicates (re-sent after a reconnect) land before counting them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tally = Tally {
        missing: tally.missing,
        ..subscriber.tally(published.sent)
    };
    eprintln!(
        "{test}: published {} at {:.0} msg/s; received {} (duplicates {}, window {WINDOW}, \
         missing {}); {extra}",
        published.sent,
        published.rate,
        tally.received,
        tally.duplicates,
        tally.missing.len()
    );
    assert!(
        published.rate >= 1_000.0,
        "published at {:.0} msg/s only",
        published.rate
    );
    assert!(
        tally.missing.is_empty(),
        "{test}: {} of {} messages lost: {}",
        tally.missing.len(),
        published.sent,
        tally.missing_ranges()
    );
    assert_eq!(tally.unexpected, 0, "numbers never published arrived");
    assert!(
        tally.duplicates <= allowed,
        "{test}: {} duplicates, more than {allowed}",
        tally.duplicates
    );
}

fn remote_status(r: &Readiness) -> String {
    r.connections
        .iter()
        .filter(|c| c.broker == "remote")
        .map(|c| {
            format!(
                "{} connected={} last_error={:?}",
                c.client_id, c.connected, c.last_error
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_network_cut_is_detected_by_keep_alive_and_nothing_is_lost() {
    let env = Env::new();
    let proxy = TcpProxy::start(SocketAddr::from(([127, 0, 0, 1], env.remote.port()))).unwrap();
    let bridge = start(
        &env.config("e4k", OUT_ROUTE, proxy.addr().port()),
        run_options(),
    );
    bridge.ready().await;
    let subscriber =
        Subscriber::start(env.remote_options("cut-sub", env.remote.port()), TOPIC).await;
    let publisher = publish_sequence(env.local.port(), "cut-pub").await;

    // Mid-stream, the path to the remote goes silent: no FIN, no RST, bytes vanish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.set_mode(Mode::Blackhole);
    let cut = Instant::now();
    let detected = bridge
        .wait_for_within(2 * KEEP_ALIVE + Duration::from_secs(3), |r| {
            r.connections
                .iter()
                .any(|c| c.broker == "remote" && !c.connected)
        })
        .await
        .unwrap_or_else(|r| panic!("the cut was not detected:\n{r:#?}"));
    let detection = cut.elapsed();
    // The network heals; connections opened into the blackhole are closed.
    proxy.set_mode(Mode::Pass);
    proxy.cut();

    let published = publisher.await.unwrap();
    bridge.ready().await;
    check_delivery(
        "network cut",
        &subscriber,
        &published,
        u64::from(WINDOW),
        &format!(
            "cut detected after {:.1} s (keep-alive {} s): {}",
            detection.as_secs_f64(),
            KEEP_ALIVE.as_secs(),
            remote_status(&detected)
        ),
    )
    .await;
    assert!(detection <= 2 * KEEP_ALIVE + Duration::from_secs(1));
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_broker_down_then_back_with_its_persistence_loses_nothing() {
    // The 15 s: longer than the 10-s stream, so the end of it queues in the local broker.
    const OUTAGE: Duration = Duration::from_secs(15);
    let mut env = Env::new();
    let port = env.remote.port();
    let bridge = start(&env.config("e4k", OUT_ROUTE, port), run_options());
    bridge.ready().await;
    let subscriber = Subscriber::start(env.remote_options("down-sub", port), TOPIC).await;
    let publisher = publish_sequence(env.local.port(), "down-pub").await;

    tokio::time::sleep(Duration::from_secs(2)).await;
    faults::terminate(&mut env.remote).unwrap();
    let down = Instant::now();
    let me = std::process::id();
    let rss_start = faults::rss_kib(me).unwrap_or(0);
    let mut rss_max = rss_start;
    while down.elapsed() < OUTAGE {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rss_max = rss_max.max(faults::rss_kib(me).unwrap_or(0));
    }
    let listener = env.pki.remote_listener(Some(&env.remote_store()));
    env.remote = Mosquitto::start_on(port, &listener).unwrap();

    let published = publisher.await.unwrap();
    bridge.ready().await;
    // The remote may also redeliver to the subscriber what was in flight to it when it
    // stopped (mosquitto's max_inflight_messages, 20).
    check_delivery(
        "remote down",
        &subscriber,
        &published,
        u64::from(WINDOW) + 20,
        &format!(
            "outage {} s; test-process RSS {} KiB at the stop, at most {} KiB during the outage",
            OUTAGE.as_secs(),
            rss_start,
            rss_max
        ),
    )
    .await;
    // The messages queued meanwhile stay in the local broker, not in the bridge.
    assert!(
        rss_max.saturating_sub(rss_start) < 32 * 1024,
        "memory grew by {} KiB during the outage",
        rss_max - rss_start
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_broker_restart_with_persistence_loses_nothing() {
    // The local broker keeps its sessions on disk: the bridge's session, with what it has not
    // acknowledged yet, outlives the restart.
    let mut env = Env::new();
    let store = env.dir.path().join("local-store");
    std::fs::create_dir_all(&store).unwrap();
    let local_port = env.local.port();
    faults::terminate(&mut env.local).unwrap();
    env.local = Mosquitto::start_on(local_port, &faults::local_listener(Some(&store))).unwrap();
    // The remote is behind a proxy, so that the bridge can be made to hold messages it has
    // not forwarded yet when the local broker restarts.
    let proxy = TcpProxy::start(SocketAddr::from(([127, 0, 0, 1], env.remote.port()))).unwrap();
    let bridge = start(
        &env.config("e4k", OUT_ROUTE, proxy.addr().port()),
        run_options(),
    );
    bridge.ready().await;
    let subscriber =
        Subscriber::start(env.remote_options("restart-sub", env.remote.port()), TOPIC).await;

    // 6 s of stream, every message acknowledged by the local broker. From its 3rd second the
    // path to the remote is silent: the bridge's window fills with forwards the remote never
    // acknowledges (so the bridge acknowledges none of them to the local broker), and the
    // rest of the stream piles up in the bridge's session on the local broker.
    let half = Duration::from_secs(6);
    let first = publish_range(local_port, "restart-pub-1", 0, half).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.set_mode(Mode::Blackhole);
    let first = first.await.unwrap();
    let held = metric(&bridge.handle.metrics(), "e4k_bridge_messages_inflight");
    // The restart: the broker writes its sessions (with the unacknowledged and queued
    // messages) to disk and reads them back. Then the path to the remote heals.
    faults::terminate(&mut env.local).unwrap();
    env.local = Mosquitto::start_on(local_port, &faults::local_listener(Some(&store))).unwrap();
    proxy.set_mode(Mode::Pass);
    proxy.cut();
    bridge.ready().await;
    let second = publish_range(local_port, "restart-pub-2", first.sent, half)
        .await
        .await
        .unwrap();
    let published = Published {
        sent: second.sent,
        rate: first.rate.min(second.rate),
    };
    assert!(
        held > 0.0,
        "the bridge held nothing when the local broker restarted"
    );
    check_delivery(
        "local restart",
        &subscriber,
        &published,
        // Each forward the bridge held when its local session went away is published once
        // from the bridge's own resend list (it keeps them in case the broker lost the
        // session) and once more when the restarted broker delivers it again: up to twice
        // the window.
        2 * u64::from(WINDOW),
        &format!(
            "the local broker restarted with persistence after 6 s of stream, while the bridge \
             held {held} unacknowledged forwards (remote cut off for the last 3 s)"
        ),
    )
    .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bridges_routing_one_topic_both_ways_do_not_loop() {
    const ROUTES: &str = "    - direction: local-to-remote
      name: out
      source: e2e/loop/#
    - direction: remote-to-local
      name: in
      source: e2e/loop/#
";
    const N: u64 = 100;
    let env = Env::new();
    let port = env.remote.port();
    // One bridge both ways first: No Local alone keeps every message from coming back.
    let x = start(&env.config("x", ROUTES, port), run_options());
    x.ready().await;
    let remote = Subscriber::start(env.remote_options("loop-remote", port), "e2e/loop/#").await;
    let local_options = MqttOptions::new("loop-local", "127.0.0.1", env.local.port());
    let local = Subscriber::start(local_options, "e2e/loop/#").await;
    let mut options = MqttOptions::new("loop-pub", "127.0.0.1", env.local.port());
    options.set_max_packet_size(Some(1024 * 1024));
    let (client, eventloop) = AsyncClient::new(options, 1_000);
    let acks: Arc<AtomicU64> = Arc::default();
    let (_task, ready) = drive(eventloop, Arc::clone(&acks), false, |_, _| {});
    ready.await.unwrap();
    for i in 0..N {
        client
            .publish("e2e/loop/a", QoS::AtLeastOnce, false, i.to_string())
            .await
            .unwrap();
    }
    let quiet = |remote: &Subscriber, local: &Subscriber| {
        let r = remote.tally(N);
        let l = local.tally(N);
        (r.received, l.received)
    };
    // Wait until the counts stop changing for 1 s.
    let settle = async |remote: &Subscriber, local: &Subscriber| {
        let deadline = Instant::now() + WAIT;
        let mut last = quiet(remote, local);
        let mut since = Instant::now();
        while since.elapsed() < Duration::from_secs(1) {
            assert!(Instant::now() < deadline, "still growing: {last:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = quiet(remote, local);
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
        last
    };
    let one = settle(&remote, &local).await;
    assert_eq!(one, (N, N), "one bridge: each message once on each broker");

    // A second bridge over the same brokers and topics: each one receives what the other
    // published (No Local cannot help across sessions); the hop limit ends the loop.
    let y = start(&env.config("y", ROUTES, port), run_options());
    y.ready().await;
    for i in 0..N {
        client
            .publish("e2e/loop/a", QoS::AtLeastOnce, false, i.to_string())
            .await
            .unwrap();
    }
    let two = settle(&remote, &local).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = quiet(&remote, &local);
    let hop_limit = u64::from(e4k_bridge::engine::DEFAULT_HOP_LIMIT);
    let drops = metric(&x.handle.metrics(), "e4k_bridge_messages_dropped_total")
        + metric(&y.handle.metrics(), "e4k_bridge_messages_dropped_total");
    eprintln!(
        "loops: one bridge {one:?} (remote, local); two bridges {two:?} then {later:?} \
         after 2 s more; drops {drops} (hop limit {hop_limit})"
    );
    assert_eq!(two, later, "the counts keep growing: a loop");
    // Each bridge forwards what the other published, so every hop doubles back once per
    // bridge until the hop limit: per message, the remote sees hops 1, 3, .., 7 twice each
    // (8 copies) and the local broker the original plus hops 2, 4, .., 8 twice each (9);
    // both bridges drop the copies with 8 hops.
    assert_eq!(
        two,
        (N + N * hop_limit, N + N * (hop_limit + 1)),
        "copies beyond what the hop limit allows"
    );
    #[allow(clippy::cast_precision_loss)]
    let expected_drops = (2 * N) as f64;
    assert_eq!(drops, expected_drops, "hop-limit drops");
    x.stop().await;
    y.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_certificate_files_are_used_at_the_next_reconnect() {
    let env = Env::new();
    let proxy = TcpProxy::start(SocketAddr::from(([127, 0, 0, 1], env.remote.port()))).unwrap();
    let bridge = start(
        &env.config("e4k", OUT_ROUTE, proxy.addr().port()),
        run_options(),
    );
    bridge.ready().await;
    let subscriber =
        Subscriber::start(env.remote_options("rotate-sub", env.remote.port()), TOPIC).await;
    let publisher = publish_sequence(env.local.port(), "rotate-pub").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // cert-manager renews the secret: a new key and certificate, here with another name so
    // that the remote's log tells which one the bridge presented.
    env.pki.rotate_bridge_cert("mqttbridge-rotated").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !env.remote.log().contains("u'mqttbridge-rotated'"),
        "reconnected without a cause"
    );
    // The connection drops (a cut with RST/FIN this time): the next handshake uses the files.
    proxy.cut();
    let deadline = Instant::now() + WAIT;
    while !env.remote.log().contains("u'mqttbridge-rotated'") {
        assert!(
            Instant::now() < deadline,
            "the bridge did not reconnect with the new certificate:\n{}",
            env.remote.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let published = publisher.await.unwrap();
    bridge.ready().await;
    check_delivery(
        "certificate rotation",
        &subscriber,
        &published,
        u64::from(WINDOW),
        "reconnected with the new certificate",
    )
    .await;
    bridge.stop().await;
}
