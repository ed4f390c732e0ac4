//! The disk spool's benchmark (not a test): what `e4k bridge run --spool-dir` costs and holds,
//! with the release binary as a process of its own, on real mosquitto brokers.
//!
//! 1. Throughput and CPU, the same remote (TLS mosquitto standing in for Event Grid) and two
//!    identical local brokers, one bridge without a spool and one with, in interleaved rounds:
//!    QoS 1 msg/s at 256 B and 4 KiB, the bridge process's CPU per message, and fsyncs per
//!    message (`e4k_bridge_spool_fsyncs_total`).
//! 2. Latency at a paced 2,000 msg/s through each: p50/p99 and what the spool adds.
//! 3. A long outage: a local broker at its **default** configuration (1,000 queued messages per
//!    session), the remote cut off through a TCP proxy for 10 minutes while 1,000 msg/s flow
//!    (600,000 messages), then opened while the same ingress goes on: the bridge's RSS every
//!    second, the spool's size, the drain rate until it caught up, and the sequence numbers on
//!    the far side (lost, duplicates).
//!
//! Prints Markdown tables.
//!
//! ```text
//! cargo build --release -p e4k
//! cargo bench -p e4k-bridge --bench bridge_spool
//! E4K_BENCH_MESSAGES=20000 E4K_BENCH_REPEAT=5 E4K_BENCH_LATENCY_SECS=10 \
//!     E4K_BENCH_OUTAGE_SECS=600 E4K_BENCH_RATE=1000 cargo bench -p e4k-bridge --bench bridge_spool
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

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Env, ProcessArgs, TestClient};
use e4k_tests::bridge::metric;
use e4k_tests::measure::{
    cpu_ns, cpus, median, mib, mosquitto_version, percentile, release_e4k, vm_rss_kib,
};
use e4k_tests::process::{BridgeProcess, http_get};
use e4k_tests::proxy::{Mode, TcpProxy};
use e4k_tests::{Mosquitto, env_usize};
use rumqttc::v5::mqttbytes::QoS;

/// Unbounded broker queues for the throughput and latency parts (they measure the bridge, not a
/// broker's limits); brokers log as a production one would.
const QUEUES: &str = "max_queued_messages 0\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information";
/// A local broker as Debian installs it: nothing but the listener.
const LOCAL_DEFAULTS: &str =
    "log_type error\nlog_type warning\nlog_type notice\nlog_type information";

const ROUTE: &str = "    - direction: local-to-remote
      name: out
      source: e2e/out/#
";
const TOPIC: &str = "e2e/out/bench";

/// One way into the remote: a local broker and an `e4k bridge run` on it.
struct Way {
    _local: Mosquitto,
    bridge: BridgeProcess,
    metrics_port: u16,
    publisher: TestClient,
    _spool: Option<tempfile::TempDir>,
}

impl Way {
    async fn start(binary: &std::path::Path, env: &Env, name: &str, spool: bool) -> Way {
        let local = Mosquitto::start(&format!("allow_anonymous true\n{QUEUES}\n")).unwrap();
        let spool = spool.then(|| tempfile::tempdir_in(env.dir.path()).unwrap());
        let spool_arg = spool.as_ref().map(|d| d.path().display().to_string());
        let mut extra = vec!["--reconnect-initial", "100ms", "--reconnect-max", "1s"];
        if let Some(dir) = &spool_arg {
            extra.extend(["--spool-dir", dir.as_str()]);
        }
        let metrics_port = e4k_tests::free_port().unwrap();
        let args = ProcessArgs {
            name,
            remote_port: env.remote.port(),
            local_port: local.port(),
            metrics_port,
            extra: &extra,
        };
        let bridge = common::bridge_process(binary, env, ROUTE, &args);
        let publisher = TestClient::local(local.port(), &format!("{name}-pub")).await;
        let mut probe = env.remote_client(&format!("{name}-probe")).await;
        probe.subscribe("e2e/out/#", QoS::AtLeastOnce).await;
        common::wait_forwarding(&publisher, &mut probe, TOPIC).await;
        Way {
            _local: local,
            bridge,
            metrics_port,
            publisher,
            _spool: spool,
        }
    }

    fn fsyncs(&self) -> f64 {
        scrape(self.metrics_port, "e4k_bridge_spool_fsyncs_total{")
    }

    fn pid(&self) -> u32 {
        self.bridge.pid()
    }
}

/// The sum of the metric lines starting with `prefix` on 127.0.0.1:`port`/metrics (0 when it
/// does not answer).
fn scrape(port: u16, prefix: &str) -> f64 {
    let body = http_get(port, "/metrics").map_or_else(String::new, |(_, b)| b);
    metric(&body, prefix)
}

/// One throughput cell.
struct Cell {
    size: usize,
    spool: bool,
    rate: f64,
    received: usize,
    cpu_us: f64,
    fsyncs: f64,
}

/// Parts 1 and 2 on one remote: cells, and the latencies (µs, sorted) without and with the
/// spool with the fsyncs per message of the latter.
async fn throughput_and_latency(
    binary: &std::path::Path,
    n: usize,
    repeat: usize,
    latency_secs: u32,
) -> (Vec<Cell>, [Vec<f64>; 2], f64) {
    let env = Env::with_local(QUEUES, QUEUES);
    let plain = Way::start(binary, &env, "e4k-plain", false).await;
    let spooled = Way::start(binary, &env, "e4k-spool", true).await;
    let mut subscriber = env.remote_client("bench-sub").await;
    subscriber.subscribe("e2e/out/#", QoS::AtLeastOnce).await;
    let mut cells = Vec::new();
    for _ in 0..repeat {
        for size in [256, 4096] {
            for way in [&plain, &spooled] {
                let (cpu, fsyncs) = (cpu_ns(way.pid()), way.fsyncs());
                let client = way.publisher.client.clone();
                let (elapsed, received) =
                    common::pump(&client, &mut subscriber, TOPIC, n, size).await;
                cells.push(Cell {
                    size,
                    spool: std::ptr::eq(way, &spooled),
                    rate: received as f64 / elapsed.as_secs_f64(),
                    received,
                    cpu_us: cpu_ns(way.pid()).saturating_sub(cpu) as f64 / 1000.0 / n as f64,
                    fsyncs: (way.fsyncs() - fsyncs) / n as f64,
                });
            }
        }
    }
    let mut latencies = [Vec::new(), Vec::new()];
    let mut paced_fsyncs = 0.0;
    for (i, way) in [&plain, &spooled].into_iter().enumerate() {
        let fsyncs = way.fsyncs();
        let client = way.publisher.client.clone();
        latencies[i] =
            common::paced_latency(&client, &mut subscriber, TOPIC, 2_000, latency_secs).await;
        if i == 1 {
            paced_fsyncs = (way.fsyncs() - fsyncs) / latencies[i].len().max(1) as f64;
        }
    }
    (cells, latencies, paced_fsyncs)
}

/// A second of the outage run.
struct Sample {
    at: f64,
    rss_kib: u64,
    spooled: f64,
    spool_bytes: f64,
    received: u64,
    published: u64,
}

/// What the outage run saw.
struct Outage {
    samples: Vec<Sample>,
    rss_idle_kib: u64,
    /// When the proxy opened, and when the spool had caught up (less than a second of ingress
    /// left), in seconds from the start.
    opened_at: f64,
    caught_up_at: Option<f64>,
    received_at_open: u64,
    received_at_catch_up: u64,
    published: u64,
    missing: u64,
    duplicates: u64,
}

/// Part 3: see the module doc.
async fn outage(binary: &std::path::Path, outage_secs: u64, rate: u64) -> Outage {
    let env = Env::with_local(QUEUES, LOCAL_DEFAULTS);
    let proxy = TcpProxy::start(([127, 0, 0, 1], env.remote.port()).into()).unwrap();
    let spool: PathBuf = env.dir.path().join("spool");
    let spool_arg = spool.display().to_string();
    let metrics_port = e4k_tests::free_port().unwrap();
    let extra = [
        "--reconnect-initial",
        "100ms",
        "--reconnect-max",
        "1s",
        "--spool-dir",
        spool_arg.as_str(),
    ];
    let args = ProcessArgs {
        name: "e4k-outage",
        remote_port: proxy.addr().port(),
        local_port: env.local.port(),
        metrics_port,
        extra: &extra,
    };
    let bridge = common::bridge_process(binary, &env, ROUTE, &args);
    let pid = bridge.pid();
    let publisher = env.local_client("outage-pub").await;
    let mut subscriber = env.remote_client("outage-sub").await;
    subscriber.subscribe("e2e/out/#", QoS::AtLeastOnce).await;
    common::wait_forwarding(&publisher, &mut subscriber, TOPIC).await;
    let rss_idle_kib = vm_rss_kib(pid).unwrap_or(0);

    // The far side: how often each sequence number arrived.
    let seen: Arc<Mutex<Vec<u8>>> = Arc::default();
    let received = Arc::new(AtomicU64::new(0));
    let receiver = {
        let (seen, received) = (Arc::clone(&seen), Arc::clone(&received));
        tokio::spawn(async move {
            while let Some(publish) = subscriber.rx.recv().await {
                let Some(seq) = publish.payload.get(..8) else {
                    continue;
                };
                if publish.payload.len() != 256 {
                    continue;
                }
                let seq = u64::from_le_bytes(seq.try_into().unwrap()) as usize;
                let mut seen = seen.lock().unwrap();
                if seen.len() <= seq {
                    seen.resize(seq + 1, 0);
                }
                seen[seq] = seen[seq].saturating_add(1);
                received.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    proxy.set_mode(Mode::Refuse);
    proxy.cut();
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let sender = {
        let (stop, published) = (Arc::clone(&stop), Arc::clone(&published));
        let client = publisher.client.clone();
        tokio::spawn(async move {
            // `rate` msg/s in ticks of 10 ms, catching up when a tick was late.
            let mut seq = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
                while seq < due {
                    let mut payload = vec![b'x'; 256];
                    payload[..8].copy_from_slice(&seq.to_le_bytes());
                    client
                        .publish_bytes(TOPIC, QoS::AtLeastOnce, false, bytes::Bytes::from(payload))
                        .await
                        .unwrap();
                    seq += 1;
                    published.store(seq, Ordering::Relaxed);
                }
            }
        })
    };

    let metrics = |prefix: &str| scrape(metrics_port, prefix);
    let mut samples = Vec::new();
    let (mut opened_at, mut caught_up_at) = (None, None);
    let (mut received_at_open, mut received_at_catch_up) = (0, 0);
    let drain_limit = Duration::from_secs(outage_secs.max(60) * 2);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let at = start.elapsed();
        let sample = Sample {
            at: at.as_secs_f64(),
            rss_kib: vm_rss_kib(pid).unwrap_or(0),
            spooled: metrics("e4k_bridge_spool_messages{"),
            spool_bytes: metrics("e4k_bridge_spool_bytes{"),
            received: received.load(Ordering::Relaxed),
            published: published.load(Ordering::Relaxed),
        };
        if opened_at.is_none() && at >= Duration::from_secs(outage_secs) {
            proxy.set_mode(Mode::Pass);
            opened_at = Some(sample.at);
            received_at_open = sample.received;
        } else if opened_at.is_some() && caught_up_at.is_none() && sample.spooled < rate as f64 {
            caught_up_at = Some(sample.at);
            received_at_catch_up = sample.received;
        }
        let done = caught_up_at.is_some_and(|t| sample.at > t + 5.0)
            || at > Duration::from_secs(outage_secs) + drain_limit;
        samples.push(sample);
        if done {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    sender.await.unwrap();
    let published = published.load(Ordering::Relaxed);
    // Everything published arrives, or 20 s pass without progress.
    let mut last = (received.load(Ordering::Relaxed), Instant::now());
    while last.1.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = received.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        }
        let seen = seen.lock().unwrap();
        if seen.len() as u64 >= published && seen[..published as usize].iter().all(|&c| c > 0) {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    receiver.abort();
    let seen = seen.lock().unwrap();
    let count = |i: u64| seen.get(i as usize).copied().unwrap_or(0) as u64;
    let missing = (0..published).filter(|&i| count(i) == 0).count() as u64;
    let duplicates = (0..published).map(|i| count(i).saturating_sub(1)).sum();
    drop(bridge);
    Outage {
        samples,
        rss_idle_kib,
        opened_at: opened_at.unwrap_or(f64::NAN),
        caught_up_at,
        received_at_open,
        received_at_catch_up,
        published,
        missing,
        duplicates,
    }
}

fn main() {
    let n = env_usize("E4K_BENCH_MESSAGES", 20_000);
    let repeat = env_usize("E4K_BENCH_REPEAT", 5);
    let latency_secs = env_usize("E4K_BENCH_LATENCY_SECS", 10) as u32;
    let outage_secs = env_usize("E4K_BENCH_OUTAGE_SECS", 600) as u64;
    let rate = env_usize("E4K_BENCH_RATE", 1_000) as u64;
    let Some(binary) = release_e4k() else {
        println!("not measured: no target/release/e4k (run `cargo build --release -p e4k` first)");
        return;
    };
    let runtime = common::bench_runtime();
    let (cells, latencies, paced_fsyncs) =
        runtime.block_on(throughput_and_latency(&binary, n, repeat, latency_secs));
    println!(
        "\nmosquitto {} on loopback; the remote over TLS 1.3 with client certificates; QoS 1; \
         `e4k bridge run` (release) as a process, `--receive-maximum 100`; {} CPUs; the spool \
         in a temporary directory on {}\n",
        mosquitto_version(),
        cpus(),
        filesystem_of(&std::env::temp_dir())
    );
    println!(
        "### Throughput without and with the spool ({n} messages per cell, {repeat} interleaved \
         rounds, median)\n"
    );
    println!(
        "| payload | bridge | received | msg/s (median) | msg/s per round | bridge CPU per message | fsyncs per message |"
    );
    println!("|---|---|---:|---:|---|---:|---:|");
    let of = |size: usize, spool: bool| {
        cells
            .iter()
            .filter(move |c| c.size == size && c.spool == spool)
    };
    for size in [256, 4096] {
        for spool in [false, true] {
            let rates: Vec<f64> = of(size, spool).map(|c| c.rate).collect();
            let rounds: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
            println!(
                "| {size} B | {} | {}/{} | {:.0} | {} | {:.1} µs | {} |",
                if spool {
                    "with `--spool-dir`"
                } else {
                    "without a spool"
                },
                of(size, spool).map(|c| c.received).sum::<usize>(),
                n * repeat,
                median(rates),
                rounds.join(", "),
                median(of(size, spool).map(|c| c.cpu_us).collect()),
                if spool {
                    format!("{:.3}", median(of(size, spool).map(|c| c.fsyncs).collect()))
                } else {
                    "—".to_owned()
                }
            );
        }
    }
    println!("\n| payload | with spool ÷ without (goal ≥ 0.8×) |\n|---|---:|");
    for size in [256, 4096] {
        let ratio = median(of(size, true).map(|c| c.rate).collect())
            / median(of(size, false).map(|c| c.rate).collect());
        println!("| {size} B | {ratio:.2}× |");
    }

    println!(
        "\n### Latency (256 B, paced 2,000 msg/s for {latency_secs} s; publish on the local \
         broker → remote subscriber)\n"
    );
    println!("| bridge | received | p50 | p99 | max |\n|---|---:|---:|---:|---:|");
    for (name, sorted) in ["without a spool", "with `--spool-dir`"]
        .iter()
        .zip(&latencies)
    {
        println!(
            "| {name} | {}/{} | {:.0} µs | {:.0} µs | {:.0} µs |",
            sorted.len(),
            2_000 * latency_secs,
            percentile(sorted, 0.5),
            percentile(sorted, 0.99),
            sorted.last().copied().unwrap_or(f64::NAN)
        );
    }
    println!(
        "\nAdded by the spool: p50 {:.0} µs, p99 {:.0} µs (goal p99 ≤ 10 ms); {paced_fsyncs:.3} \
         fsyncs per message at this rate.",
        percentile(&latencies[1], 0.5) - percentile(&latencies[0], 0.5),
        percentile(&latencies[1], 0.99) - percentile(&latencies[0], 0.99)
    );

    let outage = runtime.block_on(outage(&binary, outage_secs, rate));
    print_outage(&outage, outage_secs, rate);
}

fn print_outage(o: &Outage, outage_secs: u64, rate: u64) {
    println!(
        "\n### A {outage_secs} s outage at {rate} msg/s (local broker at its defaults, remote cut \
         off by a TCP proxy, ingress going on while the spool drains)\n"
    );
    let during = |from: f64, to: f64| o.samples.iter().filter(move |s| s.at > from && s.at <= to);
    let max_rss = |from: f64, to: f64| during(from, to).map(|s| s.rss_kib).max().unwrap_or(0);
    let min_rss = |from: f64, to: f64| during(from, to).map(|s| s.rss_kib).min().unwrap_or(0);
    let end = o.samples.last().map_or(0.0, |s| s.at);
    let peak = o.samples.iter().map(|s| s.spooled).fold(0.0, f64::max);
    let peak_bytes = o.samples.iter().map(|s| s.spool_bytes).fold(0.0, f64::max);
    println!(
        "| RSS idle | RSS during the outage (min–max) | RSS while draining (min–max) | spool at its \
         largest | published | lost | duplicates |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {:.1} MiB | {:.1}–{:.1} MiB | {:.1}–{:.1} MiB | {peak:.0} messages, {:.1} MiB | {} | {} | {} |",
        mib(o.rss_idle_kib),
        mib(min_rss(0.0, o.opened_at)),
        mib(max_rss(0.0, o.opened_at)),
        mib(min_rss(o.opened_at, end)),
        mib(max_rss(o.opened_at, end)),
        peak_bytes / (1024.0 * 1024.0),
        o.published,
        o.missing,
        o.duplicates
    );
    match o.caught_up_at {
        Some(t) => {
            let secs = t - o.opened_at;
            let delivered = o.received_at_catch_up.saturating_sub(o.received_at_open);
            let drain = delivered as f64 / secs;
            println!(
                "\nDrain: caught up {secs:.0} s after the remote came back, delivering \
                 {delivered} messages ({drain:.0} msg/s, {:.1}× the ingress rate; goal ≥ 3×).",
                drain / rate as f64
            );
        }
        None => println!("\nDrain: did not catch up within the run."),
    }
    // One row a minute (and the last one), for the shape of the curve.
    println!(
        "\n| t | RSS | spooled messages | spool MiB | published | received |\n|---:|---:|---:|---:|---:|---:|"
    );
    for (i, s) in o.samples.iter().enumerate() {
        if i % 60 == 59 || i + 1 == o.samples.len() || (s.at - o.opened_at).abs() < 0.6 {
            println!(
                "| {:.0} s | {:.1} MiB | {:.0} | {:.1} | {} | {} |",
                s.at,
                mib(s.rss_kib),
                s.spooled,
                s.spool_bytes / (1024.0 * 1024.0),
                s.published,
                s.received
            );
        }
    }
}

/// The filesystem type and device of `path` (from `df`), for the report.
fn filesystem_of(path: &std::path::Path) -> String {
    std::process::Command::new("df")
        .args(["--output=source,fstype"])
        .arg(path)
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.lines()
                .nth(1)
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "an unknown filesystem".to_owned())
}
