//! The MQTT data plane against a real mosquitto and real TLS: the e4k seed is created through
//! the emulator's ARM API, client certificates come from the e4k-tests PKI
//! ([`e4k_tests::pki::Pki`]), and clients are rumqttc (v5 and v3.1.1) and the mosquitto
//! command-line tools.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use e4k_emulator::{Emulator, EmulatorConfig, MqttConfig, PublishLimit, RunningEmulator};
use e4k_provisioning::certs;
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

/// The seed PKI (root + intermediate, the e4k-tests fixture) and client certificates issued
/// by the intermediate, plus a foreign CA's certificate; made once for all tests.
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

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let seed = e4k_tests::pki::Pki::new(&dir.path().join("pki"), "e4k");
        let foreign = e4k_tests::pki::Pki::new(&dir.path().join("foreign"), "foreign");
        let clients = dir.path().join("clients");
        std::fs::create_dir_all(&clients).unwrap();
        for (ca, cn, file) in [
            (&seed, "mqttbridge", "mqttbridge"),
            (&seed, "mosquitto", "mosquitto"),
            (&seed, "intruder", "intruder"),
            (&seed, "sleeper", "sleeper"),
            (&foreign, "mosquitto", "foreign-mosquitto"),
        ] {
            ca.write_client_pem(
                cn,
                &clients.join(format!("{file}.crt")),
                &clients.join(format!("{file}.key")),
            )
            .unwrap();
        }
        Pki {
            root: seed.root_file.clone(),
            intermediate: seed.intermediate_file(),
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

mod access;
mod limits;
mod queues;
mod serving;
