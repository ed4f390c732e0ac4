//! `e4k up`: the seed flow end to end, around `e4k_provisioning::up`.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Args;
use e4k_bridge::config::{Authentication, ConfigOptions, RawConfig, load_shape, resolve};
use e4k_provisioning::{
    certs::{KeyProtection, NotAfter, Password},
    eventgrid::{apply::DEFAULT_CONCURRENCY, validate::BridgeSessions},
    k8s::{
        apply,
        manifests::{DEFAULT_SAT_AUDIENCE, ManifestInput, ProjectedToken},
    },
    up::{self, Status, Step, UpOptions},
};

use super::{
    eventgrid::{ArmArgs, arm_client},
    k8s::SpoolArgs,
};
use crate::{
    output::{Output, usage},
    signals,
};

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    #[command(flatten)]
    arm: ArmArgs,
    /// The PKI directory (created when missing).
    #[arg(long, default_value = "pki", env = "E4K_PKI_DIR")]
    pki: PathBuf,
    /// Where the bridge configuration, its secret files and the Kubernetes manifests go.
    #[arg(long, default_value = "e4k-out")]
    out: PathBuf,
    /// The spec client the bridge connects as (default: mqttbridge).
    #[arg(long, default_value = "mqttbridge")]
    bridge_client: String,
    /// Validity of new client certificates.
    #[arg(long, default_value = "90d")]
    not_after: String,
    /// Write new CA keys unencrypted (needs --insecure); otherwise E4K_PASSWORD encrypts them.
    #[arg(long, requires = "insecure")]
    no_password: bool,
    /// Confirm an insecure choice such as --no-password.
    #[arg(long)]
    insecure: bool,
    /// The container image for the manifests.
    #[arg(long, default_value = concat!("e4k:", env!("CARGO_PKG_VERSION")))]
    image: String,
    /// The Kubernetes namespace.
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// The audience of the service account token the pods get when the bridge's local
    /// connection uses K8S-SAT (the seed's default).
    #[arg(long, default_value = DEFAULT_SAT_AUDIENCE)]
    sat_audience: String,
    #[command(flatten)]
    spool: SpoolArgs,
    /// Apply the Secret and the manifests to the current kubeconfig's cluster.
    #[arg(long)]
    apply: bool,
    /// Then run the bridge in this process with the completed configuration, until Ctrl-C or
    /// SIGTERM.
    #[arg(long)]
    run_bridge: bool,
    /// With --run-bridge: the local broker (host:port), instead of the configuration's.
    #[arg(long, requires = "run_bridge")]
    local_endpoint: Option<String>,
    /// With --run-bridge: where /metrics, /healthz and /readyz are served.
    #[arg(long, requires = "run_bridge")]
    metrics_listen: Option<std::net::SocketAddr>,
}

pub(crate) fn run(args: UpArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let bridge_path = args
        .arm
        .spec
        .bridge
        .clone()
        .ok_or_else(|| usage("give the bridge configuration with --bridge bridge.yaml"))?;
    let resolved = load_shape(&bridge_path)?;
    let [bridge] = resolved.bridges.as_slice() else {
        return Err(usage(format!(
            "{}: give exactly one MqttBridgeConnector",
            bridge_path.display()
        )));
    };
    let Authentication::X509(files) = &bridge.remote.authentication else {
        return Err(usage(format!(
            "{}: the remote connection must authenticate with an X.509 client certificate (clientK8sSecret)",
            bridge_path.display()
        )));
    };
    let password = Password::from_file_or_env(None, "E4K_PASSWORD")?;
    let ca_protection = match (&password, args.no_password) {
        (_, true) => KeyProtection::Plaintext,
        (Some(p), false) => KeyProtection::Encrypted(p.clone()),
        (None, false) => {
            return Err(usage(
                "new CA keys would be encrypted but E4K_PASSWORD is not set; set it, or pass --no-password --insecure",
            ));
        }
    };
    let spool = args.spool.volume()?;
    let mounts = bridge.mounts();
    let up_bridge_source = bridge_path.display().to_string();
    let up_options = UpOptions {
        spec: args.arm.spec.spec.clone(),
        bridge_config: bridge_path,
        bridge_secret: files.secret.clone(),
        bridge_client: args.bridge_client.clone(),
        pki: args.pki.clone(),
        out: args.out.clone(),
        ca_protection,
        ca_password: password,
        pki_name: "e4k".into(),
        client_validity: NotAfter::parse(&args.not_after)?,
        manifests: ManifestInput {
            name: format!("e4k-{}", bridge.name),
            namespace: args.namespace.clone(),
            image: args.image.clone(),
            replicas: bridge.bridge_instances,
            bridge_yaml: String::new(),
            secrets: mounts.secrets,
            config_maps: mounts.config_maps,
            service_account_token: mounts.service_account_token.map(|path| ProjectedToken {
                path,
                audience: args.sat_audience.clone(),
            }),
            spool,
            workload_identity_client_id: None,
        },
        concurrency: DEFAULT_CONCURRENCY,
        bridge_sessions: Some(BridgeSessions {
            source: up_bridge_source.clone(),
            authentication_name: Some(args.bridge_client.clone()),
            sessions: bridge.remote_session_count(),
        }),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let arm = arm_client(&args.arm, signals::shutdown_token())?;
        let progress = |step: &Step| {
            if out.progress_allowed() {
                let status = match step.status {
                    Status::Created => "created",
                    Status::Updated => "updated",
                    Status::Unchanged => "unchanged",
                };
                eprintln!(
                    "{:<9} {:<10} {} {}",
                    status, step.step, step.target, step.detail
                );
            }
        };
        let report = up::up(&up_options, &arm, &progress)
            .await
            .context("e4k up stopped; rerun it to continue")?;
        if args.apply {
            let client = apply::connect().await?;
            for path in [&report.secret_manifest, &report.manifests] {
                let yaml = std::fs::read_to_string(path)?;
                apply::apply_yaml(&client, &yaml, args.namespace.as_deref()).await?;
            }
        }
        anyhow::Ok(report)
    })?;
    if args.run_bridge {
        return run_bridge(&report, &args, out, &runtime);
    }
    out.emit(&report, |w| {
        let changed = report
            .steps
            .iter()
            .filter(|s| s.status != Status::Unchanged)
            .count();
        writeln!(
            w,
            "{changed} of {} steps changed something; {} ARM writes",
            report.steps.len(),
            report.arm_writes
        )?;
        writeln!(
            w,
            "MQTT hostname:  {}",
            report.hostname.as_deref().unwrap_or("(not yet known)")
        )?;
        writeln!(w, "bridge config:  {}", report.bridge_config.display())?;
        writeln!(w, "secrets dir:    {}", report.secrets_dir.display())?;
        writeln!(w, "Secret:         {}", report.secret_manifest.display())?;
        writeln!(w, "manifests:      {}", report.manifests.display())?;
        writeln!(
            w,
            "run the bridge: e4k bridge run --config {} --secrets-dir {}",
            report.bridge_config.display(),
            report.secrets_dir.display()
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the bridge with what `up` wrote, until a signal; the report is printed first.
fn run_bridge(
    report: &up::UpReport,
    args: &UpArgs,
    out: &Output,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    out.emit(report, |w| {
        writeln!(
            w,
            "MQTT hostname: {}",
            report.hostname.as_deref().unwrap_or("(not yet known)")
        )?;
        writeln!(
            w,
            "running the bridge with {} (Ctrl-C stops it)",
            report.bridge_config.display()
        )
    })?;
    let raw = RawConfig::load(&report.bridge_config)?;
    let mut options = ConfigOptions::default();
    options.secrets_dir = report.secrets_dir.clone();
    options.local_endpoint = args.local_endpoint.clone();
    let resolved = resolve(&raw, &options)
        .map_err(|problems| usage(format!("{}:\n{problems}", report.bridge_config.display())))?;
    let mut run_options = e4k_bridge::RunOptions::default();
    run_options.metrics_listen = args.metrics_listen;
    runtime.block_on(async {
        let bridge = e4k_bridge::Bridge::new(&resolved.bridges, run_options)?;
        bridge.run(signals::shutdown_token()).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
