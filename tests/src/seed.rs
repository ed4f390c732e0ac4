//! The seed's Event Grid side, set up through an emulator's ARM API with `e4k up`'s library
//! call: PKI, client certificates, namespace, clients, topic spaces, bindings, and the bridge's
//! secret laid out as a pod mounts it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use e4k_provisioning::certs::{KeyProtection, NotAfter};
use e4k_provisioning::eventgrid::arm::{ArmClient, ArmConfig};
use e4k_provisioning::eventgrid::credential::StaticToken;
use e4k_provisioning::k8s::manifests::{DEFAULT_SAT_AUDIENCE, ManifestInput, ProjectedToken};
use e4k_provisioning::up::{self, UpOptions};
use tokio_util::sync::CancellationToken;

/// Where [`up()`] put the files.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// Client certificates and keys: `<name>.pem` (with the intermediate) and `<name>.key`,
    /// for `mqttbridge` and `mosquitto` (the seed's commander).
    pub certs: PathBuf,
    /// The `--secrets-dir` for the bridge (secret `bridge-client-cert`).
    pub secrets: PathBuf,
}

/// Runs `e4k up` for the seed (`templates/eventgrid.yaml`, `templates/bridge.yaml`) in `dir`
/// against the ARM endpoint `arm_url` (an emulator's base URL).
///
/// # Errors
/// When the files cannot be written or `up` fails.
pub async fn up(dir: &Path, arm_url: &str) -> io::Result<Seeded> {
    let spec = dir.join("eventgrid.yaml");
    let bridge_yaml = dir.join("bridge.yaml");
    std::fs::write(
        &spec,
        e4k_templates::eventgrid_yaml(e4k_templates::EMULATOR_SUBSCRIPTION_ID),
    )?;
    std::fs::write(&bridge_yaml, e4k_templates::BRIDGE_YAML)?;
    let endpoint = arm_url.parse().map_err(io::Error::other)?;
    let arm = Arc::new(
        ArmClient::new(
            ArmConfig {
                endpoint,
                min_poll_interval: Duration::from_millis(10),
                ..ArmConfig::default()
            },
            Arc::new(StaticToken::new("e4k-tests")),
            CancellationToken::new(),
        )
        .map_err(io::Error::other)?,
    );
    // What the pods mount, as `e4k up` renders it from the configuration.
    let mounts = e4k_bridge::config::load_shape(&bridge_yaml)
        .map_err(io::Error::other)?
        .bridges
        .first()
        .map(e4k_bridge::config::BridgeConfig::mounts)
        .unwrap_or_default();
    let out = dir.join("e4k-out");
    let report = up::up(
        &UpOptions {
            spec,
            bridge_config: bridge_yaml,
            bridge_secret: "bridge-client-cert".into(),
            bridge_client: "mqttbridge".into(),
            pki: dir.join("pki"),
            out: out.clone(),
            ca_protection: KeyProtection::Plaintext,
            ca_password: None,
            pki_name: "e4k tests".into(),
            client_validity: NotAfter::parse("24h").map_err(io::Error::other)?,
            manifests: ManifestInput {
                name: "e4k-tests".into(),
                namespace: None,
                image: "e4k:tests".into(),
                replicas: 1,
                bridge_yaml: String::new(),
                secrets: mounts.secrets,
                config_maps: mounts.config_maps,
                service_account_token: mounts.service_account_token.map(|path| ProjectedToken {
                    path,
                    audience: DEFAULT_SAT_AUDIENCE.into(),
                }),
                spool: None,
                workload_identity_client_id: None,
            },
            concurrency: 8,
            bridge_sessions: None,
        },
        &arm,
        &|_| {},
    )
    .await
    .map_err(io::Error::other)?;
    Ok(Seeded {
        certs: out.join("certs"),
        secrets: report.secrets_dir,
    })
}
