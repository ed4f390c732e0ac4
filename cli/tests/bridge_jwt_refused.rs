//! Tokens the Event Grid emulator refuses, through the real `e4k bridge run` (the seed's
//! `bridge.yaml`, instance 0, short reconnect backoff): an expired CUSTOM-JWT token file, a
//! Microsoft Entra token for another audience, and a principal with no role assignment. Each
//! is one clear error per attempt in the bridge's log, retried with a growing delay (the
//! emulator counts the CONNECTs), `/readyz` not ready with the reason, and no panic; then the
//! fix (a fresh token in the file, the role assigned through ARM while the bridge retries)
//! makes messages flow at the next attempt. A principal with the subscriber role only is
//! admitted, and what it publishes is refused until the publisher role is assigned.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::time::{Duration, SystemTime};

use e4k_emulator::TokenRequest;
use e4k_emulator::identity::EVENT_GRID_AUDIENCE;
use e4k_tests::Mosquitto;
use e4k_tests::process::LineSubscriber;
use e4k_tests::process::{http_get, wait_until};
use util::Dir;
use util::bridge::{self, BridgeProcess};
use util::emulated::{
    EventGrid, NAMESPACE_AUDIENCE, PRINCIPAL, seed_roles, seed_spec, workspace,
    write_jwt_bridge_yaml,
};

const WAIT: Duration = Duration::from_secs(20);
/// The bridge's longest reconnect delay (`--reconnect-max`); the first is a fifth of it.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A bridge (instance 0 of the seed's three) between the emulator and a default mosquitto.
struct Running {
    local: Mosquitto,
    metrics_port: u16,
    bridge: BridgeProcess,
}

fn start(grid: &EventGrid, d: &Dir, extra: &[&str], env: &[(&str, &str)]) -> Running {
    let local = Mosquitto::start("allow_anonymous true\n").unwrap();
    let metrics_port = e4k_tests::free_port().unwrap();
    let mut args = grid.bridge_args(local.port(), metrics_port);
    let max = format!("{}ms", BACKOFF_MAX.as_millis());
    let initial = format!("{}ms", BACKOFF_MAX.as_millis() / 5);
    args.extend(
        [
            "--instance-index",
            "0",
            "--reconnect-initial",
            &initial,
            "--reconnect-max",
            &max,
        ]
        .map(str::to_owned),
    );
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let bridge = bridge::start(d, &args, env);
    Running {
        local,
        metrics_port,
        bridge,
    }
}

/// A bridge with the emulator's managed identity as its credential, asking for tokens for
/// `audience`, in a new workspace whose spec (the seed's namespace and bindings) assigns
/// `roles`.
fn managed_identity_bridge(roles: &str, audience: &str) -> (EventGrid, Dir, Running) {
    let grid = EventGrid::start();
    let d = Dir::new();
    workspace(&d);
    grid.setup(&d, &seed_spec("", roles));
    write_jwt_bridge_yaml(&d, audience, None);
    let identity = grid.identity_env();
    let env: Vec<(&str, &str)> = identity.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = start(&grid, &d, &["--credential", "managed-identity"], &env);
    (grid, d, run)
}

/// `/readyz` answering 503: its body, the report and the remote connection's entry in it.
fn not_ready(run: &Running) -> (String, serde_json::Value, serde_json::Value) {
    let (status, body) = http_get(run.metrics_port, "/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    let remote = ready["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["broker"] == "remote")
        .unwrap()
        .clone();
    (body, ready, remote)
}

/// `retry_in=…` of a log line, e.g. `212.3ms` or `1.02s`.
fn retry_in(line: &str) -> Duration {
    let value = line
        .split("retry_in=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no retry_in in {line}"));
    let (number, scale) = if let Some(ms) = value.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(us) = value.strip_suffix("µs") {
        (us, 1e-6)
    } else {
        (value.strip_suffix('s').unwrap(), 1.0)
    };
    Duration::from_secs_f64(number.parse::<f64>().unwrap() * scale)
}

/// Waits for two refused attempts of the remote session and checks what the bridge says:
/// every failure line and `/readyz` name each of `causes`; the delays grow; the emulator saw
/// the CONNECTs and admitted none; nothing else went wrong.
fn assert_refused(grid: &EventGrid, run: &Running, causes: &[&str]) {
    let failed = format!(
        "connection to the remote broker {} failed: ",
        grid.endpoint()
    );
    wait_until("two refused attempts", WAIT, || {
        run.bridge.log_lines(&failed).len() >= 2
    });
    let lines = run.bridge.log_lines(&failed);
    for line in &lines {
        for cause in causes {
            assert!(line.contains(cause), "{cause:?} not in {line}");
        }
    }
    // Backoff: 200 ms ± 25 %, then 400 ms ± 25 %.
    assert!(retry_in(&lines[1]) > retry_in(&lines[0]), "{lines:#?}");
    let stats = grid.emulator().mqtt_client_stats("e4k-0");
    assert!(stats.connects >= 2 && stats.accepted == 0, "{stats:?}");
    // One error per attempt: no other warning or error about the remote session.
    let log = run.bridge.log();
    let other: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .filter(|l| l.contains("broker=\"remote\"") && !l.contains(&failed))
        .collect();
    assert!(other.is_empty(), "{other:#?}");
    assert!(!log.contains("panicked"), "{log}");

    let (body, ready, remote) = not_ready(run);
    assert_eq!(ready["ready"], false);
    assert_eq!(remote["connected"], false, "{body}");
    let reason = remote["last_error"].as_str().unwrap();
    for cause in causes {
        assert!(reason.contains(cause), "{cause:?} not in {reason}");
    }
}

/// `/readyz` turns 200 within `timeout`, and a telemetry message published on the factory
/// broker reaches the cloud.
fn messages_flow(grid: &EventGrid, d: &Dir, run: &Running, timeout: Duration) {
    wait_until("/readyz 200", timeout, || {
        matches!(http_get(run.metrics_port, "/readyz"), Some((200, _)))
    });
    assert!(
        telemetry_reaches_cloud(grid, d, run),
        "{}",
        run.bridge.log()
    );
}

/// Publishes a telemetry message on the factory broker; whether the commander receives it in
/// the cloud (within 5 s).
fn telemetry_reaches_cloud(grid: &EventGrid, d: &Dir, run: &Running) -> bool {
    let mut args: Vec<String> = [
        "-q",
        "1",
        "-t",
        "factory/telemetry/#",
        "-V",
        "mqttv5",
        "-C",
        "1",
        "-W",
        "5",
        "-v",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(grid.cloud(d).args());
    let sub = LineSubscriber::start(d.dir.path(), &args);
    publish_telemetry(run);
    sub.finish()
        .iter()
        .any(|l| l == "factory/telemetry/temperature 21.5")
}

/// `mosquitto_pub` of one telemetry message on the factory broker.
fn publish_telemetry(run: &Running) {
    let published = std::process::Command::new("mosquitto_pub")
        .args([
            "-q",
            "1",
            "-t",
            "factory/telemetry/temperature",
            "-m",
            "21.5",
        ])
        .args(["-h", "127.0.0.1", "-p", &run.local.port().to_string()])
        .status()
        .unwrap();
    assert!(published.success());
}

#[test]
fn an_expired_token_file_is_refused_until_a_fresh_token_replaces_it() {
    let grid = EventGrid::start();
    let d = Dir::new();
    let idp = grid.setup_custom_jwt(&d, "");
    let token = |issued: SystemTime| {
        idp.token(
            &TokenRequest::custom("factory-bridge", NAMESPACE_AUDIENCE)
                .issued_at(issued)
                .lifetime(Duration::from_secs(3600)),
        )
        .unwrap()
    };
    let expired = token(SystemTime::now() - Duration::from_secs(7200));
    let file = d.path("eventgrid-token");
    std::fs::write(&file, &expired).unwrap();
    write_jwt_bridge_yaml(&d, EVENT_GRID_AUDIENCE, Some(&file));
    let mut run = start(&grid, &d, &[], &[]);
    assert_refused(
        &grid,
        &run,
        &[
            "CONNACK reason BadUserNamePassword",
            "(the CUSTOM-JWT token expired 3",
        ],
    );
    // The file is read at each attempt: a renewed token is used at the next one.
    let fresh = token(SystemTime::now());
    std::fs::write(&file, &fresh).unwrap();
    messages_flow(&grid, &d, &run, 2 * BACKOFF_MAX + WAIT / 4);
    let log = run.bridge.stop_cleanly();
    for secret in [&expired, &fresh] {
        assert!(!log.contains(secret.as_str()), "{log}");
    }
}

#[test]
fn a_token_for_another_audience_is_refused() {
    // The principal holds its roles: only the audience is wrong.
    let (grid, _d, mut run) =
        managed_identity_bridge(&seed_roles(PRINCIPAL), "https://management.azure.com/");
    assert_refused(
        &grid,
        &run,
        &[
            "CONNACK reason BadUserNamePassword",
            "the broker refused the Microsoft Entra token for https://management.azure.com/",
            "the namespace expects another audience",
        ],
    );
    run.bridge.stop_cleanly();
}

#[test]
fn a_principal_without_roles_is_refused_until_a_role_is_assigned_through_arm() {
    // The seed's namespace and bindings, but no role for the bridge's principal.
    let (grid, d, mut run) = managed_identity_bridge("", EVENT_GRID_AUDIENCE);
    assert_refused(
        &grid,
        &run,
        &[
            "CONNACK reason NotAuthorized",
            "its principal has no EventGrid TopicSpaces Publisher/Subscriber role assignment",
        ],
    );
    // While the bridge retries, the user adds the roles to the spec and applies it: ARM PUTs
    // of the role assignments, which the data plane follows (setup waits for that). The next
    // attempt, at most one backoff period later, is admitted (the timeout leaves room for a
    // loaded machine).
    grid.setup(&d, &seed_spec("", &seed_roles(PRINCIPAL)));
    messages_flow(&grid, &d, &run, 2 * BACKOFF_MAX + WAIT / 4);
    let stats = grid.emulator().mqtt_client_stats("e4k-0");
    assert_eq!(stats.accepted, 1, "{stats:?}");
    run.bridge.stop_cleanly();
}

#[test]
fn a_principal_without_the_publisher_role_has_its_telemetry_refused_until_assigned() {
    let subscriber_only = format!(
        "roleAssignments:\n  - {{ principalId: {PRINCIPAL}, role: subscriber, topicSpace: command }}\n"
    );
    let (grid, d, mut run) = managed_identity_bridge(&subscriber_only, EVENT_GRID_AUDIENCE);
    // A role in the namespace admits the session; the broker refuses what it publishes.
    wait_until("/readyz 200", WAIT, || {
        matches!(http_get(run.metrics_port, "/readyz"), Some((200, _)))
    });
    publish_telemetry(&run);
    let refused = "the remote broker refused a message the bridge published on \
                   `factory/telemetry/temperature`: NotAuthorized";
    wait_until("the refusal logged", WAIT, || {
        run.bridge.log_lines(refused).len() == 1
    });
    let (body, _, remote) = not_ready(&run);
    assert_eq!(
        (&remote["connected"], &remote["publishes_refused"]),
        (&true.into(), &true.into()),
        "{body}"
    );
    assert!(
        remote["last_error"].as_str().unwrap().contains(refused),
        "{body}"
    );
    // The publisher role, PUT through ARM, applies to the live session: the next message
    // flows and the bridge is ready again, without a reconnect.
    grid.setup(&d, &seed_spec("", &seed_roles(PRINCIPAL)));
    assert!(
        telemetry_reaches_cloud(&grid, &d, &run),
        "{}",
        run.bridge.log()
    );
    wait_until("/readyz 200", WAIT, || {
        matches!(http_get(run.metrics_port, "/readyz"), Some((200, _)))
    });
    let stats = grid.emulator().mqtt_client_stats("e4k-0");
    assert_eq!((stats.connects, stats.accepted), (1, 1), "{stats:?}");
    let log = run.bridge.stop_cleanly();
    assert!(!log.contains("connection to the remote broker"), "{log}");
}
