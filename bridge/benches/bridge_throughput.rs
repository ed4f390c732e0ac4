//! Throughput smoke benchmark (not a test): N QoS 1 messages of 256 bytes published on a
//! local mosquitto, forwarded by the bridge (in-process) to a TLS mosquitto standing in for
//! Event Grid, counted by a subscriber there; and, as a baseline, the same N published
//! directly into the remote broker. Prints a Markdown table.
//!
//! ```text
//! cargo bench -p e4k-bridge --bench bridge_throughput            # N = 20000
//! E4K_BENCH_MESSAGES=100000 cargo bench -p e4k-bridge --bench bridge_throughput
//! ```

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{Env, TestClient, run_options, start_bridge};
use rumqttc::v5::mqttbytes::QoS;

const PAYLOAD: usize = 256;

/// Unbounded broker queues, so that the brokers never drop a QoS 1 message of the run (by
/// default mosquitto drops beyond 1000 queued messages per session). `max_inflight_messages`
/// stays at its default: with 0 (unlimited) mosquitto 2.0.11 ignores the bridge's Receive
/// Maximum altogether and the bridge has to reconnect to stop the flood. The brokers log as a
/// production one would, not every packet (that costs them time).
const QUEUES: &str = "max_queued_messages 0\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information";

const ONE_ROUTE: &str = "    - direction: local-to-remote
      name: out
      source: e2e/out/#
";

const SHARED_ROUTE: &str = "    - direction: local-to-remote
      name: out
      source: e2e/out/#
      sharedSubscription:
        groupName: bench
        groupMinimumShareNumber: 4
";

struct Row {
    scenario: &'static str,
    messages: usize,
    elapsed: Duration,
    received: usize,
}

/// Publishes `n` messages with `publisher` and waits until `subscriber` received them all.
async fn pump(publisher: &TestClient, subscriber: &mut TestClient, n: usize) -> (Duration, usize) {
    common::pump(&publisher.client, subscriber, "e2e/out/bench", n, PAYLOAD).await
}

async fn through_bridge(n: usize, routes: &'static str, scenario: &'static str) -> Row {
    let local_queues = std::env::var("E4K_BENCH_LOCAL").unwrap_or_else(|_| QUEUES.to_owned());
    let env = Env::with_local(QUEUES, &local_queues);
    let mut options = run_options();
    options.receive_maximum = Some(100);
    let bridge = start_bridge(&env.config(1, routes), options);
    bridge.ready().await;
    let mut subscriber = env.remote_client("bench-sub").await;
    subscriber.subscribe("e2e/out/#", QoS::AtLeastOnce).await;
    let publisher = env.local_client("bench-pub").await;
    let (elapsed, received) = pump(&publisher, &mut subscriber, n).await;
    if std::env::var_os("E4K_BENCH_METRICS").is_some() {
        for line in bridge.handle.metrics().lines() {
            if !line.contains("bucket") && !line.starts_with('#') && !line.ends_with(" 0") {
                eprintln!("{line}");
            }
        }
    }
    bridge.stop().await;
    Row {
        scenario,
        messages: n,
        elapsed,
        received,
    }
}

async fn direct(n: usize) -> Row {
    let env = Env::with_local(QUEUES, QUEUES);
    let mut subscriber = env.remote_client("bench-sub").await;
    subscriber.subscribe("e2e/out/#", QoS::AtLeastOnce).await;
    let publisher = env.remote_client("bench-pub").await;
    let (elapsed, received) = pump(&publisher, &mut subscriber, n).await;
    Row {
        scenario: "direct into the remote broker (no bridge, baseline)",
        messages: n,
        elapsed,
        received,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (e.g. a filter) is ignored.
    let n = e4k_tests::env_usize("E4K_BENCH_MESSAGES", 20_000);
    let runtime = common::bench_runtime();
    let rows = runtime.block_on(async {
        vec![
            direct(n).await,
            through_bridge(n, ONE_ROUTE, "local → bridge (1 session) → remote").await,
            through_bridge(
                n,
                SHARED_ROUTE,
                "local → bridge (4-member shared subscription) → remote",
            )
            .await,
        ]
    });
    println!(
        "\n{n} QoS 1 messages of {PAYLOAD} B; mosquitto {} on loopback, remote over TLS 1.3 with client certificates; {} CPUs\n",
        e4k_tests::measure::mosquitto_version(),
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    println!("| Scenario | Messages received | Wall time | msg/s |");
    println!("|---|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {}/{} | {:.2} s | {:.0} |",
            row.scenario,
            row.received,
            row.messages,
            row.elapsed.as_secs_f64(),
            row.received as f64 / row.elapsed.as_secs_f64()
        );
    }
}
