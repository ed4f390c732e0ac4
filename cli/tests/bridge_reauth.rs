//! Token refresh on a live session, end to end: the real `e4k bridge run --credential
//! managed-identity` gets Microsoft Entra tokens that live 20 s from the emulator's
//! managed-identity endpoint (`IDENTITY_ENDPOINT`/`IDENTITY_HEADER`, as App Service and Arc
//! provide them), connects to the emulator's MQTT broker with `OAUTH2-JWT`, authorized by role
//! assignments, while 1,000 QoS 1 messages a second flow for 60 s from a local mosquitto at
//! its installed defaults to a `mosquitto_sub` in the cloud (the seed's commander, X.509).
//! The bridge must re-authenticate (MQTT 5 AUTH, reason 0x19) before each token expires: the
//! emulator counts the bridge's CONNECTs (one), its re-authentications (≥ 2) and sessions
//! ended by an expired token (none); nothing is lost; and no token text shows in the bridge's
//! logs at `-vvv` or in `/metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use e4k_emulator::{DataRole, Emulator, EmulatorConfig, IdentityConfig};
use e4k_tests::bridge::{ConnectorYaml, metric};
use e4k_tests::process::{Process, http_get, wait_until};
use e4k_tests::{Mosquitto, faults, free_port, seed};
use util::Dir;
use util::bridge;
use util::emulated::{EventGrid, bridge_args};

/// The seed namespace that [`seed::up`] creates.
const NAMESPACE: &str = "/subscriptions/00000000-0000-0000-0000-00000000e4ed/resourceGroups/e4k/\
                         providers/Microsoft.EventGrid/namespaces/e4k-mqtt";
const TOKEN_LIFETIME: Duration = Duration::from_secs(20);
const LOAD: Duration = Duration::from_secs(60);
/// Messages per 10 ms tick: 1,000 a second.
const PER_TICK: u64 = 10;

/// The one route: telemetry to the cloud.
const ROUTES: &str = "    - direction: local-to-remote
      name: telemetry
      qos: 1
      source: factory/telemetry/#
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_20_s_are_refreshed_on_the_live_session_under_load() {
    let d = Dir::new();
    let emulator = Emulator::start(EmulatorConfig {
        lro_delay: Duration::ZERO,
        identity: IdentityConfig {
            token_lifetime: TOKEN_LIFETIME,
            ..IdentityConfig::default()
        },
        ..EventGrid::config()
    })
    .await
    .expect("the emulator starts with mosquitto");
    let seeded = seed::up(&d.path(""), &emulator.base_url()).await.unwrap();
    let principal = IdentityConfig::default().principal_id;
    for (name, role) in [
        ("bridge-publisher", DataRole::Publisher),
        ("bridge-subscriber", DataRole::Subscriber),
    ] {
        emulator
            .assign_role(name, &principal, role, NAMESPACE)
            .unwrap();
    }
    assert!(emulator.mqtt_synced(Duration::from_secs(5)).await);
    let cloud = emulator.mqtt_addr().unwrap();
    let ca = emulator.mqtt_ca_pem_path().unwrap().to_path_buf();
    let local = Mosquitto::start(&faults::local_listener(None)).unwrap();

    // The cloud subscriber: the seed's commander, reading telemetry.
    let received = d.path("received.txt");
    let sub_err = d.path("sub.err");
    let _subscriber = Process(
        Command::new("mosquitto_sub")
            // A window of 1,000 toward the subscriber (mosquitto_sub announces 20): the
            // emulator's broker queues only 100 more for a connected subscriber, so a
            // subscriber that falls behind on a loaded machine would lose messages that the
            // bridge delivered (see emulator/README.md).
            .args(["-V", "mqttv5", "-D", "connect", "receive-maximum", "1000"])
            .args(["-q", "1", "-t", "factory/telemetry/#", "-h"])
            .arg("localhost")
            .args([
                "-p",
                &cloud.port().to_string(),
                "-i",
                "mosquitto",
                "--cafile",
            ])
            .arg(&ca)
            .arg("--cert")
            .arg(seeded.certs.join("mosquitto.pem"))
            .arg("--key")
            .arg(seeded.certs.join("mosquitto.key"))
            .stdout(std::fs::File::create(&received).unwrap())
            .stderr(std::fs::File::create(&sub_err).unwrap())
            .spawn()
            .expect("mosquitto_sub runs"),
    );

    let yaml = ConnectorYaml {
        remote_audience: Some("https://eventgrid.azure.net/"),
        ..ConnectorYaml::new("jwt-bridge", ROUTES)
    }
    .render();
    std::fs::write(d.path("bridge.yaml"), yaml).unwrap();
    let metrics_port = free_port().unwrap();
    let identity = emulator.identity_env();
    let env: Vec<(&str, &str)> = identity.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut args = vec!["-vvv", "--credential", "managed-identity"];
    let bridge_args = bridge_args(&emulator, local.port(), metrics_port);
    args.extend(bridge_args.iter().map(String::as_str));
    let bridge = bridge::start(&d, &args, &env);
    let bridge_log = || bridge.log();
    wait_until("the bridge to be ready", Duration::from_secs(20), || {
        http_get(metrics_port, "/readyz").is_some_and(|(status, _)| status == 200)
    });
    // The subscriber is in once the emulator saw its CONNECT and a moment passed.
    wait_until("mosquitto_sub to connect", Duration::from_secs(10), || {
        emulator.mqtt_client_stats("mosquitto").accepted >= 1
    });
    let _ = &sub_err;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let port = local.port();
    let published = tokio::task::spawn_blocking(move || {
        faults::publish_sequence(port, "factory-pub", "factory/telemetry/seq", PER_TICK, LOAD)
    })
    .await
    .unwrap()
    .unwrap();

    // Everything arrives.
    let arrived = |text: &str| -> BTreeSet<u64> {
        text.lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let got = arrived(&std::fs::read_to_string(&received).unwrap_or_default());
        if got.len() as u64 >= published.sent || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let missing: Vec<u64> = (0..published.sent).filter(|n| !got.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} messages lost (first {:?})\nbridge log tail:\n{}",
        missing.len(),
        published.sent,
        &missing[..missing.len().min(10)],
        tail(&bridge_log())
    );

    let stats = emulator.mqtt_client_stats("jwt-bridge-0");
    let (_, metrics) = http_get(metrics_port, "/metrics").unwrap();
    let reauthenticated = metric(&metrics, "e4k_bridge_connection_reauthenticated_total");
    eprintln!(
        "{} messages at {:.0}/s over {} s with {} s tokens: bridge CONNECTs {}, \
         re-authentications {} (bridge metric {reauthenticated}), expired {}",
        published.sent,
        published.rate,
        LOAD.as_secs(),
        TOKEN_LIFETIME.as_secs(),
        stats.connects,
        stats.reauthentications,
        stats.expired
    );
    assert_eq!(
        stats.connects,
        1,
        "the session reconnected:\n{}",
        tail(&bridge_log())
    );
    assert!(
        stats.reauthentications >= 2,
        "{stats:?}\n{}",
        tail(&bridge_log())
    );
    assert_eq!(stats.expired, 0);
    assert_eq!(stats.reauthentication_failures, 0);
    assert!(reauthenticated >= 2.0, "{metrics}");

    // No token text anywhere: every JWT starts with a base64url `{"` (`eyJ`).
    let logs = bridge_log();
    drop(bridge);
    assert!(
        logs.contains("re-authenticating with a new token"),
        "{}",
        tail(&logs)
    );
    for (place, text) in [
        ("the -vvv log", logs.as_str()),
        ("/metrics", metrics.as_str()),
    ] {
        assert!(
            !text.contains("eyJ"),
            "token text in {place}: {}",
            text.lines().find(|l| l.contains("eyJ")).unwrap_or_default()
        );
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
