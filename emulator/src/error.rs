//! The one error type of this crate: what can stop the emulator from starting or running.
//!
//! Errors that a *client* of the emulator causes (a bad body, a missing token) are not
//! `EmulatorError`s: they are answered over HTTP with an ARM error body.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong when starting, running or stopping the emulator.
///
/// Messages are lowercase and do not repeat their `source`; print the chain to see it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address from [`EmulatorConfig::listen`](crate::EmulatorConfig::listen).
        addr: SocketAddr,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The HTTP server failed while serving.
    #[error("the server on {addr} failed")]
    Serve {
        /// The address the server listened on.
        addr: SocketAddr,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The state file could not be read.
    #[error("cannot read state file {}", path.display())]
    ReadState {
        /// The state file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The state file exists but does not hold emulator state.
    #[error("state file {} is not valid emulator state", path.display())]
    ParseState {
        /// The state file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },

    /// The state file (or its temporary sibling) could not be written or renamed.
    #[error("cannot write state file {}", path.display())]
    WriteState {
        /// The file that could not be written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// An embedded OpenAPI spec could not be loaded (a build defect, not a user error).
    #[error("embedded spec {api_version} is unusable: {reason}")]
    Spec {
        /// The api-version of the spec.
        api_version: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A command-line option is not valid (see
    /// [`EmulatorConfig::from_options`](crate::EmulatorConfig::from_options)).
    #[error("{option}: {reason}")]
    InvalidOption {
        /// The flag, with its value when that helps (e.g. `--token-env VAR`).
        option: String,
        /// Why it is refused.
        reason: String,
    },

    /// The configuration is inconsistent.
    #[error("invalid emulator configuration: {reason}")]
    Config {
        /// What is wrong and what is expected.
        reason: String,
    },

    /// A file of the MQTT data plane (CA certificate, mosquitto configuration or ACL) could not
    /// be written.
    #[error("cannot write {}", path.display())]
    WriteFile {
        /// The file (or directory) that could not be written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A mosquitto process ([`crate::mosquitto::Mosquitto`]: the broker behind the MQTT data
    /// plane, or one run for a demo or a test) could not be started, did not listen, or could
    /// not be signalled.
    #[error("mosquitto ({}) on port {port} failed: {reason}", binary.display())]
    Mosquitto {
        /// The mosquitto binary.
        binary: PathBuf,
        /// The loopback port it was to listen on.
        port: u16,
        /// What happened, with mosquitto's log when it exited or did not listen.
        reason: String,
        /// The I/O error of running mosquitto or `kill`, when there was one.
        #[source]
        source: Option<std::io::Error>,
    },

    /// A step of `e4k demo` ([`crate::demo::run`]) could not run.
    #[error("{step}")]
    Demo {
        /// What the demo was doing, or what went wrong.
        step: String,
        /// The error of that step, when there was one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// The data-plane CA or server certificate could not be made.
    #[error("cannot make the MQTT data-plane certificates: {reason}")]
    Certificate {
        /// What failed.
        reason: String,
    },

    /// The token issuer's key or certificate could not be made, or a token not signed.
    #[error("token issuer: {reason}")]
    Identity {
        /// What failed.
        reason: String,
    },

    /// A role assignment could not be stored (its scope names no namespace).
    #[error("cannot assign the role: {reason}")]
    RoleAssignment {
        /// Why.
        reason: String,
    },

    /// The server task panicked or was aborted.
    #[error("the server task on {addr} did not finish cleanly")]
    Join {
        /// The address the server listened on.
        addr: SocketAddr,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl EmulatorError {
    /// Whether the error is the caller's input (exit code 2 in `e4k`): an invalid option.
    #[must_use]
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::InvalidOption { .. })
    }
}
