//! One mosquitto process: started from a configuration file, ready once it accepts TCP
//! connections on its port, reloaded with SIGHUP, terminated with SIGTERM ([`Mosquitto::terminate`]) or stopped
//! with SIGTERM then SIGKILL ([`Mosquitto::stop`]).
//!
//! The emulator's data-plane broker, `e4k demo`'s factory broker and the e4k-tests fixture
//! all run mosquitto through [`Mosquitto`]. The caller writes the configuration: the listener
//! on the port it passes, and `log_dest file …` when it wants the log; a failure to start
//! carries that log ([`EmulatorError::Mosquitto`]).
//!
//! ```no_run
//! use e4k_emulator::mosquitto::{self, Mosquitto};
//!
//! # async fn run(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
//! let port = mosquitto::free_loopback_port()?;
//! let config = dir.join("mosquitto.conf");
//! let log = dir.join("mosquitto.log");
//! std::fs::write(
//!     &config,
//!     format!("listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest file {}\n", log.display()),
//! )?;
//! let broker = Mosquitto::start(&mosquitto::default_binary(), &config, port, Some(&log)).await?;
//! println!("mosquitto listens on {}", broker.addr());
//! broker.stop()?;
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::EmulatorError;

/// How long mosquitto may take to accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long mosquitto may take to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a start or a stop is checked on.
const POLL: Duration = Duration::from_millis(20);
/// The reason of an error when `waitpid` fails.
const CANNOT_CHECK: &str = "cannot check whether it still runs";

/// Where mosquitto is usually installed: on `PATH`, or in `/usr/sbin` (Debian), which is not on
/// a normal user's `PATH`.
#[must_use]
pub fn default_binary() -> PathBuf {
    let sbin = Path::new("/usr/sbin/mosquitto");
    if sbin.exists() {
        sbin.to_owned()
    } else {
        PathBuf::from("mosquitto")
    }
}

/// A TCP port that was free a moment ago on 127.0.0.1.
///
/// # Errors
/// When no loopback port can be bound.
pub fn free_loopback_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// A running mosquitto on 127.0.0.1 and one port; dropping it kills it (SIGKILL) and reaps
/// it, [`Mosquitto::stop`] lets it exit on SIGTERM first.
#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    binary: PathBuf,
    port: u16,
    log: Option<PathBuf>,
}

impl Mosquitto {
    /// Starts `binary -c config` and waits (up to [`START_TIMEOUT`]) until it accepts TCP
    /// connections on 127.0.0.1:`port`, the listener `config` sets. `log` is the file the
    /// configuration logs to (`log_dest file`), read into errors and by [`Mosquitto::log`].
    ///
    /// # Errors
    /// [`EmulatorError::Mosquitto`] when the binary cannot be run, exits, or does not listen
    /// in time (with its log).
    pub async fn start(
        binary: &Path,
        config: &Path,
        port: u16,
        log: Option<&Path>,
    ) -> Result<Self, EmulatorError> {
        let mut broker = Self::spawn(binary, config, port, log)?;
        let deadline = Instant::now() + START_TIMEOUT;
        while !broker.listening(deadline)? {
            tokio::time::sleep(POLL).await;
        }
        tracing::debug!(addr = %broker.addr(), "mosquitto is listening");
        Ok(broker)
    }

    /// [`Mosquitto::start`] for callers without an async runtime: the wait sleeps the thread.
    ///
    /// # Errors
    /// As [`Mosquitto::start`].
    pub fn start_blocking(
        binary: &Path,
        config: &Path,
        port: u16,
        log: Option<&Path>,
    ) -> Result<Self, EmulatorError> {
        let mut broker = Self::spawn(binary, config, port, log)?;
        let deadline = Instant::now() + START_TIMEOUT;
        while !broker.listening(deadline)? {
            std::thread::sleep(POLL);
        }
        Ok(broker)
    }

    fn spawn(
        binary: &Path,
        config: &Path,
        port: u16,
        log: Option<&Path>,
    ) -> Result<Self, EmulatorError> {
        let child = Command::new(binary)
            .arg("-c")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| EmulatorError::Mosquitto {
                binary: binary.to_owned(),
                port,
                reason: "cannot start it".to_owned(),
                source: Some(source),
            })?;
        Ok(Self {
            child,
            binary: binary.to_owned(),
            port,
            log: log.map(Path::to_owned),
        })
    }

    /// Whether mosquitto accepts connections yet; an error once it exited or `deadline`
    /// passed.
    fn listening(&mut self, deadline: Instant) -> Result<bool, EmulatorError> {
        if TcpStream::connect(self.addr()).is_ok() {
            return Ok(true);
        }
        match self.try_wait() {
            Ok(Some(status)) => Err(self.error(format!("it exited ({status}){}", self.log_tail()))),
            Err(source) => Err(self.error_from(CANNOT_CHECK.to_owned(), source)),
            Ok(None) if Instant::now() > deadline => Err(self.error(format!(
                "it did not listen on {} within {START_TIMEOUT:?}{}",
                self.addr(),
                self.log_tail()
            ))),
            Ok(None) => Ok(false),
        }
    }

    fn error(&self, reason: String) -> EmulatorError {
        EmulatorError::Mosquitto {
            binary: self.binary.clone(),
            port: self.port,
            reason,
            source: None,
        }
    }

    fn error_from(&self, reason: String, source: io::Error) -> EmulatorError {
        EmulatorError::Mosquitto {
            binary: self.binary.clone(),
            port: self.port,
            reason,
            source: Some(source),
        }
    }

    /// "; its log:\n…" when there is a log file.
    fn log_tail(&self) -> String {
        if self.log.is_some() {
            format!("; its log:\n{}", self.log())
        } else {
            String::new()
        }
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The loopback address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Its process ID (as [`Child::id`]).
    #[must_use]
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status if it exited, `None` while it runs (as [`Child::try_wait`]).
    ///
    /// # Errors
    /// As [`Child::try_wait`].
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// The log file given to [`Mosquitto::start`].
    #[must_use]
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// Its log so far ("" without a log file or before anything is logged).
    #[must_use]
    pub fn log(&self) -> String {
        self.log
            .as_deref()
            .and_then(|log| std::fs::read_to_string(log).ok())
            .unwrap_or_default()
    }

    /// Sends SIGHUP, on which mosquitto re-reads its configuration (what mosquitto.conf(5)
    /// says is reloaded, e.g. `acl_file`), and returns once `kill` sent it.
    ///
    /// # Errors
    /// [`EmulatorError::Mosquitto`] when `kill -HUP` cannot be run or fails.
    pub async fn reload(&self) -> Result<(), EmulatorError> {
        // No libc in the workspace and `unsafe` is forbidden: `kill(1)` sends the signal.
        let status = tokio::process::Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        self.signalled("HUP", status)
    }

    /// Sends SIGTERM, on which mosquitto exits in order (writing its persistence file), and
    /// waits up to `grace` for it to exit; returns its exit status (at once when it had exited
    /// already). It stays owned: a test can bring a broker back on the same port afterwards.
    ///
    /// # Errors
    /// [`EmulatorError::Mosquitto`] (naming the binary and the port) when `kill -TERM` cannot
    /// be run or fails, when its state cannot be checked, or when it still runs after `grace`
    /// (it is killed on drop then).
    pub fn terminate(&mut self, grace: Duration) -> Result<ExitStatus, EmulatorError> {
        self.terminate_within(grace)?
            .ok_or_else(|| self.error(format!("it did not exit within {grace:?} of SIGTERM")))
    }

    /// Sends SIGTERM and waits up to [`STOP_TIMEOUT`] for mosquitto to exit; kills it
    /// (SIGKILL) when it does not. It is reaped either way.
    ///
    /// # Errors
    /// [`EmulatorError::Mosquitto`] when `kill -TERM` cannot be run or fails, or its state
    /// cannot be checked (mosquitto is killed then too, on drop).
    pub fn stop(mut self) -> Result<(), EmulatorError> {
        match self.terminate_within(STOP_TIMEOUT) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                tracing::warn!(
                    port = self.port,
                    "mosquitto did not exit on SIGTERM; killing it"
                );
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// SIGTERM, then its exit status once it exited, `None` when it still runs after `grace`.
    fn terminate_within(&mut self, grace: Duration) -> Result<Option<ExitStatus>, EmulatorError> {
        if let Some(status) = self.exit_status()? {
            return Ok(Some(status));
        }
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        self.signalled("TERM", status)?;
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = self.exit_status()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(POLL);
        }
    }

    /// [`Mosquitto::try_wait`] with its error typed.
    fn exit_status(&mut self) -> Result<Option<ExitStatus>, EmulatorError> {
        self.try_wait()
            .map_err(|source| self.error_from(CANNOT_CHECK.to_owned(), source))
    }

    fn signalled(
        &self,
        signal: &str,
        status: io::Result<std::process::ExitStatus>,
    ) -> Result<(), EmulatorError> {
        match status {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(self.error(format!("SIG{signal} to it failed (kill: {status})"))),
            Err(source) => Err(self.error_from(format!("cannot run kill -{signal}"), source)),
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        // SIGKILL then reap, so no mosquitto outlives its owner and no zombie is left (after
        // `stop` both are no-ops).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
