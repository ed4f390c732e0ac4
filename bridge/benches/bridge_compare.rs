//! Bridge comparison benchmark (not a test), all in one run on the same brokers: a local
//! mosquitto, a TLS remote mosquitto standing in for Event Grid, and a third mosquitto that is
//! a local broker with mosquitto's own bridge (`connection` block, `bridge_protocol_version
//! mqttv50`, mTLS to the remote). Measures
//!
//! - QoS 1 throughput at 256 B and 4 KiB: no bridge (published straight into the remote),
//!   local → e4k (in-process engine) → remote, local → `e4k bridge run` (the release binary as
//!   a process of its own, with a local broker of its own; when `target/release/e4k` exists) →
//!   remote, and local → mosquitto bridge → remote;
//! - end-to-end latency at a paced 2,000 msg/s for each, and the bridge-added p50/p99 (the
//!   system's percentile minus the no-bridge one);
//! - peak RSS of `e4k bridge run` (the release binary, run as a process) while a backlog
//!   drains: the remote is cut off through a TCP proxy, the backlog is published on the local
//!   broker, the proxy is opened and /proc/PID/status VmRSS is sampled every 100 ms.
//!
//! Prints Markdown tables.
//!
//! ```text
//! cargo build --release -p e4k        # for the RSS part (target/release/e4k)
//! cargo bench -p e4k-bridge --bench bridge_compare
//! E4K_BENCH_MESSAGES=20000 E4K_BENCH_REPEAT=3 E4K_BENCH_BACKLOG=1000000 E4K_BENCH_LATENCY_SECS=3 \
//!     cargo bench -p e4k-bridge --bench bridge_compare
//! ```

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "bridge_compare/drain.rs"]
mod drain;

use drain::{bridge_process, drain};

use std::path::Path;
use std::time::Duration;

use common::{Env, Running, TestClient, run_options, start_bridge};
use e4k_tests::bench::MosquittoBridge;
use e4k_tests::measure::{cpu_ns, median, mib, mosquitto_version, percentile, release_e4k};
use e4k_tests::process::BridgeProcess;
use e4k_tests::{Mosquitto, env_usize};
use rumqttc::v5::mqttbytes::QoS;

/// Unbounded broker queues (see `bridge_throughput.rs`); brokers log as a production one would,
/// not every packet.
const QUEUES: &str = "max_queued_messages 0\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information";

const ROUTE: &str = "    - direction: local-to-remote
      name: out
      source: e2e/out/#
";

const TOPIC: &str = "e2e/out/bench";

#[derive(Clone, Copy, PartialEq, Eq)]
enum System {
    Direct,
    E4k,
    /// `e4k bridge run` (the release binary) as a process of its own, with a local broker of
    /// its own, as mosquitto's bridge runs in a process of its own.
    E4kProcess,
    /// The same with another `e4k` binary (`E4K_BENCH_BASELINE_E4K`, e.g. a build of the
    /// previous commit), so that a change is measured against its predecessor in one run.
    E4kBaseline,
    Mosquitto,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Direct => "no bridge (straight into the remote)",
            System::E4k => "local → e4k bridge → remote",
            System::E4kProcess => "local → e4k bridge run (own process) → remote",
            System::E4kBaseline => "local → e4k bridge run (baseline binary) → remote",
            System::Mosquitto => "local → mosquitto bridge → remote",
        }
    }

    /// The name `E4K_BENCH_SYSTEMS` selects it by.
    fn key(self) -> &'static str {
        match self {
            System::Direct => "direct",
            System::E4k => "e4k",
            System::E4kProcess => "process",
            System::E4kBaseline => "baseline",
            System::Mosquitto => "mosquitto",
        }
    }
}

/// The three ways into the remote, kept up for the whole run.
struct Setup {
    env: Env,
    mosquitto_bridge: Mosquitto,
    bridge: Running,
    subscriber: TestClient,
    direct: TestClient,
    e4k_publisher: TestClient,
    mosquitto_publisher: TestClient,
    /// `e4k bridge run` as a process: its local broker, the process, a publisher.
    process: Option<(Mosquitto, BridgeProcess, TestClient)>,
    /// The same for the baseline binary, when `E4K_BENCH_BASELINE_E4K` names one.
    baseline: Option<(Mosquitto, BridgeProcess, TestClient)>,
}

/// A local broker with mosquitto's own bridge to the remote over mTLS.
fn mosquitto_bridge(env: &Env) -> Mosquitto {
    let dir = env.dir.path().join("mosquitto-bridge");
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = env.pki.client_pem("mqttbridge");
    std::fs::write(dir.join("client.pem"), cert).unwrap();
    std::fs::write(dir.join("client.key"), key).unwrap();
    let config = MosquittoBridge {
        broker: QUEUES,
        remote: format!("127.0.0.1:{}", env.remote.port()),
        topic: "e2e/out/#",
        ca: &env.pki.root_file,
        cert: &dir.join("client.pem"),
        key: &dir.join("client.key"),
        tls_version: Some("tlsv1.3"),
    }
    .config();
    Mosquitto::start(&config).unwrap()
}

impl Setup {
    async fn start() -> Setup {
        let env = Env::with_local(QUEUES, QUEUES);
        let mosquitto_bridge = mosquitto_bridge(&env);
        let mut options = run_options();
        options.receive_maximum = Some(100);
        let bridge = start_bridge(&env.config(1, ROUTE), options);
        bridge.ready().await;
        let mut subscriber = env.remote_client("bench-sub").await;
        subscriber.subscribe("e2e/out/#", QoS::AtLeastOnce).await;
        let direct = env.remote_client("bench-pub-direct").await;
        let e4k_publisher = env.local_client("bench-pub-e4k").await;
        let mosquitto_publisher =
            TestClient::local(mosquitto_bridge.port(), "bench-pub-mosquitto").await;
        let process = match release_e4k() {
            Some(binary) => Some(bridge_process(&binary, &env, "e4k-process").await),
            None => None,
        };
        let baseline = match std::env::var_os("E4K_BENCH_BASELINE_E4K") {
            Some(binary) => Some(bridge_process(Path::new(&binary), &env, "e4k-baseline").await),
            None => None,
        };
        let mut setup = Setup {
            env,
            mosquitto_bridge,
            bridge,
            subscriber,
            direct,
            e4k_publisher,
            mosquitto_publisher,
            process,
            baseline,
        };
        // Warm up every path (TLS sessions, the mosquitto bridge's connection).
        for system in setup.systems() {
            let (_, received, _) = setup.throughput(system, 200, 256).await;
            assert_eq!(received, 200, "warm-up through {} failed", system.name());
        }
        setup
    }

    /// The systems this run measures (`e4k bridge run` needs the release binary).
    fn systems(&self) -> Vec<System> {
        let mut systems = vec![System::Direct, System::E4k];
        if self.process.is_some() {
            systems.push(System::E4kProcess);
        }
        if self.baseline.is_some() {
            systems.push(System::E4kBaseline);
        }
        systems.push(System::Mosquitto);
        // E4K_BENCH_SYSTEMS=direct,e4k,process,baseline,mosquitto keeps only the named ones
        // (for profiling one path); all by default.
        if let Ok(only) = std::env::var("E4K_BENCH_SYSTEMS") {
            systems.retain(|system| only.split(',').any(|name| name.trim() == system.key()));
        }
        systems
    }

    fn publisher(&self, system: System) -> &TestClient {
        match system {
            System::Direct => &self.direct,
            System::E4k => &self.e4k_publisher,
            System::E4kProcess => match &self.process {
                Some((_, _, publisher)) => publisher,
                None => panic!("no e4k bridge run process"),
            },
            System::E4kBaseline => match &self.baseline {
                Some((_, _, publisher)) => publisher,
                None => panic!("no baseline e4k bridge run process"),
            },
            System::Mosquitto => &self.mosquitto_publisher,
        }
    }

    /// The processes a message crosses on `system`, by [`ROLES`]: the benchmark's own
    /// process (its clients, and the in-process engine for [`System::E4k`]), the local broker,
    /// `e4k bridge run`, the remote broker.
    fn processes(&self, system: System) -> [Option<u32>; 4] {
        let own = Some(std::process::id());
        let remote = Some(self.env.remote.pid());
        match system {
            System::Direct => [own, None, None, remote],
            System::E4k => [own, Some(self.env.local.pid()), None, remote],
            System::E4kProcess => match &self.process {
                Some((local, child, _)) => [own, Some(local.pid()), Some(child.pid()), remote],
                None => [own, None, None, remote],
            },
            System::E4kBaseline => match &self.baseline {
                Some((local, child, _)) => [own, Some(local.pid()), Some(child.pid()), remote],
                None => [own, None, None, remote],
            },
            System::Mosquitto => [own, Some(self.mosquitto_bridge.pid()), None, remote],
        }
    }

    /// Publishes `n` QoS 1 messages of `size` bytes through `system`; the time until the
    /// remote subscriber has them all, how many it got, and the CPU time (ns) each process of
    /// [`processes`](Self::processes) spent meanwhile.
    async fn throughput(
        &mut self,
        system: System,
        n: usize,
        size: usize,
    ) -> (Duration, usize, [u64; 4]) {
        let processes = self.processes(system);
        let before = cpu_now(processes);
        let publisher = self.publisher(system).client.clone();
        let (elapsed, received) =
            common::pump(&publisher, &mut self.subscriber, TOPIC, n, size).await;
        (elapsed, received, cpu_since(processes, before))
    }

    /// [`common::paced_latency`] through `system`.
    async fn latency(&mut self, system: System, rate: u32, secs: u32) -> Vec<f64> {
        let publisher = self.publisher(system).client.clone();
        common::paced_latency(&publisher, &mut self.subscriber, TOPIC, rate, secs).await
    }
}

/// The columns of the CPU table: who spends CPU time on a message.
const ROLES: [&str; 4] = [
    "benchmark process (clients)",
    "local broker",
    "`e4k bridge run`",
    "remote broker",
];

/// [`cpu_ns`] of each of `processes` (0 where there is none).
fn cpu_now(processes: [Option<u32>; 4]) -> [u64; 4] {
    processes.map(|pid| pid.map_or(0, cpu_ns))
}

/// What each of `processes` spent since [`cpu_now`] returned `before`.
fn cpu_since(processes: [Option<u32>; 4], before: [u64; 4]) -> [u64; 4] {
    let now = cpu_now(processes);
    std::array::from_fn(|i| now[i].saturating_sub(before[i]))
}

fn main() {
    let n = env_usize("E4K_BENCH_MESSAGES", 20_000);
    let backlog = env_usize("E4K_BENCH_BACKLOG", 1_000_000);
    let latency_secs = env_usize("E4K_BENCH_LATENCY_SECS", 3) as u32;
    let repeat = env_usize("E4K_BENCH_REPEAT", 3);
    let rate = 2_000;
    let runtime = common::bench_runtime();
    let (systems, throughput, latency) = runtime.block_on(async {
        let mut setup = Setup::start().await;
        let systems = setup.systems();
        let mut throughput = Vec::new();
        for round in 0..repeat {
            for size in [256, 4096] {
                for &system in &systems {
                    let (elapsed, received, cpu) = setup.throughput(system, n, size).await;
                    throughput.push((round, size, system, elapsed, received, cpu));
                }
            }
        }
        let mut latency = Vec::new();
        for &system in &systems {
            let processes = setup.processes(system);
            let before = cpu_now(processes);
            let latencies = setup.latency(system, rate, latency_secs).await;
            latency.push((system, latencies, cpu_since(processes, before)));
        }
        let Setup {
            bridge,
            env,
            mosquitto_bridge,
            process,
            baseline,
            ..
        } = setup;
        bridge.stop().await;
        drop((process, baseline, mosquitto_bridge, env));
        (systems, throughput, latency)
    });
    println!(
        "\nmosquitto {} on loopback for every broker; the remote over TLS 1.3 with client \
         certificates for every system; QoS 1; unbounded broker queues; {} CPUs\n",
        mosquitto_version(),
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );

    println!(
        "### Throughput ({n} QoS 1 messages per cell, {repeat} interleaved rounds, median round)\n"
    );
    println!(
        "| payload | system | received (all rounds) | msg/s (median) | MiB/s | msg/s per round |"
    );
    println!("|---|---|---:|---:|---:|---|");
    let rates = |size: usize, system: System| -> Vec<f64> {
        throughput
            .iter()
            .filter(|(_, s, sys, ..)| *s == size && *sys == system)
            .map(|(_, _, _, elapsed, received, _)| *received as f64 / elapsed.as_secs_f64())
            .collect()
    };
    let rate_of = |size: usize, system: System| median(rates(size, system));
    for size in [256, 4096] {
        for &system in &systems {
            let received: usize = throughput
                .iter()
                .filter(|(_, s, sys, ..)| *s == size && *sys == system)
                .map(|(_, _, _, _, received, _)| received)
                .sum();
            let per_s = rate_of(size, system);
            let rounds: Vec<String> = rates(size, system)
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect();
            println!(
                "| {size} B | {} | {received}/{} | {per_s:.0} | {:.1} | {} |",
                system.name(),
                n * repeat,
                per_s * size as f64 / (1024.0 * 1024.0),
                rounds.join(", ")
            );
        }
    }
    println!();
    println!(
        "| payload | e4k / mosquitto bridge | e4k / no bridge | mosquitto bridge / no bridge |"
    );
    println!("|---|---:|---:|---:|");
    for size in [256, 4096] {
        let (direct, e4k, mosq) = (
            rate_of(size, System::Direct),
            rate_of(size, System::E4k),
            rate_of(size, System::Mosquitto),
        );
        println!(
            "| {size} B | {:.2}× | {:.2}× | {:.2}× |",
            e4k / mosq,
            e4k / direct,
            mosq / direct
        );
    }
    if systems.contains(&System::E4kProcess) {
        println!("\n| payload | e4k bridge run / mosquitto bridge | e4k bridge run / no bridge |");
        println!("|---|---:|---:|");
        for size in [256, 4096] {
            let process = rate_of(size, System::E4kProcess);
            println!(
                "| {size} B | {:.2}× | {:.2}× |",
                process / rate_of(size, System::Mosquitto),
                process / rate_of(size, System::Direct)
            );
        }
    }

    println!(
        "\n### CPU time per forwarded message, by process (median of the rounds)\n\n\
         On a machine whose cores are all busy, throughput is the cores divided by the CPU time \
         all processes spend on one message: the last column.\n"
    );
    println!(
        "| payload | system | {} | all processes | cores ÷ all |",
        ROLES.join(" | ")
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as f64;
    // µs per message of the roles `include` picks, summed, one value per round.
    let per_round = |size: usize, system: System, include: &dyn Fn(usize) -> bool| -> Vec<f64> {
        throughput
            .iter()
            .filter(|(_, s, sys, ..)| *s == size && *sys == system)
            .map(|(.., cpu)| {
                let ns: u64 = (0..ROLES.len())
                    .filter(|&i| include(i))
                    .map(|i| cpu[i])
                    .sum();
                ns as f64 / 1000.0 / n as f64
            })
            .collect()
    };
    // Their median.
    let cpu_per_message = |size: usize, system: System, include: &dyn Fn(usize) -> bool| {
        median(per_round(size, system, include))
    };
    // Their lowest and highest.
    let cpu_spread = |size: usize, system: System, include: &dyn Fn(usize) -> bool| {
        per_round(size, system, include)
            .into_iter()
            .fold((f64::MAX, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    for size in [256, 4096] {
        for &system in &systems {
            let columns: Vec<String> = (0..ROLES.len())
                .map(|i| {
                    let used = throughput
                        .iter()
                        .any(|(_, s, sys, .., cpu)| *s == size && *sys == system && cpu[i] > 0);
                    if used {
                        format!("{:.1} µs", cpu_per_message(size, system, &|r| r == i))
                    } else {
                        "—".to_owned()
                    }
                })
                .collect();
            let all = cpu_per_message(size, system, &|_| true);
            let (lo, hi) = cpu_spread(size, system, &|_| true);
            println!(
                "| {size} B | {} | {} | {all:.1} µs ({lo:.1}–{hi:.1}) | {:.0} msg/s |",
                system.name(),
                columns.join(" | "),
                cores * 1e6 / all
            );
        }
    }
    println!(
        "\nThe in-process e4k engine counts in the benchmark process's column (its row's \
         difference from the no-bridge row is the engine's share); \"all processes\" is the \
         median over the rounds (lowest–highest round)."
    );
    // The bridge paths as wholes: every process a message crosses, brokers included.
    let bridge_runs: Vec<System> = systems
        .iter()
        .copied()
        .filter(|s| matches!(s, System::E4kProcess | System::E4kBaseline))
        .collect();
    if !bridge_runs.is_empty() {
        println!(
            "\n| payload | path | CPU of the whole path | × mosquitto's bridge path | `e4k \
             bridge run` itself (lowest–highest round) |"
        );
        println!("|---|---|---:|---:|---:|");
        for size in [256, 4096] {
            let mosquitto = cpu_per_message(size, System::Mosquitto, &|_| true);
            println!(
                "| {size} B | {} | {mosquitto:.1} µs | 1.00× | — |",
                System::Mosquitto.name()
            );
            for &system in &bridge_runs {
                let all = cpu_per_message(size, system, &|_| true);
                let own = cpu_per_message(size, system, &|r| r == 2);
                let (lo, hi) = cpu_spread(size, system, &|r| r == 2);
                println!(
                    "| {size} B | {} | {all:.1} µs | {:.2}× | {own:.1} µs ({lo:.1}–{hi:.1}) |",
                    system.name(),
                    all / mosquitto
                );
            }
        }
    }
    if systems.contains(&System::E4kProcess) {
        // What the e4k path's other processes cost: the ceiling of any bridge run as a process
        // of its own between these two brokers, however little CPU it used itself.
        println!(
            "\n| payload | e4k path without the bridge's own CPU | cores ÷ that | × mosquitto \
             bridge (cores ÷ all) | × no bridge (cores ÷ all) |"
        );
        println!("|---|---:|---:|---:|---:|");
        for size in [256, 4096] {
            // Every role but `e4k bridge run` (index 2 of ROLES).
            let others = cpu_per_message(size, System::E4kProcess, &|r| r != 2);
            println!(
                "| {size} B | {others:.1} µs | {:.0} msg/s | {:.2}× | {:.2}× |",
                cores * 1e6 / others,
                cpu_per_message(size, System::Mosquitto, &|_| true) / others,
                cpu_per_message(size, System::Direct, &|_| true) / others
            );
        }
    }

    println!(
        "\n### Latency (256 B, QoS 1, paced {rate} msg/s for {latency_secs} s; publish → remote subscriber)\n"
    );
    println!(
        "| system | received | p50 | p99 | max | added p50 | added p99 | CPU per message: \
         local broker | `e4k bridge run` |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let (base50, base99) = (
        percentile(&latency[0].1, 0.50),
        percentile(&latency[0].1, 0.99),
    );
    for (system, sorted, cpu) in &latency {
        // At a paced rate, per message: nothing is batched, every message wakes every process.
        let per_message = |i: usize| {
            if cpu[i] == 0 {
                "—".to_owned()
            } else {
                format!(
                    "{:.1} µs",
                    cpu[i] as f64 / 1000.0 / sorted.len().max(1) as f64
                )
            }
        };
        let (p50, p99) = (percentile(sorted, 0.50), percentile(sorted, 0.99));
        let added = if *system == System::Direct {
            ("—".to_owned(), "—".to_owned())
        } else {
            (
                format!("{:.0} µs", p50 - base50),
                format!("{:.0} µs", p99 - base99),
            )
        };
        println!(
            "| {} | {}/{} | {p50:.0} µs | {p99:.0} µs | {:.0} µs | {} | {} | {} | {} |",
            system.name(),
            sorted.len(),
            rate as usize * latency_secs as usize,
            sorted.last().copied().unwrap_or(f64::NAN),
            added.0,
            added.1,
            per_message(1),
            per_message(2)
        );
    }

    println!("\n### Peak RSS of `e4k bridge run` while a backlog drains\n");
    match release_e4k().filter(|_| backlog > 0) {
        None if backlog == 0 => println!("not measured: E4K_BENCH_BACKLOG=0"),
        None => println!(
            "not measured: no target/release/e4k (run `cargo build --release -p e4k` first)"
        ),
        Some(binary) => {
            let drain = runtime.block_on(drain(&binary, backlog));
            println!(
                "backlog: {} messages of 256 B published on the local broker in {:.1} s while the \
                 remote was cut off (TCP proxy refusing); drained {}/{} in {:.2} s ({:.0} msg/s) \
                 through the proxy; VmRSS sampled every 100 ms ({} samples)\n",
                drain.backlog,
                drain.publish_time.as_secs_f64(),
                drain.received,
                drain.backlog,
                drain.drain_time.as_secs_f64(),
                drain.received as f64 / drain.drain_time.as_secs_f64(),
                drain.samples.len()
            );
            println!("| RSS idle | RSS with backlog waiting | peak during drain | after drain |");
            println!("|---:|---:|---:|---:|");
            println!(
                "| {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
                mib(drain.rss_idle_kib),
                mib(drain.rss_backlog_kib),
                mib(drain.rss_peak_kib),
                mib(drain.rss_end_kib)
            );
            let quartiles: Vec<String> = (0..=4)
                .map(|q| {
                    let i = (drain.samples.len().saturating_sub(1)) * q / 4;
                    drain
                        .samples
                        .get(i)
                        .map_or("-".to_owned(), |kib| format!("{:.1}", mib(*kib)))
                })
                .collect();
            println!(
                "\nRSS over the drain (MiB at 0/25/50/75/100 % of the samples): {}",
                quartiles.join(" / ")
            );
        }
    }
}
