//! JWTs for the remote broker: a Microsoft Entra ID access token from a
//! [`TokenCredential`] (`OAUTH2-JWT`), or a token read from a file (`CUSTOM-JWT`).
//!
//! A token is fetched before each connection attempt and sent as MQTT 5 enhanced
//! authentication data on CONNECT. Its text never reaches a log line, `Debug`, a metric or a
//! status: only its expiry and where it came from do.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use azure_core::credentials::TokenCredential;
use bytes::Bytes;

/// MQTT 5 authentication method of a Microsoft Entra ID token.
pub(crate) const ENTRA_METHOD: &str = "OAUTH2-JWT";
/// MQTT 5 authentication method of a token from another OpenID Connect issuer.
pub(crate) const CUSTOM_METHOD: &str = "CUSTOM-JWT";

/// Where Microsoft Entra ID tokens come from (`e4k bridge run --credential`): azure_identity's
/// workload identity, managed identity, a developer credential, …
#[derive(Clone)]
pub struct EntraCredential(pub Arc<dyn TokenCredential>);

impl fmt::Debug for EntraCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EntraCredential")
    }
}

impl PartialEq for EntraCredential {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Where a connection's token comes from.
#[derive(Debug)]
pub(crate) enum TokenSource {
    /// Microsoft Entra ID, for `audience`.
    Entra {
        audience: String,
        credential: Option<EntraCredential>,
    },
    /// A file, re-read at each connection attempt.
    File(PathBuf),
}

/// A token ready to send.
pub(crate) struct Token {
    /// The MQTT 5 authentication method.
    pub(crate) method: &'static str,
    /// The token.
    pub(crate) data: Bytes,
    /// When it expires, when known.
    pub(crate) expires: Option<SystemTime>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("method", &self.method)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Seconds until it expires (negative when it has).
    pub(crate) fn expires_in(&self) -> Option<i64> {
        let expires = self.expires?;
        Some(match expires.duration_since(SystemTime::now()) {
            Ok(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            Err(past) => -i64::try_from(past.duration().as_secs()).unwrap_or(i64::MAX),
        })
    }
}

/// The `.default` scope of an audience: `https://eventgrid.azure.net/` →
/// `https://eventgrid.azure.net/.default`.
pub(crate) fn scope(audience: &str) -> String {
    format!("{}/.default", audience.trim_end_matches('/'))
}

/// The `exp` claim of a JWT, without checking its signature (the broker does that).
pub(crate) fn jwt_expiry(token: &str) -> Option<SystemTime> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(exp))
}

impl TokenSource {
    /// Fetches a token; the error says why, without any token text.
    pub(crate) async fn fetch(&self) -> Result<Token, String> {
        match self {
            TokenSource::Entra {
                audience,
                credential,
            } => {
                let Some(EntraCredential(credential)) = credential else {
                    return Err(format!(
                        "no Microsoft Entra credential to get a token for {audience} (run the \
                         bridge with --credential)"
                    ));
                };
                let scope = scope(audience);
                let token = credential
                    .get_token(&[scope.as_str()], None)
                    .await
                    .map_err(|error| {
                        format!("cannot get a Microsoft Entra token for {scope}: {error}")
                    })?;
                let expires = UNIX_EPOCH.checked_add(Duration::from_secs(
                    u64::try_from(token.expires_on.unix_timestamp()).unwrap_or(0),
                ));
                Ok(Token {
                    method: ENTRA_METHOD,
                    data: Bytes::from(token.token.secret().to_owned()),
                    expires,
                })
            }
            TokenSource::File(path) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|error| {
                    format!("cannot read the token file {}: {error}", path.display())
                })?;
                let text = text.trim();
                if text.is_empty() {
                    return Err(format!("the token file {} is empty", path.display()));
                }
                Ok(Token {
                    method: CUSTOM_METHOD,
                    expires: jwt_expiry(text),
                    data: Bytes::from(text.to_owned()),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn scopes_and_expiry() {
        assert_eq!(
            scope("https://eventgrid.azure.net/"),
            "https://eventgrid.azure.net/.default"
        );
        assert_eq!(scope("api://x"), "api://x/.default");
        // {"alg":"none"}.{"exp":2000000000,"aud":"x"}.
        let token = "eyJhbGciOiJub25lIn0.eyJleHAiOjIwMDAwMDAwMDAsImF1ZCI6IngifQ.";
        assert_eq!(
            jwt_expiry(token),
            UNIX_EPOCH.checked_add(Duration::from_secs(2_000_000_000))
        );
        assert_eq!(jwt_expiry("not a jwt"), None);
    }

    #[test]
    fn a_token_never_shows_in_debug() {
        let token = Token {
            method: CUSTOM_METHOD,
            data: Bytes::from_static(b"secret-token-text"),
            expires: None,
        };
        assert!(!format!("{token:?}").contains("secret-token-text"));
    }
}
