//! `e4k eventgrid …`: arguments and printing around `e4k_provisioning::eventgrid` and the
//! emulator.

use std::{
    io::IsTerminal,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use clap::{Args, Subcommand};
use e4k_emulator::PublishLimit;
use e4k_provisioning::eventgrid::{
    apply::{self, Applied, ApplyOptions},
    arm::{ArmClient, ArmConfig},
    credential::{self, CredentialChoice},
    model::{self, Desired, ResourceKind},
    plan::{self, Action, Current, Plan},
    spec::Spec,
    validate::{self, BridgeSessions, Problem, Severity, ValidateOptions},
};
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{
    output::{Output, usage},
    signals,
};

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

#[derive(Debug, Args)]
pub(crate) struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8890")]
    listen: SocketAddr,
    /// Keep the state in this JSON file across restarts.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Added latency per call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// How long long-running operations take, in milliseconds.
    #[arg(long, default_value_t = 200)]
    lro_delay_ms: u64,
    /// Fraction of calls answered 429 (0..1).
    #[arg(long, default_value_t = 0.0)]
    fault_429: f64,
    /// Fraction of calls answered 5xx (0..1).
    #[arg(long, default_value_t = 0.0)]
    fault_5xx: f64,
    /// Seed for the fault injection.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Accept only this bearer token, read from the named environment variable.
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
    /// The MQTT hostname reported for namespaces ({namespace} and {region} are filled in);
    /// with --mqtt-listen it defaults to `localhost`.
    #[arg(long)]
    mqtt_hostname: Option<String>,
    /// Also serve the MQTT data plane (TLS, client certificates, topic authorization from the
    /// control-plane state) on this address, e.g. 127.0.0.1:8883. Needs mosquitto.
    #[arg(long, value_name = "ADDR")]
    mqtt_listen: Option<SocketAddr>,
    /// Write the data plane's CA certificate (PEM) here, for clients to trust (--cafile);
    /// default a temporary file, printed at start.
    #[arg(long, value_name = "FILE", requires = "mqtt_listen")]
    mqtt_ca_out: Option<PathBuf>,
    /// The mosquitto binary behind the data plane (default /usr/sbin/mosquitto or `mosquitto`
    /// on PATH).
    #[arg(long, value_name = "PATH", requires = "mqtt_listen")]
    mosquitto: Option<PathBuf>,
    /// Also serve MQTT over secure WebSockets (path /mqtt, subprotocol mqtt) on this address,
    /// as Event Grid does on port 443.
    #[arg(long, value_name = "ADDR", requires = "mqtt_listen")]
    mqtt_websocket_listen: Option<SocketAddr>,
    /// PUBLISH packets per second each MQTT session may send, as Event Grid's quota (faster
    /// sessions are slowed down); 0 lifts the limit.
    #[arg(long, value_name = "N", default_value_t = PublishLimit::EVENT_GRID.messages_per_second)]
    session_publish_rate: u32,
    /// Bytes of PUBLISH packets per second each MQTT session may send; 0 lifts the limit.
    #[arg(long, value_name = "BYTES", default_value_t = PublishLimit::EVENT_GRID.bytes_per_second)]
    session_publish_bytes: u32,
    /// The principal (object) id of the managed identity whose tokens the emulator's
    /// identity endpoint (`{endpoint}/msi/token`) issues: the `principalId` of the role
    /// assignments that authorize them.
    #[arg(long, value_name = "GUID")]
    identity_principal_id: Option<String>,
    /// How long the identity endpoint's tokens live, in seconds (default 3600, as Entra ID's;
    /// a few seconds show token refresh).
    #[arg(long, value_name = "SECS")]
    identity_token_lifetime_secs: Option<u64>,
    /// The secret clients must send in X-IDENTITY-HEADER (App Service's IDENTITY_HEADER), read
    /// from the named environment variable (default `e4k-emulator-identity`).
    #[arg(long, value_name = "VAR")]
    identity_header_env: Option<String>,
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
        EventgridCommand::Plan(args) => runtime()?.block_on(plan_cmd(args, out)),
        EventgridCommand::Setup(args) => runtime()?.block_on(setup_cmd(args, out)),
        EventgridCommand::Destroy(args) => runtime()?.block_on(destroy_cmd(args, out)),
        EventgridCommand::Show(args) => runtime()?.block_on(show_cmd(args, out)),
        EventgridCommand::Emulator(args) => runtime()?.block_on(emulator_cmd(args, out)),
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

/// `--credential` (and `--token-env`) as a [`CredentialChoice`].
pub(crate) fn credential_choice(
    token_env: Option<&str>,
    name: &str,
) -> anyhow::Result<CredentialChoice> {
    Ok(match (token_env, name) {
        (Some(var), _) => CredentialChoice::StaticTokenEnv(var.to_owned()),
        (None, "auto") => CredentialChoice::Auto,
        (None, "azure-cli") => CredentialChoice::AzureCli,
        (None, "developer-tools") => CredentialChoice::DeveloperTools,
        (None, "service-principal") => CredentialChoice::ServicePrincipal,
        (None, "workload-identity") => CredentialChoice::WorkloadIdentity,
        (None, "managed-identity") => CredentialChoice::ManagedIdentity {
            client_id: credential::process_env("AZURE_CLIENT_ID"),
        },
        (None, other) => {
            return Err(usage(format!(
                "--credential {other:?}: expected auto, azure-cli, developer-tools, service-principal, workload-identity or managed-identity"
            )));
        }
    })
}

pub(crate) fn arm_client(
    args: &ArmArgs,
    cancel: CancellationToken,
) -> anyhow::Result<Arc<ArmClient>> {
    let choice = credential_choice(args.token_env.as_deref(), &args.credential)?;
    let credential = credential::build(&choice, &credential::process_env)?;
    let endpoint = url::Url::parse(&args.endpoint)
        .map_err(|e| usage(format!("--endpoint {:?}: {e}", args.endpoint)))?;
    let config = ArmConfig {
        endpoint,
        max_attempts: args.max_attempts,
        min_poll_interval: Duration::from_millis(args.min_poll_interval_ms),
        poll_interval: Duration::from_millis(args.min_poll_interval_ms.max(1000)),
        ..ArmConfig::default()
    };
    Ok(Arc::new(ArmClient::new(config, credential, cancel)?))
}

/// The JSON shape of `e4k eventgrid plan`.
#[derive(Debug, Serialize)]
struct PlanOutput {
    spec: PathBuf,
    namespace_id: String,
    plan: Plan,
    warnings: Vec<Problem>,
}

async fn planned(
    args: &ApplyArgs,
    cancel: CancellationToken,
) -> anyhow::Result<(Loaded, Arc<ArmClient>, Current, Plan)> {
    let loaded = load(&args.arm.spec)?;
    let arm = arm_client(&args.arm, cancel)?;
    let current = apply::read_current(&arm, &loaded.desired).await?;
    let plan = plan::plan(&loaded.desired, &current, args.prune, &loaded.path)?;
    Ok((loaded, arm, current, plan))
}

async fn plan_cmd(args: ApplyArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let (loaded, _arm, _current, plan) = planned(&args, signals::shutdown_token()).await?;
    let output = PlanOutput {
        spec: loaded.path,
        namespace_id: loaded.desired.namespace_id,
        plan,
        warnings: loaded.warnings,
    };
    out.emit(&output, |w| render_plan(w, &output.plan))?;
    Ok(ExitCode::SUCCESS)
}

fn label(kind: ResourceKind, name: &str) -> String {
    format!("{} {name}", kind.label())
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 120 {
        format!("{}…", text.chars().take(117).collect::<String>())
    } else {
        text
    }
}

fn render_plan(w: &mut dyn std::io::Write, plan: &Plan) -> std::io::Result<()> {
    for change in &plan.changes {
        let (mark, verb) = match change.action {
            Action::Create => ("+", "create"),
            Action::Update => ("~", "update"),
            Action::Replace => ("-/+", "replace (delete, then create)"),
            Action::Delete => ("-", "delete"),
            Action::NoOp => continue,
        };
        writeln!(w, "{mark} {}: {verb}", label(change.kind, &change.name))?;
        for field in &change.fields {
            match (&field.from, &field.to) {
                (None, Some(to)) => writeln!(w, "    {}: {}", field.path, short(to))?,
                (Some(from), Some(to)) => {
                    writeln!(w, "    {}: {} -> {}", field.path, short(from), short(to))?;
                }
                (Some(from), None) => writeln!(w, "    {}: {} -> (none)", field.path, short(from))?,
                (None, None) => {}
            }
        }
    }
    for (kind, name) in &plan.unmanaged {
        writeln!(
            w,
            "? {}: not in the spec (kept; --prune deletes it)",
            label(*kind, name)
        )?;
    }
    let s = &plan.summary;
    writeln!(
        w,
        "Plan: {} to create, {} to update, {} to replace, {} to delete, {} unchanged.",
        s.create, s.update, s.replace, s.delete, s.no_op
    )
}

/// ARM traffic, as reported by `setup` and `destroy`.
#[derive(Debug, Serialize)]
struct ArmCalls {
    requests: u64,
    writes: u64,
    retries: u64,
    throttled: u64,
}

fn arm_calls(arm: &ArmClient) -> ArmCalls {
    let stats = arm.stats();
    ArmCalls {
        requests: stats.requests,
        writes: stats.writes,
        retries: stats.retries,
        throttled: stats.throttled,
    }
}

/// The JSON shape of `e4k eventgrid setup`.
#[derive(Debug, Serialize)]
struct SetupOutput {
    spec: PathBuf,
    namespace_id: String,
    plan: Plan,
    applied: Vec<Applied>,
    hostname: Option<String>,
    arm: ArmCalls,
}

/// Asks on a terminal; elsewhere (CI, pipes) proceeds.
fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(true);
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Progress on stderr: a line per resource, or a bar when there are many.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    lines: bool,
}

/// Above this many changes, a bar replaces the per-resource lines.
const BAR_THRESHOLD: usize = 20;

impl Progress {
    fn new(out: &Output, changes: usize) -> Self {
        let allowed = out.progress_allowed();
        let bar = (allowed && changes > BAR_THRESHOLD).then(|| {
            let bar = indicatif::ProgressBar::new(changes as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {msg:>10} {pos}/{len} [{bar:30}] {per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message("applying");
            bar
        });
        Self {
            lines: allowed && bar.is_none(),
            bar,
        }
    }

    fn done(&self, item: &Applied) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        if self.lines {
            progress_line(item);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn progress_line(item: &Applied) {
    let verb = match item.action {
        Action::Create => "created",
        Action::Update => "updated",
        Action::Replace => "replaced",
        Action::Delete => "deleted",
        Action::NoOp => "unchanged",
    };
    eprintln!("{verb} {}", label(item.kind, &item.name));
}

/// Shows the plan on stderr before applying it: whole, or its summary when it is long (the
/// whole plan is what `e4k eventgrid plan` prints).
fn preview(out: &Output, plan: &Plan) -> std::io::Result<()> {
    if !out.progress_allowed() || plan.summary.changes() == 0 {
        return Ok(());
    }
    if plan.summary.changes() > BAR_THRESHOLD {
        let s = &plan.summary;
        eprintln!(
            "Plan: {} to create, {} to update, {} to replace, {} to delete, {} unchanged \
             (`e4k eventgrid plan` shows each).",
            s.create, s.update, s.replace, s.delete, s.no_op
        );
        return Ok(());
    }
    render_plan(&mut std::io::stderr(), plan)
}

async fn setup_cmd(args: ApplyArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let cancel = signals::shutdown_token();
    let (loaded, arm, _current, plan) = planned(&args, cancel).await?;
    let changes = plan.summary.changes();
    preview(out, &plan)?;
    if changes > 0 && !args.yes && !confirm("Apply these changes?")? {
        return Err(usage("not applied: the changes were not confirmed"));
    }
    let progress = Progress::new(out, changes);
    let report = apply::apply(
        &arm,
        &loaded.desired,
        &plan,
        &ApplyOptions {
            concurrency: args.concurrency,
        },
        &|item| progress.done(item),
    )
    .await
    .context("setup stopped; rerun it to finish (every step is idempotent)");
    progress.finish();
    let report = report?;
    let output = SetupOutput {
        spec: loaded.path,
        namespace_id: loaded.desired.namespace_id,
        plan,
        applied: report.applied,
        hostname: report.hostname,
        arm: arm_calls(&arm),
    };
    out.emit(&output, |w| {
        writeln!(
            w,
            "applied {} change(s); {} resource(s) already as specified",
            output.applied.len(),
            output.plan.summary.no_op
        )?;
        writeln!(
            w,
            "MQTT hostname: {}",
            output.hostname.as_deref().unwrap_or("(not yet known)")
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The JSON shape of `e4k eventgrid destroy`.
#[derive(Debug, Serialize)]
struct DestroyOutput {
    spec: PathBuf,
    namespace_id: String,
    deleted: Vec<Applied>,
    arm: ArmCalls,
}

async fn destroy_cmd(args: ApplyArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let cancel = signals::shutdown_token();
    let loaded = load(&args.arm.spec)?;
    let arm = arm_client(&args.arm, cancel)?;
    let current = apply::read_current(&arm, &loaded.desired).await?;
    let plan = apply::destroy_plan(&loaded.desired, &current);
    preview(out, &plan)?;
    if !plan.changes.is_empty() && !args.yes && !confirm("Delete these resources?")? {
        return Err(usage("nothing deleted: not confirmed"));
    }
    let progress = Progress::new(out, plan.changes.len());
    let report = apply::apply(
        &arm,
        &loaded.desired,
        &plan,
        &ApplyOptions {
            concurrency: args.concurrency,
        },
        &|item| progress.done(item),
    )
    .await;
    progress.finish();
    let deleted = report?.applied;
    let output = DestroyOutput {
        spec: loaded.path,
        namespace_id: loaded.desired.namespace_id,
        deleted,
        arm: arm_calls(&arm),
    };
    out.emit(&output, |w| {
        writeln!(w, "deleted {} resource(s)", output.deleted.len())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The JSON shape of `e4k eventgrid show`.
#[derive(Debug, Serialize)]
struct ShowOutput {
    namespace_id: String,
    exists: bool,
    hostname: Option<String>,
    resources: Vec<ShownResource>,
}

#[derive(Debug, Serialize)]
struct ShownResource {
    kind: ResourceKind,
    name: String,
    provisioning_state: Option<String>,
}

async fn show_cmd(args: ArmArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let loaded = load(&args.spec)?;
    let arm = arm_client(&args, signals::shutdown_token())?;
    let current = apply::read_current(&arm, &loaded.desired).await?;
    let state = |v: &Value| {
        v.pointer("/properties/provisioningState")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut resources = Vec::new();
    // Role assignments are read when the spec has `roleAssignments` (they live under the
    // namespace's scope in Microsoft.Authorization, not under the namespace).
    let role_assignments = (&ResourceKind::RoleAssignment, &current.role_assignments);
    for (kind, list) in current
        .children
        .iter()
        .chain(std::iter::once(role_assignments))
    {
        for r in list {
            resources.push(ShownResource {
                kind: *kind,
                name: r
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                provisioning_state: state(r),
            });
        }
    }
    let output = ShowOutput {
        namespace_id: loaded.desired.namespace_id,
        exists: current.namespace.is_some(),
        hostname: current.namespace.as_ref().and_then(apply::hostname_of),
        resources,
    };
    out.emit(&output, |w| {
        if !output.exists {
            return writeln!(w, "{}: does not exist", output.namespace_id);
        }
        writeln!(w, "namespace:     {}", output.namespace_id)?;
        writeln!(
            w,
            "MQTT hostname: {}",
            output.hostname.as_deref().unwrap_or("(not yet known)")
        )?;
        for r in &output.resources {
            writeln!(
                w,
                "  {:<20} {:<40} {}",
                r.kind.label(),
                r.name,
                r.provisioning_state.as_deref().unwrap_or("-")
            )?;
        }
        Ok(())
    })?;
    Ok(if output.exists {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn emulator_cmd(args: EmulatorArgs, out: &Output) -> anyhow::Result<ExitCode> {
    use e4k_emulator::{Emulator, EmulatorConfig, FaultConfig, MqttConfig};
    let token = match &args.token_env {
        Some(var) => Some(
            credential::process_env(var)
                .ok_or_else(|| usage(format!("--token-env {var}: the variable is not set")))?,
        ),
        None => None,
    };
    let mut config = EmulatorConfig {
        listen: args.listen,
        state_file: args.state.clone(),
        latency: Duration::from_millis(args.latency_ms),
        lro_delay: Duration::from_millis(args.lro_delay_ms),
        faults: FaultConfig {
            rate_429: args.fault_429,
            rate_5xx: args.fault_5xx,
            seed: args.seed,
            ..FaultConfig::default()
        },
        token,
        ..EmulatorConfig::default()
    };
    if let Some(principal) = &args.identity_principal_id {
        if !e4k_provisioning::eventgrid::rbac::is_guid(principal) {
            return Err(usage(format!(
                "--identity-principal-id {principal:?}: not a GUID"
            )));
        }
        config.identity.principal_id.clone_from(principal);
    }
    if let Some(secs) = args.identity_token_lifetime_secs {
        if secs == 0 {
            return Err(usage(
                "--identity-token-lifetime-secs: must be at least 1".to_owned(),
            ));
        }
        config.identity.token_lifetime = Duration::from_secs(secs);
    }
    if let Some(var) = &args.identity_header_env {
        config.identity.header_secret = credential::process_env(var).ok_or_else(|| {
            usage(format!(
                "--identity-header-env {var}: the variable is not set"
            ))
        })?;
    }
    if let Some(listen) = args.mqtt_listen {
        config.mqtt = Some(MqttConfig {
            listen,
            mosquitto_binary: args.mosquitto.clone(),
            ca_file: args.mqtt_ca_out.clone(),
            websocket_listen: args.mqtt_websocket_listen,
            session_publish_limit: (args.session_publish_rate > 0
                || args.session_publish_bytes > 0)
                .then_some(PublishLimit {
                    messages_per_second: args.session_publish_rate,
                    bytes_per_second: args.session_publish_bytes,
                }),
            ..MqttConfig::default()
        });
        // A local data plane is reached as localhost unless told otherwise.
        config.mqtt_hostname = "localhost".into();
    }
    if let Some(hostname) = args.mqtt_hostname {
        config.mqtt_hostname = hostname;
    }
    let emulator = Emulator::bind(config).await?;
    let url = format!("http://{}", emulator.local_addr());
    let identity_endpoint = emulator.identity_endpoint();
    let mqtt_endpoint = emulator.mqtt_addr().map(|addr| addr.to_string());
    let mqtt_websocket = emulator
        .mqtt_websocket_addr()
        .map(|addr| format!("wss://{addr}/mqtt"));
    let mqtt_ca = emulator
        .mqtt_ca_pem_path()
        .map(|path| path.display().to_string());
    out.emit(
        &serde_json::json!({
            "endpoint": url,
            "mqtt_endpoint": mqtt_endpoint,
            "mqtt_websocket_url": mqtt_websocket,
            "mqtt_ca": mqtt_ca,
            "identity_endpoint": identity_endpoint,
        }),
        |w| {
            writeln!(w, "{url}")?;
            writeln!(w, "IDENTITY_ENDPOINT={identity_endpoint}")?;
            if let (Some(endpoint), Some(ca)) = (&mqtt_endpoint, &mqtt_ca) {
                writeln!(w, "mqtts://{endpoint} (CA: {ca})")?;
            }
            if let Some(websocket) = &mqtt_websocket {
                writeln!(w, "{websocket}")?;
            }
            Ok(())
        },
    )?;
    tracing::info!(%url, ?mqtt_endpoint, "Event Grid emulator listening; Ctrl-C stops it");
    emulator.run(signals::shutdown_token()).await?;
    Ok(ExitCode::SUCCESS)
}
