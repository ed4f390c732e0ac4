//! The fixtures of the bridge benchmarks (`bridge/benches/*.rs` include this file by path):
//! they live in `e4k-tests` with every other test fixture; this module only names them.

#![allow(unused_imports, unreachable_pub)] // each benchmark uses a part

pub use e4k_tests::bench::{
    ProcessArgs, bench_runtime, bridge_process, paced_latency, pump, wait_forwarding,
};
pub use e4k_tests::bridge::{Running, metric};
pub use e4k_tests::client::TestClient;
pub use e4k_tests::env::{
    ACL, Env, WAIT, local_broker, remote_broker, remote_config, resolve, run_options, start_bridge,
    yaml,
};
pub use e4k_tests::pki::{Pki, Validity};
