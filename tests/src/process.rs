//! Fixtures of the tests that run processes (the `e4k` binary, `mosquitto_sub`): a child
//! killed on drop, a running `e4k bridge run` with its log, `GET /readyz`, polling waits,
//! signals, a subscriber that counts the sequence numbers it receives and one that collects
//! the lines it prints.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The missing numbers as ranges, for failure messages.
pub use crate::sequence::ranges;

/// A child process killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `check` every 25 ms; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `GET path` on 127.0.0.1:`port`: the status and the body.
#[must_use]
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_with(port, path, &[])
}

/// [`http_get`] with extra request headers (`name`, `value`).
#[must_use]
pub fn http_get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// The status of `GET /readyz` on 127.0.0.1:`port`.
#[must_use]
pub fn readyz(port: u16) -> Option<u16> {
    http_get(port, "/readyz").map(|(status, _)| status)
}

/// Sends `signal` (e.g. `STOP`, `CONT`, `TERM`) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// What a [`SeqSubscriber`] counted.
#[derive(Debug, Default)]
pub struct Counts {
    /// How often each sequence number arrived.
    pub seen: crate::sequence::Counts,
    /// Lines that were not numbers (probes).
    pub other: u64,
}

/// `mosquitto_sub` on a TLS broker with a persistent QoS 1 session (MQTT 5), counting the
/// decimal sequence numbers it prints.
#[derive(Debug)]
pub struct SeqSubscriber {
    _process: Process,
    counts: Arc<Mutex<Counts>>,
}

impl SeqSubscriber {
    /// Subscribes `topics` on localhost:`port` as `client_id`, with the CA `root` and the
    /// client certificate and key `cert`/`key`.
    #[must_use]
    pub fn start(
        port: u16,
        client_id: &str,
        topics: &[&str],
        root: &Path,
        (cert, key): (&Path, &Path),
    ) -> SeqSubscriber {
        let mut command = Command::new("mosquitto_sub");
        command
            .args(["-h", "localhost", "-p", &port.to_string(), "--cafile"])
            .arg(root)
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key);
        Self::spawn(command, client_id, topics, None)
    }

    /// Subscribes `topics` on the plain broker at 127.0.0.1:`port` as `client_id`.
    #[must_use]
    pub fn plain(port: u16, client_id: &str, topics: &[&str]) -> SeqSubscriber {
        let mut command = Command::new("mosquitto_sub");
        command.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
        Self::spawn(command, client_id, topics, None)
    }

    /// [`SeqSubscriber::plain`] whose output is read at most `per_sec` lines a second: once
    /// the pipe is full (a few dozen messages of 1 KiB) mosquitto_sub stops reading its
    /// socket and acknowledging, so it is a consumer slower than its broker.
    #[must_use]
    pub fn plain_paced(port: u16, client_id: &str, topics: &[&str], per_sec: f64) -> SeqSubscriber {
        let mut command = Command::new("mosquitto_sub");
        command.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
        let interval = Duration::from_secs_f64(1.0 / per_sec);
        Self::spawn(command, client_id, topics, Some(interval))
    }

    fn spawn(
        mut command: Command,
        client_id: &str,
        topics: &[&str],
        interval: Option<Duration>,
    ) -> SeqSubscriber {
        command.args([
            "-i", client_id, "-c", "-x", "3600", "-q", "1", "-V", "mqttv5",
        ]);
        for topic in topics {
            command.args(["-t", topic]);
        }
        let counts: Arc<Mutex<Counts>> = Arc::default();
        let sink = Arc::clone(&counts);
        let mut next = Instant::now();
        let (process, _reader) = read_lines(command, Stdio::null(), move |line| {
            {
                let mut counts = sink.lock().unwrap();
                match line.trim().parse::<usize>() {
                    Ok(n) => counts.seen.record(n),
                    Err(_) => counts.other += 1,
                }
            }
            if let Some(interval) = interval {
                next = next.max(Instant::now()) + interval;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        });
        SeqSubscriber {
            _process: process,
            counts,
        }
    }

    /// Non-number lines received so far.
    #[must_use]
    pub fn probes(&self) -> u64 {
        self.counts.lock().unwrap().other
    }

    /// The numbers below `n` not received, and how many numbers arrived in all.
    #[must_use]
    pub fn tally(&self, n: u64) -> (Vec<u64>, u64) {
        let tally = self.counts.lock().unwrap().seen.tally(n);
        (tally.missing, tally.received + tally.unexpected)
    }

    /// Waits up to `timeout` until every number below `n` arrived, or nothing arrived for
    /// 5 s (then 500 ms more for late duplicates); returns the missing ones and the duplicates.
    #[must_use]
    pub fn settle(&self, n: u64, timeout: Duration) -> (Vec<u64>, u64) {
        let deadline = Instant::now() + timeout;
        let mut last = (0, Instant::now());
        loop {
            let (missing, received) = self.tally(n);
            if missing.is_empty() || Instant::now() > deadline {
                break;
            }
            if received != last.0 {
                last = (received, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(5) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(500));
        let (missing, received) = self.tally(n);
        let duplicates = received.saturating_sub(n - missing.len() as u64);
        (missing, duplicates)
    }
}

/// Runs `command` (a `mosquitto_sub`) with its stdout piped and `stderr` as given, and hands
/// each line of its output to `on_line` on a thread of its own until the output ends.
fn read_lines(
    mut command: Command,
    stderr: Stdio,
    mut on_line: impl FnMut(String) + Send + 'static,
) -> (Process, std::thread::JoinHandle<()>) {
    let mut process = Process(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("mosquitto_sub (mosquitto-clients)"),
    );
    let stdout = process.0.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            on_line(line);
        }
    });
    (process, reader)
}

/// `mosquitto_sub -d ARGS`, line-buffered (stdbuf), its output collected as it comes so that
/// a test sees when it has subscribed.
#[derive(Debug)]
pub struct LineSubscriber {
    process: Process,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl LineSubscriber {
    /// Runs `mosquitto_sub -d ARGS` in `dir` and waits (up to 20 s) until it subscribed.
    #[must_use]
    pub fn start<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Self {
        let mut command = Command::new("stdbuf");
        command
            .args(["-oL", "mosquitto_sub", "-d"])
            .args(args)
            .current_dir(dir);
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = Arc::clone(&lines);
        let (process, reader) = read_lines(command, Stdio::inherit(), move |line| {
            sink.lock().expect("lines").push(line);
        });
        let subscriber = Self {
            process,
            lines,
            reader: Some(reader),
        };
        wait_until("mosquitto_sub subscribed", Duration::from_secs(20), || {
            subscriber
                .lines()
                .iter()
                .any(|l| l.starts_with("Subscribed"))
        });
        subscriber
    }

    /// Its output so far.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    /// Waits until it exits (its `-C`/`-W`), returns its output.
    #[must_use]
    pub fn finish(mut self) -> Vec<String> {
        self.process.0.wait().expect("mosquitto_sub");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("reader");
        }
        self.lines()
    }
}

/// A running `e4k bridge run`, killed on drop if still running.
pub struct BridgeProcess {
    child: Child,
    /// Its stderr and stdout files; `None` when discarded.
    log: Option<PathBuf>,
    stdout: Option<PathBuf>,
}

impl BridgeProcess {
    /// `binary bridge run ARGS` (the `e4k` binary) in `dir`, its stderr in `dir/NAME.log` and
    /// its stdout in `dir/NAME.stdout`, with `env` added to an environment without
    /// `RUST_LOG`, `E4K_INSTANCE_INDEX` and `E4K_CREDENTIAL`. Global flags (`-vvv`,
    /// `--output json`) may be among `args`.
    #[must_use]
    pub fn start(
        binary: &Path,
        dir: &Path,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let log = dir.join(format!("{name}.log"));
        let stdout = dir.join(format!("{name}.stdout"));
        let mut process = Self::spawn(
            binary,
            dir,
            args,
            env,
            Stdio::from(std::fs::File::create(&stdout).expect("bridge stdout file")),
            Stdio::from(std::fs::File::create(&log).expect("bridge log file")),
        );
        process.log = Some(log);
        process.stdout = Some(stdout);
        process
    }

    /// [`BridgeProcess::start`] with its stdout and stderr discarded (benchmarks: writing the
    /// log costs the process time); [`BridgeProcess::log`] and [`BridgeProcess::stdout`] are
    /// empty then.
    #[must_use]
    pub fn start_quiet(binary: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(binary, dir, args, env, Stdio::null(), Stdio::null())
    }

    fn spawn(
        binary: &Path,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        stdout: Stdio,
        stderr: Stdio,
    ) -> Self {
        let mut command = Command::new(binary);
        command
            .arg("bridge")
            .arg("run")
            .args(args)
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .env_remove("E4K_INSTANCE_INDEX")
            .env_remove("E4K_CREDENTIAL")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("start e4k bridge run");
        BridgeProcess {
            child,
            log: None,
            stdout: None,
        }
    }

    /// Its process ID (benchmarks read its RSS and CPU time from `/proc`).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its stderr so far.
    #[must_use]
    pub fn log(&self) -> String {
        read_or_empty(self.log.as_deref())
    }

    /// Its stdout so far.
    #[must_use]
    pub fn stdout(&self) -> String {
        read_or_empty(self.stdout.as_deref())
    }

    /// The lines of the log that contain `needle`.
    #[must_use]
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// SIGKILL (no drain, no DISCONNECT: the kernel closes the sockets), and waits for the
    /// exit.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill -9 the bridge");
        self.child.wait().expect("wait for the bridge");
    }

    /// Sends SIGTERM and waits (up to 10 s) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the bridge") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "bridge did not exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGTERM, then: exit 0, no panic, "bridge stopped" logged. Returns the log.
    #[track_caller]
    pub fn stop_cleanly(&mut self) -> String {
        let status = self.terminate();
        let log = self.log();
        assert!(status.success(), "exit {status:?}:\n{log}");
        assert!(!log.contains("panicked"), "{log}");
        assert!(log.contains("bridge stopped"), "{log}");
        // stderr is a file here, not a terminal: no colour codes.
        assert!(
            !log.contains('\u{1b}'),
            "ANSI escape codes in the log:\n{log}"
        );
        if std::env::var_os("E4K_SHOW_LOG").is_some() {
            eprintln!("{log}");
        }
        log
    }
}

/// The file's text, "" when there is none (yet).
fn read_or_empty(path: Option<&Path>) -> String {
    path.and_then(|path| std::fs::read_to_string(path).ok())
        .unwrap_or_default()
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
