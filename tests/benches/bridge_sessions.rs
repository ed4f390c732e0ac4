//! Sharding benchmark (not a test): how e4k's throughput toward Event Grid grows with the number
//! of sessions, against the emulator's data plane, which holds every session to Event Grid's
//! inbound quota (1,000 PUBLISH/s and 1 MB/s per session; see emulator/README.md).
//!
//! The seed is set up through the emulator's ARM API with `e4k up`'s library call (certificates,
//! namespace, clients, topic spaces, bindings); a local mosquitto takes QoS 1 telemetry of 256 B
//! and then of 4 KiB (where the 1 MB/s byte quota binds first) as fast as a publisher can send
//! it; a subscriber on the emulator (the seed's `mosquitto` client) counts arrivals. Measured,
//! for each payload:
//!
//! - one session publishing straight into the emulator (the quota itself);
//! - mosquitto's own bridge (a `connection` block, MQTT 5, mTLS): one session;
//! - e4k with `bridgeInstances` 1, 2 and 3 (one remote session each; the route is subscribed
//!   as a shared subscription on the local broker, so each message is forwarded once; the
//!   seed allows 3 sessions per authentication name);
//! - e4k with one instance and the route as a shared subscription of 3 members, each with a
//!   remote session of its own (`e4k.dev/shared-subscription-sessions: both`).
//!
//! ```text
//! cargo bench -p e4k-tests --bench bridge_sessions
//! E4K_BENCH_MESSAGES=6000 E4K_BENCH_MESSAGES_4K=1500 cargo bench -p e4k-tests --bench bridge_sessions
//! ```
//!
//! Prints a Markdown table per payload.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use e4k_bridge::config::{ConfigOptions, RawConfig, resolve};
use e4k_bridge::engine::RunOptions;
use e4k_emulator::{Emulator, EmulatorConfig, MqttConfig, PublishLimit};
use e4k_tests::bench::MosquittoBridge;
use e4k_tests::bridge::{ConnectorYaml, Running};
use e4k_tests::{Mosquitto, env_usize};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::{Outgoing, TlsConfiguration, Transport};

const TOPIC: &str = "factory/telemetry/bench";

/// The emulator's MQTT port and the files to reach it.
struct Cloud {
    port: u16,
    ca: PathBuf,
    certs: PathBuf,
}

impl Cloud {
    /// A v5 client with the certificate `name` from `e4k up`'s certs directory; its event loop
    /// runs in a task that counts arriving messages in `received`.
    async fn client(&self, id: &str, name: &str, received: Arc<AtomicUsize>) -> AsyncClient {
        let mut options = MqttOptions::new(id, "localhost", self.port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_transport(Transport::Tls(TlsConfiguration::Simple {
            ca: std::fs::read(&self.ca).unwrap(),
            alpn: None,
            client_auth: Some((
                std::fs::read(self.certs.join(format!("{name}.pem"))).unwrap(),
                std::fs::read(self.certs.join(format!("{name}.key"))).unwrap(),
            )),
        }));
        start(options, received).await
    }
}

/// Starts a client whose event loop counts incoming PUBLISH packets; returns once connected.
async fn start(options: MqttOptions, received: Arc<AtomicUsize>) -> AsyncClient {
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut connected_tx = Some(connected_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(tx) = connected_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    received.fetch_add(1, Ordering::Relaxed);
                }
                // Disconnected on purpose: do not reconnect (the session would still count
                // against the authentication name's quota).
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                Ok(_) => {}
                // Reconnects (a lost subscriber shows as missing messages, which `measure`
                // reports).
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), connected_rx)
        .await
        .expect("no CONNACK")
        .unwrap();
    client
}

/// Publishes `n` QoS 1 messages of `size` bytes through `publisher` and waits until
/// `received` grew by `n`; messages per second from the first publish to the last arrival.
async fn measure(publisher: &AsyncClient, received: &AtomicUsize, n: usize, size: usize) -> f64 {
    let before = received.load(Ordering::Relaxed);
    let payload = Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    for _ in 0..n {
        publisher
            .publish_bytes(TOPIC, QoS::AtLeastOnce, false, payload.clone())
            .await
            .unwrap();
    }
    let deadline = started + Duration::from_secs(120);
    eprintln!("published {n} messages of {size} B");
    while received.load(Ordering::Relaxed) < before + n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} arrived",
            received.load(Ordering::Relaxed) - before
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// A local broker whose own bridge forwards the telemetry to the emulator over mTLS, with
/// the bridge's certificate (`mqttbridge`), MQTT 5.
fn mosquitto_bridge(cloud: &Cloud) -> String {
    MosquittoBridge {
        broker: "max_queued_messages 0",
        remote: format!("localhost:{}", cloud.port),
        topic: "factory/telemetry/#",
        ca: &cloud.ca,
        cert: &cloud.certs.join("mqttbridge.pem"),
        key: &cloud.certs.join("mqttbridge.key"),
        tls_version: None,
    }
    .config()
}

/// How e4k spreads the route over remote sessions.
#[derive(Clone, Copy)]
enum Sharding {
    /// `bridgeInstances` instances, one remote session each.
    Instances(u32),
    /// One instance; a shared subscription of this many members, each with a remote session
    /// of its own (`e4k.dev/shared-subscription-sessions: both`).
    Members(u32),
}

fn bridge_yaml(sharding: Sharding) -> String {
    const ROUTE: &str = "    - direction: local-to-remote
      name: telemetry
      source: factory/telemetry/#
";
    match sharding {
        Sharding::Instances(n) => ConnectorYaml {
            prefix: &format!("bench{n}"),
            instances: n,
            ..ConnectorYaml::new("bench", ROUTE)
        }
        .render(),
        Sharding::Members(n) => ConnectorYaml {
            prefix: &format!("bench-share{n}"),
            annotations: &[("e4k.dev/shared-subscription-sessions", "both")],
            routes: &format!(
                "{ROUTE}      sharedSubscription:\n        groupName: bench\n        \
                 groupMinimumShareNumber: {n}\n"
            ),
            ..ConnectorYaml::new("bench", ROUTE)
        }
        .render(),
    }
}

/// One row of the table: the path, its sessions to the emulator, msg/s.
type Row = (String, u32, f64);

/// Measures every path with `n` messages of `size` bytes.
async fn rows(cloud: &Cloud, dir: &Path, secrets: &Path, n: usize, size: usize) -> Vec<Row> {
    let received = Arc::new(AtomicUsize::new(0));
    let subscriber = cloud
        .client(
            &format!("bench-sub-{size}"),
            "mosquitto",
            Arc::clone(&received),
        )
        .await;
    subscriber
        .subscribe("factory/telemetry/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut rows = Vec::new();
    let direct = cloud
        .client("bench-direct", "mqttbridge", Arc::new(AtomicUsize::new(0)))
        .await;
    rows.push((
        "one session straight into the emulator".to_owned(),
        1,
        measure(&direct, &received, n, size).await,
    ));
    direct.disconnect().await.unwrap();

    // mosquitto's own bridge: one `connection` block is one session to the remote.
    {
        let bridged = Mosquitto::start(&mosquitto_bridge(cloud)).unwrap();
        let mut publisher = MqttOptions::new("bench-pub-m", "127.0.0.1", bridged.port());
        publisher.set_keep_alive(Duration::from_secs(30));
        let publisher = start(publisher, Arc::new(AtomicUsize::new(0))).await;
        // Wait for the bridge's session: a first message must arrive.
        let before = received.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(20);
        while received.load(Ordering::Relaxed) == before {
            assert!(
                Instant::now() < deadline,
                "mosquitto's bridge did not connect"
            );
            publisher
                .publish(TOPIC, QoS::AtLeastOnce, false, b"warm-up".to_vec())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        rows.push((
            "local → mosquitto's bridge (`connection` block)".to_owned(),
            1,
            measure(&publisher, &received, n, size).await,
        ));
        // Stopping the broker ends its bridge session (the quota allows 3).
        publisher.disconnect().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(bridged);
    }

    let local = Mosquitto::start("allow_anonymous true\nmax_queued_messages 0\n").unwrap();
    let mut publisher = MqttOptions::new("bench-pub", "127.0.0.1", local.port());
    publisher.set_keep_alive(Duration::from_secs(30));
    let publisher = start(publisher, Arc::new(AtomicUsize::new(0))).await;
    let shardings = [
        Sharding::Instances(1),
        Sharding::Instances(2),
        Sharding::Instances(3),
        Sharding::Members(3),
    ];
    for (k, sharding) in shardings.into_iter().enumerate() {
        let yaml = dir.join(format!("bridge-{size}-{k}.yaml"));
        std::fs::write(&yaml, bridge_yaml(sharding)).unwrap();
        let mut options = ConfigOptions::default();
        options.secrets_dir = secrets.to_owned();
        options.remote_endpoint = Some(format!("localhost:{}", cloud.port));
        options.local_endpoint = Some(format!("127.0.0.1:{}", local.port()));
        options.remote_ca_file = Some(cloud.ca.clone());
        let resolved = resolve(&RawConfig::load(&yaml).unwrap(), &options).unwrap();
        let bridge = Running::start(&resolved.bridges, RunOptions::default()).unwrap();
        bridge.ready().await;
        let rate = measure(&publisher, &received, n, size).await;
        let (name, sessions) = match sharding {
            Sharding::Instances(n) => (format!("local → e4k, bridgeInstances: {n}"), n),
            Sharding::Members(n) => (
                format!(
                    "local → e4k, 1 instance, a shared subscription of {n} members with \
                     remote sessions of their own"
                ),
                n,
            ),
        };
        rows.push((name, sessions, rate));
        bridge.stop().await;
    }
    publisher.disconnect().await.unwrap();
    subscriber.disconnect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    rows
}

fn main() {
    let n = env_usize("E4K_BENCH_MESSAGES", 6_000);
    let n_4k = env_usize("E4K_BENCH_MESSAGES_4K", 1_500);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let limit = PublishLimit::EVENT_GRID;
    let tables = runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let emulator = Emulator::start(EmulatorConfig {
            lro_delay: Duration::from_millis(5),
            lro_retry_after_secs: 0,
            mqtt_hostname: "localhost".into(),
            mqtt: Some(MqttConfig {
                session_publish_limit: Some(limit),
                ..MqttConfig::default()
            }),
            ..EmulatorConfig::default()
        })
        .await
        .expect("the emulator starts (is mosquitto installed?)");
        let seeded = e4k_tests::seed::up(dir.path(), &emulator.base_url())
            .await
            .unwrap();
        assert!(
            emulator.mqtt_synced(Duration::from_secs(10)).await,
            "the emulator's broker did not pick up the namespace"
        );
        let (certs, secrets) = (seeded.certs, seeded.secrets);
        let cloud = Cloud {
            port: emulator.mqtt_addr().unwrap().port(),
            ca: emulator.mqtt_ca_pem_path().unwrap().to_owned(),
            certs,
        };
        let mut tables = Vec::new();
        for (n, size) in [(n, 256), (n_4k, 4096)] {
            tables.push((n, size, rows(&cloud, dir.path(), &secrets, n, size).await));
        }
        emulator.shutdown().await.unwrap();
        tables
    });
    for (n, size, rows) in tables {
        println!(
            "\n### Sessions toward Event Grid, {size} B (emulator quota {} msg/s and {} B/s per \
             session; {n} QoS 1 messages of {size} B per row; {} CPUs)\n",
            limit.messages_per_second,
            limit.bytes_per_second,
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
        );
        println!(
            "| path | sessions to the emulator | msg/s | × one session straight in | × mosquitto's \
             bridge |"
        );
        println!("|---|---:|---:|---:|---:|");
        let one = rows.first().map_or(1.0, |r| r.2);
        let mosquitto = rows.get(1).map_or(1.0, |r| r.2);
        for (name, sessions, rate) in &rows {
            println!(
                "| {name} | {sessions} | {rate:.0} | {:.2}× | {:.2}× |",
                rate / one,
                rate / mosquitto
            );
        }
    }
}
