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
use std::time::{Duration, Instant};

use e4k_bridge::BridgeHandle;
use e4k_bridge::config::{BridgeConfig, MqttVersion};
use e4k_bridge::engine::Readiness;
use e4k_tests::Mosquitto;
use e4k_tests::bridge::{ConnectorYaml, Running, loopback_options, metric, resolve};
use e4k_tests::faults;
use e4k_tests::scripted::{Behaviour, ConnScript, ConnectionStats, Script, ScriptedBroker};
use e4k_tests::sequence::{Publisher, ranges};
use rumqttc::v5::mqttbytes::QoS;
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
    let mut options = loopback_options(format!("127.0.0.1:{remote_port}"), local_port);
    options.keep_alive = KEEP_ALIVE;
    resolve(&yaml, &options)
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

mod collision;
mod load;
mod stalled;
