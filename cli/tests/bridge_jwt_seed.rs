//! The seed walkthrough (`util::seed`, as `bridge_seed.rs` runs it with X.509) through the
//! Event Grid emulator with the bridge on a JWT instead of a certificate:
//!
//! - `OAUTH2-JWT`: `e4k bridge run --credential managed-identity` gets a Microsoft Entra token
//!   from the emulator's managed-identity endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER), and
//!   the emulator admits its principal because `e4k eventgrid setup` PUT the spec's
//!   `roleAssignments` through ARM;
//! - `CUSTOM-JWT`: a token file signed by an issuer whose certificate the spec's
//!   `customJwtAuthentication` uploads with the namespace.
//!
//! The factory broker is a mosquitto at its defaults, the commander the seed's `mosquitto`
//! client with its certificate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::time::Duration;

use e4k_emulator::identity::EVENT_GRID_AUDIENCE;
use e4k_emulator::{ResourceKind, TokenIssuer, TokenRequest, Verb};
use e4k_tests::Mosquitto;
use util::Dir;
use util::bridge;
use util::emulated::{
    EventGrid, NAMESPACE_AUDIENCE, PRINCIPAL, seed_roles, seed_spec, workspace,
    write_jwt_bridge_yaml,
};
use util::seed::Walkthrough;

/// The first part of every JWT `issuer` signs (its header names its key): no log line may hold
/// it, or a token of that issuer was logged.
fn token_header(issuer: &TokenIssuer) -> String {
    let token = issuer
        .token(&TokenRequest::custom("probe", NAMESPACE_AUDIENCE))
        .unwrap();
    token.split('.').next().unwrap().to_owned()
}

/// Runs the walkthrough against the bridge started with `env` and `extra` arguments, then
/// stops it; returns its log.
fn walkthrough(grid: &EventGrid, d: &Dir, extra: &[&str], env: &[(&str, &str)]) -> String {
    let local = Mosquitto::start("allow_anonymous true\n").unwrap();
    let metrics_port = e4k_tests::free_port().unwrap();
    let mut args = grid.bridge_args(local.port(), metrics_port);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut bridge = bridge::start(d, &args, env);
    Walkthrough {
        dir: d.dir.path(),
        cloud: grid.cloud(d),
        local_port: local.port(),
        metrics_port,
        bridge: &bridge,
    }
    .run();
    // Each remote session was admitted once: no refusals, no reconnects.
    for k in 0..3 {
        let stats = grid.emulator().mqtt_client_stats(&format!("e4k-{k}"));
        assert_eq!(
            (stats.connects, stats.accepted),
            (1, 1),
            "e4k-{k}: {stats:?}"
        );
    }
    bridge.stop_cleanly()
}

#[test]
fn seed_walkthrough_with_a_managed_identity_token() {
    let grid = EventGrid::start();
    let d = Dir::new();
    workspace(&d);
    grid.setup(&d, &seed_spec("", &seed_roles(PRINCIPAL)));
    // The spec's two role assignments went to ARM as PUTs of
    // Microsoft.Authorization/roleAssignments (publisher on telemetry, subscriber on command).
    let emulator = grid.emulator();
    assert_eq!(
        emulator
            .stats()
            .count(Verb::Put, ResourceKind::RoleAssignment),
        2
    );
    let puts: Vec<String> = emulator
        .captured_requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/roleAssignments/"))
        .map(|r| r.path)
        .collect();
    assert!(
        puts.iter()
            .any(|p| p.contains("/topicSpaces/telemetry/providers/Microsoft.Authorization/")),
        "{puts:#?}"
    );
    write_jwt_bridge_yaml(&d, EVENT_GRID_AUDIENCE, None);
    let identity = grid.identity_env();
    let env: Vec<(&str, &str)> = identity.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let log = walkthrough(&grid, &d, &["--credential", "managed-identity"], &env);
    assert!(
        !log.contains(&token_header(emulator.token_issuer())),
        "{log}"
    );
}

#[test]
fn seed_walkthrough_with_a_custom_jwt_token_file() {
    let grid = EventGrid::start();
    let d = Dir::new();
    let idp = grid.setup_custom_jwt(&d, "");
    // The namespace got the issuer through ARM, with the certificate the spec names.
    let namespace_put = grid
        .emulator()
        .captured_requests()
        .into_iter()
        .find(|r| r.method == "PUT" && r.path.ends_with("/namespaces/e4k-mqtt"))
        .expect("the namespace PUT");
    let body = namespace_put.body.unwrap();
    assert!(
        body.contains("customJwtAuthentication") && body.contains(idp.kid()),
        "{body}"
    );
    // `sub` is the authentication name: the seed's `$all` bindings let it publish telemetry
    // and receive commands.
    let token = idp
        .token(
            &TokenRequest::custom("factory-bridge", NAMESPACE_AUDIENCE)
                .lifetime(Duration::from_secs(3600)),
        )
        .unwrap();
    let token_file = d.path("eventgrid-token");
    std::fs::write(&token_file, &token).unwrap();
    write_jwt_bridge_yaml(&d, EVENT_GRID_AUDIENCE, Some(&token_file));
    let log = walkthrough(&grid, &d, &[], &[]);
    assert!(!log.contains(&token_header(&idp)), "{log}");
}
