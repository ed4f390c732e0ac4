//! The crate's hard-failure error type, [`BridgeError`].
//!
//! Problems with an otherwise readable configuration (a wildcard target, a missing secret, ...)
//! are not errors: they are collected in a [`Report`](crate::config::Report) so that every one
//! of them can be shown at once. [`BridgeError`] is for input that cannot be read or parsed at
//! all, and for the few things that stop the engine from starting (a metrics address that
//! cannot be bound, a transport it does not speak). Broker connection problems are never
//! errors of [`run`](crate::engine::Bridge::run): the engine logs them, reports them on
//! `/readyz` and keeps retrying.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the bridge could not read its configuration or could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The configuration file could not be read.
    #[error("cannot read bridge config {}", path.display())]
    Read {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The input is larger than [`MAX_INPUT_BYTES`](crate::config::MAX_INPUT_BYTES).
    #[error("bridge config {source_name} is larger than the {limit}-byte limit")]
    TooLarge {
        /// The file name, or `<input>` for in-memory text.
        source_name: String,
        /// The limit that was exceeded, in bytes.
        limit: u64,
    },
    /// The input is not UTF-8 text.
    #[error("bridge config {source_name} is not UTF-8 text")]
    NotUtf8 {
        /// The file name, or `<input>` for in-memory text.
        source_name: String,
    },
    /// The YAML is malformed, exceeds a parser budget, or a value has the wrong type.
    #[error("{}", YamlErrorDisplay(self))]
    Yaml {
        /// The file name, or `<input>` for in-memory text.
        source_name: String,
        /// Where in the document stream the error was found, e.g.
        /// `documents[1].spec.routes[2].qos`; empty when it is not known.
        path: String,
        /// 1-based line of the error, when the parser knows it.
        line: Option<u64>,
        /// 1-based column of the error, when the parser knows it.
        column: Option<u64>,
        /// What is wrong, from the YAML parser.
        message: String,
    },
    /// The configuration reads, but breaks a rule (every problem is in the report).
    #[error("{} is not a valid bridge configuration:\n{report}", path.display())]
    Invalid {
        /// The configuration file.
        path: PathBuf,
        /// Every problem found, errors and warnings.
        report: crate::config::Report,
    },
    /// The metrics and health endpoint could not listen on its address.
    #[error("cannot listen on {addr} for /metrics, /healthz and /readyz")]
    MetricsListen {
        /// The address given with `--metrics-listen`.
        addr: SocketAddr,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `--instance-index` names an instance the connector does not have.
    #[error(
        "instance index {index} is out of range: connector `{bridge}` has {instances} \
         instance(s) (0..{instances})"
    )]
    InstanceOutOfRange {
        /// The connector.
        bridge: String,
        /// The index asked for.
        index: u32,
        /// `bridgeInstances`.
        instances: u32,
    },
    /// The TLS client configuration could not be built (e.g. no TLS 1.2/1.3 support in the
    /// crypto provider).
    #[error("cannot set up TLS for the {side} broker: {reason}")]
    Tls {
        /// `local` or `remote`.
        side: &'static str,
        /// What rustls reported.
        reason: String,
    },
    /// The MQTT client settings of a session contradict each other (say, a WebSocket URL
    /// that does not parse).
    #[error("cannot set up the MQTT client of {bridge} for the {side} broker: {reason}")]
    Client {
        /// The connector's name.
        bridge: String,
        /// `local` or `remote`.
        side: &'static str,
        /// What the client reported.
        reason: String,
    },
    /// The spool directory is held by another running bridge.
    #[error(
        "spool directory {} is in use by another running bridge (its lock file {}/lock is \
         held); give each bridge process its own --spool-dir",
        dir.display(),
        dir.display()
    )]
    SpoolLocked {
        /// The spool directory.
        dir: PathBuf,
    },
    /// A spool segment is damaged other than by a torn last write.
    #[error(
        "spool segment {} is corrupt at byte offset {offset}: {reason}; the bridge does not \
         start rather than skip messages silently: `e4k bridge spool inspect` shows what the \
         spool holds, and moving the file away discards the messages in it",
        file.display()
    )]
    SpoolCorrupt {
        /// The segment file.
        file: PathBuf,
        /// Where the damaged record starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A spool file or directory could not be read or written.
    #[error("spool: cannot use {}", path.display())]
    SpoolIo {
        /// The file or directory.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A bridge task ended abnormally (a bug: it panicked).
    #[error("bridge task `{task}` failed: {reason}")]
    Task {
        /// The task's name.
        task: String,
        /// The panic message, when there is one.
        reason: String,
    },
}

impl BridgeError {
    /// Whether the error is in the user's input (a configuration that cannot be read or is not
    /// valid, an instance index out of range): exit code 2 rather than 1.
    #[must_use]
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::Read { .. }
                | Self::TooLarge { .. }
                | Self::NotUtf8 { .. }
                | Self::Yaml { .. }
                | Self::Invalid { .. }
                | Self::InstanceOutOfRange { .. }
        )
    }
}

/// Renders [`BridgeError::Yaml`] as `file:line:column: path: message`, leaving out the parts
/// that are unknown.
struct YamlErrorDisplay<'a>(&'a BridgeError);

impl fmt::Display for YamlErrorDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let BridgeError::Yaml {
            source_name,
            path,
            line,
            column,
            message,
        } = self.0
        else {
            return Ok(());
        };
        write!(f, "invalid bridge config {source_name}")?;
        if let Some(line) = line {
            write!(f, ":{line}")?;
            if let Some(column) = column {
                write!(f, ":{column}")?;
            }
        }
        if !path.is_empty() {
            write!(f, ": {path}")?;
        }
        write!(f, ": {message}")
    }
}
