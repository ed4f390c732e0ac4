//! The emulator's ARM API alone (no MQTT data plane), for `e4k up` and `e4k eventgrid setup`
//! run through the binary: the emulator on a runtime of its own, the seed's files in the test
//! directory, the environment that points `e4k` at the emulator.

use std::time::Duration;

use e4k_emulator::{Emulator, EmulatorConfig, RunningEmulator};

use super::Dir;

/// `e4k --output json up` with the seed's files and fast polling.
pub const UP: [&str; 9] = [
    "--output",
    "json",
    "up",
    "--spec",
    "eventgrid.yaml",
    "--bridge",
    "bridge.yaml",
    "--min-poll-interval-ms",
    "10",
];

/// An emulator with fast LROs, on the returned runtime (keep it while the emulator runs).
pub fn start() -> (tokio::runtime::Runtime, RunningEmulator) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let emulator = runtime
        .block_on(Emulator::start(EmulatorConfig {
            lro_delay: Duration::from_millis(10),
            lro_retry_after_secs: 0,
            ..EmulatorConfig::default()
        }))
        .expect("the emulator starts");
    (runtime, emulator)
}

/// `eventgrid.yaml` (`e4k eventgrid template` followed by `extra`) and the seed's
/// `bridge.yaml` in `d`.
pub fn workspace(d: &Dir, extra: &str) {
    let spec = d.e4k(&["eventgrid", "template"]).ok().stdout;
    std::fs::write(d.path("eventgrid.yaml"), format!("{spec}{extra}")).expect("write the spec");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../templates/bridge.yaml"),
        d.path("bridge.yaml"),
    )
    .expect("copy bridge.yaml");
}

/// The environment of `e4k` for the emulator at `url`: its ARM endpoint and token, the CA
/// password, the subscription.
pub fn env(url: &str) -> [(&str, &str); 4] {
    [
        ("E4K_ARM_ENDPOINT", url),
        ("E4K_ARM_TOKEN", "local"),
        ("E4K_PASSWORD", "e4k"),
        (
            "AZURE_SUBSCRIPTION_ID",
            "11111111-2222-3333-4444-555555555555",
        ),
    ]
}
