//! Regression tests for the wedges of rumqttc 0.25.1 that the bridge engine works around
//! (see the module docs of `bridge/src/engine/conn.rs` and `bridge/src/engine/mqtt.rs`). They
//! run the bridge in-process between a real local mosquitto and a scripted
//! remote broker ([`e4k_tests::scripted::ScriptedBroker`]): mosquitto acknowledges in order
//! and on time, so it never provokes them.
//!
//! - **rumqtt#1056 / #1014, packet-id collision then connection loss.** rumqttc cycles packet
//!   identifiers `1..=Receive Maximum`. When the broker acknowledges out of order, the next
//!   publish can get an identifier that is still in flight: `MqttState::outgoing_publish`
//!   stashes it in `state.collision` and the event loop reads no new request until that
//!   identifier's PUBACK arrives. If the connection is lost meanwhile, nothing clears the
//!   stash (`MqttState::clean` does not): every later connection reads no request, the
//!   stashed publish is never sent, and `outgoing_ping` fails with `CollisionTimeout` every
//!   two keep-alives, forever, while the session looks connected. The engine clears the
//!   stash when a connection is lost (`eventloop.state.collision = None` in
//!   `EventLoop::on_lost`, called from `PollCtx::on_lost`) and publishes its unsettled
//!   forwards again. The test provokes the collision (Receive Maximum 4, the PUBACK of packet
//!   1 withheld, 2..=4 acknowledged), proves it happened (the bridge writes nothing more
//!   although three identifiers are free and it holds 17 more messages), cuts the connection
//!   and checks that the next connection carries everything within a few seconds, far sooner
//!   than the two keep-alives of rumqttc's own timeout.
//! - **rumqtt#1025, publishing from the polling task freezes the client under load.** The
//!   engine publishes from a task of its own with `try_publish` and never from the task that
//!   polls. The test pushes 20,000 QoS 1 messages through the bridge as fast as the local
//!   broker takes them while the remote, with half the bridge's window, acknowledges in
//!   bursts every 20 ms: the in-flight window fills and drains over and over and publishes
//!   queue in rumqttc's request channel. Everything must arrive, once, on one connection,
//!   with the bridge ready throughout.
//!
//! - **Any other wedge: a session that takes messages and acknowledges none.** Such a session
//!   still answers pings, so neither keep-alive nor the connection state shows it; the engine
//!   reports it on `/readyz` (`stalled_secs`, not ready) once nothing has been acknowledged
//!   for a keep-alive, and ready again when acknowledgements resume.
//!
//! The collision and load tests run over MQTT 5 and over MQTT 3.1.1 (`protocol: v3`); the
//! scripted broker speaks the version of each CONNECT. MQTT 3.1.1 sessions still use rumqttc
//! 0.25.1, which collides as described. MQTT 5 sessions use rumqttc-v5-next, which gives each
//! publish the next *free* identifier: the same script shows there that a withheld PUBACK
//! holds up only its own message, and that after the cut everything still arrives once
//! (the engine drops the client's own replay state and re-publishes, `EventLoop::on_lost`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use e4k_bridge::BridgeHandle;
use e4k_bridge::config::{self, BridgeConfig, ConfigOptions, MqttVersion, RawConfig};
use e4k_bridge::engine::Readiness;
use e4k_tests::Mosquitto;
use e4k_tests::bridge::{ConnectorYaml, Running, metric};
use e4k_tests::faults;
use e4k_tests::scripted::{Behaviour, ConnScript, ConnectionStats, Script, ScriptedBroker};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// The bridge's in-flight window (the Receive Maximum it announces; also its cap on what it
/// has in flight to a broker): the configuration's default.
const WINDOW: u16 = 100;
/// The bridge's keep-alive; the engine does not go below 5 s.
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// The topic of the sequence numbers (the route's source; forwarded unchanged).
const TOPIC: &str = "wedge/seq";
/// How long a test waits for something that takes no time when nothing is wedged.
const WAIT: Duration = Duration::from_secs(15);

/// The connector: a plain, anonymous remote (the scripted broker) and the local mosquitto,
/// one local-to-remote route, MQTT 5.
fn config(local_port: u16, remote_port: u16) -> Vec<BridgeConfig> {
    config_with(local_port, remote_port, MqttVersion::V5)
}

/// [`config`] with the connector's `protocol` for `version`.
fn config_with(local_port: u16, remote_port: u16, version: MqttVersion) -> Vec<BridgeConfig> {
    let routes = format!(
        "    - direction: local-to-remote
      name: out
      source: {TOPIC}
"
    );
    let yaml = ConnectorYaml {
        remote_secret: None,
        protocol: version,
        ..ConnectorYaml::new("wedge", &routes)
    }
    .render();
    let raw = RawConfig::parse_str(&yaml).unwrap();
    let mut options = ConfigOptions::default();
    options.remote_endpoint = Some(format!("127.0.0.1:{remote_port}"));
    options.local_endpoint = Some(format!("127.0.0.1:{local_port}"));
    options.keep_alive = KEEP_ALIVE;
    options.check_files = false;
    match config::resolve(&raw, &options) {
        Ok(resolved) => resolved.bridges,
        Err(report) => panic!("invalid test config:\n{report}"),
    }
}

/// Starts a bridge in this process with the in-flight window [`WINDOW`], its waits lasting
/// [`WAIT`].
fn start(configs: &[BridgeConfig]) -> Running {
    start_with(configs, WINDOW)
}

/// [`start`] with another in-flight window.
fn start_with(configs: &[BridgeConfig], window: u16) -> Running {
    let mut options = e4k_tests::bridge::fast_run_options();
    options.receive_maximum = Some(window);
    Running::start(configs, options).unwrap().with_wait(WAIT)
}

/// A QoS 1 publisher of sequence numbers on the local broker.
struct Publisher {
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
    async fn connect(port: u16, id: &str) -> Publisher {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_max_packet_size(Some(1024 * 1024));
        let (client, mut eventloop) = AsyncClient::new(options, 1_000);
        let acks: Arc<AtomicU64> = Arc::default();
        let counter = Arc::clone(&acks);
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(WAIT, ready_rx)
            .await
            .expect("publisher did not connect")
            .unwrap();
        Publisher { client, acks, task }
    }

    /// Publishes each number of `range` (its decimal text) at QoS 1, as fast as the client
    /// takes them.
    async fn publish(&self, range: Range<u64>) {
        for seq in range {
            self.client
                .publish(TOPIC, QoS::AtLeastOnce, false, seq.to_string())
                .await
                .unwrap();
        }
    }

    /// Waits until the local broker acknowledged `n` publishes.
    async fn wait_acked(&self, n: u64) {
        let deadline = Instant::now() + WAIT;
        while self.acks.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "the local broker acknowledged {} of {n}",
                self.acks.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The sequence numbers the scripted broker received, per connection.
#[derive(Debug, Default)]
struct Arrivals {
    /// `counts[connection][seq]`: how often `seq` arrived on that connection.
    counts: BTreeMap<usize, BTreeMap<u64, u32>>,
    /// `(packet id, seq)` of each arrival, per connection, in arrival order.
    order: BTreeMap<usize, Vec<(u16, u64)>>,
    /// Publishes that were not a sequence number on [`TOPIC`].
    unexpected: Vec<String>,
}

impl Arrivals {
    /// Takes in what the broker received since the last call.
    fn drain(&mut self, broker: &mut ScriptedBroker) {
        while let Ok(received) = broker.received().try_recv() {
            let seq = std::str::from_utf8(&received.payload)
                .ok()
                .and_then(|text| text.parse::<u64>().ok());
            match seq {
                Some(seq) if received.topic == TOPIC && received.qos == QoS::AtLeastOnce => {
                    *self
                        .counts
                        .entry(received.connection)
                        .or_default()
                        .entry(seq)
                        .or_default() += 1;
                    self.order
                        .entry(received.connection)
                        .or_default()
                        .push((received.pkid, seq));
                }
                _ => self.unexpected.push(format!("{received:?}")),
            }
        }
    }

    /// How often `seq` arrived over all connections.
    fn total(&self, seq: u64) -> u32 {
        self.counts
            .values()
            .filter_map(|counts| counts.get(&seq))
            .sum()
    }

    /// The numbers of `0..n` that never arrived.
    fn missing(&self, n: u64) -> Vec<u64> {
        (0..n).filter(|&seq| self.total(seq) == 0).collect()
    }

    /// The numbers that arrived on `connection` with one of the packet ids `pkids`.
    fn seqs_with(&self, connection: usize, pkids: &[u16]) -> Vec<u64> {
        self.order
            .get(&connection)
            .into_iter()
            .flatten()
            .filter(|(pkid, _)| pkids.contains(pkid))
            .map(|&(_, seq)| seq)
            .collect()
    }

    /// The numbers of `0..n`, except `settled`, that never arrived on a connection after
    /// `connection`.
    fn missing_after(&self, connection: usize, n: u64, settled: &[u64]) -> Vec<u64> {
        (0..n)
            .filter(|seq| !settled.contains(seq))
            .filter(|seq| {
                self.counts
                    .range(connection + 1..)
                    .all(|(_, counts)| !counts.contains_key(seq))
            })
            .collect()
    }

    /// Arrivals beyond the first of each number.
    fn duplicates(&self) -> u64 {
        let mut all: BTreeMap<u64, u32> = BTreeMap::new();
        for counts in self.counts.values() {
            for (&seq, &count) in counts {
                *all.entry(seq).or_default() += count;
            }
        }
        all.values().map(|&count| u64::from(count - 1)).sum()
    }

    /// Numbers at or beyond `n` (never published).
    fn beyond(&self, n: u64) -> usize {
        self.counts
            .values()
            .flat_map(BTreeMap::keys)
            .filter(|&&seq| seq >= n)
            .count()
    }

    /// Drains `broker` until `done` holds or `deadline` passed; returns whether it holds.
    async fn wait(
        &mut self,
        broker: &mut ScriptedBroker,
        deadline: Instant,
        done: impl Fn(&Self) -> bool,
    ) -> bool {
        loop {
            self.drain(broker);
            if done(self) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The numbers as ranges, for a readable failure.
fn ranges(numbers: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = numbers.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}..={end}")
        });
    }
    out.join(", ")
}

/// One line per scripted connection, for failure messages.
fn describe(connections: &[ConnectionStats]) -> String {
    connections
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "  #{i} {:?}: client {:?}, {} publishes (first ids {:?}), {} acked, withheld \
                 {:?}, {} PINGREQ, open {}, ended {:?}",
                c.script.behaviour,
                c.client_id,
                c.publishes.len(),
                &c.publishes[..c.publishes.len().min(8)],
                c.acked.len(),
                c.withheld,
                c.pings,
                c.open,
                c.ended
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collision_then_connection_loss_does_not_wedge_the_remote_session() {
    collision_then_connection_loss(MqttVersion::V5).await;
}

/// The same wedge in rumqttc's MQTT 3.1.1 client (`protocol: v3`), which has the same
/// stash (`state.collision`) and the same workaround. MQTT 3.1.1 has no Receive Maximum: the
/// client's own in-flight limit (the bridge's window, here 4) makes it cycle 1..=4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collision_then_connection_loss_does_not_wedge_an_mqtt_3_1_1_session() {
    collision_then_connection_loss(MqttVersion::V3).await;
}

async fn collision_then_connection_loss(version: MqttVersion) {
    /// The remote's Receive Maximum (MQTT 5) or the bridge's window (MQTT 3.1.1): rumqttc
    /// cycles packet identifiers 1..=4.
    const RECEIVE_MAXIMUM: u16 = 4;
    /// Published before the cut, while the first connection is collided.
    const BEFORE: u64 = 20;
    /// Published right after the cut.
    const AFTER: u64 = 20;
    const N: u64 = BEFORE + AFTER;
    /// How long the collided connection must stay silent to count as collided (a bridge
    /// that is not collided writes the next message within milliseconds).
    const QUIET: Duration = Duration::from_secs(1);
    /// How long the bridge may take, after the cut, to deliver everything on the next
    /// connection: a reconnect (backoff ≤ 400 ms) and 40 small messages. rumqttc's own way
    /// out of a collision, `CollisionTimeout`, comes after two keep-alives (10 s) and does not
    /// help after a connection loss: the next connection is wedged again.
    const RECOVERY: Duration = Duration::from_secs(4);
    const _: () = assert!(RECOVERY.as_secs() < 2 * KEEP_ALIVE.as_secs());

    let local = Mosquitto::start(&faults::local_listener(None)).unwrap();
    let mut remote = ScriptedBroker::start(Script {
        receive_maximum: RECEIVE_MAXIMUM,
        connections: vec![ConnScript {
            session_present: false,
            behaviour: Behaviour::WithholdFirst,
        }],
        then: ConnScript::behave(true),
    })
    .await
    .unwrap();
    // MQTT 5 takes the limit from the remote's CONNACK; MQTT 3.1.1 from the bridge's window.
    let window = match version {
        MqttVersion::V5 => WINDOW,
        MqttVersion::V3 => RECEIVE_MAXIMUM,
    };
    let bridge = start_with(&config_with(local.port(), remote.port(), version), window);
    bridge.ready().await;
    let publisher = Publisher::connect(local.port(), "wedge-pub").await;
    publisher.publish(0..BEFORE).await;
    publisher.wait_acked(BEFORE).await;

    // rumqttc 0.25 (MQTT 3.1.1) cycles identifiers 1..=4 and collides; rumqttc-v5-next
    // (MQTT 5) takes the next free identifier, so the withheld one only holds its own message.
    let collides = version == MqttVersion::V3;
    let (first, expected_held) = if collides {
        // The first connection: packets 1..=4 written, 2..=4 acknowledged, 1 withheld.
        remote
            .wait_for(WAIT, |c| {
                c.first()
                    .is_some_and(|c| c.publishes.len() >= 4 && c.acked.len() >= 3)
            })
            .await
            .unwrap_or_else(|c| panic!("the window never filled:\n{}", describe(&c)));
        // The collision: rumqttc gave the fifth message packet id 1 again, found it in
        // flight, stashed the message and stopped reading requests. Three identifiers are
        // free and the bridge holds 17 more messages, yet nothing more is written.
        tokio::time::sleep(QUIET).await;
        let first = remote.connections().swap_remove(0);
        assert_eq!(
            first.publishes,
            [1, 2, 3, 4],
            "not the collision: with packet 1 withheld and 2..=4 acknowledged, the bridge \
             should have written nothing after the window filled"
        );
        assert_eq!(first.acked, [2, 3, 4]);
        (first, BEFORE - 3)
    } else {
        // Every message is written: the first on packet 1 (withheld), the others on 2..=4,
        // reused as their PUBACKs come; packet 1 is never reused while in flight.
        #[allow(clippy::cast_possible_truncation)]
        let all = BEFORE as usize;
        remote
            .wait_for(WAIT, |c| {
                c.first()
                    .is_some_and(|c| c.publishes.len() >= all && c.acked.len() >= all - 1)
            })
            .await
            .unwrap_or_else(|c| panic!("a withheld PUBACK held up the others:\n{}", describe(&c)));
        tokio::time::sleep(QUIET).await;
        let first = remote.connections().swap_remove(0);
        assert_eq!(first.publishes.len(), all, "{first:?}");
        assert_eq!(first.publishes.iter().filter(|&&id| id == 1).count(), 1);
        assert!(first.publishes.iter().all(|id| (1..=4).contains(id)));
        (first, 1)
    };
    let mut arrivals = Arrivals::default();
    arrivals.drain(&mut remote);
    assert!(first.open, "the first connection ended: {:?}", first.ended);
    assert_eq!(first.withheld, Some(1));
    assert_eq!(arrivals.seqs_with(0, &[1]), [0]);
    assert_eq!(first.version, Some(version));
    let held = metric(&bridge.handle.metrics(), "e4k_bridge_messages_inflight");
    // Over MQTT 3.1.1 too: the bridge reads on up to twice its window plus 64 (the local
    // broker has no Receive Maximum to honour there).
    #[allow(clippy::cast_precision_loss)]
    let expected_held = expected_held as f64;
    assert_eq!(
        held, expected_held,
        "the bridge should hold every message the remote has not acknowledged"
    );
    // Connected, so ready: readiness cannot see a collision.
    assert!(bridge.handle.readiness().ready);

    // The remote connection breaks while collided: no DISCONNECT, the socket closes.
    assert!(remote.disconnect(0));
    let cut = Instant::now();
    publisher.publish(BEFORE..N).await;

    // Everything the first connection did not acknowledge must arrive on a later one.
    let settled = arrivals.seqs_with(0, &first.acked);
    let resumed = arrivals
        .wait(&mut remote, cut + RECOVERY, |a| {
            a.missing_after(0, N, &settled).is_empty()
        })
        .await;
    let recovered = cut.elapsed();
    if !resumed {
        let missing = arrivals.missing_after(0, N, &settled);
        panic!(
            "wedged: {} of {N} messages not delivered {:.1} s after the cut: {} (is rumqttc's \
             stashed collision still cleared when a connection is lost?)\nscripted \
             connections:\n{}\nbridge: {:#?}",
            missing.len(),
            recovered.as_secs_f64(),
            ranges(&missing),
            describe(&remote.connections()),
            bridge.handle.readiness(),
        );
    }
    bridge
        .wait_for_within(RECOVERY, |r| r.ready)
        .await
        .unwrap_or_else(|r| panic!("the bridge is not ready again:\n{r:#?}"));
    publisher.wait_acked(N).await;

    // Let late duplicates land, then count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    arrivals.drain(&mut remote);
    let connections = remote.connections();
    assert_eq!(
        connections.len(),
        2,
        "the second connection should have carried everything:\n{}",
        describe(&connections)
    );
    assert!(
        arrivals.unexpected.is_empty(),
        "unexpected publishes: {:?}",
        arrivals.unexpected
    );
    assert!(arrivals.missing(N).is_empty());
    assert_eq!(arrivals.beyond(N), 0, "numbers never published arrived");
    let duplicates = arrivals.duplicates();
    assert!(
        duplicates <= u64::from(RECEIVE_MAXIMUM),
        "{duplicates} duplicates, more than the remote's window of {RECEIVE_MAXIMUM}"
    );
    let retried = metric(
        &bridge.handle.metrics(),
        "e4k_bridge_messages_retried_total",
    );
    if collides {
        // Only the withheld message had been written and not acknowledged: the ones rumqttc
        // held back (the collided one, the queued ones) were published for the first time.
        assert!(
            (retried - 1.0).abs() < f64::EPSILON,
            "{retried} forwards counted as retried; only the withheld one was"
        );
    } else {
        // The withheld one, and what was written to the closing socket before the loss was
        // seen: at most a window.
        assert!(
            (1.0..=f64::from(RECEIVE_MAXIMUM)).contains(&retried),
            "{retried} forwards counted as retried; expected the withheld one and at most \
             a window written as the connection closed"
        );
    }
    eprintln!(
        "collision then cut: the first connection wrote packet ids {:?}, withheld {:?}, then \
         nothing for {} ms with {held} messages held; after the cut all {N} arrived within {} \
         ms, on connection #1 ({duplicates} duplicates, {retried} forwards re-published)",
        first.publishes,
        first.withheld,
        QUIET.as_millis(),
        recovered.as_millis(),
    );
    bridge.stop().await;
}

/// What [`sample`] saw while the load ran.
#[derive(Debug, Default)]
struct Samples {
    /// Samples in which the bridge was not ready.
    not_ready: u64,
    /// The first of them.
    first_not_ready: Option<Readiness>,
    /// The most forwards the bridge held unsettled (`e4k_bridge_messages_inflight`).
    max_unsettled: f64,
}

/// Samples the bridge's readiness and unsettled forwards every 10 ms until `stop` is cancelled.
fn sample(handle: BridgeHandle, stop: CancellationToken) -> tokio::task::JoinHandle<Samples> {
    tokio::spawn(async move {
        let mut samples = Samples::default();
        while !stop.is_cancelled() {
            let unsettled = metric(&handle.metrics(), "e4k_bridge_messages_inflight");
            samples.max_unsettled = samples.max_unsettled.max(unsettled);
            let readiness = handle.readiness();
            if !readiness.ready {
                samples.not_ready += 1;
                samples.first_not_ready.get_or_insert(readiness);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        samples
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursty_acknowledgements_under_load_do_not_freeze_the_bridge() {
    bursty_acknowledgements_under_load(MqttVersion::V5).await;
}

/// The same load over MQTT 3.1.1 (`protocol: v3`): rumqttc's 3.1.1 client has the same event
/// loop and request channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursty_acknowledgements_under_load_do_not_freeze_an_mqtt_3_1_1_bridge() {
    bursty_acknowledgements_under_load(MqttVersion::V3).await;
}

async fn bursty_acknowledgements_under_load(version: MqttVersion) {
    const N: u64 = 20_000;
    /// The remote's Receive Maximum, half the bridge's window: the bridge takes messages in
    /// faster than it may publish them, so its publishes queue in rumqttc's request channel.
    /// (MQTT 3.1.1 has none: there the bridge's window is what rumqttc may have in flight.)
    const RECEIVE_MAXIMUM: u16 = WINDOW / 2;
    let inflight = match version {
        MqttVersion::V5 => RECEIVE_MAXIMUM,
        MqttVersion::V3 => WINDOW,
    };
    /// The remote holds its acknowledgements this long, then sends them all: the in-flight
    /// window fills and then drains at once, 2,500 messages per second at most.
    const BURST: Duration = Duration::from_millis(20);
    /// The bound for "not frozen": about 8 s of bursts are needed, the rest is slack.
    const DELIVERY: Duration = Duration::from_secs(60);

    let local = Mosquitto::start(&faults::local_listener(None)).unwrap();
    let mut remote = ScriptedBroker::start(Script {
        receive_maximum: RECEIVE_MAXIMUM,
        connections: Vec::new(),
        then: ConnScript {
            session_present: false,
            behaviour: Behaviour::AckInBursts(BURST),
        },
    })
    .await
    .unwrap();
    let bridge = start(&config_with(local.port(), remote.port(), version));
    bridge.ready().await;
    let stop_sampling = CancellationToken::new();
    let sampler = sample(bridge.handle.clone(), stop_sampling.clone());

    let started = Instant::now();
    let publisher = Publisher::connect(local.port(), "load-pub").await;
    publisher.publish(0..N).await;
    let published = started.elapsed();
    let mut arrivals = Arrivals::default();
    let all = arrivals
        .wait(&mut remote, started + DELIVERY, |a| a.missing(N).is_empty())
        .await;
    let delivered = started.elapsed();
    if !all {
        panic!(
            "frozen: {} of {N} messages missing after {:.1} s: {}\nscripted connections:\n{}\n\
             bridge: {:#?}",
            arrivals.missing(N).len(),
            delivered.as_secs_f64(),
            ranges(&arrivals.missing(N)),
            describe(&remote.connections()),
            bridge.handle.readiness(),
        );
    }
    publisher.wait_acked(N).await;
    // Let late duplicates land, then count.
    tokio::time::sleep(Duration::from_millis(200)).await;
    arrivals.drain(&mut remote);
    stop_sampling.cancel();
    let samples = sampler.await.unwrap();

    let connections = remote.connections();
    assert_eq!(
        connections.len(),
        1,
        "the bridge reconnected under load:\n{}",
        describe(&connections)
    );
    assert!(
        samples.first_not_ready.is_none(),
        "the bridge was not ready in {} samples; the first: {:#?}",
        samples.not_ready,
        samples.first_not_ready
    );
    assert!(
        arrivals.unexpected.is_empty(),
        "unexpected publishes: {:?}",
        &arrivals.unexpected[..arrivals.unexpected.len().min(5)]
    );
    assert_eq!(arrivals.beyond(N), 0, "numbers never published arrived");
    assert_eq!(arrivals.duplicates(), 0, "duplicates without a reconnect");
    assert_eq!(
        connections[0].acked.len(),
        usize::try_from(N).unwrap(),
        "the remote did not acknowledge every message"
    );
    assert_eq!(connections[0].version, Some(version));
    // The condition under test: more forwards pending than rumqttc may have in flight, i.e.
    // publishes waiting in its request channel.
    assert!(
        samples.max_unsettled > f64::from(inflight),
        "the load never queued publishes behind the in-flight window: at most {} unsettled",
        samples.max_unsettled
    );
    // Beyond the in-flight window, the channel (capacity = the bridge's window) and the one
    // forward the publisher holds, forwards wait in the engine's queue: the channel was full.
    let channel_full = samples.max_unsettled > f64::from(inflight) + f64::from(WINDOW) + 1.0;
    eprintln!(
        "load ({version:?}): {N} messages published in {} ms, all delivered after {} ms \
         through a remote acknowledging every {} ms (in flight at most {inflight}, bridge \
         window {WINDOW}); at most {} forwards unsettled (rumqttc's request channel full: \
         {channel_full}); one connection, ready throughout",
        published.as_millis(),
        delivered.as_millis(),
        BURST.as_millis(),
        samples.max_unsettled
    );
    bridge.stop().await;
}

/// A remote that takes the bridge's messages and acknowledges none (answering pings): the
/// session is reported stalled and not ready after a keep-alive, then ready again once a new
/// connection acknowledges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_acknowledges_nothing_is_reported_stalled() {
    let local = Mosquitto::start("allow_anonymous true\n").unwrap();
    let mut remote = ScriptedBroker::start(Script {
        receive_maximum: 10,
        connections: vec![ConnScript {
            session_present: false,
            behaviour: Behaviour::Silent,
        }],
        then: ConnScript::behave(false),
    })
    .await
    .unwrap();
    let bridge = start(&config(local.port(), remote.port()));
    bridge.ready().await;
    let publisher = Publisher::connect(local.port(), "stall-publisher").await;
    publisher.publish(0..5).await;
    publisher.wait_acked(5).await;
    let stalled = bridge
        .wait_for_within(WAIT, |r| {
            r.connections
                .iter()
                .any(|c| c.broker == "remote" && c.stalled_secs.is_some())
        })
        .await
        .unwrap_or_else(|r| panic!("never reported stalled:\n{r:#?}"));
    assert!(!stalled.ready, "{stalled:#?}");
    let remote_status = stalled
        .connections
        .iter()
        .find(|c| c.broker == "remote")
        .unwrap();
    assert!(remote_status.connected, "{remote_status:#?}");
    assert!(
        remote_status.stalled_secs.unwrap() >= KEEP_ALIVE.as_secs(),
        "{remote_status:#?}"
    );
    // A new connection that acknowledges: everything arrives, ready again.
    assert!(remote.disconnect(0));
    bridge.ready().await;
    let mut arrivals = Arrivals::default();
    let deadline = Instant::now() + WAIT;
    while !arrivals.missing(5).is_empty() {
        assert!(Instant::now() < deadline, "{arrivals:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        arrivals.drain(&mut remote);
    }
    bridge.stop().await;
}
