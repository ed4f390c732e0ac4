//! `e4k bridge spool inspect`: what a spool directory holds, per queue and route.

use std::path::Path;
use std::process::ExitCode;

use e4k_bridge::spool::{self, SpoolReport};

use crate::output::{Output, usage};

pub(super) fn inspect(dir: &Path, out: &Output) -> anyhow::Result<ExitCode> {
    if !dir.is_dir() {
        return Err(usage(format!(
            "{}: no such spool directory (give the --spool-dir of `e4k bridge run`)",
            dir.display()
        )));
    }
    let report: SpoolReport = spool::inspect(dir)?;
    out.emit(&report, |w| write!(w, "{report}"))?;
    Ok(ExitCode::SUCCESS)
}
