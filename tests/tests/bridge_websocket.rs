//! MQTT over WebSocket to Event Grid, through the emulator's data plane: the seed is set up
//! through the emulator's ARM API (`e4k up`), and the seed's bridge — in its
//! `mq.iotoperations.azure.com/v1beta1` spelling with `remoteBrokerConnection.protocol:
//! webSocket` — reaches the emulator only through its secure WebSocket listener (`wss://…/mqtt`,
//! subprotocol `mqtt`, the client certificate in the TLS handshake, as on Event Grid's port
//! 443). Telemetry goes up, a command comes down. Then the same with a Microsoft Entra token
//! instead of the certificate (`OAUTH2-JWT` in the CONNECT over WebSocket, authorized by role
//! assignments).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};

use e4k_bridge::RunOptions;
use e4k_bridge::config::{ConfigOptions, Transport, resolve};
use e4k_bridge::engine::EntraCredential;
use e4k_emulator::identity::EVENT_GRID_AUDIENCE;
use e4k_emulator::{
    DataRole, Emulator, EmulatorConfig, IdentityConfig, MqttConfig, RunningEmulator, TokenRequest,
};
use e4k_tests::Mosquitto;
use e4k_tests::bridge::Running;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::{TlsConfiguration, Transport as MqttTransport};
use tokio::sync::mpsc;

/// A client whose received publishes (topic, payload) arrive on a channel.
async fn client(
    mut options: MqttOptions,
) -> (AsyncClient, mpsc::UnboundedReceiver<(String, String)>) {
    options.set_keep_alive(Duration::from_secs(10));
    let (client, eventloop) = AsyncClient::new(options, 100);
    let (tx, rx) = mpsc::unbounded_channel();
    let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(drive(eventloop, tx, connected_tx));
    tokio::time::timeout(Duration::from_secs(10), connected_rx)
        .await
        .expect("no CONNACK")
        .unwrap();
    (client, rx)
}

async fn drive(
    mut eventloop: EventLoop,
    tx: mpsc::UnboundedSender<(String, String)>,
    connected: tokio::sync::oneshot::Sender<()>,
) {
    let mut connected = Some(connected);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if let Some(tx) = connected.take() {
                    let _ = tx.send(());
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let message = (
                    String::from_utf8_lossy(&p.topic).into_owned(),
                    String::from_utf8_lossy(&p.payload).into_owned(),
                );
                if tx.send(message).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(String, String)>) -> (String, String) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("nothing arrived")
        .unwrap()
}

/// The emulator's principal, the identity of its tokens.
fn principal() -> String {
    IdentityConfig::default().principal_id
}

/// Hands out the emulator's Microsoft Entra tokens, as its managed-identity endpoint does.
struct EmulatorCredential(Arc<RunningEmulator>);

impl std::fmt::Debug for EmulatorCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmulatorCredential")
    }
}

#[async_trait::async_trait]
impl TokenCredential for EmulatorCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let request = TokenRequest::entra(principal(), EVENT_GRID_AUDIENCE);
        let token = self.0.token_issuer().token(&request).unwrap();
        Ok(AccessToken::new(
            token,
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_bridge_reaches_event_grid_over_websocket() {
    seed_over_websocket(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_on_a_microsoft_entra_token_reaches_event_grid_over_websocket() {
    seed_over_websocket(true).await;
}

async fn seed_over_websocket(entra: bool) {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(EmulatorConfig {
        lro_delay: Duration::ZERO,
        mqtt_hostname: "localhost".into(),
        mqtt: Some(MqttConfig {
            websocket_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..MqttConfig::default()
        }),
        ..EmulatorConfig::default()
    })
    .await
    .expect("the emulator starts with mosquitto");
    let emulator = Arc::new(emulator);
    let seeded = e4k_tests::seed::up(dir.path(), &emulator.base_url())
        .await
        .unwrap();
    if entra {
        let namespace = "/subscriptions/00000000-0000-0000-0000-00000000e4ed/resourceGroups/\
                         e4k/providers/Microsoft.EventGrid/namespaces/e4k-mqtt";
        for (name, role) in [("pub", DataRole::Publisher), ("sub", DataRole::Subscriber)] {
            emulator
                .assign_role(name, &principal(), role, namespace)
                .unwrap();
        }
    }
    assert!(emulator.mqtt_synced(Duration::from_secs(10)).await);
    let websocket = emulator.mqtt_websocket_addr().unwrap();
    let tls_port = emulator.mqtt_addr().unwrap().port();
    let ca = emulator.mqtt_ca_pem_path().unwrap().to_owned();
    let local = Mosquitto::start("allow_anonymous true\n").unwrap();

    // The seed's bridge, v1beta1, over WebSocket.
    let mut yaml = e4k_templates::BRIDGE_YAML
        .replace("az-edge.com/v1alpha4", "mq.iotoperations.azure.com/v1beta1")
        .replace("clientK8sSecret", "secretName")
        .replace(
            "  remoteBrokerConnection:\n",
            "  remoteBrokerConnection:\n    protocol: webSocket\n",
        );
    if entra {
        yaml = yaml.replace(
            "      x509:\n        secretName: \"bridge-client-cert\"\n",
            "      systemAssignedManagedIdentity:\n        audience: https://eventgrid.azure.net/\n",
        );
        assert!(yaml.contains("systemAssignedManagedIdentity"), "{yaml}");
    }
    let raw = e4k_bridge::config::RawConfig::parse_str(&yaml).unwrap();
    let mut options = ConfigOptions::default();
    options.secrets_dir = seeded.secrets.clone();
    options.remote_endpoint = Some(format!("localhost:{}", websocket.port()));
    options.local_endpoint = Some(format!("127.0.0.1:{}", local.port()));
    options.remote_ca_file = Some(ca.clone());
    let resolved = resolve(&raw, &options).unwrap_or_else(|report| panic!("{report}"));
    assert_eq!(resolved.bridges[0].remote.transport, Transport::WebSocket);
    let mut run = RunOptions::default();
    run.drain_timeout = Duration::from_secs(3);
    if entra {
        run.entra_credential = Some(EntraCredential(Arc::new(EmulatorCredential(Arc::clone(
            &emulator,
        )))));
    }
    let bridge = Running::start(&resolved.bridges, run).unwrap();
    bridge.ready().await;
    let readiness = bridge.handle.readiness();
    for connection in readiness
        .connections
        .iter()
        .filter(|c| c.broker == "remote")
    {
        assert_eq!(
            connection.endpoint,
            format!("localhost:{}", websocket.port()),
            "{readiness:#?}"
        );
    }

    // The seed's commander, over plain MQTT/TLS on the other port.
    let mut commander = MqttOptions::new("commander", "localhost", tls_port);
    commander.set_transport(MqttTransport::Tls(TlsConfiguration::Simple {
        ca: std::fs::read(&ca).unwrap(),
        alpn: None,
        client_auth: Some((
            std::fs::read(seeded.certs.join("mosquitto.pem")).unwrap(),
            std::fs::read(seeded.certs.join("mosquitto.key")).unwrap(),
        )),
    }));
    let (commander, mut cloud) = client(commander).await;
    commander
        .subscribe("factory/telemetry/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (factory, mut edge) = client(MqttOptions::new("factory", "127.0.0.1", local.port())).await;
    factory
        .subscribe("command", QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    factory
        .publish(
            "factory/telemetry/temperature",
            QoS::AtLeastOnce,
            false,
            b"21.5".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(
        next(&mut cloud).await,
        (
            "factory/telemetry/temperature".to_owned(),
            "21.5".to_owned()
        )
    );
    commander
        .publish("command", QoS::AtLeastOnce, false, b"restart".to_vec())
        .await
        .unwrap();
    assert_eq!(
        next(&mut edge).await,
        ("command".to_owned(), "restart".to_owned())
    );
    if entra {
        let remote = readiness
            .connections
            .iter()
            .find(|c| c.broker == "remote")
            .unwrap();
        let stats = emulator.mqtt_client_stats(&remote.client_id);
        assert_eq!(stats.accepted, 1, "{stats:?}");
    }
    bridge.stop().await;
}
