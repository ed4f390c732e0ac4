//! `e4k eventgrid …`: arguments and printing around `e4k_provisioning::eventgrid` and the
//! emulator.
//!
//! This module holds the arguments and `validate` (a spec is read and checked by
//! `e4k_provisioning::eventgrid::load`, the ARM client built by
//! `e4k_provisioning::eventgrid::session`);
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
    load::{self, Loaded},
    session::ArmOptions,
    validate::{BridgeSessions, Problem, ValidateOptions},
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use self::emulator::EmulatorArgs;
use crate::output::Output;

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

/// The JSON shape of `e4k eventgrid validate`.
#[derive(Debug, Serialize)]
struct ValidateOutput {
    spec: PathBuf,
    valid: bool,
    problems: Vec<Problem>,
}

impl SpecArgs {
    /// The validation options of the flags (reads `--bridge`).
    fn options(&self) -> anyhow::Result<ValidateOptions> {
        Ok(ValidateOptions {
            bridge: self.bridge.as_deref().map(bridge_sessions).transpose()?,
        })
    }
}

/// The sessions a bridge configuration opens toward the remote broker.
fn bridge_sessions(path: &Path) -> anyhow::Result<BridgeSessions> {
    Ok(BridgeSessions {
        source: path.display().to_string(),
        authentication_name: None,
        sessions: e4k_bridge::config::load_shape(path)?.remote_session_count(),
    })
}

fn validate_cmd(args: &SpecArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let checked = load::check(&args.spec, &args.options()?)?;
    let errors = checked.error_count();
    let output = ValidateOutput {
        spec: args.spec.clone(),
        valid: errors == 0,
        problems: checked.problems,
    };
    out.emit(&output, |w| {
        for p in &output.problems {
            writeln!(w, "{p}")?;
        }
        if output.valid {
            writeln!(w, "{}: valid", output.spec.display())
        } else {
            writeln!(w, "{}: {errors} error(s)", output.spec.display())
        }
    })?;
    Ok(if output.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Loads and validates a spec; errors stop here (exit 2), warnings are logged.
fn load_spec(args: &SpecArgs) -> anyhow::Result<Loaded> {
    let loaded = load::load(&args.spec, &args.options()?)?;
    for w in &loaded.warnings {
        tracing::warn!("{}: {}", args.spec.display(), w);
    }
    Ok(loaded)
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
