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
use std::time::{Duration, Instant};

use e4k_bridge::RunOptions;
use e4k_bridge::config::BridgeConfig;
use e4k_bridge::engine::Readiness;
use e4k_tests::Mosquitto;
use e4k_tests::bridge::{ConnectorYaml, Running, loopback_options, metric, resolve};
use e4k_tests::client::tls_options;
use e4k_tests::faults::{self, BRIDGE_SECRET, FaultPki, Published};
use e4k_tests::proxy::{Mode, TcpProxy};
use e4k_tests::sequence::{Publisher, Subscriber, Tally};
use rumqttc::v5::MqttOptions;

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
        let mut options = loopback_options(format!("localhost:{remote_port}"), self.local.port());
        options.secrets_dir = self.pki.secrets();
        options.configmaps_dir = self.pki.configmaps();
        options.remote_ca_file = Some(self.pki.root());
        options.keep_alive = KEEP_ALIVE;
        resolve(&yaml, &options)
    }

    /// The remote broker's TLS options for a test client.
    fn remote_options(&self, id: &str, port: u16) -> MqttOptions {
        let (cert, key) = self.pki.tester();
        tls_options(
            id,
            port,
            std::fs::read(self.pki.root()).unwrap(),
            (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap()),
        )
    }
}

/// Starts a bridge in this process, its waits lasting [`WAIT`].
fn start(configs: &[BridgeConfig], options: RunOptions) -> Running {
    Running::start(configs, options).unwrap().with_wait(WAIT)
}

/// A ready bridge (prefix `e4k`, [`OUT_ROUTE`]) reaching `env`'s remote through a
/// [`TcpProxy`], and a subscriber `subscriber_id` to [`TOPIC`] on the remote.
async fn behind_proxy(env: &Env, subscriber_id: &str) -> (TcpProxy, Running, Subscriber) {
    let proxy = TcpProxy::start(SocketAddr::from(([127, 0, 0, 1], env.remote.port()))).unwrap();
    let bridge = start(
        &env.config("e4k", OUT_ROUTE, proxy.addr().port()),
        run_options(),
    );
    bridge.ready().await;
    let subscriber = Subscriber::start(
        env.remote_options(subscriber_id, env.remote.port()),
        TOPIC,
        WAIT,
    )
    .await;
    (proxy, bridge, subscriber)
}

fn run_options() -> RunOptions {
    let mut options = e4k_tests::bridge::fast_run_options();
    options.receive_maximum = Some(WINDOW);
    options
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
    Publisher::connect(port, id, 2_000, WAIT)
        .await
        .paced(TOPIC, first, PER_TICK, duration, WAIT)
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

mod certificates;
mod loops;
mod outages;
