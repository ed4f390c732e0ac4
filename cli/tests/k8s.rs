//! `e4k k8s …`: the Secret is byte for byte what the real `kubectl` prints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use util::Dir;

/// `kubernetes-validate --strict` of `file` in `d` against Kubernetes 1.30 and 1.33: its four
/// resources pass.
fn validate(d: &Dir, file: &str) {
    for version in ["1.30.0", "1.33.0"] {
        let validated = d.run("kubernetes-validate", &["--strict", "-k", version, file]);
        assert_eq!(validated.code, 0, "{validated:#?}");
        assert_eq!(
            validated.stdout.matches(" passed for resource ").count(),
            4,
            "{}",
            validated.stdout
        );
    }
}

/// The one error line of `e4k k8s secret NAME --cert CERT --key KEY` exiting 2.
fn secret_refused(d: &Dir, name: &str, cert: &str, key: &str) -> String {
    d.e4k(&["k8s", "secret", name, "--cert", cert, "--key", key])
        .fails(2)
}

fn kubectl_secret(d: &Dir, name: &str, namespace: Option<&str>, intermediate: bool) -> String {
    let mut args = vec![
        "create".to_owned(),
        "secret".to_owned(),
        "generic".to_owned(),
        name.to_owned(),
        "--from-file=client_cert.pem=mqttbridge.pem".to_owned(),
        "--from-file=client_key.pem=mqttbridge.key".to_owned(),
    ];
    if intermediate {
        args.push(
            "--from-file=client_intermediate_certs.pem=pki/certs/intermediate_ca.crt".to_owned(),
        );
    }
    if let Some(ns) = namespace {
        args.extend(["--namespace".to_owned(), ns.to_owned()]);
    }
    args.extend([
        "--dry-run=client".to_owned(),
        "-o".to_owned(),
        "yaml".to_owned(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    d.run("kubectl", &args).ok().stdout
}

#[test]
fn the_secret_matches_kubectl_byte_for_byte() {
    let d = Dir::new();
    d.init_pki(&[]);
    d.create("mqttbridge", &["--not-after", "2400h"]).ok();
    for (name, namespace, intermediate) in [
        ("remote-client-secret", None, true),
        ("bridge-client-cert", Some("azure-iot-operations"), true),
        ("bridge-client-cert", None, false),
        ("123", Some("on"), true),
        ("1e3", None, false),
    ] {
        let mut args = vec![
            "k8s",
            "secret",
            name,
            "--cert",
            "mqttbridge.pem",
            "--key",
            "mqttbridge.key",
        ];
        if intermediate {
            args.extend(["--intermediate", "pki/certs/intermediate_ca.crt"]);
        }
        if let Some(ns) = namespace {
            args.extend(["--namespace", ns]);
        }
        let ours = d.e4k(&args).ok().stdout;
        assert_eq!(
            ours,
            kubectl_secret(&d, name, namespace, intermediate),
            "{name} {namespace:?}"
        );
    }
}

#[test]
fn an_encrypted_or_mismatched_key_is_refused() {
    let d = Dir::new();
    d.init_pki(&[]);
    d.create("mqttbridge", &[]).ok();
    d.create("other", &[]).ok();
    d.e4k_env(
        &["certs", "create", "locked", "--not-after", "1d"],
        &[("E4K_PASSWORD", "e4k"), ("E4K_KEY_PASSWORD", "secret")],
    )
    .ok();
    let line = secret_refused(&d, "s", "locked.pem", "locked.key");
    assert_eq!(
        line,
        "e4k: error: locked.key: the key is encrypted, and the bridge cannot use an encrypted key: \
         issue one with `e4k certs create … --no-password --insecure`, or decrypt it with `openssl pkey`"
    );
    let line = secret_refused(&d, "s", "mqttbridge.pem", "other.key");
    assert_eq!(
        line,
        "e4k: error: other.key: this key does not belong to the certificate mqttbridge.pem"
    );
    let line = secret_refused(&d, "Bad_Name", "mqttbridge.pem", "mqttbridge.key");
    assert!(
        line.starts_with("e4k: error: invalid NAME \"Bad_Name\": not a valid Kubernetes name"),
        "{line}"
    );
}

#[test]
fn manifests_validate_against_kubernetes_schemas() {
    let d = Dir::new();
    let run = seed_manifests(&d, &["--image", "registry.example/e4k:1.2.3"]).ok();
    std::fs::write(d.path("manifests.yaml"), &run.stdout).unwrap();
    validate(&d, "manifests.yaml");
    let yaml = &run.stdout;
    // One pod per bridgeInstances (3 in the seed), the instance index from the ordinal.
    assert!(yaml.contains("  replicas: 3\n"), "{yaml}");
    assert!(yaml.contains("fieldPath: metadata.labels['apps.kubernetes.io/pod-index']"));
    // The seed's secret where the bridge reads it, the seed's YAML in the ConfigMap.
    assert!(yaml.contains("mountPath: /var/run/secrets/e4k/bridge-client-cert\n"));
    assert!(yaml.contains("secretName: bridge-client-cert\n"));
    assert!(yaml.contains("    kind: MqttBridgeTopicMap\n"));
    assert!(yaml.contains("image: registry.example/e4k:1.2.3\n"));
    assert!(yaml.contains("path: /readyz") && yaml.contains("path: /healthz"));
    assert!(yaml.contains("runAsNonRoot: true") && yaml.contains("readOnlyRootFilesystem: true"));

    let json = seed_manifests_json(&d, &[]);
    assert_eq!(json["replicas"], 3);
    assert_eq!(json["name"], "e4k-my-mqtt-bridge");
    assert_eq!(json["secrets"], serde_json::json!(["bridge-client-cert"]));
}

/// The seed's `bridge.yaml`.
const SEED_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../templates/bridge.yaml");

/// `e4k k8s manifests --bridge-config SEED -n factory EXTRA` in `d`.
fn seed_manifests(d: &Dir, extra: &[&str]) -> util::Run {
    let mut args = vec![
        "k8s",
        "manifests",
        "--bridge-config",
        SEED_CONFIG,
        "-n",
        "factory",
    ];
    args.extend(extra);
    d.e4k(&args)
}

/// `e4k --output json k8s manifests --bridge-config SEED EXTRA` in `d`, parsed.
fn seed_manifests_json(d: &Dir, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--output",
        "json",
        "k8s",
        "manifests",
        "--bridge-config",
        SEED_CONFIG,
    ];
    args.extend(extra);
    serde_json::from_str(&d.e4k(&args).ok().stdout).unwrap()
}

/// The lines a spool adds to the seed's manifests (10Gi on `managed-csi`).
const SPOOL_LINES: [&str; 18] = [
    "            - --spool-dir\n",
    "            - /var/lib/e4k/spool\n",
    "            - --spool-max-bytes\n",
    "            - \"9596567552\"\n",
    "            - name: spool\n",
    "              mountPath: /var/lib/e4k/spool\n",
    "  volumeClaimTemplates:\n",
    "    - metadata:\n",
    "        name: spool\n",
    "      spec:\n",
    "        accessModes: [\"ReadWriteOnce\"]\n",
    "        storageClassName: managed-csi\n",
    "        resources:\n",
    "          requests:\n",
    "            storage: 10Gi\n",
    "  persistentVolumeClaimRetentionPolicy:\n",
    "    whenDeleted: Retain\n",
    "    whenScaled: Retain\n",
];

#[test]
fn every_bridge_pod_gets_a_spool_volume_unless_no_spool() {
    let d = Dir::new();
    let manifests = |extra: &[&str]| seed_manifests(&d, extra);
    let spooled = manifests(&[
        "--spool-size",
        "10Gi",
        "--spool-storage-class",
        "managed-csi",
    ])
    .ok()
    .stdout;
    std::fs::write(d.path("spooled.yaml"), &spooled).unwrap();
    validate(&d, "spooled.yaml");
    // Each line once; without them, the manifests are exactly those of --no-spool.
    let mut rest: Vec<&str> = spooled.split_inclusive('\n').collect();
    for line in SPOOL_LINES {
        let at: Vec<usize> = (0..rest.len()).filter(|&i| rest[i] == line).collect();
        assert_eq!(at.len(), 1, "{line:?} in\n{spooled}");
        rest.remove(at[0]);
    }
    let unspooled = manifests(&["--no-spool"]).ok().stdout;
    assert!(!unspooled.contains("spool"), "{unspooled}");
    assert_eq!(rest.concat(), unspooled);

    // The default: 1Gi on the default storage class.
    let default = manifests(&[]).ok().stdout;
    assert!(default.contains("            storage: 1Gi\n"), "{default}");
    assert!(
        default.contains("            - \"899258777\"\n"),
        "{default}"
    );
    assert!(!default.contains("storageClassName"), "{default}");

    let json = |extra: &[&str]| seed_manifests_json(&d, extra);
    assert_eq!(
        json(&[])["spool"],
        serde_json::json!({"size_bytes": 1_073_741_824_u64, "storage_class": null, "max_bytes": 899_258_777}),
    );
    assert_eq!(
        json(&["--spool-size", "10G", "--spool-storage-class", "fast"])["spool"],
        serde_json::json!({"size_bytes": 10_000_000_000_u64, "storage_class": "fast", "max_bytes": 8_932_891_136_u64}),
    );
    assert_eq!(json(&["--no-spool"])["spool"], serde_json::Value::Null);

    // Sizes that are not a Kubernetes quantity, or too small, name the flag; --no-spool
    // refuses the other two.
    assert_eq!(
        manifests(&["--spool-size", "8Mi"]).fails(2),
        "e4k: error: invalid --spool-size \"8Mi\": the spool volume must be at least 16Mi"
    );
    let line = manifests(&["--spool-size", "900MiB"]).fails(2);
    assert!(
        line.starts_with("e4k: error: invalid --spool-size \"900MiB\": give a size in bytes as a Kubernetes quantity"),
        "{line}"
    );
    let line = manifests(&["--spool-storage-class", "Fast_SSD"]).fails(2);
    assert!(
        line.starts_with("e4k: error: invalid --spool-storage-class \"Fast_SSD\": "),
        "{line}"
    );
    for conflicting in [["--spool-size", "2Gi"], ["--spool-storage-class", "fast"]] {
        let mut extra = vec!["--no-spool"];
        extra.extend(conflicting);
        let run = manifests(&extra);
        assert_eq!(run.code, 2, "{run:#?}");
        assert!(
            run.stderr.contains("'--no-spool' cannot be used with"),
            "{}",
            run.stderr
        );
    }
}
