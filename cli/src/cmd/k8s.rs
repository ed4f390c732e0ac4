//! `e4k k8s …`: Kubernetes manifests for the bridge, printed for `kubectl apply -f -`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Subcommand};
use e4k_bridge::config::load_shape;
use e4k_provisioning::k8s::{
    apply,
    manifests::{self, DEFAULT_SAT_AUDIENCE, ManifestInput, ProjectedToken, SpoolVolume},
    secret::{self, SecretFiles},
};
use serde::Serialize;

use crate::output::{Output, usage};

#[derive(Debug, Subcommand)]
pub(crate) enum K8sCommand {
    /// Print the bridge's client certificate Secret, exactly as `kubectl create secret generic
    /// NAME --from-file=client_cert.pem=… --dry-run=client -o yaml` prints it.
    #[command(
        after_help = "Example:\n  e4k k8s secret bridge-client-cert --cert mqttbridge.pem --key mqttbridge.key \\\n      --intermediate pki/certs/intermediate_ca.crt | kubectl apply -f -"
    )]
    Secret(SecretArgs),
    /// Print what runs `e4k bridge run` in a cluster: a ServiceAccount, a ConfigMap with the
    /// bridge configuration, a metrics Service and a StatefulSet with one pod per bridgeInstances.
    #[command(
        after_help = "Example:\n  e4k k8s manifests --bridge-config bridge.yaml --image registry.example/e4k:0.1.0 -n factory | kubectl apply -f -"
    )]
    Manifests(ManifestsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ManifestsArgs {
    /// The bridge configuration (MqttBridgeConnector + MqttBridgeTopicMap YAML).
    #[arg(long, value_name = "FILE")]
    bridge_config: PathBuf,
    /// The container image holding the e4k binary (see the Dockerfile).
    #[arg(long, default_value = concat!("e4k:", env!("CARGO_PKG_VERSION")))]
    image: String,
    /// The namespace (omitted: kubectl's current namespace).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// The objects' name (default: e4k-<connector name>).
    #[arg(long)]
    name: Option<String>,
    /// Audience of the service account token sent to the local broker, when the bridge
    /// configuration authenticates to it with one.
    #[arg(long, default_value = DEFAULT_SAT_AUDIENCE)]
    sat_audience: String,
    /// The client id of the user-assigned managed identity the bridge runs as (AKS workload
    /// identity): annotates the ServiceAccount and labels the pods for the webhook.
    #[arg(long, value_name = "GUID")]
    workload_identity_client_id: Option<String>,
    #[command(flatten)]
    spool: SpoolArgs,
    /// Apply them to the cluster of the current kubeconfig (server-side apply, field manager
    /// e4k) instead of printing them.
    #[arg(long)]
    apply: bool,
}

/// Each bridge pod's persistent spool volume (`e4k k8s manifests`, `e4k up`).
#[derive(Debug, Args)]
pub(crate) struct SpoolArgs {
    /// Size of each pod's spool volume, a Kubernetes quantity (512Mi, 1Gi, 10G, or bytes); the
    /// bridge spools up to 90% of it less one 64 MiB segment.
    #[arg(long, value_name = "QUANTITY", default_value = "1Gi")]
    spool_size: String,
    /// Storage class of the spool volumes (default: the cluster's default storage class).
    #[arg(long, value_name = "NAME")]
    spool_storage_class: Option<String>,
    /// No spool volume: the bridge keeps messages in memory only.
    #[arg(long, conflicts_with_all = ["spool_size", "spool_storage_class"])]
    no_spool: bool,
}

impl SpoolArgs {
    /// The spool volume these flags ask for, or `None` with `--no-spool`.
    pub(crate) fn volume(&self) -> anyhow::Result<Option<SpoolVolume>> {
        if self.no_spool {
            return Ok(None);
        }
        Ok(Some(SpoolVolume::from_flags(
            &self.spool_size,
            self.spool_storage_class.clone(),
        )?))
    }
}

/// The JSON shape of a spool volume: its size, its storage class and the bridge's
/// `--spool-max-bytes`.
#[derive(Debug, Serialize)]
struct SpoolOutput {
    size_bytes: u64,
    storage_class: Option<String>,
    max_bytes: u64,
}

impl From<&SpoolVolume> for SpoolOutput {
    fn from(spool: &SpoolVolume) -> Self {
        Self {
            size_bytes: spool.size_bytes,
            storage_class: spool.storage_class.clone(),
            max_bytes: spool.max_bytes(),
        }
    }
}

/// The JSON shape of `--apply`.
#[derive(Debug, Serialize)]
struct ApplyOutput {
    applied: Vec<apply::AppliedObject>,
}

/// Applies YAML to the cluster and reports each object.
fn apply_to_cluster(yaml: &str, namespace: Option<&str>, out: &Output) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let applied = runtime.block_on(async {
        let client = apply::connect().await?;
        apply::apply_yaml(&client, yaml, namespace).await
    })?;
    let output = ApplyOutput { applied };
    out.emit(&output, |w| {
        for object in &output.applied {
            writeln!(
                w,
                "applied {} {}/{}",
                object.kind, object.namespace, object.name
            )?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The JSON shape of `e4k k8s manifests`.
#[derive(Debug, Serialize)]
struct ManifestsOutput {
    name: String,
    namespace: Option<String>,
    replicas: u32,
    secrets: Vec<String>,
    config_maps: Vec<String>,
    spool: Option<SpoolOutput>,
    yaml: String,
}

#[derive(Debug, Args)]
pub(crate) struct SecretArgs {
    /// The Secret's name (the bridge config's `clientK8sSecret`).
    name: String,
    /// The client certificate (PEM) → client_cert.pem.
    #[arg(long)]
    cert: PathBuf,
    /// Its private key, unencrypted (PEM) → client_key.pem.
    #[arg(long)]
    key: PathBuf,
    /// The intermediate CA certificate(s) (PEM) → client_intermediate_certs.pem.
    #[arg(long)]
    intermediate: Option<PathBuf>,
    /// The namespace (omitted: kubectl's current namespace).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// Apply it to the cluster of the current kubeconfig (server-side apply, field manager e4k)
    /// instead of printing it.
    #[arg(long)]
    apply: bool,
}

pub(crate) fn run(command: K8sCommand, out: &Output) -> anyhow::Result<ExitCode> {
    match command {
        K8sCommand::Secret(args) => {
            let rendered = secret::render_secret(
                &args.name,
                args.namespace.as_deref(),
                &SecretFiles {
                    cert: args.cert,
                    key: args.key,
                    intermediate: args.intermediate,
                },
            )?;
            if args.apply {
                return apply_to_cluster(&rendered.yaml, args.namespace.as_deref(), out);
            }
            out.emit(&rendered, |w| w.write_all(rendered.yaml.as_bytes()))?;
            Ok(ExitCode::SUCCESS)
        }
        K8sCommand::Manifests(args) => manifests_cmd(args, out),
    }
}

fn manifests_cmd(args: ManifestsArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let spool = args.spool.volume()?;
    let text = std::fs::read_to_string(&args.bridge_config)
        .map_err(|e| usage(format!("cannot read {}: {e}", args.bridge_config.display())))?;
    let resolved = load_shape(&args.bridge_config)?;
    let bridge = match resolved.bridges.as_slice() {
        [one] => one,
        many => {
            let names: Vec<&str> = many.iter().map(|b| b.name.as_str()).collect();
            return Err(usage(format!(
                "{} holds {} connectors ({}); render one connector per file",
                args.bridge_config.display(),
                many.len(),
                names.join(", ")
            )));
        }
    };
    let mounts = bridge.mounts();
    let input = ManifestInput {
        name: args.name.unwrap_or_else(|| format!("e4k-{}", bridge.name)),
        namespace: args.namespace,
        image: args.image,
        replicas: bridge.bridge_instances,
        bridge_yaml: text,
        secrets: mounts.secrets,
        config_maps: mounts.config_maps,
        service_account_token: mounts.service_account_token.map(|path| ProjectedToken {
            path,
            audience: args.sat_audience,
        }),
        spool,
        workload_identity_client_id: args.workload_identity_client_id,
    };
    let yaml = manifests::render(&input, e4k_templates::K8S_BRIDGE_YAML)?;
    if args.apply {
        return apply_to_cluster(&yaml, input.namespace.as_deref(), out);
    }
    let output = ManifestsOutput {
        name: input.name,
        namespace: input.namespace,
        replicas: input.replicas,
        secrets: input.secrets,
        config_maps: input.config_maps,
        spool: input.spool.as_ref().map(SpoolOutput::from),
        yaml,
    };
    out.emit(&output, |w| w.write_all(output.yaml.as_bytes()))?;
    Ok(ExitCode::SUCCESS)
}
