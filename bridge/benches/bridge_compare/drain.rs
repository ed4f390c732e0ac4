//! `e4k bridge run` (the release binary) as a path of the comparison with a local broker of
//! its own, and the RSS part: the process while a backlog drains through a TCP proxy that cut
//! the remote off.

use std::path::Path;
use std::time::{Duration, Instant};

use e4k_tests::Mosquitto;
use e4k_tests::measure::vm_rss_kib;
use e4k_tests::process::BridgeProcess;
use e4k_tests::proxy::{Mode, TcpProxy};
use rumqttc::v5::mqttbytes::QoS;

use super::common::{Env, ProcessArgs, TestClient};
use super::{QUEUES, ROUTE, TOPIC, common};

pub(super) struct Drain {
    pub(super) backlog: usize,
    pub(super) received: usize,
    pub(super) publish_time: Duration,
    pub(super) drain_time: Duration,
    pub(super) rss_idle_kib: u64,
    pub(super) rss_backlog_kib: u64,
    pub(super) rss_peak_kib: u64,
    pub(super) rss_end_kib: u64,
    pub(super) samples: Vec<u64>,
}

/// Starts `e4k bridge run` with its own local broker, bridging to `env`'s remote, and waits
/// until it forwards.
pub(super) async fn bridge_process(
    binary: &Path,
    env: &Env,
    name: &str,
) -> (Mosquitto, BridgeProcess, TestClient) {
    let local = Mosquitto::start(&format!("allow_anonymous true\n{QUEUES}\n")).unwrap();
    // Client IDs of its own on the shared remote broker (two processes with one client ID
    // would take each other's session over).
    let args = ProcessArgs {
        name,
        remote_port: env.remote.port(),
        local_port: local.port(),
        metrics_port: e4k_tests::free_port().unwrap(),
        extra: &[],
    };
    let child = common::bridge_process(binary, env, ROUTE, &args);
    let publisher = TestClient::local(local.port(), &format!("bench-pub-{name}")).await;
    let mut probe = env.remote_client(&format!("bench-probe-{name}")).await;
    probe.subscribe("e2e/out/#", QoS::AtLeastOnce).await;
    common::wait_forwarding(&publisher, &mut probe, TOPIC).await;
    (local, child, publisher)
}

/// Runs `e4k bridge run` as a process, cuts the remote off with a proxy, publishes `backlog`
/// messages on the local broker, reopens the proxy and samples VmRSS until the remote
/// subscriber has them all.
pub(super) async fn drain(binary: &Path, backlog: usize) -> Drain {
    let env = Env::with_local(QUEUES, QUEUES);
    let proxy = TcpProxy::start(([127, 0, 0, 1], env.remote.port()).into()).unwrap();
    let args = ProcessArgs {
        name: "e4k",
        remote_port: proxy.addr().port(),
        local_port: env.local.port(),
        metrics_port: e4k_tests::free_port().unwrap(),
        extra: &["--reconnect-initial", "100ms", "--reconnect-max", "200ms"],
    };
    let child = common::bridge_process(binary, &env, ROUTE, &args);
    let pid = child.pid();
    let mut subscriber = env.remote_client("drain-sub").await;
    subscriber.subscribe("e2e/out/#", QoS::AtLeastOnce).await;
    let publisher = env.local_client("drain-pub").await;
    common::wait_forwarding(&publisher, &mut subscriber, TOPIC).await;
    let rss_idle_kib = vm_rss_kib(pid).unwrap_or(0);

    // Cut the remote off and build the backlog on the local broker.
    proxy.set_mode(Mode::Refuse);
    proxy.cut();
    let payload = bytes::Bytes::from(vec![b'x'; 256]);
    let started = Instant::now();
    for _ in 0..backlog {
        publisher
            .client
            .publish_bytes(TOPIC, QoS::AtLeastOnce, false, payload.clone())
            .await
            .unwrap();
    }
    // Let the local broker take the last ones (the client's queue drains on PUBACKs).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let publish_time = started.elapsed();
    let rss_backlog_kib = vm_rss_kib(pid).unwrap_or(0);

    // Open the way and sample RSS while it drains.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(kib) = vm_rss_kib(pid) {
                    samples.push(kib);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        })
    };
    let started = Instant::now();
    proxy.set_mode(Mode::Pass);
    let mut received = 0;
    while received < backlog {
        match subscriber.try_recv(Duration::from_secs(20)).await {
            Some(_) => received += 1,
            None => break,
        }
    }
    let drain_time = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = sampler.join().unwrap();
    let rss_end_kib = vm_rss_kib(pid).unwrap_or(0);
    drop(child);
    Drain {
        backlog,
        received,
        publish_time,
        drain_time,
        rss_idle_kib,
        rss_backlog_kib,
        rss_peak_kib: samples.iter().copied().max().unwrap_or(0),
        rss_end_kib,
        samples,
    }
}
