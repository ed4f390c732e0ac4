//! Benchmark: `e4k eventgrid setup` against the emulator with 50 ms of latency per ARM call.
//!
//! Run: `cargo bench -p e4k-provisioning --bench eventgrid`. Prints a Markdown table: the seed
//! spec and a 1,000-client spec, each applied from empty and then re-applied (a no-op), with
//! wall time and ARM calls (requests, lists, writes, polls) as the emulator counted them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use e4k_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use e4k_provisioning::{
    certs::{self, InitOptions, KeyProtection, KeyType, NotAfter},
    eventgrid::{
        apply::{self, ApplyOptions},
        arm::{ArmClient, ArmConfig},
        credential::StaticToken,
        model, plan,
        spec::Spec,
    },
};
use tokio_util::sync::CancellationToken;

const LATENCY: Duration = Duration::from_millis(50);

struct Row {
    name: &'static str,
    run: &'static str,
    seconds: f64,
    requests: u64,
    lists: u64,
    writes: u64,
    polls: u64,
    changes: usize,
}

async fn run(
    emulator: &RunningEmulator,
    spec_path: &Path,
    name: &'static str,
    run: &'static str,
) -> Row {
    let dir = spec_path.parent().unwrap();
    let spec = Spec::load_with_env(spec_path, &|v| {
        (v == "AZURE_SUBSCRIPTION_ID").then(|| "b".to_owned())
    })
    .unwrap();
    let desired = model::desired(&spec, dir, spec_path).unwrap();
    let arm = Arc::new(
        ArmClient::new(
            ArmConfig {
                endpoint: emulator.base_url().parse().unwrap(),
                min_poll_interval: Duration::from_millis(10),
                ..ArmConfig::default()
            },
            Arc::new(StaticToken::new("bench")),
            CancellationToken::new(),
        )
        .unwrap(),
    );
    emulator.reset_stats();
    let start = Instant::now();
    let current = apply::read_current(&arm, &desired).await.unwrap();
    let plan = plan::plan(&desired, &current, false, spec_path).unwrap();
    let options = ApplyOptions { concurrency: 16 };
    apply::apply(&arm, &desired, &plan, &options, &|_| {})
        .await
        .unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let stats = emulator.stats();
    Row {
        name,
        run,
        seconds,
        requests: stats.total(),
        lists: stats.lists(),
        writes: stats.writes(),
        polls: stats.polls,
        changes: plan.summary.changes(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    certs::init(&InitOptions {
        dir: dir.path().join("pki"),
        name: "bench".into(),
        key_type: KeyType::EcP256,
        root_not_after: NotAfter::parse("1y").unwrap(),
        intermediate_not_after: NotAfter::parse("1y").unwrap(),
        protection: KeyProtection::Plaintext,
        force: false,
    })
    .unwrap();
    let seed = include_str!("../../templates/eventgrid.yaml");
    let seed_path = dir.path().join("seed.yaml");
    std::fs::write(&seed_path, seed).unwrap();
    let big = seed.replace("name: ${E4K_NAMESPACE:-e4k-mqtt}", "name: bench-1000");
    let clients: String = (1..=1000)
        .map(|i| format!("  - name: device-{i:04}\n"))
        .collect();
    let big = big.replace("clients:\n", &format!("clients:\n{clients}"));
    let big_path = dir.path().join("big.yaml");
    std::fs::write(&big_path, big).unwrap();

    let emulator = Emulator::start(EmulatorConfig {
        latency: LATENCY,
        lro_delay: LATENCY,
        lro_retry_after_secs: 0,
        quotas: e4k_emulator::Quotas {
            clients_per_throughput_unit: 10_000,
            ..Default::default()
        },
        capture_requests: false,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let rows = vec![
        run(&emulator, &seed_path, "seed (12 resources)", "from empty").await,
        run(&emulator, &seed_path, "seed (12 resources)", "no-op rerun").await,
        run(&emulator, &big_path, "1,002 clients", "from empty").await,
        run(&emulator, &big_path, "1,002 clients", "no-op rerun").await,
    ];
    println!(
        "emulator latency {} ms per call, long-running operations {} ms, 16 writes in flight\n",
        LATENCY.as_millis(),
        LATENCY.as_millis()
    );
    println!("| spec | run | wall time | changes | ARM requests | lists | writes | polls |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.2} s | {} | {} | {} | {} | {} |",
            r.name, r.run, r.seconds, r.changes, r.requests, r.lists, r.writes, r.polls
        );
    }
    emulator.shutdown().await.unwrap();
}
