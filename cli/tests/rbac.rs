//! `roleAssignments` through the binary: `e4k up` creates them and sets the bridge up for AKS
//! workload identity (a rerun writes nothing), `e4k k8s manifests --workload-identity-client-id`
//! does the same for the manifests alone, and an invalid entry stops `setup` (exit 2) before any
//! ARM request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use e4k_emulator::{ResourceKind, Verb};
use util::Dir;
use util::arm::{UP, env, start, workspace};

const CLIENT_ID: &str = "0d2a6b3c-1e4f-4a5b-8c9d-0e1f2a3b4c5d";
const ASSIGNMENTS: &str = "
roleAssignments:
  - principalId: 6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90
    bridgeClientId: 0d2a6b3c-1e4f-4a5b-8c9d-0e1f2a3b4c5d
    role: publisher
    topicSpace: telemetry
  - { principalId: 6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90, role: subscriber, topicSpace: command }
";

#[test]
fn up_assigns_roles_and_sets_up_workload_identity() {
    let (_rt, emulator) = start();
    let d = Dir::new();
    workspace(&d, ASSIGNMENTS);
    let url = emulator.base_url();
    let args = UP;
    let first: serde_json::Value =
        serde_json::from_str(&d.e4k_env(&args, &env(&url)).ok().stdout).unwrap();
    // The seed's 12 writes and the two role assignments.
    assert_eq!(first["arm_writes"], 14);
    assert_eq!(
        emulator
            .stats()
            .count(Verb::Put, ResourceKind::RoleAssignment),
        2
    );
    let manifests = std::fs::read_to_string(d.path("e4k-out/k8s/bridge.yaml")).unwrap();
    assert!(
        manifests.contains(&format!(
            "  annotations:\n    azure.workload.identity/client-id: \"{CLIENT_ID}\"\n"
        )),
        "{manifests}"
    );
    assert!(manifests.contains("        azure.workload.identity/use: \"true\"\n"));

    emulator.reset_stats();
    let second: serde_json::Value =
        serde_json::from_str(&d.e4k_env(&args, &env(&url)).ok().stdout).unwrap();
    assert_eq!(second["arm_writes"], 0);
    assert_eq!(emulator.stats().writes(), 0);

    // `show` lists them beside the namespace's own resources.
    let show: serde_json::Value = serde_json::from_str(
        &d.e4k_env(
            &[
                "--output",
                "json",
                "eventgrid",
                "show",
                "--spec",
                "eventgrid.yaml",
            ],
            &env(&url),
        )
        .ok()
        .stdout,
    )
    .unwrap();
    let shown = show["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "roleAssignment")
        .count();
    assert_eq!(shown, 2, "{show:#}");
}

#[test]
fn manifests_take_the_workload_identity_client_id() {
    let d = Dir::new();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../templates/bridge.yaml");
    let base = ["k8s", "manifests", "--bridge-config", config];
    let plain = d.e4k(&base).ok().stdout;
    assert!(!plain.contains("azure.workload.identity"));
    let mut args = base.to_vec();
    args.extend(["--workload-identity-client-id", CLIENT_ID]);
    let yaml = d.e4k(&args).ok().stdout;
    assert!(yaml.contains(&format!(
        "azure.workload.identity/client-id: \"{CLIENT_ID}\""
    )));
    assert!(yaml.contains("azure.workload.identity/use: \"true\""));
    // Nothing else changes.
    let extra: Vec<&str> = yaml
        .lines()
        .filter(|l| !plain.lines().any(|p| p == *l))
        .collect();
    assert_eq!(extra.len(), 3, "{extra:#?}");
    let mut bad = base.to_vec();
    bad.extend(["--workload-identity-client-id", "bridge"]);
    assert_eq!(d.e4k(&bad).code, 2);
}

#[test]
fn invalid_role_assignments_stop_setup_before_any_arm_request() {
    let (_rt, emulator) = start();
    let d = Dir::new();
    d.init_pki(&["--no-password", "--insecure"]);
    workspace(
        &d,
        "
roleAssignments:
  - { principalId: not-a-guid, role: publisher, topicSpace: telemetry }
  - { principalId: 6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90, role: publisher, topicSpace: status }
  - { principalId: 6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90, role: subscriber, namespace: true }
  - { principalId: 6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90, role: subscriber, namespace: true }
",
    );
    let url = emulator.base_url();
    let run = d.e4k_env(
        &["eventgrid", "setup", "--spec", "eventgrid.yaml", "--yes"],
        &env(&url),
    );
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr
            .starts_with("e4k: error: eventgrid.yaml has 3 error(s):\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("roleAssignments[0].principalId: \"not-a-guid\" is not a GUID")
    );
    assert!(
        run.stderr
            .contains("roleAssignments[1].topicSpace: topic space \"status\" is not defined")
    );
    assert!(
        run.stderr.contains(
            "roleAssignments[3]: the same principal, role and scope as roleAssignments[2]"
        )
    );
    assert_eq!(emulator.stats().total(), 0, "nothing was sent");
}
