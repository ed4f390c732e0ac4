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
//! - The local broker as the destination (`local`): restarted while commands flow from the
//!   remote, and a backlog drained toward a consumer slower than the broker, where the drain
//!   pace (`--spool-drain-rate auto`) loses nothing and `unlimited` overflows its queue.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod local;
mod stall;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e4k_tests::Mosquitto;
use e4k_tests::bridge::ConnectorYaml;
use e4k_tests::faults::{self, BRIDGE_SECRET, FaultPki};
use e4k_tests::process::{Process, SeqSubscriber, http_get, readyz, wait_until};
use e4k_tests::proxy::TcpProxy;

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
    /// Where the bridge reaches the local broker through, when not directly.
    local_proxy: Option<TcpProxy>,
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
            local_proxy: None,
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
                    &self.local_proxy.as_ref().map_or_else(
                        || format!("127.0.0.1:{}", self.local.port()),
                        |proxy| proxy.addr().to_string(),
                    ),
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

/// `mosquitto_pub` toward the remote, with the test client's certificate.
/// Asserts that no sequence number is `missing`, with the missing ranges and `log` otherwise.
#[track_caller]
fn assert_none_lost(missing: &[u64], log: &str) {
    assert!(
        missing.is_empty(),
        "{} lost: {}\n{log}",
        missing.len(),
        e4k_tests::process::ranges(missing)
    );
}

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
/// `per_tick` every 10 ms, each padded with spaces to `width` bytes.
fn remote_lines(
    rig: &Rig,
    client_id: &str,
    topic: &str,
    (n, per_tick): (u64, u64),
    width: usize,
) -> Process {
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
                lines.push_str(&format!("{next:<width$}\n"));
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
