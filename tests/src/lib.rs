//! End-to-end tests across e4k crates, against real peers (mosquitto, openssl).
//!
//! The tests live in `tests/tests/`; this library holds the fixtures they, `bridge/tests/`,
//! `cli/tests/`, `provisioning/tests/` and the benchmarks share: [`Mosquitto`], a real broker on a
//! free loopback port, stopped on drop; a test PKI ([`pki`], [`faults::FaultPki`]), the brokers of
//! the engine tests ([`env`](mod@env)) and their MQTT client ([`client`]); sequence numbers
//! published, received and tallied ([`sequence`]); [`proxy::TcpProxy`], a TCP proxy that can
//! blackhole or cut traffic for fault tests, and a scripted misbehaving broker ([`scripted`]); the
//! bridge in-process ([`bridge`]) and as an `e4k bridge run` process ([`process`]); Event Grid
//! provisioning through ARM ([`eventgrid`], [`seed`]); MQTT bytes written and read by hand
//! ([`wire`]).

pub mod bench;
pub mod bridge;
pub mod client;
pub mod env;
pub mod eventgrid;
pub mod faults;
pub mod measure;
pub mod pki;
pub mod process;
pub mod proxy;
pub mod scripted;
pub mod seed;
pub mod sequence;
pub mod wire;

use std::{io, net::TcpListener, path::PathBuf};

/// A mosquitto broker run for one test, on 127.0.0.1 and a port of its own.
#[derive(Debug)]
pub struct Mosquitto {
    // Dropped (killed and reaped) before its directory is removed.
    child: e4k_emulator::mosquitto::Mosquitto,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts mosquitto with a listener on a free loopback port followed by `listener_config`
    /// (lines that apply to that listener, e.g. TLS settings), and waits until it accepts TCP
    /// connections.
    ///
    /// # Errors
    /// When mosquitto is not installed, fails to start (its log is in the error), or does not
    /// listen within 10 s.
    pub fn start(listener_config: &str) -> io::Result<Self> {
        Self::start_on(free_port()?, listener_config)
    }

    /// Like [`Mosquitto::start`], on a given port (e.g. to bring back a broker that a test
    /// stopped, on the port a client keeps retrying).
    ///
    /// # Errors
    /// As [`Mosquitto::start`]; also when the port is taken.
    pub fn start_on(port: u16, listener_config: &str) -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        // Everything is logged (tests read the log) unless the caller chose (benchmarks do:
        // logging every packet costs the broker time).
        let log_type = if listener_config
            .lines()
            .any(|line| line.trim_start().starts_with("log_type"))
        {
            ""
        } else {
            "log_type all\n"
        };
        let log = dir.path().join("mosquitto.log");
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "# written by e4k-tests\n\
                 user root\n\
                 persistence false\n\
                 log_dest file {log}\n\
                 {log_type}\
                 connection_messages true\n\
                 per_listener_settings false\n\
                 listener {port} 127.0.0.1\n\
                 {listener_config}\n",
                log = log.display()
            ),
        )?;
        let child = e4k_emulator::mosquitto::Mosquitto::start_blocking(
            &mosquitto_binary(),
            &conf,
            port,
            Some(&log),
        )
        .map_err(emulator_error)?;
        Ok(Self { child, _dir: dir })
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.child.port()
    }

    /// The broker's process ID (benchmarks read its CPU time from `/proc`).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The broker's log so far.
    #[must_use]
    pub fn log(&self) -> String {
        self.child.log()
    }
}

/// An error of the mosquitto primitive as an [`io::Error`] of the kind of its cause, with the
/// cause in the message.
fn emulator_error(error: e4k_emulator::EmulatorError) -> io::Error {
    let kind = std::error::Error::source(&error)
        .and_then(|source| source.downcast_ref::<io::Error>())
        .map_or(io::ErrorKind::Other, io::Error::kind);
    let source = std::error::Error::source(&error)
        .map(|source| format!(": {source}"))
        .unwrap_or_default();
    io::Error::new(kind, format!("{error}{source}"))
}

/// A TCP port that was free a moment ago on 127.0.0.1.
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A benchmark knob: the environment variable `name` as a number, or `default` when it is
/// unset or not a number.
#[must_use]
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The mosquitto broker binary: on `PATH`, or where Debian installs it (`/usr/sbin`, which is
/// not on a normal user's `PATH`).
#[must_use]
pub fn mosquitto_binary() -> PathBuf {
    e4k_emulator::mosquitto::default_binary()
}
