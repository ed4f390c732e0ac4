//! `e4k eventgrid plan / setup / destroy / show`: the ARM commands, their confirmation and
//! progress on stderr, and their output.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::Context;
use e4k_provisioning::eventgrid::{
    apply::{self, Applied, ApplyOptions},
    arm::ArmClient,
    plan::{self, Current, Plan},
    render::{self, ShownResource},
    validate::Problem,
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{ApplyArgs, ArmArgs, Loaded, arm_client, load_spec};
use crate::{
    output::{Output, usage},
    signals,
};

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
    let loaded = load_spec(&args.arm.spec)?;
    let arm = arm_client(&args.arm, cancel)?;
    let current = apply::read_current(&arm, &loaded.desired).await?;
    let plan = plan::plan(&loaded.desired, &current, args.prune, &loaded.path)?;
    Ok((loaded, arm, current, plan))
}

pub(super) async fn plan_cmd(args: ApplyArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let (loaded, _arm, _current, plan) = planned(&args, signals::shutdown_token()).await?;
    let output = PlanOutput {
        spec: loaded.path,
        namespace_id: loaded.desired.namespace_id,
        plan,
        warnings: loaded.warnings,
    };
    out.emit(&output, |w| render::write_plan(w, &output.plan))?;
    Ok(ExitCode::SUCCESS)
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
            eprintln!("{}", render::applied_line(item));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
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
    render::write_plan(&mut std::io::stderr(), plan)
}

pub(super) async fn setup_cmd(args: ApplyArgs, out: &Output) -> anyhow::Result<ExitCode> {
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

pub(super) async fn destroy_cmd(args: ApplyArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let cancel = signals::shutdown_token();
    let loaded = load_spec(&args.arm.spec)?;
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

pub(super) async fn show_cmd(args: ArmArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let loaded = load_spec(&args.spec)?;
    let arm = arm_client(&args, signals::shutdown_token())?;
    let current = apply::read_current(&arm, &loaded.desired).await?;
    let output = ShowOutput {
        namespace_id: loaded.desired.namespace_id,
        exists: current.namespace.is_some(),
        hostname: current.namespace.as_ref().and_then(apply::hostname_of),
        resources: render::resources(&current),
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
