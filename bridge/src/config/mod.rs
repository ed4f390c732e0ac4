//! The bridge configuration: `MqttBridgeConnector` and `MqttBridgeTopicMap` documents, read,
//! validated and resolved into [`BridgeConfig`]s.
//!
//! # Flow
//!
//! 1. [`RawConfig::load`] / [`RawConfig::parse_str`] read the YAML stream ([`crd`] types).
//!    Only unreadable or malformed input fails here, with a [`BridgeError`].
//! 2. [`validate()`] lists **every** problem as a [`Report`]: unknown fields, invalid topics,
//!    QoS, overlapping routes, missing or mismatched certificate files, and more.
//! 3. [`resolve()`] returns the [`BridgeConfig`]s with all defaults applied when the report has
//!    no errors (warnings are returned alongside).
//!
//! ```no_run
//! use e4k_bridge::config::{self, ConfigOptions, RawConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let raw = RawConfig::load("bridge.yaml".as_ref())?;
//! let mut options = ConfigOptions::default();
//! options.remote_endpoint = Some("localhost:8883".to_owned());
//! match config::resolve(&raw, &options) {
//!     Ok(resolved) => {
//!         eprint!("{}", resolved.warnings);
//!         for bridge in &resolved.bridges {
//!             println!("{} routes for {}", bridge.routes.len(), bridge.name);
//!         }
//!     }
//!     Err(report) => eprint!("{report}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Accepted but ignored
//!
//! `spec.image` and `spec.nodeTolerations` (the operator's pod settings), `status`, and every
//! `metadata` key except `name` are accepted silently: they describe how the operator deploys
//! the bridge, not what the bridge does, and `kubectl get -o yaml` output should validate
//! as is. Documents of other kinds (a `Secret` in the same file) are skipped with a warning.
//! Spellings that belong to the other API version are accepted with a warning.
//!
//! # Modules
//!
//! - [`crd`]: raw serde types of the two custom resources.
//! - [`mod@resolve`]: the resolved types, defaults and the client ID scheme.
//! - [`topic`]: topic name and filter rules and matching.
//! - [`endpoint`]: `host:port` parsing.
//! - [`files`]: secrets and config maps as files; certificate and key checks.
//! - [`report`]: problems and their rendering.

pub use self::crd::RawDocument;
pub use self::endpoint::{Endpoint, EndpointError};
pub use self::files::{ClientCertFiles, ClientIdentity, FileError};
pub use self::parse::{MAX_INPUT_BYTES, RawConfig};
pub use self::report::{Location, Problem, Report, Severity};
pub use self::resolve::{
    Authentication, BridgeConfig, BrokerConnection, ConfigOptions, Direction, EVENT_GRID_AUDIENCE,
    JWT_TOKEN_FILE_ANNOTATION, LogLevel, MEMBER_SESSIONS_ANNOTATION, MemberSessions, Mounts,
    MqttVersion, QoS, Route, SessionRole, SessionSettings, SharedSubscription, Tls, Transport,
    TrustRoots,
};
pub use self::topic::{TopicError, TopicFilter};
pub use crate::error::BridgeError;

mod build;
pub mod crd;
pub mod endpoint;
pub mod files;
mod jwt;
mod parse;
pub mod report;
pub mod resolve;
pub mod topic;
mod validate;

/// A configuration without errors: one [`BridgeConfig`] per connector, and the warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// One entry per `MqttBridgeConnector`, in document order.
    pub bridges: Vec<BridgeConfig>,
    /// Warnings found on the way (no errors).
    pub warnings: Report,
}

impl Resolved {
    /// The sessions all connectors open toward the remote broker at once.
    #[must_use]
    pub fn remote_session_count(&self) -> u32 {
        self.bridges
            .iter()
            .map(BridgeConfig::remote_session_count)
            .sum()
    }
}

/// Reads the configuration at `path` and resolves its shape, without reading the secret and
/// config map files it names: what rendering manifests and provisioning the namespace need
/// (`e4k k8s manifests`, `e4k up`, `e4k eventgrid validate --bridge`).
///
/// # Errors
///
/// The errors of [`RawConfig::load`], and [`BridgeError::Invalid`] with the whole report when
/// the configuration has any error.
pub fn load_shape(path: &std::path::Path) -> Result<Resolved, BridgeError> {
    let raw = RawConfig::load(path)?;
    let options = ConfigOptions {
        check_files: false,
        ..ConfigOptions::default()
    };
    resolve(&raw, &options).map_err(|report| BridgeError::Invalid {
        path: path.to_owned(),
        report,
    })
}

/// Lists every problem of `raw`, reading the secret and config map files unless
/// [`ConfigOptions::check_files`] is off.
pub fn validate(raw: &RawConfig, options: &ConfigOptions) -> Report {
    validate::check(raw, options).1
}

/// Resolves `raw` into one [`BridgeConfig`] per connector.
///
/// # Errors
///
/// The full [`Report`] when it has any error.
pub fn resolve(raw: &RawConfig, options: &ConfigOptions) -> Result<Resolved, Report> {
    let (bridges, report) = validate::check(raw, options);
    if report.has_errors() {
        Err(report)
    } else {
        Ok(Resolved {
            bridges,
            warnings: report,
        })
    }
}
