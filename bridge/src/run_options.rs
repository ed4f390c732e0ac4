//! The settings of `e4k bridge run` that the CRDs do not have, as given on the command line,
//! and what follows from them: [`RunSettings`] builds the engine's [`RunOptions`] (the spool,
//! the reconnect backoff), [`needs_entra_credential`] tells whether a credential must be
//! built, and [`log_filter`] picks the default log level from the configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Authentication, BridgeConfig, LogLevel};
use crate::engine::{
    BackoffPolicy, DEFAULT_DRAIN_TIMEOUT, DEFAULT_HOP_LIMIT, EntraCredential, RetainPolicy,
    RunOptions,
};
use crate::spool::{DEFAULT_MAX_BYTES, DrainRate, SpoolOptions, WhenFull};

/// `e4k bridge run`'s flags, parsed (see `e4k bridge run --help` for each).
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    /// `--instance-index`: run only this instance; `None` runs every one.
    pub instance: Option<u32>,
    /// `--metrics-listen`.
    pub metrics_listen: SocketAddr,
    /// `--retain`.
    pub retain: RetainPolicy,
    /// `--hop-limit`.
    pub hop_limit: u32,
    /// `--receive-maximum`; `None` keeps the configuration's.
    pub receive_maximum: Option<u16>,
    /// `--drain-timeout`.
    pub drain_timeout: Duration,
    /// `--reconnect-initial`.
    pub reconnect_initial: Duration,
    /// `--reconnect-max`; a value below `reconnect_initial` is raised to it.
    pub reconnect_max: Duration,
    /// `--spool-dir`; `None` runs without a spool (the other spool settings are then unused).
    pub spool_dir: Option<PathBuf>,
    /// `--spool-max-bytes`.
    pub spool_max_bytes: u64,
    /// `--spool-when-full`.
    pub spool_when_full: WhenFull,
    /// `--spool-drain-rate`.
    pub spool_drain_rate: DrainRate,
}

impl RunSettings {
    /// The defaults of `e4k bridge run`, serving metrics on `metrics_listen`.
    #[must_use]
    pub fn new(metrics_listen: SocketAddr) -> Self {
        let backoff = BackoffPolicy::default();
        RunSettings {
            instance: None,
            metrics_listen,
            retain: RetainPolicy::Keep,
            hop_limit: DEFAULT_HOP_LIMIT,
            receive_maximum: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            reconnect_initial: backoff.initial,
            reconnect_max: backoff.max,
            spool_dir: None,
            spool_max_bytes: DEFAULT_MAX_BYTES,
            spool_when_full: WhenFull::Block,
            spool_drain_rate: DrainRate::Auto,
        }
    }

    /// The engine's options for these settings, with `entra_credential` for the remote
    /// connections that authenticate with Microsoft Entra ID.
    #[must_use]
    pub fn run_options(self, entra_credential: Option<EntraCredential>) -> RunOptions {
        RunOptions {
            instance: self.instance,
            metrics_listen: Some(self.metrics_listen),
            retain: self.retain,
            hop_limit: self.hop_limit,
            receive_maximum: self.receive_maximum,
            drain_timeout: self.drain_timeout,
            spool: self.spool_dir.map(|dir| {
                let mut spool = SpoolOptions::new(dir);
                spool.max_bytes = self.spool_max_bytes;
                spool.when_full = self.spool_when_full;
                spool.drain_rate = self.spool_drain_rate;
                spool
            }),
            entra_credential,
            backoff: BackoffPolicy {
                initial: self.reconnect_initial,
                max: self.reconnect_max.max(self.reconnect_initial),
                ..BackoffPolicy::default()
            },
            ..RunOptions::default()
        }
    }
}

/// Whether a remote connection of `bridges` authenticates with a Microsoft Entra ID token
/// (`systemAssignedManagedIdentity`), so that the run needs an [`EntraCredential`].
#[must_use]
pub fn needs_entra_credential(bridges: &[BridgeConfig]) -> bool {
    bridges
        .iter()
        .any(|b| matches!(b.remote.authentication, Authentication::EntraToken { .. }))
}

/// The default log filter of a run (`RUST_LOG` overrides it): `error` when `quiet`, `debug`
/// when a bridge asks for `logLevel: debug`, else `info`.
#[must_use]
pub fn log_filter(bridges: &[BridgeConfig], quiet: bool) -> &'static str {
    if quiet {
        "error"
    } else if bridges.iter().any(|b| b.log_level == LogLevel::Debug) {
        "debug"
    } else {
        "info"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RunSettings {
        RunSettings::new("127.0.0.1:9102".parse().expect("a socket address"))
    }

    #[test]
    fn defaults_match_the_engine() {
        let options = settings().run_options(None);
        let default = RunOptions::default();
        assert_eq!(
            options.metrics_listen,
            Some("127.0.0.1:9102".parse().expect("addr"))
        );
        assert_eq!(options.hop_limit, default.hop_limit);
        assert_eq!(options.drain_timeout, default.drain_timeout);
        assert_eq!(options.backoff, default.backoff);
        assert_eq!(options.spool, None);
        assert!(options.entra_credential.is_none());
    }

    #[test]
    fn reconnect_max_is_at_least_the_initial_delay() {
        let mut s = settings();
        s.reconnect_initial = Duration::from_secs(30);
        s.reconnect_max = Duration::from_secs(5);
        let backoff = s.run_options(None).backoff;
        assert_eq!(backoff.initial, Duration::from_secs(30));
        assert_eq!(backoff.max, Duration::from_secs(30));
        assert!((backoff.jitter - BackoffPolicy::default().jitter).abs() < f64::EPSILON);
    }

    #[test]
    fn a_spool_dir_builds_the_spool() {
        let mut s = settings();
        s.spool_dir = Some("/var/lib/e4k/spool".into());
        s.spool_max_bytes = 1 << 20;
        s.spool_when_full = WhenFull::DropOldest;
        s.spool_drain_rate = DrainRate::Unlimited;
        let spool = s.run_options(None).spool.expect("a spool");
        assert_eq!(spool.dir, PathBuf::from("/var/lib/e4k/spool"));
        assert_eq!(spool.max_bytes, 1 << 20);
        assert_eq!(spool.when_full, WhenFull::DropOldest);
        assert_eq!(spool.drain_rate, DrainRate::Unlimited);
    }

    #[test]
    fn no_bridges_log_at_info() {
        assert_eq!(log_filter(&[], false), "info");
        assert_eq!(log_filter(&[], true), "error");
        assert!(!needs_entra_credential(&[]));
    }
}
