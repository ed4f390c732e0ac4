//! No token text anywhere: `e4k -vvv --output json bridge run` with `RUST_LOG=trace`, one
//! connector on a Microsoft Entra token from the emulator's managed identity (OAUTH2-JWT)
//! and one on a known CUSTOM-JWT token file, forwarding messages both ways through the
//! emulator. Neither token, nor its signature, nor the header every token of its issuer
//! starts with, shows in the bridge's stderr or stdout, `/metrics`, `/readyz`, or the JSON
//! of `e4k bridge validate` and `e4k bridge spool inspect` (also at `-vvv` and trace).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e4k_emulator::{TokenIssuer, TokenRequest};
use e4k_tests::Mosquitto;
use e4k_tests::bridge::ConnectorYaml;
use e4k_tests::process::LineSubscriber;
use e4k_tests::process::{http_get, wait_until};
use util::Dir;
use util::bridge;
use util::emulated::{EventGrid, NAMESPACE_AUDIENCE, PRINCIPAL, seed_roles};

/// The resource azure_identity asks the managed-identity endpoint for: the scope
/// `https://eventgrid.azure.net/.default` without `/.default`.
const RESOURCE: &str = "https://eventgrid.azure.net";

/// Two connectors: `entra` (OAUTH2-JWT, the managed identity) and `custom` (CUSTOM-JWT from
/// `token_file`), each forwarding telemetry to the cloud and commands from it.
fn bridge_yaml(token_file: &std::path::Path) -> String {
    let routes = "    - { direction: local-to-remote, name: telemetry, source: \"factory/telemetry/#\", qos: 1 }
    - { direction: remote-to-local, name: commands, source: \"command/#\", qos: 1 }
";
    let token_file = format!("\"{}\"", token_file.display());
    let connector = |name: &str, annotations| {
        ConnectorYaml {
            prefix: name,
            remote_audience: Some("https://eventgrid.azure.net/"),
            log_level: Some("debug"),
            annotations,
            ..ConnectorYaml::new(&format!("{name}-bridge"), routes)
        }
        .render()
    };
    format!(
        "{}---\n{}",
        connector("entra", &[]),
        connector(
            "custom",
            &[("e4k.dev/remote-jwt-token-file", token_file.as_str())]
        )
    )
}

/// A token from the emulator's managed-identity endpoint, requested as azure_identity does.
fn managed_identity_token(grid: &EventGrid) -> String {
    let emulator = grid.emulator();
    let header = emulator.identity_env()[1].1.clone();
    let mut stream = TcpStream::connect(emulator.local_addr()).unwrap();
    write!(
        stream,
        "GET /msi/token?api-version=2019-08-01&resource=https%3A%2F%2Feventgrid.azure.net \
         HTTP/1.1\r\nHost: 127.0.0.1\r\nX-IDENTITY-HEADER: {header}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1;
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Every token the managed-identity endpoint can have issued from `from` to `to` (Unix
/// seconds): its tokens differ only in `iat`/`nbf`/`exp`, and RS256 signatures are
/// deterministic.
fn managed_identity_tokens(grid: &EventGrid, from: u64, to: u64) -> Vec<String> {
    (from..=to)
        .map(|second| {
            grid.emulator()
                .token_issuer()
                .token(
                    &TokenRequest::entra(PRINCIPAL, RESOURCE)
                        .issued_at(UNIX_EPOCH + Duration::from_secs(second))
                        .lifetime(Duration::from_secs(3600)),
                )
                .unwrap()
        })
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The header (first part) of the tokens `issuer` signs.
fn header(issuer: &TokenIssuer) -> String {
    let token = issuer
        .token(&TokenRequest::custom("x", NAMESPACE_AUDIENCE))
        .unwrap();
    token.split('.').next().unwrap().to_owned()
}

#[test]
fn no_token_text_in_logs_metrics_readiness_or_json_output() {
    let started = unix_now();
    let grid = EventGrid::start();
    let d = Dir::new();
    let idp = grid.setup_custom_jwt(&d, &seed_roles(PRINCIPAL));
    let custom_token = idp
        .token(&TokenRequest::custom("factory-bridge", NAMESPACE_AUDIENCE))
        .unwrap();
    let token_file = d.path("eventgrid-token");
    std::fs::write(&token_file, &custom_token).unwrap();
    std::fs::write(d.path("bridge.yaml"), bridge_yaml(&token_file)).unwrap();

    let local = Mosquitto::start("allow_anonymous true\n").unwrap();
    let metrics_port = e4k_tests::free_port().unwrap();
    let mut args = grid.bridge_args(local.port(), metrics_port);
    args.extend(
        [
            "-vvv",
            "--output",
            "json",
            "--credential",
            "managed-identity",
            "--spool-dir",
            "spool",
        ]
        .map(str::to_owned),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let identity = grid.identity_env();
    let mut env: Vec<(&str, &str)> = identity.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("RUST_LOG", "trace"));
    let mut bridge = bridge::start(&d, &args, &env);
    // With a spool, /readyz is 200 while a broker is still down: wait for every session.
    wait_until("4 sessions connected", Duration::from_secs(20), || {
        let Some((200, body)) = http_get(metrics_port, "/readyz") else {
            return false;
        };
        let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
        let connections = ready["connections"].as_array().unwrap();
        connections.len() == 4
            && connections
                .iter()
                .all(|c| c["connected"] == true && c["subscribed"] == true)
    });

    // Traffic both ways: one telemetry message reaches the cloud through both connectors,
    // one command reaches the factory through both.
    let cloud = grid.cloud(&d).args();
    let mut sub_args: Vec<String> = ["-q", "1", "-t", "factory/telemetry/#", "-V", "mqttv5"]
        .map(str::to_owned)
        .to_vec();
    sub_args.extend(["-C", "2", "-W", "20", "-v"].map(str::to_owned));
    sub_args.extend(cloud.iter().cloned());
    let telemetry = LineSubscriber::start(d.dir.path(), &sub_args);
    let local_port = local.port().to_string();
    let commands = LineSubscriber::start(
        d.dir.path(),
        &[
            "-q",
            "1",
            "-t",
            "command",
            "-V",
            "mqttv5",
            "-h",
            "127.0.0.1",
            "-p",
            &local_port,
            "-C",
            "2",
            "-W",
            "20",
        ],
    );
    let status = std::process::Command::new("mosquitto_pub")
        .args(["-q", "1", "-t", "factory/telemetry/t", "-m", "21.5"])
        .args(["-h", "127.0.0.1", "-p", &local_port])
        .status()
        .unwrap();
    assert!(status.success());
    let status = std::process::Command::new("mosquitto_pub")
        .args(["-q", "1", "-t", "command", "-m", "stop", "-i", "mosquitto"])
        .args(&cloud)
        .status()
        .unwrap();
    assert!(status.success());
    let lines = telemetry.finish();
    let got = lines
        .iter()
        .filter(|l| *l == "factory/telemetry/t 21.5")
        .count();
    assert_eq!(got, 2, "{lines:#?}\n{}", bridge.log());
    let lines = commands.finish();
    assert_eq!(
        lines.iter().filter(|l| *l == "stop").count(),
        2,
        "{lines:#?}\n{}",
        bridge.log()
    );

    // Everything the bridge and its commands show.
    let mut shown: Vec<(String, String)> = Vec::new();
    for path in ["/metrics", "/readyz"] {
        let (status, body) = http_get(metrics_port, path).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        shown.push((path.to_owned(), body));
    }
    let trace = [("RUST_LOG", "trace")];
    for command in [
        &[
            "-vvv",
            "--output",
            "json",
            "bridge",
            "validate",
            "--config",
            "bridge.yaml",
        ][..],
        &[
            "-vvv",
            "--output",
            "json",
            "bridge",
            "spool",
            "inspect",
            "--spool-dir",
            "spool",
        ],
    ] {
        let run = d.e4k_env(command, &trace).ok();
        serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap();
        shown.push((format!("{command:?} stdout"), run.stdout));
        shown.push((format!("{command:?} stderr"), run.stderr));
    }
    bridge.stop_cleanly();
    let log = bridge.log();
    // At trace, the log shows the CONNECTs and the identity requests: enough to leak.
    assert!(log.contains("TRACE"), "{log}");
    assert!(log.contains("/msi/token"), "{log}");
    assert!(log.contains("method=\"CUSTOM-JWT\""), "{log}");
    shown.push(("bridge run stderr".into(), log));
    shown.push(("bridge run stdout".into(), bridge.stdout()));

    // The candidates for the bridge's Entra token are right: a token the test asks for now
    // is one of them.
    let now = unix_now();
    let fetched = managed_identity_token(&grid);
    assert!(managed_identity_tokens(&grid, now, now + 1).contains(&fetched));
    let mut secrets = managed_identity_tokens(&grid, started - 1, now + 1);
    secrets.push(custom_token);
    let mut needles: Vec<String> = Vec::new();
    for token in &secrets {
        needles.push(token.clone());
        needles.push(token.rsplit('.').next().unwrap().to_owned());
    }
    needles.push(header(grid.emulator().token_issuer()));
    needles.push(header(&idp));
    for (place, text) in &shown {
        for needle in &needles {
            assert!(
                !text.contains(needle.as_str()),
                "token text {needle} in {place}:\n{text}"
            );
        }
    }
}
