//! What the benchmarks read off the processes they run: CPU time and resident memory from
//! `/proc`, percentiles, the release `e4k` binary and the mosquitto version, shared by the
//! benches of every crate.

use std::path::{Path, PathBuf};
use std::process::Command;

/// CPU time a process has used so far, in ns: its threads' run time from
/// `/proc/PID/task/*/schedstat` (ns resolution, unlike the clock ticks of `/proc/PID/stat`);
/// 0 once the process is gone.
#[must_use]
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The resident set of `pid` in KiB (`VmRSS` of `/proc/PID/status`).
#[must_use]
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// KiB as MiB.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The `p` quantile (0..=1) of `sorted` (nearest rank); NaN when empty.
#[must_use]
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The median of `values`.
#[must_use]
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(&values, 0.5)
}

/// The release `e4k` binary (`cargo build --release -p e4k`), if built.
#[must_use]
pub fn release_e4k() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let binary = target.join("release/e4k");
    binary.exists().then_some(binary)
}

/// The version mosquitto prints (`mosquitto -h`), or "" when it cannot be run.
#[must_use]
pub fn mosquitto_version() -> String {
    Command::new(crate::mosquitto_binary())
        .arg("-h")
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .map(|line| line.trim_start_matches("mosquitto version ").to_owned())
        })
        .unwrap_or_default()
}

/// The number of CPUs this process may use.
#[must_use]
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}
