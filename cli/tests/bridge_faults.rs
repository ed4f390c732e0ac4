//! `kill -9` of the real `e4k bridge run` in the middle of a 1,100 msg/s QoS 1 stream of
//! sequence numbers, then a restart: the local broker keeps the bridge's persistent session,
//! the restarted bridge resumes it, and the subscriber on the remote (a TLS mosquitto standing
//! in for Event Grid) gets every number, with at most the in-flight window of duplicates (the
//! messages forwarded but not yet acknowledged to the local broker when the process died).
//! The other fault tests run the bridge in-process: `tests/tests/bridge_faults.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e4k_tests::Mosquitto;
use e4k_tests::bridge::ConnectorYaml;
use e4k_tests::faults::{self, BRIDGE_SECRET, FaultPki};
use e4k_tests::process::{BridgeProcess, SeqSubscriber, readyz, wait_until};

/// The bridge's in-flight window (`--receive-maximum`).
const WINDOW: u64 = 100;
const TOPIC: &str = "e2e/seq";
const WAIT: Duration = Duration::from_secs(20);

fn config_yaml(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("bridge.yaml");
    std::fs::write(
        &path,
        ConnectorYaml {
            prefix: "e4k",
            remote_secret: Some(BRIDGE_SECRET),
            ..ConnectorYaml::new(
                "faults",
                "    - direction: local-to-remote\n      name: out\n      source: e2e/#\n",
            )
        }
        .render(),
    )
    .unwrap();
    path
}

#[test]
fn kill_9_of_the_bridge_mid_stream_then_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = FaultPki::new(dir.path()).unwrap();
    let remote = Mosquitto::start(&pki.remote_listener(None)).unwrap();
    let local = Mosquitto::start(&faults::local_listener(None)).unwrap();
    let config = config_yaml(dir.path());
    let metrics_port = e4k_tests::free_port().unwrap();
    let remote_endpoint = format!("localhost:{}", remote.port());
    let local_endpoint = format!("127.0.0.1:{}", local.port());
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let (secrets, configmaps, root) = (pki.secrets(), pki.configmaps(), pki.root());
    let window = WINDOW.to_string();
    let start_bridge = |n: u32| {
        let mut args = vec!["--config", config.to_str().unwrap()];
        args.extend(["--remote-endpoint", &remote_endpoint]);
        args.extend(["--local-endpoint", &local_endpoint]);
        args.extend(["--secrets-dir", secrets.to_str().unwrap()]);
        args.extend(["--configmaps-dir", configmaps.to_str().unwrap()]);
        args.extend(["--remote-ca-file", root.to_str().unwrap()]);
        args.extend(["--metrics-listen", &metrics_listen]);
        args.extend(["--receive-maximum", &window]);
        args.extend(["--reconnect-initial", "100ms", "--reconnect-max", "1s"]);
        let binary = Path::new(env!("CARGO_BIN_EXE_e4k"));
        BridgeProcess::start(binary, dir.path(), &format!("bridge-{n}"), &args, &[])
    };
    let log = |n: u32| {
        std::fs::read_to_string(dir.path().join(format!("bridge-{n}.log"))).unwrap_or_default()
    };
    let mut bridge = start_bridge(1);
    wait_until("/readyz", WAIT, || readyz(metrics_port) == Some(200));

    // The subscriber on the remote, persistent session, QoS 1.
    let (cert, key) = pki.tester();
    let sub = SeqSubscriber::start(
        remote.port(),
        "kill-sub",
        &[TOPIC, "e2e/probe"],
        &root,
        (&cert, &key),
    );
    // The path works end to end (the subscription is in place) before the stream starts.
    let deadline = Instant::now() + WAIT;
    while sub.probes() == 0 {
        assert!(Instant::now() < deadline, "no probe arrived:\n{}", log(1));
        let status = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &local.port().to_string()])
            .args(["-t", "e2e/probe", "-m", "probe", "-q", "1"])
            .status()
            .unwrap();
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(300));
    }

    let local_port = local.port();
    let publisher = std::thread::spawn(move || {
        faults::publish_sequence(local_port, "kill-pub", TOPIC, 11, Duration::from_secs(10))
    });
    std::thread::sleep(Duration::from_secs(3));
    // SIGKILL: no drain, no DISCONNECT; the sockets are closed by the kernel.
    bridge.kill();
    let killed = Instant::now();
    drop(bridge);
    let bridge = start_bridge(2);
    wait_until("/readyz after the restart", WAIT, || {
        readyz(metrics_port) == Some(200)
    });
    let back = killed.elapsed();
    let published = publisher.join().unwrap().unwrap();

    let (missing, duplicates) = sub.settle(published.sent, WAIT);
    let received = published.sent - missing.len() as u64 + duplicates;
    eprintln!(
        "kill -9: published {} at {:.0} msg/s; received {received} (duplicates {duplicates}, \
         window {WINDOW}, missing {}); ready again {:.1} s after the kill",
        published.sent,
        published.rate,
        missing.len(),
        back.as_secs_f64()
    );
    assert!(published.rate >= 1_000.0, "{published:?}");
    assert!(
        missing.is_empty(),
        "{} of {} lost, first {:?}\nfirst bridge:\n{}\nsecond bridge:\n{}",
        missing.len(),
        published.sent,
        &missing[..missing.len().min(20)],
        log(1),
        log(2)
    );
    assert!(duplicates <= WINDOW, "{duplicates} duplicates");
    drop(bridge);
    drop(sub);
}
