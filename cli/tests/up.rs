//! `e4k up`: the seed flow from nothing, then again with nothing left to do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::{collections::BTreeMap, path::Path};

use util::arm::{UP, env, start, workspace};
use util::{Dir, mode};

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.display().to_string(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn up_twice_changes_nothing_the_second_time() {
    let (_runtime, emulator) = start();
    let d = Dir::new();
    workspace(&d, "");
    let url = emulator.base_url();
    let env = env(&url);
    let args = UP;
    let first: serde_json::Value =
        serde_json::from_str(&d.e4k_env(&args, &env).ok().stdout).unwrap();
    assert_eq!(first["arm_writes"], 12);
    assert_eq!(
        first["hostname"],
        "e4k-mqtt.westeurope-1.ts.eventgrid.azure.net"
    );
    let bridge = std::fs::read_to_string(d.path("e4k-out/bridge.yaml")).unwrap();
    assert!(
        bridge.contains("endpoint: \"e4k-mqtt.westeurope-1.ts.eventgrid.azure.net:8883\""),
        "{bridge}"
    );
    assert_eq!(
        mode(&d.path("e4k-out/secrets/bridge-client-cert/client_key.pem")),
        0o600
    );
    assert_eq!(mode(&d.path("e4k-out/secrets/bridge-client-cert")), 0o700);
    // The bridge's certificate verifies as Event Grid will check it.
    d.e4k(&[
        "certs",
        "verify",
        "e4k-out/certs/mqttbridge.pem",
        "--roots",
        "pki/certs/intermediate_ca.crt",
    ])
    .ok();
    // Each bridge pod gets a 1Gi spool volume by default.
    let manifests = std::fs::read_to_string(d.path("e4k-out/k8s/bridge.yaml")).unwrap();
    assert!(
        manifests.contains("  volumeClaimTemplates:\n"),
        "{manifests}"
    );
    assert!(
        manifests.contains("            storage: 1Gi\n"),
        "{manifests}"
    );
    assert!(manifests.contains("            - --spool-dir\n            - /var/lib/e4k/spool\n"));
    // The pods mount what the bridge reads, as `e4k k8s manifests` renders it from the same
    // configuration: the seed's local connection uses K8S-SAT, so its token is projected.
    let printed = d
        .e4k(&[
            "--output",
            "json",
            "k8s",
            "manifests",
            "--bridge-config",
            "e4k-out/bridge.yaml",
        ])
        .ok()
        .stdout;
    let printed: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(printed["yaml"].as_str().unwrap(), manifests);
    assert!(
        manifests.contains("                  audience: aio-mq\n"),
        "{manifests}"
    );
    let before = snapshot(d.dir.path());

    let second: serde_json::Value =
        serde_json::from_str(&d.e4k_env(&args, &env).ok().stdout).unwrap();
    assert_eq!(second["arm_writes"], 0);
    let statuses: Vec<&str> = second["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert!(statuses.iter().all(|s| *s == "unchanged"), "{statuses:?}");
    assert_eq!(
        snapshot(d.dir.path()),
        before,
        "the second run changed files"
    );

    // The spool flags reach the manifests; --no-spool renders them without one.
    let with = |extra: &[&str]| {
        let mut all = args.to_vec();
        all.extend(extra);
        d.e4k_env(&all, &env).ok();
        std::fs::read_to_string(d.path("e4k-out/k8s/bridge.yaml")).unwrap()
    };
    let manifests = with(&["--spool-size", "2Gi", "--spool-storage-class", "fast"]);
    assert!(
        manifests.contains("            storage: 2Gi\n"),
        "{manifests}"
    );
    assert!(
        manifests.contains("        storageClassName: fast\n"),
        "{manifests}"
    );
    let manifests = with(&["--no-spool"]);
    assert!(!manifests.contains("spool"), "{manifests}");
    // (--output json: the error line is JSON.)
    let line = d
        .e4k_env(&[&args[..], &["--spool-size", "1MiB"]].concat(), &env)
        .fails(2);
    let error: serde_json::Value = serde_json::from_str(&line).unwrap();
    let error = error["error"].as_str().unwrap();
    assert!(
        error.starts_with("invalid --spool-size \"1MiB\": "),
        "{error}"
    );
}
