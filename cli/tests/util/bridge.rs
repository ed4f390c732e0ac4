//! A running `e4k bridge run` of this crate's binary: [`BridgeProcess`] (in
//! `e4k_tests::process`) started in a test directory, its log in `bridge.log`.

use std::path::Path;

pub use e4k_tests::process::BridgeProcess;

use super::Dir;

/// `e4k bridge run ARGS` in `dir`, its stderr in `bridge.log` and its stdout in
/// `bridge.stdout` (see [`BridgeProcess::start`]).
pub fn start(dir: &Dir, args: &[&str], env: &[(&str, &str)]) -> BridgeProcess {
    BridgeProcess::start(
        Path::new(env!("CARGO_BIN_EXE_e4k")),
        dir.dir.path(),
        "bridge",
        args,
        env,
    )
}
