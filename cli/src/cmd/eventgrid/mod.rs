//! `e4k eventgrid …`: arguments and printing around `e4k_provisioning::eventgrid` and the
//! emulator.
//!
//! This module holds the arguments, `validate` and loading a spec (the ARM client is
//! `e4k_provisioning::eventgrid::session`'s);
//! [`arm_commands`] the ARM commands (`plan`, `setup`, `destroy`, `show`); [`emulator`] the
//! `emulator` command.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

use anyhow::Context;
use clap::{Args, Subcommand};
use e4k_provisioning::eventgrid::{
    apply,
    arm::ArmClient,
    credential,
    model::{self, Desired},
    session::ArmOptions,
    spec::Spec,
    validate::{self, BridgeSessions, Problem, Severity, ValidateOptions},
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use self::emulator::EmulatorArgs;
use crate::output::{Output, usage};

mod arm_commands;
mod emulator;

#[derive(Debug, Subcommand)]
pub(crate) enum EventgridCommand {
    /// Check a spec without any network call; exit 2 on errors.
    Validate(SpecArgs),
    /// Show what `setup` would change: create / update / replace / delete / no-op per resource.
    Plan(ApplyArgs),
    /// Apply a spec: create and update what differs (asks first on a terminal unless --yes).
    Setup(ApplyArgs),
    /// Delete what the spec manages (bindings first; the namespace if the spec creates it).
    Destroy(ApplyArgs),
    /// Print the namespace's MQTT hostname and the resources it holds.
    Show(ArmArgs),
    /// Print the seed's Event Grid spec (templates/eventgrid.yaml) to start from.
    Template,
    /// Run a local Event Grid namespace (ARM control plane) for tests and CI.
    Emulator(EmulatorArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SpecArgs {
    /// The spec file (YAML).
    #[arg(long, value_name = "FILE")]
    pub(crate) spec: PathBuf,
    /// Also check that the namespace allows the sessions this bridge configuration opens.
    #[arg(long, value_name = "BRIDGE_YAML")]
    pub(crate) bridge: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ArmArgs {
    #[command(flatten)]
    pub(crate) spec: SpecArgs,
    /// The ARM endpoint: the emulator's URL, or a sovereign cloud's.
    #[arg(
        long,
        env = "E4K_ARM_ENDPOINT",
        default_value = "https://management.azure.com"
    )]
    endpoint: String,
    /// How to get tokens: auto, azure-cli, developer-tools, service-principal (secret or
    /// certificate: AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH), workload-identity,
    /// managed-identity.
    #[arg(long, default_value = "auto")]
    credential: String,
    /// Use the bearer token in this environment variable (e.g. for the emulator).
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
    /// Attempts per ARM call (429 and 5xx are retried with backoff).
    #[arg(long, default_value_t = 8)]
    max_attempts: u32,
    /// Shortest wait between polls of a long-running operation, in milliseconds (ARM's
    /// Retry-After is honoured above it; lower it for the emulator).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    min_poll_interval_ms: u64,
}

#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    #[command(flatten)]
    arm: ArmArgs,
    /// Also delete resources that exist in the namespace but are not in the spec.
    #[arg(long)]
    prune: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
    /// ARM writes in flight at once.
    #[arg(long, default_value_t = apply::DEFAULT_CONCURRENCY)]
    concurrency: usize,
}

pub(crate) fn run(command: EventgridCommand, out: &Output) -> anyhow::Result<ExitCode> {
    match command {
        EventgridCommand::Validate(args) => validate_cmd(&args, out),
        EventgridCommand::Template => {
            out.emit(
                &serde_json::json!({ "spec": e4k_templates::EVENTGRID_YAML }),
                |w| w.write_all(e4k_templates::EVENTGRID_YAML.as_bytes()),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        EventgridCommand::Plan(args) => runtime()?.block_on(arm_commands::plan_cmd(args, out)),
        EventgridCommand::Setup(args) => runtime()?.block_on(arm_commands::setup_cmd(args, out)),
        EventgridCommand::Destroy(args) => {
            runtime()?.block_on(arm_commands::destroy_cmd(args, out))
        }
        EventgridCommand::Show(args) => runtime()?.block_on(arm_commands::show_cmd(args, out)),
        EventgridCommand::Emulator(args) => runtime()?.block_on(emulator::emulator_cmd(args, out)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A spec that passed validation, its desired ARM state, and its warnings.
struct Loaded {
    path: PathBuf,
    desired: Desired,
    warnings: Vec<Problem>,
}

/// The JSON shape of `e4k eventgrid validate`.
#[derive(Debug, Serialize)]
struct ValidateOutput {
    spec: PathBuf,
    valid: bool,
    problems: Vec<Problem>,
}

fn check_spec(args: &SpecArgs) -> anyhow::Result<(Spec, Vec<Problem>)> {
    let spec = Spec::load(&args.spec)?;
    let options = ValidateOptions {
        bridge: args.bridge.as_deref().map(bridge_sessions).transpose()?,
    };
    let problems = validate::validate(&spec, spec_dir(&args.spec), &options);
    Ok((spec, problems))
}

/// Where the spec's relative file paths start: its directory (empty for a bare file name, so
/// that messages show `pki/…` rather than `./pki/…`).
fn spec_dir(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

/// The sessions a bridge configuration opens toward the remote broker.
fn bridge_sessions(path: &Path) -> anyhow::Result<BridgeSessions> {
    use e4k_bridge::config::{ConfigOptions, RawConfig, resolve};
    let raw = RawConfig::load(path)?;
    let mut options = ConfigOptions::default();
    options.check_files = false;
    let resolved = resolve(&raw, &options).map_err(|report| {
        usage(format!(
            "{}: the bridge configuration is invalid:\n{report}",
            path.display()
        ))
    })?;
    let sessions = resolved
        .bridges
        .iter()
        .map(|b| b.remote_session_count())
        .sum();
    Ok(BridgeSessions {
        source: path.display().to_string(),
        authentication_name: None,
        sessions,
    })
}

fn validate_cmd(args: &SpecArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let (_, problems) = check_spec(args)?;
    let valid = !problems.iter().any(|p| p.severity == Severity::Error);
    let output = ValidateOutput {
        spec: args.spec.clone(),
        valid,
        problems,
    };
    out.emit(&output, |w| {
        for p in &output.problems {
            writeln!(w, "{p}")?;
        }
        if output.valid {
            writeln!(w, "{}: valid", output.spec.display())
        } else {
            let errors = output
                .problems
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .count();
            writeln!(w, "{}: {errors} error(s)", output.spec.display())
        }
    })?;
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Loads and validates a spec; errors stop here (exit 2), warnings are logged.
fn load(args: &SpecArgs) -> anyhow::Result<Loaded> {
    let (spec, problems) = check_spec(args)?;
    let (errors, warnings): (Vec<Problem>, Vec<Problem>) = problems
        .into_iter()
        .partition(|p| p.severity == Severity::Error);
    if !errors.is_empty() {
        let lines: Vec<String> = errors
            .iter()
            .map(|p| format!("  {}: {}", p.path, p.message))
            .collect();
        return Err(usage(format!(
            "{} has {} error(s):\n{}",
            args.spec.display(),
            errors.len(),
            lines.join("\n")
        )));
    }
    for w in &warnings {
        tracing::warn!("{}: {}", args.spec.display(), w);
    }
    let desired = model::desired(&spec, spec_dir(&args.spec), &args.spec)?;
    Ok(Loaded {
        path: args.spec.clone(),
        desired,
        warnings,
    })
}

impl ArmArgs {
    /// The ARM flags as the library's options.
    fn options(&self) -> ArmOptions {
        ArmOptions {
            endpoint: self.endpoint.clone(),
            credential: self.credential.clone(),
            token_env: self.token_env.clone(),
            max_attempts: self.max_attempts,
            min_poll_interval_ms: self.min_poll_interval_ms,
        }
    }
}

/// The ARM client of the flags, reading the process environment.
pub(crate) fn arm_client(
    args: &ArmArgs,
    cancel: CancellationToken,
) -> anyhow::Result<Arc<ArmClient>> {
    Ok(args.options().client(&credential::process_env, cancel)?)
}
