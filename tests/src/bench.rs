//! The load the bridge benchmarks put on the engine and on an `e4k bridge run` process: their
//! runtime, a publisher as fast as the broker takes it, a paced one measuring latency.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;

use crate::client::TestClient;
use crate::env::{Env, WAIT, yaml};
use crate::process::BridgeProcess;

/// A benchmark's runtime (multi-threaded, as `e4k bridge run`'s), with logs on stderr when
/// `RUST_LOG` is set.
pub fn bench_runtime() -> tokio::runtime::Runtime {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Publishes `n` QoS 1 messages of `size` bytes on `topic` with `publisher` as fast as it
/// takes them, and waits until `subscriber` received as many (20 s without one ends the
/// wait); the time that took, and how many arrived. For the throughput benchmarks.
pub async fn pump(
    publisher: &AsyncClient,
    subscriber: &mut TestClient,
    topic: &str,
    n: usize,
    size: usize,
) -> (Duration, usize) {
    let payload = Bytes::from(vec![b'x'; size]);
    let started = std::time::Instant::now();
    let publish = async {
        for _ in 0..n {
            publisher
                .publish_bytes(topic, QoS::AtLeastOnce, false, payload.clone())
                .await
                .unwrap();
        }
    };
    let receive = async {
        let mut received = 0;
        while received < n {
            match subscriber.try_recv(Duration::from_secs(20)).await {
                Some(_) => received += 1,
                None => break,
            }
        }
        received
    };
    let ((), received) = tokio::join!(publish, receive);
    (started.elapsed(), received)
}

/// Publishes 256 B QoS 1 messages on `topic` at `rate` msg/s for `secs` seconds, each
/// carrying its send time, and receives them on `subscriber` (20 s without one ends the wait);
/// the end-to-end latencies in µs, sorted. For the latency benchmarks.
#[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
pub async fn paced_latency(
    publisher: &AsyncClient,
    subscriber: &mut TestClient,
    topic: &str,
    rate: u32,
    secs: u32,
) -> Vec<f64> {
    let n = (rate * secs) as usize;
    let base = std::time::Instant::now();
    let interval = Duration::from_secs(1) / rate;
    let publish = async move {
        for i in 0..n {
            tokio::time::sleep_until((base + interval * i as u32).into()).await;
            let mut payload = vec![b'x'; 256];
            let sent = base.elapsed().as_nanos() as u64;
            payload[..8].copy_from_slice(&sent.to_le_bytes());
            publisher
                .publish_bytes(topic, QoS::AtLeastOnce, false, Bytes::from(payload))
                .await
                .unwrap();
        }
    };
    let receive = async {
        let mut latencies = Vec::with_capacity(n);
        while latencies.len() < n {
            match subscriber.try_recv(Duration::from_secs(20)).await {
                Some(publish) if publish.payload.len() >= 8 => {
                    let now = base.elapsed().as_nanos() as u64;
                    let sent = u64::from_le_bytes(publish.payload[..8].try_into().unwrap());
                    latencies.push(now.saturating_sub(sent) as f64 / 1000.0);
                }
                Some(_) => {}
                None => break,
            }
        }
        latencies
    };
    let ((), mut latencies) = tokio::join!(publish, receive);
    latencies.sort_by(f64::total_cmp);
    latencies
}

/// Where an `e4k bridge run` process connects, and what else it is given.
pub struct ProcessArgs<'a> {
    /// File name (in the env's directory) of its configuration, and its client ID prefix.
    pub name: &'a str,
    /// The remote's port (the broker's, or a proxy's in front of it).
    pub remote_port: u16,
    /// The local broker's port.
    pub local_port: u16,
    /// Its `/metrics` port.
    pub metrics_port: u16,
    /// More arguments (`--spool-dir`, backoff, ...).
    pub extra: &'a [&'a str],
}

/// Starts `binary bridge run` on `env`'s PKI with `routes` (one instance, `--receive-maximum
/// 100`), its logs discarded; `E4K_BENCH_PROCESS_WORKERS` sets its worker threads (`--worker-threads`).
pub fn bridge_process(
    binary: &Path,
    env: &Env,
    routes: &str,
    args: &ProcessArgs<'_>,
) -> BridgeProcess {
    let config = env.dir.path().join(format!("{}.yaml", args.name));
    let yaml = yaml(1, routes).replace(
        "clientIdPrefix: e4k",
        &format!("clientIdPrefix: {}", args.name),
    );
    std::fs::write(&config, yaml).unwrap();
    let config = config.display().to_string();
    let remote = format!("localhost:{}", args.remote_port);
    let local = format!("127.0.0.1:{}", args.local_port);
    let secrets = env.secrets().display().to_string();
    let root = env.pki.root_file.display().to_string();
    let metrics = format!("127.0.0.1:{}", args.metrics_port);
    let mut argv = vec![
        "--config",
        &config,
        "--remote-endpoint",
        &remote,
        "--local-endpoint",
        &local,
        "--secrets-dir",
        &secrets,
        "--configmaps-dir",
        &secrets,
        "--remote-ca-file",
        &root,
        "--metrics-listen",
        &metrics,
        "--receive-maximum",
        "100",
    ];
    argv.extend_from_slice(args.extra);
    let workers = std::env::var("E4K_BENCH_PROCESS_WORKERS").ok();
    // E4K_WORKER_THREADS for `--worker-threads` (default 1); TOKIO_WORKER_THREADS for
    // binaries older than the flag (a baseline), whose runtime took one thread per core.
    let env_vars: Vec<(&str, &str)> = workers
        .iter()
        .flat_map(|workers| {
            [
                ("E4K_WORKER_THREADS", workers.as_str()),
                ("TOKIO_WORKER_THREADS", workers.as_str()),
            ]
        })
        .collect();
    BridgeProcess::start_quiet(binary, env.dir.path(), &argv, &env_vars)
}

/// Publishes a warm-up message through `publisher` every 300 ms until `probe` receives one
/// (15 s at most), then drains what else arrives.
pub async fn wait_forwarding(publisher: &TestClient, probe: &mut TestClient, topic: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        publisher
            .publish(topic, QoS::AtLeastOnce, false, "warm-up")
            .await;
        if probe.try_recv(Duration::from_millis(300)).await.is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bridge never forwarded"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    while probe.try_recv(Duration::from_millis(100)).await.is_some() {}
}

/// mosquitto's own MQTT 5 bridge to a remote broker over mTLS, the path the benchmarks compare
/// e4k with: one `connection` forwarding `topic` out at QoS 1, 100 messages in flight, a
/// persistent remote session (`mosquitto-bridge`).
pub struct MosquittoBridge<'a> {
    /// The listener's settings before the connection (queue limits, say).
    pub broker: &'a str,
    /// The remote broker, `host:port`.
    pub remote: String,
    /// The topic filter forwarded.
    pub topic: &'a str,
    /// The CA that signed the remote's certificate.
    pub ca: &'a Path,
    /// The bridge's client certificate (with its chain) and key.
    pub cert: &'a Path,
    /// The client certificate's key.
    pub key: &'a Path,
    /// `bridge_tls_version`, when it is pinned.
    pub tls_version: Option<&'a str>,
}

impl MosquittoBridge<'_> {
    /// The mosquitto configuration file.
    #[must_use]
    pub fn config(&self) -> String {
        let mut config = format!(
            "allow_anonymous true\n\
             {broker}\n\
             max_inflight_messages 100\n\
             connection bench\n\
             address {remote}\n\
             topic {topic} out 1\n\
             bridge_protocol_version mqttv50\n\
             remote_clientid mosquitto-bridge\n\
             cleansession false\n\
             try_private false\n\
             notifications false\n\
             bridge_cafile {ca}\n\
             bridge_certfile {cert}\n\
             bridge_keyfile {key}\n",
            broker = self.broker,
            remote = self.remote,
            topic = self.topic,
            ca = self.ca.display(),
            cert = self.cert.display(),
            key = self.key.display(),
        );
        if let Some(version) = self.tls_version {
            config.push_str(&format!("bridge_tls_version {version}\n"));
        }
        config
    }
}
