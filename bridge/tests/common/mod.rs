//! Fixtures of the engine tests: a PKI made with rcgen, a plain local mosquitto and a TLS
//! remote mosquitto standing in for Event Grid, the bridge run in-process, and rumqttc test
//! clients.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use e4k_bridge::RunOptions;
use e4k_bridge::config::{self, BridgeConfig, ConfigOptions, RawConfig};
use e4k_tests::Mosquitto;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Publish, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, Incoming, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::mpsc;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(15);

/// A CA hierarchy: root → intermediate → leaves, like `e4k certs init`.
pub struct Pki {
    pub dir: PathBuf,
    intermediate: Issuer<'static, KeyPair>,
    intermediate_pem: String,
    /// The root CA certificate file.
    pub root_file: PathBuf,
}

impl Pki {
    /// Creates the CAs and a server certificate for localhost / 127.0.0.1 in `dir`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let root_key = KeyPair::generate().unwrap();
        let mut root_params = CertificateParams::default();
        root_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} Root CA"));
        root_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        root_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);

        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} Intermediate CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let intermediate = params.signed_by(&key, &root_issuer).unwrap();
        let intermediate_pem = intermediate.pem();
        let root_file = dir.join("root.pem");
        std::fs::write(&root_file, root.pem()).unwrap();
        std::fs::write(dir.join("intermediate.pem"), &intermediate_pem).unwrap();
        let pki = Pki {
            dir: dir.to_owned(),
            intermediate: Issuer::new(params, key),
            intermediate_pem,
            root_file,
        };
        let (cert, key) = pki.leaf("localhost", true, Validity::Good);
        std::fs::write(
            dir.join("server.pem"),
            format!("{cert}{}", pki.intermediate_pem),
        )
        .unwrap();
        std::fs::write(dir.join("server.key"), key).unwrap();
        pki
    }

    /// Issues a leaf: (certificate PEM, key PEM).
    pub fn leaf(&self, cn: &str, server: bool, validity: Validity) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let sans = if server {
            vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
        } else {
            Vec::new()
        };
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = if server {
            vec![ExtendedKeyUsagePurpose::ServerAuth]
        } else {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        };
        let now = time::OffsetDateTime::now_utc();
        match validity {
            Validity::Good => {
                params.not_before = now - time::Duration::hours(1);
                params.not_after = now + time::Duration::days(30);
            }
            Validity::Expired => {
                params.not_before = now - time::Duration::days(30);
                params.not_after = now - time::Duration::days(1);
            }
        }
        let cert = params.signed_by(&key, &self.intermediate).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a client-certificate secret `<secrets>/<name>/` for `cn`.
    pub fn client_secret(&self, secrets: &Path, name: &str, cn: &str, validity: Validity) {
        let dir = secrets.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = self.leaf(cn, false, validity);
        std::fs::write(dir.join("client_cert.pem"), cert).unwrap();
        std::fs::write(dir.join("client_key.pem"), key).unwrap();
        std::fs::write(
            dir.join("client_intermediate_certs.pem"),
            &self.intermediate_pem,
        )
        .unwrap();
    }

    /// A client certificate for a test client: (cert + chain PEM, key PEM).
    pub fn client_pem(&self, cn: &str) -> (String, String) {
        let (cert, key) = self.leaf(cn, false, Validity::Good);
        (format!("{cert}{}", self.intermediate_pem), key)
    }
}

/// Validity of a test certificate.
#[derive(Debug, Clone, Copy)]
pub enum Validity {
    Good,
    Expired,
}

/// The ACL of the Event Grid stand-in: the seed's permissions, plus `e2e/#` for the tests.
pub const ACL: &str = "\
user mqttbridge
topic write factory/telemetry/#
topic read command/#
topic readwrite e2e/#

user mosquitto
topic write command/#
topic read factory/telemetry/#
topic readwrite e2e/#
";

/// The mosquitto lines of the remote broker's TLS listener.
pub fn remote_config(pki: &Pki, extra: &str) -> String {
    let dir = pki.dir.display();
    let acl = pki.dir.join("acl");
    std::fs::write(&acl, ACL).unwrap();
    format!(
        "cafile {dir}/root.pem\n\
         certfile {dir}/server.pem\n\
         keyfile {dir}/server.key\n\
         require_certificate true\n\
         use_identity_as_username true\n\
         allow_anonymous false\n\
         acl_file {}\n\
         {extra}\n",
        acl.display()
    )
}

/// Starts the Event Grid stand-in.
pub fn remote_broker(pki: &Pki, extra: &str) -> Mosquitto {
    Mosquitto::start(&remote_config(pki, extra)).unwrap()
}

/// Starts the plain local broker.
pub fn local_broker() -> Mosquitto {
    Mosquitto::start("allow_anonymous true\n").unwrap()
}

/// A connector and topic map: `routes` is the YAML of `spec.routes` items (indented by 4).
pub fn yaml(instances: u32, routes: &str) -> String {
    e4k_tests::bridge::ConnectorYaml {
        prefix: "e4k",
        instances,
        ..e4k_tests::bridge::ConnectorYaml::new("test-bridge", routes)
    }
    .render()
}

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
/// 100`), its logs discarded; `E4K_BENCH_PROCESS_WORKERS` sets its tokio worker threads.
pub fn bridge_process(
    binary: &Path,
    env: &Env,
    routes: &str,
    args: &ProcessArgs<'_>,
) -> e4k_tests::process::Process {
    let config = env.dir.path().join(format!("{}.yaml", args.name));
    let yaml = yaml(1, routes).replace(
        "clientIdPrefix: e4k",
        &format!("clientIdPrefix: {}", args.name),
    );
    std::fs::write(&config, yaml).unwrap();
    let mut command = std::process::Command::new(binary);
    if let Ok(workers) = std::env::var("E4K_BENCH_PROCESS_WORKERS") {
        command.env("TOKIO_WORKER_THREADS", workers);
    }
    let child = command
        .args(["bridge", "run", "--config"])
        .arg(&config)
        .arg("--remote-endpoint")
        .arg(format!("localhost:{}", args.remote_port))
        .arg("--local-endpoint")
        .arg(format!("127.0.0.1:{}", args.local_port))
        .arg("--secrets-dir")
        .arg(env.secrets())
        .arg("--configmaps-dir")
        .arg(env.secrets())
        .arg("--remote-ca-file")
        .arg(&env.pki.root_file)
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{}", args.metrics_port))
        .args(["--receive-maximum", "100"])
        .args(args.extra)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    e4k_tests::process::Process(child)
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

/// Resolves `yaml` against the two brokers' ports.
pub fn resolve(
    yaml: &str,
    secrets: &Path,
    remote_port: u16,
    local_port: u16,
    ca: &Path,
) -> Vec<BridgeConfig> {
    let raw = RawConfig::parse_str(yaml).unwrap();
    let mut options = ConfigOptions::default();
    options.secrets_dir = secrets.to_owned();
    options.configmaps_dir = secrets.to_owned();
    options.remote_endpoint = Some(format!("localhost:{remote_port}"));
    options.local_endpoint = Some(format!("127.0.0.1:{local_port}"));
    options.remote_ca_file = Some(ca.to_owned());
    options.check_files = false;
    match config::resolve(&raw, &options) {
        Ok(resolved) => resolved.bridges,
        Err(report) => panic!("invalid test config:\n{report}"),
    }
}

/// Run options for tests: fast backoff and drain.
pub fn run_options() -> RunOptions {
    e4k_tests::bridge::fast_run_options()
}

#[allow(unused_imports)] // each test target uses a part
pub use e4k_tests::bridge::{Running, metric};

/// Starts a bridge in this process, its waits lasting [`WAIT`].
pub fn start_bridge(configs: &[BridgeConfig], options: RunOptions) -> Running {
    Running::start(configs, options).unwrap().with_wait(WAIT)
}

/// A test MQTT v5 client whose received publishes arrive on a channel.
pub struct TestClient {
    pub client: AsyncClient,
    pub rx: mpsc::Receiver<Publish>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestClient {
    /// Connects to the local (plain) broker.
    pub async fn local(port: u16, id: &str) -> TestClient {
        let options = MqttOptions::new(id, "127.0.0.1", port);
        Self::connect(options).await
    }

    /// Connects to the remote broker with a client certificate for `cn`.
    pub async fn remote(port: u16, id: &str, pki: &Pki, cn: &str) -> TestClient {
        let mut options = MqttOptions::new(id, "localhost", port);
        let (cert, key) = pki.client_pem(cn);
        options.set_transport(Transport::Tls(TlsConfiguration::Simple {
            ca: std::fs::read(&pki.root_file).unwrap(),
            alpn: None,
            client_auth: Some((cert.into_bytes(), key.into_bytes())),
        }));
        Self::connect(options).await
    }

    async fn connect(mut options: MqttOptions) -> TestClient {
        options.set_max_packet_size(Some(1024 * 1024));
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, rx) = mpsc::channel(10_000);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(publish))) => {
                        let _ = tx.send(publish).await;
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        let _ = tx
                            .send(Publish::new("$suback", QoS::AtMostOnce, "", None))
                            .await;
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(WAIT, ready_rx)
            .await
            .expect("test client did not connect")
            .unwrap();
        TestClient { client, rx, task }
    }

    /// Subscribes and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.client
            .subscribe_many([Filter::new(filter, qos)])
            .await
            .unwrap();
        let publish = self.recv().await;
        assert_eq!(&publish.topic[..], b"$suback");
    }

    /// The next message.
    pub async fn recv(&mut self) -> Publish {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("no message in time")
            .expect("client gone")
    }

    /// The next message, or `None` after `wait`.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Publish> {
        tokio::time::timeout(wait, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    pub async fn publish(&self, topic: &str, qos: QoS, retain: bool, payload: impl Into<Bytes>) {
        self.client
            .publish_bytes(topic, qos, retain, payload.into())
            .await
            .unwrap();
    }

    pub async fn publish_with(
        &self,
        topic: &str,
        qos: QoS,
        payload: impl Into<Bytes>,
        properties: PublishProperties,
    ) {
        self.client
            .publish_bytes_with_properties(topic, qos, false, payload.into(), properties)
            .await
            .unwrap();
    }
}

/// A test setup: PKI, the bridge's secret, both brokers.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    pub local: Mosquitto,
    pub remote: Mosquitto,
}

impl Env {
    /// Both brokers; `remote_extra` adds mosquitto lines to the remote.
    pub fn new(remote_extra: &str) -> Env {
        Self::with_local(remote_extra, "")
    }

    /// Both brokers, with extra mosquitto lines for each.
    pub fn with_local(remote_extra: &str, local_extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(&dir.path().join("pki"), "test");
        pki.client_secret(
            &dir.path().join("secrets"),
            "bridge-client-cert",
            "mqttbridge",
            Validity::Good,
        );
        let remote = remote_broker(&pki, remote_extra);
        let local = Mosquitto::start(&format!("allow_anonymous true\n{local_extra}\n")).unwrap();
        Env {
            dir,
            pki,
            local,
            remote,
        }
    }

    pub fn secrets(&self) -> PathBuf {
        self.dir.path().join("secrets")
    }

    /// The resolved configuration for these brokers.
    pub fn config(&self, instances: u32, routes: &str) -> Vec<BridgeConfig> {
        resolve(
            &yaml(instances, routes),
            &self.secrets(),
            self.remote.port(),
            self.local.port(),
            &self.pki.root_file,
        )
    }

    pub async fn local_client(&self, id: &str) -> TestClient {
        TestClient::local(self.local.port(), id).await
    }

    pub async fn remote_client(&self, id: &str) -> TestClient {
        TestClient::remote(self.remote.port(), id, &self.pki, "mosquitto").await
    }
}
