//! `e4k eventgrid …` run as a user runs it, against the emulator started in this process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use e4k_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use serde_json::Value;
use util::{Dir, Run};

fn start(lro_delay_ms: u64) -> (tokio::runtime::Runtime, RunningEmulator) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let emulator = runtime
        .block_on(Emulator::start(EmulatorConfig {
            lro_delay: Duration::from_millis(lro_delay_ms),
            lro_retry_after_secs: 0,
            token: Some("t0k3n".into()),
            ..EmulatorConfig::default()
        }))
        .unwrap();
    (runtime, emulator)
}

fn workspace() -> Dir {
    let d = Dir::new();
    d.e4k(&["certs", "init", "--no-password", "--insecure"])
        .ok();
    let spec = d.e4k(&["eventgrid", "template"]).ok().stdout;
    std::fs::write(d.path("eventgrid.yaml"), spec).unwrap();
    d
}

fn eventgrid(d: &Dir, emulator: &RunningEmulator, args: &[&str]) -> Run {
    let mut all = vec!["eventgrid"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--spec",
        "eventgrid.yaml",
        "--token-env",
        "E4K_TEST_TOKEN",
        "--min-poll-interval-ms",
        "10",
    ]);
    let url = emulator.base_url();
    d.e4k_env(
        &all,
        &[
            ("E4K_ARM_ENDPOINT", url.as_str()),
            ("E4K_TEST_TOKEN", "t0k3n"),
            (
                "AZURE_SUBSCRIPTION_ID",
                "11111111-2222-3333-4444-555555555555",
            ),
        ],
    )
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

#[test]
fn plan_setup_rerun_show_destroy() {
    let (_rt, emulator) = start(10);
    let d = workspace();
    let plan = json(
        &eventgrid(&d, &emulator, &["plan", "--output", "json"])
            .ok()
            .stdout,
    );
    assert_eq!(plan["plan"]["summary"]["create"], 12);
    assert_eq!(plan["plan"]["changes"][0]["kind"], "namespace");
    assert_eq!(plan["plan"]["changes"][0]["action"], "create");

    let setup = eventgrid(&d, &emulator, &["setup", "--yes"]).ok();
    assert_eq!(
        setup.stdout,
        "applied 12 change(s); 0 resource(s) already as specified\n\
         MQTT hostname: e4k-mqtt.westeurope-1.ts.eventgrid.azure.net\n"
    );
    assert!(
        setup.stderr.contains("created client mqttbridge"),
        "{}",
        setup.stderr
    );

    let rerun = json(
        &eventgrid(&d, &emulator, &["setup", "--yes", "--output", "json"])
            .ok()
            .stdout,
    );
    assert_eq!(rerun["plan"]["summary"]["no_op"], 12);
    assert_eq!(rerun["arm"]["writes"], 0);
    assert_eq!(rerun["applied"], serde_json::json!([]));
    assert_eq!(
        rerun["hostname"],
        "e4k-mqtt.westeurope-1.ts.eventgrid.azure.net"
    );

    let text_plan = eventgrid(&d, &emulator, &["plan"]).ok();
    assert_eq!(
        text_plan.stdout,
        "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 12 unchanged.\n"
    );

    let show = eventgrid(&d, &emulator, &["show"]).ok();
    assert!(
        show.stdout
            .contains("MQTT hostname: e4k-mqtt.westeurope-1.ts.eventgrid.azure.net"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("commanders-subscribe-telemetry"),
        "{}",
        show.stdout
    );

    let destroy = json(
        &eventgrid(&d, &emulator, &["destroy", "--yes", "--output", "json"])
            .ok()
            .stdout,
    );
    assert_eq!(destroy["deleted"].as_array().unwrap().len(), 12);
    let show = eventgrid(&d, &emulator, &["show", "--output", "json"]);
    assert_eq!(show.code, 1);
    assert_eq!(json(&show.stdout)["exists"], false);
}

#[test]
fn a_killed_setup_converges_when_run_again() {
    let (_rt, emulator) = start(300);
    let d = workspace();
    let mut child = Command::new(env!("CARGO_BIN_EXE_e4k"))
        .args([
            "eventgrid",
            "setup",
            "--yes",
            "--concurrency",
            "2",
            "--spec",
            "eventgrid.yaml",
        ])
        .args([
            "--token-env",
            "E4K_TEST_TOKEN",
            "--min-poll-interval-ms",
            "10",
        ])
        .current_dir(d.dir.path())
        .env("E4K_ARM_ENDPOINT", emulator.base_url())
        .env("E4K_TEST_TOKEN", "t0k3n")
        .env(
            "AZURE_SUBSCRIPTION_ID",
            "11111111-2222-3333-4444-555555555555",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The namespace takes ~300 ms, then the children go two at a time: kill half-way.
    std::thread::sleep(Duration::from_millis(900));
    child.kill().unwrap();
    child.wait().unwrap();
    let plan = json(
        &eventgrid(&d, &emulator, &["plan", "--output", "json"])
            .ok()
            .stdout,
    );
    let left = plan["plan"]["summary"]["create"].as_u64().unwrap();
    assert!(left > 0 && left < 12, "{}", plan["plan"]["summary"]);
    eventgrid(&d, &emulator, &["setup", "--yes"]).ok();
    let plan = json(
        &eventgrid(&d, &emulator, &["plan", "--output", "json"])
            .ok()
            .stdout,
    );
    assert_eq!(plan["plan"]["summary"]["no_op"], 12);
}

#[test]
fn invalid_specs_exit_2_with_every_problem() {
    let (_rt, emulator) = start(10);
    let d = workspace();
    let spec = std::fs::read_to_string(d.path("eventgrid.yaml")).unwrap();
    let broken = spec
        .replace(
            "topicSpace: telemetry\n    permission: Publisher",
            "topicSpace: telemetri\n    permission: Publisher",
        )
        .replace(
            "file: pki/certs/root_ca.crt",
            "file: pki/secrets/root_ca_key",
        );
    std::fs::write(d.path("eventgrid.yaml"), broken).unwrap();
    let run = eventgrid(&d, &emulator, &["setup", "--yes"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert_eq!(
        run.stderr,
        "e4k: error: eventgrid.yaml has 2 error(s):\n  \
         caCertificates[0].file: pki/secrets/root_ca_key: holds no CERTIFICATE block (is it a key?)\n  \
         permissionBindings[0].topicSpace: topic space \"telemetri\" is not defined in topicSpaces\n"
    );
    assert_eq!(emulator.stats().total(), 0, "nothing was sent");
    let validate = d.e4k_env(
        &[
            "eventgrid",
            "validate",
            "--spec",
            "eventgrid.yaml",
            "--output",
            "json",
        ],
        &[("AZURE_SUBSCRIPTION_ID", "x")],
    );
    assert_eq!(validate.code, 2);
    let report = json(&validate.stdout);
    assert_eq!(report["valid"], false);
    assert_eq!(report["problems"].as_array().unwrap().len(), 2);
    assert_eq!(
        report["problems"][1]["path"],
        "permissionBindings[0].topicSpace"
    );
    // A missing variable names itself.
    let run = d.e4k(&["eventgrid", "validate", "--spec", "eventgrid.yaml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("environment variable AZURE_SUBSCRIPTION_ID is not set"),
        "{}",
        run.stderr
    );
}

/// `validate --bridge` with a bridge configuration that cannot be used stops with exit 2 and
/// one message naming the file; the seed's bridge.yaml is checked against the namespace.
#[test]
fn validate_bridge_names_an_unusable_bridge_file() {
    let d = workspace();
    let sub = [(
        "AZURE_SUBSCRIPTION_ID",
        "11111111-2222-3333-4444-555555555555",
    )];
    let validate = |bridge: &str| {
        d.e4k_env(
            &[
                "eventgrid",
                "validate",
                "--spec",
                "eventgrid.yaml",
                "--bridge",
                bridge,
            ],
            &sub,
        )
    };
    let run = validate("missing.yaml");
    assert_eq!(run.code, 2, "{run:#?}");
    assert_eq!(
        run.stderr.lines().count(),
        1,
        "one error line: {}",
        run.stderr
    );
    assert!(
        run.stderr
            .starts_with("e4k: error: cannot read bridge config missing.yaml: "),
        "{}",
        run.stderr
    );

    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../templates/bridge.yaml"),
        d.path("bridge.yaml"),
    )
    .unwrap();
    let seed = validate("bridge.yaml");
    assert_eq!(seed.code, 0, "{seed:#?}");
    assert!(
        seed.stdout.ends_with("eventgrid.yaml: valid\n"),
        "{seed:#?}"
    );

    let bridge = std::fs::read_to_string(d.path("bridge.yaml")).unwrap();
    std::fs::write(
        d.path("broken.yaml"),
        bridge.replacen("qos: 1", "qos: 7", 1),
    )
    .unwrap();
    let broken = validate("broken.yaml");
    assert_eq!(broken.code, 2, "{broken:#?}");
    assert!(
        broken
            .stderr
            .starts_with("e4k: error: broken.yaml is not a valid bridge configuration"),
        "{}",
        broken.stderr
    );
}
