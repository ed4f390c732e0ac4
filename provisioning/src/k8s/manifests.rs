//! The manifests that run `e4k bridge run` in a cluster, rendered from
//! `templates/k8s/bridge.yaml`: a ServiceAccount, a ConfigMap with the bridge configuration, a
//! headless Service for metrics, and a StatefulSet with one pod per bridge instance (each pod's
//! ordinal is its instance index), the client certificate secrets and CA config maps mounted
//! where the bridge reads them, probes on `/healthz` and `/readyz`, resource requests and limits,
//! and a non-root, read-only security context. With a [`SpoolVolume`], every pod also gets its
//! own persistent volume (a `volumeClaimTemplates` entry, kept when the StatefulSet is deleted or
//! scaled down) mounted at [`SPOOL_DIR`], where `e4k bridge run --spool-dir` keeps the messages
//! a source broker has been acknowledged for until the destination acknowledges them.

use std::{fmt::Write as _, path::PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{
    quantity,
    secret::{check_name, check_namespace},
};
use crate::{Error, Result};

/// Where the bridge reads secrets in the pod (`--secrets-dir` default).
pub const SECRETS_DIR: &str = "/var/run/secrets/e4k";
/// Where the bridge reads CA config maps in the pod (`--configmaps-dir` default).
pub const CONFIGMAPS_DIR: &str = "/var/run/configmaps/e4k";
/// The metrics and health port.
pub const METRICS_PORT: u16 = 9102;
/// The audience of the projected service account token the local broker expects (AIO MQ's
/// `K8S-SAT` default; `--sat-audience` default).
pub const DEFAULT_SAT_AUDIENCE: &str = "aio-mq";
/// Where each pod's spool volume is mounted (the bridge's `--spool-dir`).
pub const SPOOL_DIR: &str = "/var/lib/e4k/spool";

/// What the manifests are made from.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestInput {
    /// The name of every object (e.g. `e4k-my-mqtt-bridge`).
    pub name: String,
    /// The namespace, or `None` for kubectl's current one.
    pub namespace: Option<String>,
    /// The container image that holds the `e4k` binary.
    pub image: String,
    /// Pods: the bridge configuration's `bridgeInstances`.
    pub replicas: u32,
    /// The bridge configuration, as given (it goes into the ConfigMap).
    pub bridge_yaml: String,
    /// Secrets the bridge reads (client certificates), mounted under [`SECRETS_DIR`].
    pub secrets: Vec<String>,
    /// CA config maps the bridge reads, mounted under [`CONFIGMAPS_DIR`].
    pub config_maps: Vec<String>,
    /// A service account token the local broker expects: where the bridge reads it, and the
    /// audience to request.
    pub service_account_token: Option<ProjectedToken>,
    /// A persistent spool volume per pod, or `None` for a bridge without a spool (the
    /// manifests are then exactly those of a bridge that never had one).
    pub spool: Option<SpoolVolume>,
    /// The client id of the user-assigned managed identity the bridge runs as (AKS workload
    /// identity): the ServiceAccount gets `azure.workload.identity/client-id` and the pods the
    /// label `azure.workload.identity/use: "true"`. `None`: neither.
    pub workload_identity_client_id: Option<String>,
}

/// The persistent volume each bridge pod spools to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpoolVolume {
    /// The size of each pod's volume claim in bytes (`resources.requests.storage`); at least
    /// [`SpoolVolume::MIN_SIZE`]. The bridge's `--spool-max-bytes` is [`SpoolVolume::max_bytes`],
    /// a little less, so that the volume never fills up.
    pub size_bytes: u64,
    /// The claim's `storageClassName`, or `None` for the cluster's default storage class.
    pub storage_class: Option<String>,
}

impl SpoolVolume {
    /// The default size of each pod's volume: 1 GiB.
    pub const DEFAULT_SIZE: u64 = 1 << 30;
    /// The smallest volume accepted: 16 MiB.
    pub const MIN_SIZE: u64 = 16 << 20;
    /// The bridge's spool segment size, kept free on the volume.
    const SEGMENT: u64 = 64 << 20;
    /// The smallest `--spool-max-bytes` ever passed.
    const MIN_MAX_BYTES: u64 = 1 << 20;

    /// A spool volume from a size as a Kubernetes quantity (`--spool-size`: `512Mi`, `1Gi`,
    /// `10G`, plain bytes) and an optional storage class (`--spool-storage-class`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the flag: a size that is not a quantity or is below
    /// [`SpoolVolume::MIN_SIZE`], a storage class that is not a valid Kubernetes name.
    pub fn from_flags(size: &str, storage_class: Option<String>) -> Result<Self> {
        let spool = Self {
            size_bytes: quantity::parse_bytes("--spool-size", size)?,
            storage_class,
        };
        spool.check(size)?;
        Ok(spool)
    }

    /// What the bridge may keep on the volume (`--spool-max-bytes`): 90 % of it, less one
    /// 64 MiB segment (or a tenth of the volume, when that is smaller) so that a segment being
    /// written and the file system's own overhead still fit; never below 1 MiB.
    #[must_use]
    pub fn max_bytes(&self) -> u64 {
        let size = self.size_bytes;
        let usable = u64::try_from(u128::from(size) * 9 / 10).unwrap_or(u64::MAX);
        usable
            .saturating_sub(Self::SEGMENT.min(size / 10))
            .max(Self::MIN_MAX_BYTES)
    }

    /// The size as a Kubernetes quantity (`1Gi`, or bytes when no suffix divides it).
    #[must_use]
    pub fn size_quantity(&self) -> String {
        quantity::format_bytes(self.size_bytes)
    }

    fn check(&self, size_as_given: &str) -> Result<()> {
        if self.size_bytes < Self::MIN_SIZE {
            return Err(Error::invalid(
                "--spool-size",
                size_as_given,
                "the spool volume must be at least 16Mi",
            ));
        }
        if let Some(class) = &self.storage_class {
            check_name("--spool-storage-class", class)?;
        }
        Ok(())
    }
}

/// A projected service account token for the local broker.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectedToken {
    /// The file the bridge reads (its directory becomes the mount).
    pub path: PathBuf,
    /// The token's audience.
    pub audience: String,
}

/// Renders the manifests as one multi-document YAML stream.
///
/// # Errors
/// [`Error::InvalidInput`] for names Kubernetes would refuse, or an image, replica count or
/// spool size that cannot work.
pub fn render(input: &ManifestInput, template: &str) -> Result<String> {
    check_name("name", &input.name)?;
    if input.name.len() > 52 {
        // StatefulSet pods add "-<ordinal>" and a controller-revision-hash label of 11 characters.
        return Err(Error::invalid(
            "name",
            &input.name,
            "at most 52 characters for a StatefulSet",
        ));
    }
    if let Some(ns) = &input.namespace {
        check_namespace(ns)?;
    }
    if input.image.trim().is_empty() || input.image.contains(char::is_whitespace) {
        return Err(Error::invalid(
            "--image",
            &input.image,
            "give an image reference such as registry/e4k:0.1.0",
        ));
    }
    if input.replicas == 0 {
        return Err(Error::invalid("bridgeInstances", "0", "must be at least 1"));
    }
    for name in input.secrets.iter().chain(&input.config_maps) {
        check_name("secret or config map", name)?;
    }
    if let Some(spool) = &input.spool {
        spool.check(&spool.size_quantity())?;
    }
    let (annotations, identity_label) = workload_identity(input)?;

    let mut mounts = String::new();
    let mut volumes = String::new();
    for (i, secret) in input.secrets.iter().enumerate() {
        let _ = write!(
            mounts,
            "            - name: secret-{i}\n              mountPath: {SECRETS_DIR}/{secret}\n              readOnly: true\n"
        );
        let _ = write!(
            volumes,
            // 288 = 0o440: a leading-zero octal is read as 0440 by kubectl (YAML 1.1) but as
            // decimal 440 (0o670, group-writable) by YAML 1.2 parsers such as `--apply`'s.
            "        - name: secret-{i}\n          secret:\n            secretName: {secret}\n            defaultMode: 288\n"
        );
    }
    for (i, map) in input.config_maps.iter().enumerate() {
        let _ = write!(
            mounts,
            "            - name: ca-{i}\n              mountPath: {CONFIGMAPS_DIR}/{map}\n              readOnly: true\n"
        );
        let _ = write!(
            volumes,
            "        - name: ca-{i}\n          configMap:\n            name: {map}\n"
        );
    }
    if let Some(token) = &input.service_account_token {
        let dir = token
            .path
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let file = token
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if dir.is_empty() || file.is_empty() {
            return Err(Error::invalid(
                "service account token path",
                &token.path.display().to_string(),
                "needs a directory and a file name",
            ));
        }
        let _ = write!(
            mounts,
            "            - name: local-broker-token\n              mountPath: {dir}\n              readOnly: true\n"
        );
        let _ = write!(
            volumes,
            "        - name: local-broker-token\n          projected:\n            sources:\n              - serviceAccountToken:\n                  path: {file}\n                  audience: {}\n                  expirationSeconds: 86400\n",
            super::secret::scalar(&token.audience)
        );
    }
    let (spool_args, claim_templates) = match &input.spool {
        Some(spool) => {
            let _ = write!(
                mounts,
                "            - name: spool\n              mountPath: {SPOOL_DIR}\n"
            );
            (spool_args(spool), claim_templates(spool))
        }
        None => (String::new(), String::new()),
    };
    let bridge_yaml: String = input
        .bridge_yaml
        .lines()
        .map(|line| match line.trim_end() {
            "" => "\n".to_owned(),
            line => format!("    {line}\n"),
        })
        .collect();
    let namespace_line = input
        .namespace
        .as_ref()
        .map(|ns| format!("  namespace: {ns}\n"))
        .unwrap_or_default();
    let hash = Sha256::digest(input.bridge_yaml.as_bytes());
    let config_hash: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();

    // The template's own header comments document the placeholders; they are not output.
    let body: String = template
        .lines()
        .skip_while(|line| line.starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect();
    // Placeholders that only e4k writes first, so the bridge YAML cannot hold one.
    let rendered = body
        .replace("${SPOOL_ARGS}\n", &spool_args)
        .replace("${VOLUME_CLAIM_TEMPLATES}\n", &claim_templates)
        .replace("${SERVICE_ACCOUNT_ANNOTATIONS}\n", &annotations)
        .replace("${WORKLOAD_IDENTITY_LABEL}\n", &identity_label)
        .replace("${NAMESPACE_LINE}", &namespace_line)
        .replace("${BRIDGE_YAML}\n", &bridge_yaml)
        .replace("${VOLUME_MOUNTS}\n", &mounts)
        .replace("${VOLUMES}\n", &volumes)
        .replace("${NAME}", &input.name)
        .replace("${IMAGE}", &input.image)
        .replace("${REPLICAS}", &input.replicas.to_string())
        .replace("${METRICS_PORT}", &METRICS_PORT.to_string())
        .replace("${CONFIG_HASH}", &config_hash);
    Ok(format!(
        "# Generated by e4k k8s manifests; apply with `kubectl apply -f -`.\n{rendered}"
    ))
}

/// The ServiceAccount annotation and the pod label of AKS workload identity, or nothing.
fn workload_identity(input: &ManifestInput) -> Result<(String, String)> {
    let Some(client_id) = &input.workload_identity_client_id else {
        return Ok((String::new(), String::new()));
    };
    let client_id = client_id.trim();
    if !crate::eventgrid::rbac::is_guid(client_id) {
        return Err(Error::invalid(
            "workload identity client id",
            client_id,
            "expected the managed identity's client id, a GUID",
        ));
    }
    Ok((
        format!("  annotations:\n    azure.workload.identity/client-id: \"{client_id}\"\n"),
        "        azure.workload.identity/use: \"true\"\n".to_owned(),
    ))
}

/// The container args that point the bridge at its spool volume.
fn spool_args(spool: &SpoolVolume) -> String {
    format!(
        "            - --spool-dir\n            - {SPOOL_DIR}\n            - --spool-max-bytes\n            - \"{}\"\n",
        spool.max_bytes()
    )
}

/// The StatefulSet's claim template (one volume per pod) and its retention policy: the spool
/// outlives the StatefulSet and scale-downs, since it may hold messages not yet delivered.
fn claim_templates(spool: &SpoolVolume) -> String {
    let class = spool
        .storage_class
        .as_ref()
        .map(|class| format!("        storageClassName: {class}\n"))
        .unwrap_or_default();
    format!(
        "  volumeClaimTemplates:\n    - metadata:\n        name: spool\n      spec:\n        accessModes: [\"ReadWriteOnce\"]\n{class}        resources:\n          requests:\n            storage: {}\n  persistentVolumeClaimRetentionPolicy:\n    whenDeleted: Retain\n    whenScaled: Retain\n",
        super::secret::scalar(&spool.size_quantity())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(spool: Option<SpoolVolume>) -> ManifestInput {
        ManifestInput {
            name: "e4k-test".into(),
            namespace: Some("factory".into()),
            image: "e4k:test".into(),
            replicas: 2,
            bridge_yaml: "kind: MqttBridgeConnector\n".into(),
            secrets: vec!["bridge-client-cert".into()],
            config_maps: vec!["ca".into()],
            service_account_token: Some(ProjectedToken {
                path: "/var/run/secrets/tokens/broker-sat".into(),
                audience: "aio-mq".into(),
            }),
            spool,
            workload_identity_client_id: None,
        }
    }

    fn spool(size_bytes: u64, storage_class: Option<&str>) -> SpoolVolume {
        SpoolVolume {
            size_bytes,
            storage_class: storage_class.map(str::to_owned),
        }
    }

    #[test]
    fn max_bytes_leaves_room_for_a_segment_and_the_file_system() {
        // 90 % of 1 GiB, less one 64 MiB segment.
        assert_eq!(spool(1 << 30, None).max_bytes(), 966_367_641 - (64 << 20));
        assert_eq!(
            spool(10 << 30, None).max_bytes(),
            9_663_676_416 - (64 << 20)
        );
        // Small volumes keep a tenth free instead of a whole segment.
        assert_eq!(spool(100 << 20, None).max_bytes(), 94_371_840 - 10_485_760);
        assert_eq!(spool(16 << 20, None).max_bytes(), 15_099_494 - 1_677_721);
        // Never below 1 MiB, never overflowing.
        assert_eq!(spool(0, None).max_bytes(), 1 << 20);
        assert_eq!(
            spool(u64::MAX, None).max_bytes(),
            16_602_069_666_338_596_453 - (64 << 20)
        );
    }

    #[test]
    fn from_flags_checks_the_size_and_the_storage_class() {
        assert_eq!(
            SpoolVolume::from_flags("1Gi", Some("premium-ssd".into())).unwrap(),
            spool(1 << 30, Some("premium-ssd"))
        );
        assert_eq!(
            SpoolVolume::from_flags("16Mi", None).unwrap(),
            spool(16 << 20, None)
        );
        let err = SpoolVolume::from_flags("10M", None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid --spool-size \"10M\": the spool volume must be at least 16Mi"
        );
        let err = SpoolVolume::from_flags("1GB", None)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid --spool-size \"1GB\": "), "{err}");
        let err = SpoolVolume::from_flags("1Gi", Some("Premium_SSD".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid --spool-storage-class \"Premium_SSD\": "),
            "{err}"
        );
        // render checks a SpoolVolume built by hand, too.
        let err = render(
            &input(Some(spool(1 << 20, None))),
            e4k_templates::K8S_BRIDGE_YAML,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "invalid --spool-size \"1Mi\": the spool volume must be at least 16Mi"
        );
    }

    #[test]
    fn a_spool_adds_a_claim_template_a_mount_and_args_and_nothing_else() {
        let template = e4k_templates::K8S_BRIDGE_YAML;
        let without = render(&input(None), template).unwrap();
        assert!(!without.contains("spool"), "{without}");
        let with = render(&input(Some(spool(1 << 30, Some("managed-csi")))), template).unwrap();
        let added = [
            "            - --spool-dir\n",
            "            - /var/lib/e4k/spool\n",
            "            - --spool-max-bytes\n",
            "            - \"899258777\"\n",
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
            "            storage: 1Gi\n",
            "  persistentVolumeClaimRetentionPolicy:\n",
            "    whenDeleted: Retain\n",
            "    whenScaled: Retain\n",
        ];
        let mut rest: Vec<&str> = with.split_inclusive('\n').collect();
        for line in added {
            let count = rest.iter().filter(|l| *l == &line).count();
            assert_eq!(count, 1, "{line:?} in\n{with}");
        }
        // Taking exactly those lines out gives the manifests without a spool, byte for byte.
        for line in added {
            let at = rest.iter().position(|l| *l == line).unwrap();
            rest.remove(at);
        }
        assert_eq!(rest.concat(), without);
        // The mount follows the others; the args follow --metrics-listen; the claim template
        // ends the StatefulSet.
        assert!(with.contains(
            "              mountPath: /var/run/secrets/tokens\n              readOnly: true\n            - name: spool\n"
        ));
        assert!(with.contains("            - 0.0.0.0:9102\n            - --spool-dir\n"));
        assert!(with.ends_with("    whenScaled: Retain\n"), "{with}");
        // The pods' file system group owns the volume, so the non-root bridge can write it.
        assert!(with.contains("        runAsNonRoot: true\n"));
        assert!(with.contains("        fsGroup: 65532\n"));
    }

    #[test]
    fn sizes_that_are_not_whole_units_are_plain_bytes_quoted_and_no_class_is_the_default() {
        let with = render(
            &input(Some(spool(1_073_741_825, None))),
            e4k_templates::K8S_BRIDGE_YAML,
        )
        .unwrap();
        assert!(
            with.contains("            storage: \"1073741825\"\n"),
            "{with}"
        );
        assert!(!with.contains("storageClassName"), "{with}");
        let with = render(
            &input(Some(spool(10_000_000_000, None))),
            e4k_templates::K8S_BRIDGE_YAML,
        )
        .unwrap();
        assert!(with.contains("            storage: 10G\n"), "{with}");
    }

    #[test]
    fn the_spooled_stateful_set_parses_as_kubernetes_reads_it() {
        use k8s_openapi::api::apps::v1::StatefulSet;

        let mut spooled = input(Some(spool(512 << 20, Some("managed-csi"))));
        let yaml = render(&spooled, e4k_templates::K8S_BRIDGE_YAML).unwrap();
        // As `--apply` reads the stream.
        let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml).unwrap();
        assert_eq!(documents.len(), 4);
        let set: StatefulSet = serde_json::from_value(documents[3].clone()).unwrap();
        let spec = set.spec.unwrap();
        // Secrets are mounted read-only for owner and group (0o440) whichever YAML reads them.
        let volumes = spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .volumes
            .as_ref()
            .unwrap();
        let secret = volumes.iter().find_map(|v| v.secret.as_ref()).unwrap();
        assert_eq!(secret.default_mode, Some(0o440));
        let claims = spec.volume_claim_templates.unwrap();
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].metadata.name.as_deref(), Some("spool"));
        let claim = claims[0].spec.as_ref().unwrap();
        assert_eq!(claim.access_modes, Some(vec!["ReadWriteOnce".to_owned()]));
        assert_eq!(claim.storage_class_name.as_deref(), Some("managed-csi"));
        let requests = claim.resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!(requests["storage"].0, "512Mi");
        let retention = spec.persistent_volume_claim_retention_policy.unwrap();
        assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));
        assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));

        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.security_context.unwrap().fs_group, Some(65532));
        let container = &pod.containers[0];
        let mount = container
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.name == "spool")
            .unwrap();
        assert_eq!(mount.mount_path, SPOOL_DIR);
        assert_eq!(mount.read_only, None);
        let args = container.args.as_ref().unwrap();
        let max_bytes = spool(512 << 20, None).max_bytes().to_string();
        assert_eq!(
            args[args.len() - 4..],
            [
                "--spool-dir",
                SPOOL_DIR,
                "--spool-max-bytes",
                max_bytes.as_str()
            ]
        );
        // Without a spool: no claim templates, no retention policy, no spool mount.
        spooled.spool = None;
        let yaml = render(&spooled, e4k_templates::K8S_BRIDGE_YAML).unwrap();
        let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml).unwrap();
        let set: StatefulSet = serde_json::from_value(documents[3].clone()).unwrap();
        let spec = set.spec.unwrap();
        assert!(spec.volume_claim_templates.is_none());
        assert!(spec.persistent_volume_claim_retention_policy.is_none());
    }

    #[test]
    fn workload_identity_annotates_the_service_account_and_labels_the_pods() {
        let mut input = input(None);
        let plain = render(&input, e4k_templates::K8S_BRIDGE_YAML).unwrap();
        assert!(!plain.contains("azure.workload.identity"), "{plain}");
        input.workload_identity_client_id = Some("0d2a6b3c-1e4f-4a5b-8c9d-0e1f2a3b4c5d".into());
        let yaml = render(&input, e4k_templates::K8S_BRIDGE_YAML).unwrap();
        let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml).unwrap();
        assert_eq!(
            documents[0]["metadata"]["annotations"]["azure.workload.identity/client-id"],
            "0d2a6b3c-1e4f-4a5b-8c9d-0e1f2a3b4c5d"
        );
        let labels = &documents[3]["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["azure.workload.identity/use"], "true");
        assert_eq!(labels["app.kubernetes.io/name"], "e4k-bridge");
        // The selector stays as it was: pods of an existing StatefulSet keep matching.
        assert!(
            documents[3]["spec"]["selector"]["matchLabels"]
                .get("azure.workload.identity/use")
                .is_none()
        );
        input.workload_identity_client_id = Some("bridge".into());
        assert!(render(&input, e4k_templates::K8S_BRIDGE_YAML).is_err());
    }
}
