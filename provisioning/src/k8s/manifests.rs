//! The manifests that run `e4k bridge run` in a cluster, rendered from
//! `templates/k8s/bridge.yaml`: a ServiceAccount, a ConfigMap with the bridge configuration, a
//! headless Service for metrics, and a StatefulSet with one pod per bridge instance (each pod's
//! ordinal is its instance index), the client certificate secrets and CA config maps mounted
//! where the bridge reads them, probes on `/healthz` and `/readyz`, resource requests and limits,
//! and a non-root, read-only security context.

use std::{fmt::Write as _, path::PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::secret::{check_name, check_namespace};
use crate::{Error, Result};

/// Where the bridge reads secrets in the pod (`--secrets-dir` default).
pub const SECRETS_DIR: &str = "/var/run/secrets/e4k";
/// Where the bridge reads CA config maps in the pod (`--configmaps-dir` default).
pub const CONFIGMAPS_DIR: &str = "/var/run/configmaps/e4k";
/// The metrics and health port.
pub const METRICS_PORT: u16 = 9102;

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
/// [`Error::InvalidInput`] for names Kubernetes would refuse, or an image or replica count that
/// cannot work.
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

    let mut mounts = String::new();
    let mut volumes = String::new();
    for (i, secret) in input.secrets.iter().enumerate() {
        let _ = write!(
            mounts,
            "            - name: secret-{i}\n              mountPath: {SECRETS_DIR}/{secret}\n              readOnly: true\n"
        );
        let _ = write!(
            volumes,
            "        - name: secret-{i}\n          secret:\n            secretName: {secret}\n            defaultMode: 0440\n"
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
    let rendered = body
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
