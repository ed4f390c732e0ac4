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
    out.emit(&report, |w| {
        writeln!(
            w,
            "{}: {} message(s), {} byte(s) in {} queue(s)",
            report.dir,
            report.messages,
            report.bytes,
            report.queues.len()
        )?;
        for queue in &report.queues {
            writeln!(
                w,
                "  {}: {} message(s), {} byte(s), {} segment(s){}{}",
                queue.name,
                queue.messages,
                queue.bytes,
                queue.segments,
                queue
                    .oldest_age_secs
                    .map(|a| format!(", oldest {a}s"))
                    .unwrap_or_default(),
                if queue.torn_tail {
                    ", torn last record (cut off at the next start)"
                } else {
                    ""
                }
            )?;
            for route in &queue.routes {
                writeln!(
                    w,
                    "    route {}: {} message(s), {} byte(s){}",
                    route.route,
                    route.messages,
                    route.bytes,
                    route
                        .oldest_age_secs
                        .map(|a| format!(", oldest {a}s"))
                        .unwrap_or_default()
                )?;
            }
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
