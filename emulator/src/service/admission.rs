//! What a request passes before any ARM operation: the bearer token, the api-version (which
//! picks the spec that validates bodies), and the faults the configuration injects.

use axum::http::{HeaderMap, StatusCode, header};

use crate::arm::{ArmError, code};
use crate::faults::Fault;
use crate::route::Query;
use crate::spec::{self, Spec};

use super::{App, Inner};

impl App {
    pub(super) fn authorize(&self, headers: &HeaderMap) -> Result<(), ArmError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty());
        let Some(token) = token else {
            return Err(ArmError::new(
                StatusCode::UNAUTHORIZED,
                code::AUTHENTICATION_FAILED,
                "Authentication failed. The 'Authorization' header is missing or is not a bearer token.",
            ));
        };
        match &self.config.token {
            Some(expected) if expected != token => Err(ArmError::new(
                StatusCode::UNAUTHORIZED,
                code::INVALID_TOKEN,
                "The access token is invalid.",
            )),
            _ => Ok(()),
        }
    }

    pub(super) fn spec_for(&self, query: &Query) -> Result<&Spec, ArmError> {
        let supported = self.config.api_versions.join("', '");
        let Some(version) = query.api_version.as_deref().filter(|v| !v.is_empty()) else {
            return Err(ArmError::new(
                StatusCode::BAD_REQUEST,
                code::MISSING_API_VERSION,
                "The api-version query parameter (?api-version=) is required for all requests.",
            ));
        };
        if self.config.api_versions.iter().any(|v| v == version) {
            return Ok(if spec::is_preview(version) {
                &self.preview
            } else {
                &self.stable
            });
        }
        let (status_code, message) = if looks_like_api_version(version) {
            (
                code::NO_REGISTERED_PROVIDER,
                format!(
                    "No registered resource provider found for API version '{version}' and type 'namespaces'. The supported api-versions are '{supported}'."
                ),
            )
        } else {
            (
                code::INVALID_API_VERSION,
                format!(
                    "The api-version '{version}' is invalid. The supported versions are '{supported}'."
                ),
            )
        };
        Err(ArmError::new(StatusCode::BAD_REQUEST, status_code, message).with_target("api-version"))
    }

    pub(super) fn base_url(&self, headers: &HeaderMap) -> String {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        match host {
            Some(host) => format!("http://{host}"),
            None => format!("http://{}", self.local_addr),
        }
    }

    pub(super) fn inject_fault(&self, inner: &mut Inner) -> Result<(), ArmError> {
        let faults = &self.config.faults;
        let Some(fault) = inner.rng.request_fault(faults) else {
            return Ok(());
        };
        match fault {
            Fault::Throttle => inner.stats.throttled += 1,
            Fault::Unavailable | Fault::Internal => inner.stats.server_errors += 1,
        }
        Err(fault.error(faults.retry_after_secs))
    }
}

/// `YYYY-MM-DD` optionally followed by `-suffix`.
pub(super) fn looks_like_api_version(version: &str) -> bool {
    let bytes = version.as_bytes();
    let date = bytes.len() >= 10
        && bytes[..10].iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    date && (bytes.len() == 10 || (bytes[10] == b'-' && bytes.len() > 11))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_shapes() {
        assert!(looks_like_api_version("2025-02-15"));
        assert!(looks_like_api_version("2099-01-01-preview"));
        assert!(!looks_like_api_version("latest"));
        assert!(!looks_like_api_version("2025-02-15-"));
    }
}
