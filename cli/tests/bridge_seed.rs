//! The seed walkthrough (`templates/bridge.yaml`, "Use MQTT bridge to connect to Azure Event
//! Grid"), automated: a plain local mosquitto, a TLS mosquitto standing in for Event Grid
//! (`require_certificate`, `use_identity_as_username`, an ACL with the seed's permissions),
//! certificates from `e4k certs`, the real `e4k bridge run` with only the endpoints (and the
//! stand-in's CA) given on the command line, and `mosquitto_pub` / `mosquitto_sub` as the
//! seed runs them (the steps of `util::seed`, which `bridge_jwt_seed.rs` runs through the
//! emulator with JWT authentication).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use e4k_tests::Mosquitto;
use e4k_tests::process::{http_get, wait_until};
use util::Dir;
use util::bridge::{self, BridgeProcess};
use util::seed::{Cloud, Walkthrough};

/// The seed's Event Grid permissions: the bridge publishes telemetry and receives commands;
/// the `mosquitto` commander publishes commands and reads telemetry.
const ACL: &str = "\
user mqttbridge
topic write factory/telemetry/#
topic read command/#

user mosquitto
topic write command/#
topic read factory/telemetry/#
";

fn start_bridge(dir: &Dir, args: &[&str]) -> BridgeProcess {
    bridge::start(dir, args, &[])
}

/// `e4k bridge run --config config` with the endpoints of `remote` and `local` and the files
/// of [`pki_and_remote_config`], plus `extra` arguments.
fn start_seed_bridge(
    dir: &Dir,
    config: &str,
    remote: &Mosquitto,
    local: &Mosquitto,
    extra: &[&str],
) -> BridgeProcess {
    let remote_endpoint = format!("localhost:{}", remote.port());
    let local_endpoint = format!("127.0.0.1:{}", local.port());
    let mut args = vec![
        "--config",
        config,
        "--remote-endpoint",
        &remote_endpoint,
        "--local-endpoint",
        &local_endpoint,
        "--secrets-dir",
        "secrets",
        "--configmaps-dir",
        "configmaps",
        "--remote-ca-file",
        "pki/certs/root_ca.crt",
    ];
    args.extend_from_slice(extra);
    start_bridge(dir, &args)
}

/// A mosquitto command-line client (`mosquitto_sub`, `mosquitto_pub`) run in the test
/// directory, its output captured.
fn mosquitto_client(d: &Dir, tool: &str) -> Command {
    let mut command = Command::new(tool);
    command
        .current_dir(d.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn seed_yaml() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../templates/bridge.yaml")
        .display()
        .to_string()
}

/// Sets up the PKI and the remote broker's files: returns (remote listener config).
fn pki_and_remote_config(d: &Dir) -> String {
    d.init_pki(&[]);
    d.create_localhost_server("broker", &["--bundle"]).ok();
    // As the seed: `step certificate create mqttbridge ... --not-after 2400h`.
    d.create("mqttbridge", &["--not-after", "2400h"]).ok();
    d.create("mosquitto", &["--not-after", "2400h", "--bundle"])
        .ok();
    // The secret, as `kubectl create secret generic ... --from-file=...` lays it out.
    let secret = d.path("secrets/bridge-client-cert");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::copy(d.path("mqttbridge.pem"), secret.join("client_cert.pem")).unwrap();
    std::fs::copy(d.path("mqttbridge.key"), secret.join("client_key.pem")).unwrap();
    std::fs::copy(
        d.path("pki/certs/intermediate_ca.crt"),
        secret.join("client_intermediate_certs.pem"),
    )
    .unwrap();
    std::fs::create_dir_all(d.path("configmaps")).unwrap();
    std::fs::write(d.path("acl"), ACL).unwrap();
    let dir = d.dir.path().display();
    format!(
        "cafile {dir}/pki/certs/root_ca.crt\n\
         certfile {dir}/broker.pem\n\
         keyfile {dir}/broker.key\n\
         require_certificate true\n\
         use_identity_as_username true\n\
         allow_anonymous false\n\
         acl_file {dir}/acl\n"
    )
}

/// The seed's commander on the stand-in, with the certificates of [`pki_and_remote_config`].
fn cloud(d: &Dir, remote: &Mosquitto) -> Cloud {
    Cloud {
        port: remote.port(),
        ca: d.path("pki/certs/root_ca.crt"),
        cert: d.path("mosquitto.pem"),
        key: d.path("mosquitto.key"),
    }
}

fn remote_tls(d: &Dir, remote: &Mosquitto) -> Vec<String> {
    cloud(d, remote).args()
}

#[test]
fn seed_walkthrough_through_e4k_bridge_run() {
    let d = Dir::new();
    let remote = Mosquitto::start(&pki_and_remote_config(&d)).unwrap();
    let local = Mosquitto::start("allow_anonymous true\n").unwrap();
    let metrics_port = e4k_tests::free_port().unwrap();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let mut bridge = start_seed_bridge(
        &d,
        &seed_yaml(),
        &remote,
        &local,
        &["--metrics-listen", &metrics_listen],
    );
    Walkthrough {
        dir: d.dir.path(),
        cloud: cloud(&d, &remote),
        local_port: local.port(),
        metrics_port,
        bridge: &bridge,
    }
    .run();

    // SIGTERM: drain, disconnect, exit 0.
    bridge.stop_cleanly();
    assert!(
        remote.log().contains("Client e4k-0 disconnected"),
        "clean DISCONNECT:\n{}",
        remote.log()
    );
}

/// The seed with `protocol: v3`: every session is MQTT 3.1.1 (`p2` in mosquitto's log), and
/// the seed's walkthrough works with 3.1.1 clients on both sides (`-V mqttv311`).
#[test]
fn seed_walkthrough_with_protocol_v3() {
    let d = Dir::new();
    let remote = Mosquitto::start(&pki_and_remote_config(&d)).unwrap();
    let local = Mosquitto::start("allow_anonymous true\n").unwrap();
    let seed = std::fs::read_to_string(seed_yaml()).unwrap();
    assert!(seed.contains("protocol: v5"));
    std::fs::write(
        d.path("bridge-v3.yaml"),
        seed.replace("protocol: v5", "protocol: v3"),
    )
    .unwrap();
    let mut bridge = start_seed_bridge(&d, "bridge-v3.yaml", &remote, &local, &[]);
    wait_until(
        "3 MQTT 3.1.1 sessions on the remote",
        Duration::from_secs(20),
        || {
            let log = remote.log();
            (0..3).all(|k| log.contains(&format!(" as e4k-{k} (p2, c0,")))
        },
    );
    // The seed's local broker authentication is a service account token, which 3.1.1
    // cannot carry: the bridge says so and connects without it.
    assert!(
        bridge
            .log()
            .contains("needs MQTT 5 enhanced authentication"),
        "{}",
        bridge.log()
    );
    let local_port = local.port().to_string();
    let v3 = ["-V", "mqttv311"];

    // Commands from the cloud.
    let sub = mosquitto_client(&d, "mosquitto_sub")
        .args(["-t", "command", "-i", "sub_1", "-q", "1", "-h", "127.0.0.1"])
        .args(["-p", &local_port, "-C", "1", "-W", "20"])
        .args(v3)
        .spawn()
        .unwrap();
    wait_until("sub_1 subscribed", Duration::from_secs(10), || {
        local.log().contains("sub_1 1 command")
    });
    let publish = mosquitto_client(&d, "mosquitto_pub")
        .args([
            "-q",
            "1",
            "-t",
            "command",
            "-m",
            "a 3.1.1 command",
            "-i",
            "mosquitto",
        ])
        .args(v3)
        .args(remote_tls(&d, &remote))
        .output()
        .unwrap();
    assert!(publish.status.success(), "{publish:?}");
    let got = sub.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got.stdout),
        "a 3.1.1 command\n",
        "{got:?}\nbridge log:\n{}",
        bridge.log()
    );

    // Telemetry and, through the ShareTest group, alerts.
    let telemetry = mosquitto_client(&d, "mosquitto_sub")
        .args([
            "-q",
            "1",
            "-t",
            "factory/telemetry/#",
            "-i",
            "mosquitto_sub",
        ])
        .args(["-C", "30", "-W", "30", "-v"])
        .args(v3)
        .args(remote_tls(&d, &remote))
        .spawn()
        .unwrap();
    wait_until("telemetry subscriber", Duration::from_secs(10), || {
        remote.log().contains("mosquitto_sub 1 factory/telemetry/#")
    });
    for (topic, message) in [
        ("factory/telemetry/temperature", "t"),
        ("factory/telemetry/anomaly/high-temperature", "alert"),
    ] {
        let status = Command::new("mosquitto_pub")
            .args(["-q", "1", "-t", topic, "-m", message, "--repeat", "10"])
            .args(["-h", "127.0.0.1", "-p", &local_port])
            .args(v3)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let got = telemetry.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&got.stdout).into_owned();
    let count = |needle: &str| lines.lines().filter(|l| *l == needle).count();
    // Anomalies match both the telemetry route (own topic) and the alert route.
    assert_eq!(
        (
            count("factory/telemetry/temperature t"),
            count("factory/telemetry/anomaly/high-temperature alert"),
            count("factory/telemetry/alert alert"),
        ),
        (10, 10, 10),
        "{lines}\nbridge log:\n{}",
        bridge.log()
    );
    let status = bridge.terminate();
    assert!(status.success(), "{}", bridge.log());
}

#[test]
fn unreachable_remote_is_logged_and_not_ready_until_sigterm() {
    let d = Dir::new();
    pki_and_remote_config(&d);
    let local = Mosquitto::start("allow_anonymous true\n").unwrap();
    let nothing = e4k_tests::free_port().unwrap();
    let metrics_port = e4k_tests::free_port().unwrap();
    let remote_endpoint = format!("localhost:{nothing}");
    let local_endpoint = format!("127.0.0.1:{}", local.port());
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let config = seed_yaml();
    let mut bridge = start_bridge(
        &d,
        &[
            "--config",
            &config,
            "--remote-endpoint",
            &remote_endpoint,
            "--local-endpoint",
            &local_endpoint,
            "--secrets-dir",
            "secrets",
            "--remote-ca-file",
            "pki/certs/root_ca.crt",
            "--metrics-listen",
            &metrics_listen,
            "--reconnect-initial",
            "100ms",
            "--reconnect-max",
            "400ms",
        ],
    );
    wait_until("a logged connection error", Duration::from_secs(20), || {
        bridge.log().matches("connection refused").count() >= 6
    });
    let (status, body) = http_get(metrics_port, "/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("connection refused"), "{body}");
    let log = bridge.log();
    assert!(
        log.contains(&format!(
            "connection to the remote broker localhost:{nothing} failed: connection refused"
        )),
        "{log}"
    );
    let status = bridge.terminate();
    assert!(status.success(), "{status:?}\n{}", bridge.log());
    assert!(!bridge.log().contains("panicked"));
}

#[test]
fn validate_reports_every_problem() {
    let d = Dir::new();
    pki_and_remote_config(&d);
    let config = seed_yaml();
    let run = d.e4k(&[
        "bridge",
        "validate",
        "--config",
        &config,
        "--secrets-dir",
        "secrets",
        "--remote-ca-file",
        "pki/certs/root_ca.crt",
    ]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.contains("valid"), "{run:#?}");

    let run = d.e4k(&[
        "--output",
        "json",
        "bridge",
        "validate",
        "--config",
        &config,
        "--secrets-dir",
        "nowhere",
    ]);
    assert_eq!(run.code, 1, "{run:#?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["valid"], false);
    let problems = report["problems"]["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["message"]
            .as_str()
            .unwrap()
            .contains("bridge-client-cert")),
        "{report:#}"
    );

    let run = d.e4k(&["bridge", "run", "--config", "missing.yaml"]);
    assert_eq!(run.code, 2, "{run:#?}");
}
