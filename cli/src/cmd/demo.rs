//! `e4k demo`: the seed walkthrough on this machine, with no Azure account.
//!
//! [`e4k_emulator::demo`] does the work (the emulator, `e4k up`, the factory broker, the
//! bridge and the seed's terminal sessions); this prints each session's transcript as the
//! seed shows it, with its check.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Args;
use e4k_emulator::demo;

use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Keep the demo's files here (default: a temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Messages each telemetry and anomaly publisher sends (the seed sends 5 and 500).
    #[arg(long, default_value_t = 5)]
    repeat: u32,
}

pub(crate) fn run(args: DemoArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let temp;
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            temp.path().to_owned()
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let progress = |message: &str| {
        if out.progress_allowed() {
            eprintln!("demo: {message}");
        }
    };
    let output = runtime.block_on(demo::run(&dir, args.repeat, &progress))?;
    let ok = output.ok;
    out.emit(&output, |w| {
        for session in &output.sessions {
            writeln!(w, "\n## {}\n", session.title)?;
            for command in &session.commands {
                writeln!(w, "$ {command}")?;
            }
            for line in &session.output {
                writeln!(w, "{line}")?;
            }
            writeln!(
                w,
                "\n{} {}",
                if session.ok { "✔" } else { "✘" },
                session.check
            )?;
        }
        writeln!(
            w,
            "\n{}",
            if output.ok {
                "The seed's walkthrough works end to end."
            } else {
                "Some steps failed (see above)."
            }
        )
    })?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
