//! `kill -9` of the real `e4k bridge run` in the middle of a 1,100 msg/s QoS 1 stream of
//! sequence numbers, then a restart: the local broker keeps the bridge's persistent session,
//! the restarted bridge resumes it, and the subscriber on the remote (a TLS mosquitto standing
//! in for Event Grid) gets every number, with at most the in-flight window of duplicates (the
//! messages forwarded but not yet acknowledged to the local broker when the process died).
//! The other fault tests run the bridge in-process: `tests/tests/bridge_faults.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e4k_tests::Mosquitto;
use e4k_tests::bridge::ConnectorYaml;
use e4k_tests::faults::{self, BRIDGE_SECRET, FaultPki};

/// The bridge's in-flight window (`--receive-maximum`).
const WINDOW: u64 = 100;
const TOPIC: &str = "e2e/seq";
const WAIT: Duration = Duration::from_secs(20);

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The status of `GET /readyz` on 127.0.0.1:port.
fn readyz(port: u16) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
        let log = std::fs::File::create(dir.path().join(format!("bridge-{n}.log"))).unwrap();
        Process(
            Command::new(env!("CARGO_BIN_EXE_e4k"))
                .args(["bridge", "run", "--config"])
                .arg(&config)
                .args(["--remote-endpoint", &remote_endpoint])
                .args(["--local-endpoint", &local_endpoint])
                .arg("--secrets-dir")
                .arg(&secrets)
                .arg("--configmaps-dir")
                .arg(&configmaps)
                .arg("--remote-ca-file")
                .arg(&root)
                .args(["--metrics-listen", &metrics_listen])
                .args(["--receive-maximum", &window])
                .args(["--reconnect-initial", "100ms", "--reconnect-max", "1s"])
                .env_remove("RUST_LOG")
                .env_remove("E4K_INSTANCE_INDEX")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    };
    let log = |n: u32| {
        std::fs::read_to_string(dir.path().join(format!("bridge-{n}.log"))).unwrap_or_default()
    };
    let mut bridge = start_bridge(1);
    wait_until("/readyz", WAIT, || readyz(metrics_port) == Some(200));

    // The subscriber on the remote, persistent session, QoS 1.
    let (cert, key) = pki.tester();
    let port = remote.port().to_string();
    let mut sub = Process(
        Command::new("mosquitto_sub")
            .args(["-h", "localhost", "-p", &port, "--cafile"])
            .arg(&root)
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args([
                "-i", "kill-sub", "-c", "-x", "600", "-q", "1", "-V", "mqttv5",
            ])
            .args(["-t", TOPIC, "-t", "e2e/probe"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let counts: Arc<Mutex<(Vec<u32>, u64)>> = Arc::default();
    let sink = Arc::clone(&counts);
    let stdout = sub.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut counts = sink.lock().unwrap();
            match line.trim().parse::<usize>() {
                Ok(n) => {
                    if counts.0.len() <= n {
                        counts.0.resize(n + 1, 0);
                    }
                    counts.0[n] += 1;
                }
                Err(_) => counts.1 += 1,
            }
        }
    });
    // The path works end to end (the subscription is in place) before the stream starts.
    let probes = || counts.lock().unwrap().1;
    let deadline = Instant::now() + WAIT;
    while probes() == 0 {
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
    bridge.0.kill().unwrap();
    bridge.0.wait().unwrap();
    let killed = Instant::now();
    drop(bridge);
    let bridge = start_bridge(2);
    wait_until("/readyz after the restart", WAIT, || {
        readyz(metrics_port) == Some(200)
    });
    let back = killed.elapsed();
    let published = publisher.join().unwrap().unwrap();

    let n = usize::try_from(published.sent).unwrap();
    let tally = || {
        let counts = counts.lock().unwrap();
        let missing: Vec<usize> = (0..n)
            .filter(|&i| counts.0.get(i).copied().unwrap_or(0) == 0)
            .collect();
        let received: u64 = counts.0.iter().map(|&c| u64::from(c)).sum();
        (missing, received)
    };
    let deadline = Instant::now() + WAIT;
    while !tally().0.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (missing, received) = tally();
    let duplicates = received.saturating_sub(published.sent - missing.len() as u64);
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
