//! The MQTT data plane against a real mosquitto and real TLS: the e4k seed is created through
//! the emulator's ARM API, client certificates come from `e4k_provisioning::certs`, and
//! clients are rumqttc (v5 and v3.1.1) and the mosquitto command-line tools.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use e4k_emulator::{Emulator, EmulatorConfig, MqttConfig, PublishLimit, RunningEmulator};
use e4k_provisioning::certs::{
    self, CertificateAuthority, InitOptions, KeyFormat, KeyProtection, KeyType, LeafOutput,
    LeafSpec, NotAfter, Profile,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, PubAckReason};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const SUB: &str = "11111111-2222-3333-4444-555555555555";
const RG: &str = "rg-e4k";
const NS: &str = "e4k-seed";
const API: &str = "2026-06-15-preview";
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(600);
/// How long a message may take to arrive.
const ARRIVAL: Duration = Duration::from_secs(5);

// ---- certificates ----

/// The seed PKI (root + intermediate) and client certificates issued by the intermediate, plus
/// a foreign CA's certificate; made once for all tests.
struct Pki {
    _dir: tempfile::TempDir,
    root: PathBuf,
    intermediate: PathBuf,
    dir: PathBuf,
}

impl Pki {
    /// The certificate bundle (leaf + intermediate) of a client.
    fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.crt"))
    }

    fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }
}

fn init_ca(dir: &Path, name: &str) -> CertificateAuthority {
    let report = certs::init(&InitOptions {
        dir: dir.to_owned(),
        name: name.into(),
        key_type: KeyType::EcP256,
        root_not_after: NotAfter::parse("48h").unwrap(),
        intermediate_not_after: NotAfter::parse("24h").unwrap(),
        protection: KeyProtection::Plaintext,
        force: false,
    })
    .unwrap();
    CertificateAuthority::load(
        &report.files.intermediate_cert,
        &report.files.intermediate_key,
        None,
        "",
    )
    .unwrap()
}

fn issue(ca: &CertificateAuthority, out: &Path, names: &[(&str, &str)]) {
    let jobs: Vec<_> = names
        .iter()
        .map(|(cn, file)| {
            (
                LeafSpec {
                    name: (*cn).into(),
                    sans: Vec::new(),
                    profile: Profile::Client,
                    key_type: KeyType::EcP256,
                    not_after: NotAfter::parse("12h").unwrap(),
                    key_format: KeyFormat::Pkcs8,
                    protection: KeyProtection::Plaintext,
                },
                LeafOutput {
                    cert: out.join(format!("{file}.crt")),
                    key: out.join(format!("{file}.key")),
                    bundle: true,
                },
            )
        })
        .collect();
    ca.issue_to_files(&jobs, false, &|| {}).unwrap();
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let seed = init_ca(&dir.path().join("pki"), "e4k");
        let clients = dir.path().join("clients");
        issue(
            &seed,
            &clients,
            &[
                ("mqttbridge", "mqttbridge"),
                ("mosquitto", "mosquitto"),
                ("intruder", "intruder"),
                ("sleeper", "sleeper"),
            ],
        );
        let foreign = init_ca(&dir.path().join("foreign"), "foreign");
        issue(&foreign, &clients, &[("mosquitto", "foreign-mosquitto")]);
        let layout = certs::PkiLayout::new(&dir.path().join("pki"));
        Pki {
            root: layout.root_cert,
            intermediate: layout.intermediate_cert,
            dir: clients,
            _dir: dir,
        }
    })
}

/// PEM without line breaks, as `encodedCertificate` must be.
fn one_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::trim)
        .collect()
}

// ---- the emulator and ARM ----

struct Arm {
    http: reqwest::Client,
    base: String,
}

fn ns_path() -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.EventGrid/namespaces/{NS}"
    )
}

impl Arm {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value, Option<String>) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{}{path}?api-version={API}", self.base, ns_path())
        };
        let mut request = self.http.request(method, url).bearer_auth("test");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let monitor = response
            .headers()
            .get("azure-asyncoperation")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            monitor,
        )
    }

    /// A write (PUT or DELETE of `path` under the namespace), awaited until it succeeded.
    async fn write(&self, method: reqwest::Method, path: &str, body: Option<&Value>) {
        let (status, reply, monitor) = self.send(method, path, body).await;
        assert!(
            matches!(status, 200 | 201 | 202 | 204),
            "{path}: {status} {reply}"
        );
        let Some(monitor) = monitor else { return };
        for _ in 0..500 {
            let (_, op, _) = self.send(reqwest::Method::GET, &monitor, None).await;
            match op["status"].as_str() {
                Some("InProgress") => tokio::time::sleep(Duration::from_millis(10)).await,
                Some("Succeeded") => return,
                other => panic!("{path}: operation ended {other:?}: {op}"),
            }
        }
        panic!("{path}: operation did not finish");
    }

    async fn put(&self, path: &str, body: Value) {
        self.write(reqwest::Method::PUT, path, Some(&body)).await;
    }

    async fn delete(&self, path: &str) {
        self.write(reqwest::Method::DELETE, path, None).await;
    }
}

fn client_body(state: &str, attributes: Value) -> Value {
    json!({ "properties": {
        "state": state,
        "clientCertificateAuthentication": { "validationScheme": "SubjectMatchesAuthenticationName" },
        "attributes": attributes
    } })
}

/// Starts an emulator with the data plane and creates the e4k seed through ARM.
async fn seeded() -> (RunningEmulator, Arm) {
    seeded_with(MqttConfig::default()).await
}

async fn seeded_with(mqtt: MqttConfig) -> (RunningEmulator, Arm) {
    let pki = pki();
    let emulator = Emulator::start(EmulatorConfig {
        lro_delay: Duration::ZERO,
        mqtt_hostname: "localhost".into(),
        mqtt: Some(mqtt),
        ..EmulatorConfig::default()
    })
    .await
    .expect("the emulator starts with mosquitto");
    let arm = Arm {
        http: reqwest::Client::new(),
        base: emulator.base_url(),
    };
    arm.put(
        "",
        json!({
            "location": "westeurope",
            "properties": { "topicSpacesConfiguration": {
                "state": "Enabled",
                "maximumClientSessionsPerAuthenticationName": 3,
                "clientAuthentication": {
                    "alternativeAuthenticationNameSources": ["ClientCertificateSubject"]
                }
            } }
        }),
    )
    .await;
    let ca = |path: &Path| json!({ "properties": { "encodedCertificate": one_line(path) } });
    let topic_space = |t: &str| json!({ "properties": { "topicTemplates": [t] } });
    let mut children = vec![
        ("caCertificates/root", ca(&pki.root)),
        ("caCertificates/intermediate", ca(&pki.intermediate)),
        ("clients/mqttbridge", client_body("Enabled", json!({}))),
        (
            "clients/mosquitto",
            client_body("Enabled", json!({ "commander": "true" })),
        ),
        ("clients/sleeper", client_body("Disabled", json!({}))),
        ("topicSpaces/telemetry", topic_space("factory/telemetry/#")),
        ("topicSpaces/command", topic_space("command/#")),
        (
            "clientGroups/commanders",
            json!({ "properties": { "query": "attributes.commander = \"true\"" } }),
        ),
    ];
    for (name, ts, group, permission) in [
        ("all-publish-telemetry", "telemetry", "$all", "Publisher"),
        ("all-subscribe-command", "command", "$all", "Subscriber"),
        (
            "commanders-publish-command",
            "command",
            "commanders",
            "Publisher",
        ),
        (
            "commanders-subscribe-telemetry",
            "telemetry",
            "commanders",
            "Subscriber",
        ),
    ] {
        children.push((
            Box::leak(format!("permissionBindings/{name}").into_boxed_str()),
            json!({ "properties": {
                "topicSpaceName": ts, "clientGroupName": group, "permission": permission
            } }),
        ));
    }
    for (path, body) in children {
        arm.put(&format!("/{path}"), body).await;
    }
    assert!(
        emulator.mqtt_synced(Duration::from_secs(5)).await,
        "the ACL follows the seed"
    );
    (emulator, arm)
}

// ---- MQTT clients ----

/// A rustls client configuration presenting `cert` (a bundle) and trusting the data-plane CA.
fn tls(emulator: &RunningEmulator, cert: &Path, key: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in certs::read_certificates(emulator.mqtt_ca_pem_path().unwrap()).unwrap() {
        roots.add(ca).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> = certs::read_certificates(cert).unwrap();
    let key = certs::load_key(key, None, "").unwrap();
    let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

/// A connected v5 client whose event loop runs in a task; incoming packets arrive on `rx`.
struct Client {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Result<Packet, String>>,
    task: tokio::task::JoinHandle<()>,
    connack: rumqttc::v5::mqttbytes::v5::ConnAck,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn options(emulator: &RunningEmulator, id: &str, cert: &str) -> MqttOptions {
    let pki = pki();
    let port = emulator.mqtt_addr().unwrap().port();
    let mut options = MqttOptions::new(id, "localhost", port);
    options.set_keep_alive(Duration::from_secs(30));
    // rumqttc refuses incoming packets over 10 KiB by default.
    options.set_max_packet_size(Some(1024 * 1024));
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls(
        emulator,
        &pki.cert(cert),
        &pki.key(cert),
    ))));
    options
}

async fn connect_with(options: MqttOptions) -> Result<Client, ConnectionError> {
    let (client, mut eventloop): (AsyncClient, EventLoop) = AsyncClient::new(options, 100);
    let connack = loop {
        match tokio::time::timeout(ARRIVAL, eventloop.poll()).await {
            Err(_) => panic!("no CONNACK"),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Event::Incoming(Packet::ConnAck(connack)))) => break connack,
            Ok(Ok(_)) => {}
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(packet)) => {
                    if tx.send(Ok(packet)).is_err() {
                        return;
                    }
                }
                Ok(Event::Outgoing(_)) => {}
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            }
        }
    });
    Ok(Client {
        client,
        rx,
        task,
        connack,
    })
}

async fn connect(
    emulator: &RunningEmulator,
    id: &str,
    cert: &str,
) -> Result<Client, ConnectionError> {
    connect_with(options(emulator, id, cert)).await
}

impl Client {
    /// The next packet matching `want` within `within`, skipping others.
    async fn next(
        &mut self,
        within: Duration,
        want: impl Fn(&Packet) -> bool,
    ) -> Option<Result<Packet, String>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(Ok(packet))) if want(&packet) => return Some(Ok(packet)),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Some(Err(e)),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) -> Packet {
        self.client.subscribe(filter, qos).await.unwrap();
        self.next(ARRIVAL, |p| matches!(p, Packet::SubAck(_)))
            .await
            .expect("SUBACK")
            .unwrap()
    }

    /// The payload of the next message within `within`.
    async fn message(&mut self, within: Duration) -> Option<String> {
        match self.next(within, |p| matches!(p, Packet::Publish(_))).await {
            Some(Ok(Packet::Publish(publish))) => {
                Some(String::from_utf8_lossy(&publish.payload).into_owned())
            }
            _ => None,
        }
    }

    /// Publishes at QoS 1 and returns the PUBACK reason (or the error that ended the loop).
    async fn publish(&mut self, topic: &str, payload: &str) -> Result<PubAckReason, String> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .unwrap();
        match self.next(ARRIVAL, |p| matches!(p, Packet::PubAck(_))).await {
            Some(Ok(Packet::PubAck(ack))) => Ok(ack.reason),
            Some(Err(e)) => Err(e),
            _ => Err("no PUBACK".into()),
        }
    }
}

fn refused(result: Result<Client, ConnectionError>) -> ConnectReturnCode {
    match result {
        Err(ConnectionError::ConnectionRefused(code)) => code,
        Err(other) => panic!("expected a CONNACK refusal, got {other:?}"),
        Ok(_) => panic!("expected a CONNACK refusal, the client connected"),
    }
}

/// `mosquitto_pub` with a client certificate; returns (success, stderr).
fn mosquitto_pub(emulator: &RunningEmulator, cert: &str, args: &[&str]) -> (bool, String) {
    let pki = pki();
    let output = Command::new("mosquitto_pub")
        .args(["-h", "localhost", "-p"])
        .arg(emulator.mqtt_addr().unwrap().port().to_string())
        .arg("--cafile")
        .arg(emulator.mqtt_ca_pem_path().unwrap())
        .arg("--cert")
        .arg(pki.cert(cert))
        .arg("--key")
        .arg(pki.key(cert))
        .args(args)
        .output()
        .expect("mosquitto_pub runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

// ---- the tests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commander_publishes_commands_and_the_bridge_receives_them() {
    let (emulator, _arm) = seeded().await;
    let mut bridge = connect(&emulator, "bridge-1", "mqttbridge").await.unwrap();
    bridge.subscribe("command/#", QoS::AtLeastOnce).await;

    // The real mosquitto client (MQTT 3.1.1), as the seed's commander uses it.
    let (ok, stderr) = mosquitto_pub(
        &emulator,
        "mosquitto",
        &[
            "-V",
            "mqttv311",
            "-i",
            "commander",
            "-q",
            "1",
            "-t",
            "command/x",
            "-m",
            "from-cli",
        ],
    );
    assert!(ok, "mosquitto_pub failed: {stderr}");
    assert_eq!(bridge.message(ARRIVAL).await.as_deref(), Some("from-cli"));

    // And over MQTT 5: PUBACK success.
    let mut commander = connect(&emulator, "commander-5", "mosquitto")
        .await
        .unwrap();
    assert_eq!(
        commander.publish("command/x", "from-v5").await,
        Ok(PubAckReason::Success)
    );
    assert_eq!(bridge.message(ARRIVAL).await.as_deref(), Some("from-v5"));
    emulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_may_not_publish_commands() {
    let (emulator, _arm) = seeded().await;
    let mut commander = connect(&emulator, "commander", "mosquitto").await.unwrap();
    commander.subscribe("command/#", QoS::AtLeastOnce).await;
    let mut bridge = connect(&emulator, "bridge-1", "mqttbridge").await.unwrap();

    // mosquitto answers a denied v5 QoS 1 PUBLISH with PUBACK 0x87 and delivers nothing.
    assert_eq!(
        bridge.publish("command/x", "forged").await,
        Ok(PubAckReason::NotAuthorized)
    );
    assert_eq!(commander.message(QUIET).await, None);
    // Not a commander, so no telemetry subscription either. Event Grid answers SUBACK 0x87;
    // mosquitto (acl_file) grants the SUBSCRIBE but delivers nothing the ACL does not let
    // the client read.
    bridge
        .subscribe("factory/telemetry/#", QoS::AtLeastOnce)
        .await;
    assert_eq!(
        commander
            .publish("factory/telemetry/t", "not for the bridge")
            .await,
        Ok(PubAckReason::Success)
    );
    assert_eq!(bridge.message(QUIET).await, None);
    // With the CLI (3.1.1) the publish "succeeds" for the client, and is dropped.
    let (ok, stderr) = mosquitto_pub(
        &emulator,
        "mqttbridge",
        &[
            "-V",
            "mqttv311",
            "-i",
            "bridge-cli",
            "-q",
            "1",
            "-t",
            "command/x",
            "-m",
            "forged",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(commander.message(QUIET).await, None);
    emulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_foreign_and_disabled_clients_are_refused() {
    let (emulator, _arm) = seeded().await;
    // A certificate from the uploaded CA whose CN is no registered client: CONNACK 0x86.
    assert_eq!(
        refused(connect(&emulator, "intruder", "intruder").await),
        ConnectReturnCode::BadUserNamePassword
    );
    // A registered name whose certificate does not match it (username says mosquitto,
    // certificate says intruder): 0x86.
    let mut spoof = options(&emulator, "spoof", "intruder");
    spoof.set_credentials("mosquitto", "");
    assert_eq!(
        refused(connect_with(spoof).await),
        ConnectReturnCode::BadUserNamePassword
    );
    // A disabled client: 0x87.
    assert_eq!(
        refused(connect(&emulator, "sleeper", "sleeper").await),
        ConnectReturnCode::NotAuthorized
    );
    // A certificate from a CA that was never uploaded fails the TLS handshake.
    match connect(&emulator, "foreign", "foreign-mosquitto").await {
        Err(ConnectionError::ConnectionRefused(code)) => {
            panic!("TLS should fail, got CONNACK {code:?}")
        }
        Err(_) => {}
        Ok(_) => panic!("a foreign CA's certificate was accepted"),
    }
    // The 3.1.1 CLI sees return code 4.
    let (ok, stderr) = mosquitto_pub(
        &emulator,
        "intruder",
        &["-V", "mqttv311", "-t", "factory/telemetry/x", "-m", "x"],
    );
    assert!(!ok);
    assert!(stderr.contains("bad user name or password"), "{stderr}");
    emulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fourth_session_of_a_name_is_refused() {
    let (emulator, _arm) = seeded().await;
    let mut sessions = Vec::new();
    for i in 1..=3 {
        sessions.push(
            connect(&emulator, &format!("bridge-{i}"), "mqttbridge")
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        refused(connect(&emulator, "bridge-4", "mqttbridge").await),
        ConnectReturnCode::QuotaExceeded
    );
    // Other names are not affected.
    let _commander = connect(&emulator, "commander", "mosquitto").await.unwrap();
    // A session that ends frees its slot.
    drop(sessions.pop());
    let deadline = Instant::now() + ARRIVAL;
    loop {
        match connect(&emulator, "bridge-4", "mqttbridge").await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the slot was not freed: {e:?}"),
        }
    }
    emulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_2_is_not_served() {
    let (emulator, _arm) = seeded().await;
    let mut bridge = connect(&emulator, "bridge-1", "mqttbridge").await.unwrap();
    // v5 CONNACK advertises Maximum QoS 1.
    let max_qos = bridge.connack.properties.as_ref().and_then(|p| p.max_qos);
    assert_eq!(max_qos, Some(1));
    // A QoS 2 subscription is granted QoS 1.
    match bridge.subscribe("command/#", QoS::ExactlyOnce).await {
        Packet::SubAck(ack) => {
            assert_eq!(format!("{:?}", ack.return_codes), "[Success(AtLeastOnce)]")
        }
        other => panic!("{other:?}"),
    }
    // A QoS 2 PUBLISH ends the connection (mosquitto disconnects the client); nothing is
    // delivered.
    let mut commander = connect(&emulator, "commander", "mosquitto").await.unwrap();
    commander
        .client
        .publish("command/x", QoS::ExactlyOnce, false, b"q2".to_vec())
        .await
        .unwrap();
    let outcome = commander
        .next(ARRIVAL, |p| {
            matches!(p, Packet::PubRec(_) | Packet::Disconnect(_))
        })
        .await;
    match outcome {
        Some(Ok(Packet::Disconnect(d))) => {
            assert_eq!(format!("{:?}", d.reason_code), "QoSNotSupported");
        }
        // rumqttc reports a server DISCONNECT as the error that ends its event loop.
        Some(Err(e)) if e.contains("QoSNotSupported") => {}
        other => panic!("QoS 2 was not refused with DISCONNECT 0x9B: {other:?}"),
    }
    // MQTT 3.1.1 has no DISCONNECT from the server: the connection is closed.
    let (ok, stderr) = mosquitto_pub(
        &emulator,
        "mosquitto",
        &["-V", "mqttv311", "-q", "2", "-t", "command/x", "-m", "q2"],
    );
    assert!(!ok, "a 3.1.1 QoS 2 publish went through");
    assert!(stderr.contains("connection was lost"), "{stderr}");
    assert_eq!(bridge.message(QUIET).await, None);
    emulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_512_kib_are_refused() {
    let (emulator, _arm) = seeded().await;
    let mut commander = connect(&emulator, "commander", "mosquitto").await.unwrap();
    commander
        .subscribe("factory/telemetry/#", QoS::AtLeastOnce)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    let large = dir.path().join("large");
    std::fs::write(&small, vec![b's'; 500 * 1024]).unwrap();
    std::fs::write(&large, vec![b'l'; 600 * 1024]).unwrap();
    let publish = |file: &Path| {
        mosquitto_pub(
            &emulator,
            "mqttbridge",
            &[
                "-V",
                "mqttv311",
                "-q",
                "1",
                "-t",
                "factory/telemetry/big",
                "-f",
                file.to_str().unwrap(),
            ],
        )
    };
    let (ok, stderr) = publish(&small);
    assert!(ok, "{stderr}");
    assert_eq!(
        commander.message(ARRIVAL).await.map(|m| m.len()),
        Some(500 * 1024)
    );
    // mosquitto closes the connection of a client that sends a packet over 512 KiB.
    let (ok, _) = publish(&large);
    assert!(!ok, "the 600 KiB publish was accepted");
    assert_eq!(commander.message(QUIET).await, None);
    emulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arm_changes_reach_the_broker_within_a_second_or_two() {
    let (emulator, arm) = seeded().await;
    let mut bridge = connect(&emulator, "bridge-1", "mqttbridge").await.unwrap();
    bridge.subscribe("command/#", QoS::AtLeastOnce).await;
    let mut commander = connect(&emulator, "commander", "mosquitto").await.unwrap();
    assert_eq!(
        commander.publish("command/x", "before").await,
        Ok(PubAckReason::Success)
    );
    assert_eq!(bridge.message(ARRIVAL).await.as_deref(), Some("before"));

    // Revoke: the live connection's next PUBLISH is denied.
    let started = Instant::now();
    arm.delete("/permissionBindings/commanders-publish-command")
        .await;
    let mut denied_after = None;
    for i in 0..40 {
        if commander.publish("command/x", &format!("probe-{i}")).await
            == Ok(PubAckReason::NotAuthorized)
        {
            denied_after = Some(started.elapsed());
            break;
        }
        let _ = bridge.message(Duration::from_millis(20)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let denied_after = denied_after.expect("the revoked binding is still enforced");
    assert!(denied_after < Duration::from_secs(2), "{denied_after:?}");

    // Grant again, to the client's own authentication name this time.
    arm.put(
        "/clientGroups/named",
        json!({ "properties": { "query": "authenticationName = 'MOSQUITTO'" } }),
    )
    .await;
    arm.put(
        "/permissionBindings/named-publish-command",
        json!({ "properties": {
            "topicSpaceName": "command", "clientGroupName": "named", "permission": "Publisher"
        } }),
    )
    .await;
    assert!(emulator.mqtt_synced(Duration::from_secs(2)).await);
    while bridge.message(Duration::from_millis(100)).await.is_some() {}
    assert_eq!(
        commander.publish("command/x", "after").await,
        Ok(PubAckReason::Success)
    );
    assert_eq!(bridge.message(ARRIVAL).await.as_deref(), Some("after"));

    // Disabling a client shuts its new connections out at once.
    arm.put(
        "/clients/mosquitto",
        client_body("Disabled", json!({ "commander": "true" })),
    )
    .await;
    assert_eq!(
        refused(connect(&emulator, "commander-2", "mosquitto").await),
        ConnectReturnCode::NotAuthorized
    );
    emulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_seed_routes_work() {
    let (emulator, _arm) = seeded().await;
    // mosquitto (the commander) subscribes to telemetry, the bridge's three instances to
    // commands (the bridge connector runs bridgeInstances: 3 under one authentication name).
    let mut commander = connect(&emulator, "commander", "mosquitto").await.unwrap();
    commander
        .subscribe("factory/telemetry/#", QoS::AtLeastOnce)
        .await;
    let mut instances = Vec::new();
    for i in 1..=3 {
        let mut bridge = connect(&emulator, &format!("e4k-{i}"), "mqttbridge")
            .await
            .unwrap();
        bridge.subscribe("command/#", QoS::AtLeastOnce).await;
        instances.push(bridge);
    }
    // local-to-remote "publish-telemetry-same-topic" and "prioritize-alerts".
    for (topic, payload) in [
        ("factory/telemetry/line1/temp", "21.5"),
        ("factory/telemetry/alert", "anomaly"),
    ] {
        assert_eq!(
            instances[0].publish(topic, payload).await,
            Ok(PubAckReason::Success)
        );
        assert_eq!(commander.message(ARRIVAL).await.as_deref(), Some(payload));
    }
    // remote-to-local "command-from-cloud": every instance's subscription receives it.
    assert_eq!(
        commander.publish("command/restart", "now").await,
        Ok(PubAckReason::Success)
    );
    for bridge in &mut instances {
        assert_eq!(bridge.message(ARRIVAL).await.as_deref(), Some("now"));
    }
    emulator.shutdown().await.unwrap();
}

/// Event Grid's inbound quota per session, scaled down to 100 msg/s: after its 100 ms of
/// burst credit (10 messages) a session that publishes as fast as it can is slowed to the
/// quota, while a second session has a quota of its own. (A lower bound on the time taken:
/// proof of the throttle, not a speed goal.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_throttled_to_their_publish_quota() {
    let (emulator, _arm) = seeded_with(MqttConfig {
        session_publish_limit: Some(PublishLimit {
            messages_per_second: 100,
            bytes_per_second: 0,
        }),
        ..MqttConfig::default()
    })
    .await;
    let mut commander = connect(&emulator, "commander", "mosquitto").await.unwrap();
    commander
        .subscribe("factory/telemetry/#", QoS::AtMostOnce)
        .await;
    let a = connect(&emulator, "e4k-1", "mqttbridge").await.unwrap();
    let b = connect(&emulator, "e4k-2", "mqttbridge").await.unwrap();
    const EACH: usize = 40;
    let started = Instant::now();
    for i in 0..EACH {
        for (client, name) in [(&a, "a"), (&b, "b")] {
            client
                .client
                .publish(
                    "factory/telemetry/x",
                    QoS::AtMostOnce,
                    false,
                    format!("{name}{i}").into_bytes(),
                )
                .await
                .unwrap();
        }
    }
    let mut got = 0;
    while got < 2 * EACH {
        assert!(
            commander.message(ARRIVAL).await.is_some(),
            "only {got} messages arrived"
        );
        got += 1;
    }
    let elapsed = started.elapsed();
    // Each session: 10 at once, 30 at 100/s = at least 0.3 s; sharing one quota would take
    // 0.7 s.
    assert!(
        elapsed >= Duration::from_millis(280),
        "{elapsed:?}: not throttled"
    );
    emulator.shutdown().await.unwrap();
}

/// MQTT over secure WebSockets: `wss://…/mqtt` with subprotocol `mqtt` and the client
/// certificate is the same session as on the TLS port (authenticated, authorized by the
/// bindings); another path is refused at the upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_over_websocket_is_served_on_mqtt_path() {
    let (emulator, _arm) = seeded_with(MqttConfig {
        websocket_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..MqttConfig::default()
    })
    .await;
    let port = emulator.mqtt_websocket_addr().unwrap().port();
    let over_websocket = |id: &str, cert: &str, path: &str| {
        let pki = pki();
        let mut options = MqttOptions::new(id, format!("wss://localhost:{port}{path}"), port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_transport(Transport::Wss(TlsConfiguration::Rustls(tls(
            &emulator,
            &pki.cert(cert),
            &pki.key(cert),
        ))));
        options
    };
    let mut bridge = connect_with(over_websocket("bridge-ws", "mqttbridge", "/mqtt"))
        .await
        .unwrap();
    bridge.subscribe("command/#", QoS::AtLeastOnce).await;
    let mut commander = connect(&emulator, "commander", "mosquitto").await.unwrap();
    assert_eq!(
        commander.publish("command/x", "over-ws").await,
        Ok(PubAckReason::Success)
    );
    assert_eq!(bridge.message(ARRIVAL).await.as_deref(), Some("over-ws"));
    // The bindings hold over WebSocket too: the bridge may not publish commands.
    assert_ne!(
        bridge.publish("command/x", "nope").await,
        Ok(PubAckReason::Success)
    );
    let error = connect_with(over_websocket("bridge-ws2", "mqttbridge", "/other"))
        .await
        .err()
        .expect("a WebSocket upgrade on another path is refused");
    assert!(error.to_string().contains("404"), "{error}");
    emulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_mosquitto() {
    let (emulator, _arm) = seeded().await;
    let addr = emulator.mqtt_addr().unwrap();
    let ca = emulator.mqtt_ca_pem_path().unwrap().to_owned();
    assert!(
        std::fs::read_to_string(&ca)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    emulator.shutdown().await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the MQTT port is closed"
    );
    assert!(!ca.exists(), "the temporary CA file is removed");
}

/// Publishes `n` QoS 1 messages `0..n` on `factory/telemetry/lag` as `mqttbridge`, each
/// acknowledged before the next.
async fn publish_numbered(emulator: &RunningEmulator, n: usize) {
    let mut publisher = connect(emulator, "e4k-lag", "mqttbridge").await.unwrap();
    for i in 0..n {
        assert_eq!(
            publisher
                .publish("factory/telemetry/lag", &i.to_string())
                .await,
            Ok(PubAckReason::Success)
        );
    }
}

/// Acknowledges every message `subscriber` (manual acks) receives until `n` distinct payloads
/// arrived or none arrives for [`ARRIVAL`]; how many distinct ones arrived.
async fn ack_until(subscriber: &mut Client, n: usize) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < n {
        match subscriber
            .next(ARRIVAL, |p| matches!(p, Packet::Publish(_)))
            .await
        {
            Some(Ok(Packet::Publish(publish))) => {
                subscriber.client.ack(&publish).await.unwrap();
                seen.insert(publish.payload);
            }
            _ => break,
        }
    }
    seen.len()
}

/// A connected subscriber that falls behind (it acknowledges nothing while 400 messages are
/// published) still gets every QoS 1 message: the broker keeps up to 1,000 in flight to it
/// (Event Grid's in-flight limit) rather than queueing 100 and dropping the rest, as
/// mosquitto does with its defaults. The 100-message limit is for offline sessions only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_subscriber_that_falls_behind_loses_nothing() {
    const N: usize = 400;
    let (emulator, _arm) = seeded().await;
    let mut options = options(&emulator, "lagging", "mosquitto");
    options.set_manual_acks(true);
    let mut subscriber = connect_with(options).await.unwrap();
    subscriber
        .subscribe("factory/telemetry/lag", QoS::AtLeastOnce)
        .await;
    publish_numbered(&emulator, N).await;
    assert_eq!(ack_until(&mut subscriber, N).await, N);
    emulator.shutdown().await.unwrap();
}

/// An offline persistent session keeps Event Grid's 100 messages: the first 100 published
/// while it is away arrive when it comes back, the rest do not (Event Grid ends such a
/// session; the emulator's broker drops the excess, see emulator/README.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_session_keeps_100_messages() {
    let (emulator, _arm) = seeded().await;
    let persistent = || {
        let mut options = options(&emulator, "away", "mosquitto");
        options.set_clean_start(false);
        options.set_session_expiry_interval(Some(3600));
        options
    };
    let mut subscriber = connect_with(persistent()).await.unwrap();
    subscriber
        .subscribe("factory/telemetry/lag", QoS::AtLeastOnce)
        .await;
    subscriber.client.disconnect().await.unwrap();
    assert!(
        subscriber.next(ARRIVAL, |_| false).await.is_some(),
        "the subscriber's connection ends"
    );
    drop(subscriber);
    publish_numbered(&emulator, 150).await;
    let mut back = connect_with(persistent()).await.unwrap();
    assert!(back.connack.session_present);
    let mut got = Vec::new();
    while let Some(payload) = back.message(QUIET).await {
        got.push(payload.parse::<usize>().unwrap());
    }
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    emulator.shutdown().await.unwrap();
}
