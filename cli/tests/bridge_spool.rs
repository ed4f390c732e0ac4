//! The durable spool (`e4k bridge run --spool-dir`) against real mosquitto brokers, the local
//! one at its **default** configuration (a queue of 1,000 messages per session, as Debian
//! installs it): the remote (a TLS mosquitto standing in for Event Grid) is stalled with
//! SIGSTOP, as a WAN outage would, while 1,000 msg/s QoS 1 flow; a subscriber on the remote
//! checks the sequence numbers.
//!
//! - Without a spool the local broker drops what it cannot queue (the loss users hit today);
//!   with one nothing is lost. Both run in the same test, so that it proves the spool is what
//!   saves them.
//! - `kill -9` of the bridge in the middle of the stall and a restart on the same spool: 0 lost,
//!   duplicates at most the in-flight window and one group-commit batch.
//! - A small `--spool-max-bytes`: `block` loses nothing; `drop-oldest` drops exactly what its
//!   counter says and delivers the rest in order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e4k_tests::Mosquitto;
use e4k_tests::bridge::{ConnectorYaml, metric};
use e4k_tests::faults::{self, BRIDGE_SECRET, FaultPki};
use e4k_tests::process::{Process, SeqSubscriber, http_get, ranges, readyz, signal, wait_until};

/// The bridge's in-flight window (`--receive-maximum`).
const WINDOW: u64 = 100;
const TOPIC: &str = "e2e/seq";
const WAIT: Duration = Duration::from_secs(30);

/// A local mosquitto as installed: nothing but the listener (and less logging than the
/// fixture's default, which logs every packet).
const LOCAL_DEFAULTS: &str = "allow_anonymous true\nlog_type error\nlog_type warning\n\
                              log_type notice\nlog_type information\n";

/// Two brokers, a PKI, the bridge configuration, and a subscriber on the remote.
struct Rig {
    dir: tempfile::TempDir,
    pki: FaultPki,
    remote: Mosquitto,
    local: Mosquitto,
    config: PathBuf,
    metrics_port: u16,
    sub: SeqSubscriber,
}

impl Rig {
    fn new(name: &str) -> Rig {
        Rig::with(
            name,
            "    - direction: local-to-remote\n      name: out\n      source: e2e/#\n",
            LOCAL_DEFAULTS,
            "",
        )
    }

    /// Brokers for `routes`: the local one with `local` lines, the remote one with its TLS
    /// listener followed by `remote_extra`.
    fn with(name: &str, routes: &str, local: &str, remote_extra: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let pki = FaultPki::new(dir.path()).unwrap();
        let remote =
            Mosquitto::start(&format!("{}{remote_extra}", pki.remote_listener(None))).unwrap();
        let local = Mosquitto::start(local).unwrap();
        let config = dir.path().join("bridge.yaml");
        std::fs::write(
            &config,
            ConnectorYaml {
                prefix: name,
                remote_secret: Some(BRIDGE_SECRET),
                ..ConnectorYaml::new("spool", routes)
            }
            .render(),
        )
        .unwrap();
        let (cert, key) = pki.tester();
        let sub = SeqSubscriber::start(
            remote.port(),
            &format!("{name}-sub"),
            &[TOPIC, "e2e/probe"],
            &pki.root(),
            (&cert, &key),
        );
        Rig {
            metrics_port: e4k_tests::free_port().unwrap(),
            dir,
            pki,
            remote,
            local,
            config,
            sub,
        }
    }

    fn spool_dir(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// Starts `e4k bridge run` (log `bridge-<n>.log`) with `extra` arguments.
    fn bridge(&self, n: u32, extra: &[&str]) -> Process {
        let log = std::fs::File::create(self.dir.path().join(format!("bridge-{n}.log"))).unwrap();
        Process(
            Command::new(env!("CARGO_BIN_EXE_e4k"))
                .args(["bridge", "run", "--config"])
                .arg(&self.config)
                .args([
                    "--remote-endpoint",
                    &format!("localhost:{}", self.remote.port()),
                ])
                .args([
                    "--local-endpoint",
                    &format!("127.0.0.1:{}", self.local.port()),
                ])
                .arg("--secrets-dir")
                .arg(self.pki.secrets())
                .arg("--configmaps-dir")
                .arg(self.pki.configmaps())
                .arg("--remote-ca-file")
                .arg(self.pki.root())
                .args([
                    "--metrics-listen",
                    &format!("127.0.0.1:{}", self.metrics_port),
                ])
                .args(["--receive-maximum", &WINDOW.to_string()])
                .args(if extra.contains(&"--reconnect-initial") {
                    &[][..]
                } else {
                    &["--reconnect-initial", "100ms", "--reconnect-max", "1s"][..]
                })
                .args(extra)
                .env_remove("RUST_LOG")
                .env_remove("E4K_INSTANCE_INDEX")
                .env_remove("E4K_SPOOL_DIR")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }

    fn log(&self, n: u32) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("bridge-{n}.log"))).unwrap_or_default()
    }

    fn metrics(&self) -> String {
        http_get(self.metrics_port, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// Waits for readiness, then until a probe crosses end to end.
    fn wait_path(&self, n: u32) {
        wait_until("/readyz", WAIT, || readyz(self.metrics_port) == Some(200));
        let deadline = Instant::now() + WAIT;
        while self.sub.probes() == 0 {
            assert!(
                Instant::now() < deadline,
                "no probe arrived:\n{}",
                self.log(n)
            );
            let status = Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &self.local.port().to_string()])
                .args(["-t", "e2e/probe", "-m", "probe", "-q", "1"])
                .status()
                .unwrap();
            assert!(status.success());
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Publishes 1,000 msg/s for `secs` on the local broker (in a thread).
    fn publish(&self, id: &str, secs: u64) -> std::thread::JoinHandle<faults::Published> {
        let port = self.local.port();
        let id = id.to_owned();
        std::thread::spawn(move || {
            faults::publish_sequence(port, &id, TOPIC, 10, Duration::from_secs(secs)).unwrap()
        })
    }
}

/// What one stall run delivered.
struct Outcome {
    sent: u64,
    missing: Vec<u64>,
    duplicates: u64,
}

/// 45 s of 1,000 msg/s with the remote stopped from 5 s to 35 s; with `spool`, the bridge
/// spools, and with `kill` it is killed with SIGKILL 15 s into the stall and restarted.
fn stall_run(rig: &Rig, spool: bool, kill: bool) -> Outcome {
    let spool_dir = rig.spool_dir();
    let spool_args: Vec<&str> = if spool {
        vec!["--spool-dir", spool_dir.to_str().unwrap()]
    } else {
        Vec::new()
    };
    let mut bridge = rig.bridge(1, &spool_args);
    rig.wait_path(1);
    let publisher = rig.publish("stall-pub", 45);
    std::thread::sleep(Duration::from_secs(5));
    signal(rig.remote.pid(), "STOP");
    if kill {
        std::thread::sleep(Duration::from_secs(15));
        bridge.0.kill().unwrap();
        bridge.0.wait().unwrap();
        inspect_holds_messages(&spool_dir);
        bridge = rig.bridge(2, &spool_args);
        std::thread::sleep(Duration::from_secs(2));
        second_bridge_is_refused(rig, &spool_dir);
        std::thread::sleep(Duration::from_secs(13));
    } else {
        std::thread::sleep(Duration::from_secs(15));
        if spool {
            // Spooling is the bridge's job while the remote is away: it stays ready.
            let (status, body) = http_get(rig.metrics_port, "/readyz").unwrap();
            assert_eq!(status, 200, "{body}");
            assert!(body.contains("\"state\": \"ok\""), "{body}");
        }
        std::thread::sleep(Duration::from_secs(15));
    }
    signal(rig.remote.pid(), "CONT");
    let published = publisher.join().unwrap();
    assert!(published.rate >= 950.0, "{published:?}");
    let (missing, duplicates) = rig.sub.settle(published.sent, Duration::from_secs(90));
    drop(bridge);
    Outcome {
        sent: published.sent,
        missing,
        duplicates,
    }
}

/// `e4k bridge spool inspect --output json` on the spool of a killed bridge shows the
/// messages it holds.
fn inspect_holds_messages(spool_dir: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_e4k"))
        .args([
            "bridge",
            "spool",
            "inspect",
            "--output",
            "json",
            "--spool-dir",
        ])
        .arg(spool_dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let queue = report["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "spool~remote~killspool-0")
        .unwrap_or_else(|| panic!("no remote queue: {report}"));
    assert!(report["messages"].as_u64().unwrap() > 1_000, "{report}");
    assert_eq!(queue["routes"][0]["route"], "out", "{report}");
    assert!(queue["oldest_age_secs"].as_u64().is_some(), "{report}");
}

/// A second bridge on a spool directory in use exits 2, naming the directory.
fn second_bridge_is_refused(rig: &Rig, spool_dir: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_e4k"))
        .args(["bridge", "run", "--config"])
        .arg(&rig.config)
        .arg("--spool-dir")
        .arg(spool_dir)
        .args(["--metrics-listen", "127.0.0.1:0", "--secrets-dir"])
        .arg(rig.pki.secrets())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("in use by another running bridge"),
        "{stderr}"
    );
}

#[test]
fn a_30s_remote_stall_at_1000_msgs_loses_nothing_with_a_spool_and_much_without() {
    let without = std::thread::spawn(|| {
        let rig = Rig::new("nospool");
        let outcome = stall_run(&rig, false, false);
        (outcome, rig.local.log())
    });
    let rig = Rig::new("spool");
    let with = stall_run(&rig, true, false);
    let (without, local_log) = without.join().unwrap();
    eprintln!(
        "remote stalled 30 s at 1,000 msg/s, local mosquitto at its defaults: without a spool \
         {} of {} lost; with a spool {} of {} lost ({} duplicates)",
        without.missing.len(),
        without.sent,
        with.missing.len(),
        with.sent,
        with.duplicates
    );
    assert!(
        with.missing.is_empty(),
        "{} of {} lost with a spool: {}\n{}",
        with.missing.len(),
        with.sent,
        ranges(&with.missing),
        rig.log(1)
    );
    assert!(with.duplicates <= WINDOW, "{} duplicates", with.duplicates);
    // Without the spool the local broker's queue (1,000) overflows: most of the stall is lost.
    assert!(
        without.missing.len() > 10_000,
        "expected the local broker to drop messages without a spool, lost only {}",
        without.missing.len()
    );
    assert!(
        local_log.contains("Outgoing messages are being dropped"),
        "{local_log}"
    );
    // What the spool went through shows on /metrics of a fresh run? The counters of this run
    // are gone with its process; the log says the spool was open.
    assert!(rig.log(1).contains("spool open"), "{}", rig.log(1));
}

#[test]
fn kill_9_in_the_middle_of_a_remote_stall_with_a_spool_loses_nothing() {
    let rig = Rig::new("killspool");
    let outcome = stall_run(&rig, true, true);
    eprintln!(
        "kill -9 mid-stall with a spool: {} of {} lost, {} duplicates",
        outcome.missing.len(),
        outcome.sent,
        outcome.duplicates
    );
    assert!(
        outcome.missing.is_empty(),
        "{} of {} lost: {}\nfirst bridge:\n{}\nsecond bridge:\n{}",
        outcome.missing.len(),
        outcome.sent,
        ranges(&outcome.missing),
        rig.log(1),
        rig.log(2)
    );
    // The in-flight window and one group-commit batch (at most 1,024 messages).
    assert!(
        outcome.duplicates <= WINDOW + 1_024,
        "{} duplicates",
        outcome.duplicates
    );
    assert!(
        rig.log(2).contains("waiting from the last run"),
        "{}",
        rig.log(2)
    );
}

/// With `--spool-max-bytes 128KiB` (about 1,400 messages) and `when_full`, stops the remote,
/// publishes 1,000 msg/s for `secs`, and lets the remote go 5 s later. Returns the rig, the
/// outcome, the metrics text after the drain and the `received` counter's two samples taken
/// 2 s apart while the spool was full.
fn small_spool(name: &str, when_full: &str, secs: u64) -> (Rig, Outcome, String, (f64, f64)) {
    let rig = Rig::new(name);
    let spool_dir = rig.spool_dir();
    let bridge = rig.bridge(
        1,
        &[
            "--spool-dir",
            spool_dir.to_str().unwrap(),
            "--spool-max-bytes",
            "128KiB",
            "--spool-when-full",
            when_full,
        ],
    );
    rig.wait_path(1);
    signal(rig.remote.pid(), "STOP");
    let publisher = rig.publish(&format!("{name}-pub"), secs);
    let full = |rig: &Rig| metric(&rig.metrics(), "e4k_bridge_spool_full{") >= 1.0;
    wait_until("the spool to fill", WAIT, || full(&rig));
    let received = |rig: &Rig| metric(&rig.metrics(), "e4k_bridge_messages_received_total{");
    std::thread::sleep(Duration::from_millis(500));
    let first = received(&rig);
    std::thread::sleep(Duration::from_secs(2));
    let second = received(&rig);
    let (status, body) = http_get(rig.metrics_port, "/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"state\": \"full\""), "{body}");
    let disk: u64 = walk(&spool_dir);
    assert!(
        disk <= 128 * 1024 + 64 * 1024 + 4096,
        "the spool takes {disk} bytes"
    );
    let published = publisher.join().unwrap();
    std::thread::sleep(Duration::from_secs(5));
    signal(rig.remote.pid(), "CONT");
    let (missing, duplicates) = rig.sub.settle(published.sent, Duration::from_secs(60));
    let metrics = rig.metrics();
    drop(bridge);
    (
        rig,
        Outcome {
            sent: published.sent,
            missing,
            duplicates,
        },
        metrics,
        (first, second),
    )
}

fn walk(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            total += walk(&path);
        } else {
            total += entry.metadata().map_or(0, |m| m.len());
        }
    }
    total
}

#[test]
fn a_full_spool_blocks_without_loss_or_drops_exactly_what_it_counts() {
    // 2,000 messages: the spool holds about 1,400, the local broker's queue the rest.
    let block = std::thread::spawn(|| {
        let (rig, outcome, metrics, samples) = small_spool("blockfull", "block", 2);
        (outcome, metrics, samples, rig.log(1))
    });
    let (rig, dropped, metrics, _) = small_spool("dropfull", "drop-oldest", 10);
    let counted = metric(&metrics, "e4k_bridge_messages_dropped_total{") as u64;
    let spool_full = metric(
        &metrics,
        "e4k_bridge_messages_dropped_total{bridge=\"spool\",route=\"out\",\
         direction=\"local-to-remote\",reason=\"spool_full\"}",
    ) as u64;
    eprintln!(
        "drop-oldest: {} of {} not delivered, {spool_full} counted as spool_full, {} duplicates",
        dropped.missing.len(),
        dropped.sent,
        dropped.duplicates
    );
    assert!(spool_full > 0, "{metrics}");
    assert_eq!(counted, spool_full, "{metrics}");
    assert_eq!(
        dropped.missing.len() as u64,
        spool_full,
        "missing {}\n{}",
        ranges(&dropped.missing),
        rig.log(1)
    );
    assert!(rig.log(1).contains("spool full"), "{}", rig.log(1));
    assert!(rig.log(1).contains("no longer full"), "{}", rig.log(1));

    let (blocked, metrics, (first, second), log) = block.join().unwrap();
    eprintln!(
        "block: {} of {} lost, {} duplicates; received {first} then {second} while full",
        blocked.missing.len(),
        blocked.sent,
        blocked.duplicates
    );
    assert!(log.contains("spool full"), "{log}");
    // Full and blocking: the bridge takes no more messages from the local broker.
    assert!((second - first).abs() < 1.0, "{first} -> {second}");
    assert_eq!(
        metric(&metrics, "e4k_bridge_messages_dropped_total{") as u64,
        0,
        "{metrics}"
    );
    assert!(
        blocked.missing.is_empty(),
        "{} lost: {}\n{log}",
        blocked.missing.len(),
        ranges(&blocked.missing)
    );
}

/// `mosquitto_pub` toward the remote, with the test client's certificate.
fn remote_pub(rig: &Rig) -> Command {
    let (cert, key) = rig.pki.tester();
    let mut command = Command::new("mosquitto_pub");
    command
        .args([
            "-h",
            "localhost",
            "-p",
            &rig.remote.port().to_string(),
            "--cafile",
        ])
        .arg(rig.pki.root())
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key);
    command
}

/// `mosquitto_pub -l` on the remote (TLS, QoS 1): writes the numbers `0..n` to `topic`,
/// `per_tick` every 10 ms.
fn remote_lines(rig: &Rig, client_id: &str, topic: &str, n: u64, per_tick: u64) -> Process {
    let mut child = remote_pub(rig)
        .args([
            "-i", client_id, "-q", "1", "-V", "mqttv5", "-t", topic, "-l",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        use std::io::Write as _;
        let started = Instant::now();
        let mut next = 0;
        let mut tick = 0u32;
        while next < n {
            let mut lines = String::new();
            for _ in 0..per_tick.min(n - next) {
                lines.push_str(&format!("{next}\n"));
                next += 1;
            }
            if stdin.write_all(lines.as_bytes()).is_err() {
                return;
            }
            tick += 1;
            let at = started + Duration::from_millis(10) * tick;
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    });
    Process(child)
}

/// Commands flow from the remote (200 msg/s, a remote queue of 100 like Event Grid's offline
/// queue) while the local broker (its defaults plus persistence, as Debian installs it) is
/// down for 8 s. Returns what the local subscriber missed and the bridge's metrics.
fn local_restart(name: &str, spool: bool) -> (Vec<u64>, u64, String, String) {
    let store = tempfile::tempdir().unwrap();
    let local_conf = format!(
        "{LOCAL_DEFAULTS}persistence true\npersistence_location {}/\n",
        store.path().display()
    );
    let mut rig = Rig::with(
        name,
        "    - direction: remote-to-local\n      name: commands\n      source: commands/#\n",
        &local_conf,
        "max_queued_messages 100\n",
    );
    let spool_dir = rig.spool_dir();
    // The bridge reconnects to the restarted broker after the subscriber (mosquitto_sub
    // retries every second): what it delivers first would otherwise wait in the subscriber's
    // offline queue, which the broker caps at 1,000 by default.
    let mut args = vec!["--reconnect-initial", "3s", "--reconnect-max", "4s"];
    if spool {
        args.extend(["--spool-dir", spool_dir.to_str().unwrap()]);
    }
    let bridge = rig.bridge(1, &args);
    wait_until("/readyz", WAIT, || readyz(rig.metrics_port) == Some(200));
    let local_sub = SeqSubscriber::plain(
        rig.local.port(),
        &format!("{name}-cmd-sub"),
        &["commands/seq", "commands/probe"],
    );
    let deadline = Instant::now() + WAIT;
    while local_sub.probes() == 0 {
        assert!(
            Instant::now() < deadline,
            "no probe arrived:\n{}",
            rig.log(1)
        );
        let status = remote_pub(&rig)
            .args(["-q", "1", "-t", "commands/probe", "-m", "probe"])
            .status()
            .unwrap();
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(500));
    }
    let n = 4_000;
    let publisher = remote_lines(&rig, &format!("{name}-cmd-pub"), "commands/seq", n, 2);
    std::thread::sleep(Duration::from_secs(5));
    let port = rig.local.port();
    faults::terminate(&mut rig.local).unwrap();
    std::thread::sleep(Duration::from_secs(8));
    rig.local = Mosquitto::start_on(port, &local_conf).unwrap();
    let (missing, duplicates) = local_sub.settle(n, Duration::from_secs(60));
    let metrics = rig.metrics();
    let log = rig.log(1);
    drop(publisher);
    drop(bridge);
    (missing, duplicates, metrics, log)
}

#[test]
fn a_local_broker_restart_while_commands_flow_loses_nothing_and_keeps_the_remote_session() {
    let without = std::thread::spawn(|| local_restart("cmdnospool", false));
    let (missing, duplicates, metrics, log) = local_restart("cmdspool", true);
    let (lost_without, _, _, _) = without.join().unwrap();
    eprintln!(
        "local broker down 8 s while 200 commands/s flow: without a spool {} of 4000 lost; \
         with one {} lost, {duplicates} duplicates",
        lost_without.len(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} lost: {}\n{log}",
        missing.len(),
        ranges(&missing)
    );
    // The remote session never went: the bridge kept acknowledging Event Grid.
    let remote_failures = metric(
        &metrics,
        "e4k_bridge_connection_attempts_failed_total{bridge=\"spool\",broker=\"remote\"",
    );
    assert!(remote_failures < 1.0, "{metrics}");
    assert!(
        !lost_without.is_empty(),
        "without a spool the remote's queue of 100 should have overflowed"
    );
}
