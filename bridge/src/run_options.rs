//! What `e4k bridge run` derives from the configuration before it builds the engine's
//! [`RunOptions`](crate::engine::RunOptions): [`needs_entra_credential`] tells whether a
//! credential must be built, and [`log_filter`] picks the default log level.

use crate::config::{Authentication, BridgeConfig, LogLevel};

/// Whether a remote connection of `bridges` authenticates with a Microsoft Entra ID token
/// (`systemAssignedManagedIdentity`), so that the run needs an
/// [`EntraCredential`](crate::engine::EntraCredential).
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

    #[test]
    fn no_bridges_log_at_info() {
        assert_eq!(log_filter(&[], false), "info");
        assert_eq!(log_filter(&[], true), "error");
        assert!(!needs_entra_credential(&[]));
    }
}
