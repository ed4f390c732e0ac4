//! The HTTP transport of [`ArmClient`]: one request with its bearer token, retried on 429, 5xx and
//! transport failures (honouring `Retry-After`, else a capped exponential backoff with full
//! jitter), token caching, cancellation, and the URLs requests go to (resource ids and links
//! kept on the configured endpoint).

use std::future::Future;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use azure_core::credentials::AccessToken;
use reqwest::header::ACCEPT;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use time::OffsetDateTime;
use url::Url;

use super::ArmClient;
use super::config::bump;
use super::reply::{Reply, malformed};
use crate::eventgrid::credential::chain;
use crate::{Error, Result};

/// A cached token is renewed this long before it expires.
const TOKEN_REFRESH_MARGIN: time::Duration = time::Duration::minutes(5);

/// Why a request is sent: for counting and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Purpose {
    /// A GET, PUT, PATCH or DELETE of a resource or the first page of a collection.
    Call,
    /// A poll of a long-running operation.
    Poll,
    /// A `nextLink` page.
    Page,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::Poll => "poll",
            Self::Page => "page",
        }
    }
}

impl ArmClient {
    /// Sends one request, retrying retryable statuses and transport failures. Any other answer,
    /// error statuses included, is returned for the caller to judge.
    pub(super) async fn send(
        &self,
        method: &Method,
        url: Url,
        resource: &str,
        body: Option<&Value>,
        purpose: Purpose,
    ) -> Result<Reply> {
        let attempts = self.config.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let token = self.token().await?;
            let outcome = self
                .cancellable(self.attempt(method, url.clone(), &token, body, purpose))
                .await?;
            let wait = match outcome {
                Ok(reply) => {
                    let status = reply.status.as_u16();
                    tracing::debug!(%method, resource, purpose = purpose.as_str(), attempt, status, "ARM request");
                    if reply.status == StatusCode::TOO_MANY_REQUESTS {
                        bump(&self.counters.throttled);
                    }
                    if reply.status == StatusCode::UNAUTHORIZED {
                        // The token may have been revoked or expired early: fetch a new one next time.
                        self.forget_token();
                    }
                    if !is_retryable(reply.status) {
                        return Ok(reply);
                    }
                    if attempt >= attempts {
                        return Err(reply.error(method, resource));
                    }
                    match reply.retry_after() {
                        Some(wait) => wait.min(self.config.max_retry_after),
                        None => self.backoff(attempt),
                    }
                }
                Err(error) => {
                    let transient = is_transient(&error);
                    let reason = chain(&error.without_url());
                    tracing::debug!(%method, resource, purpose = purpose.as_str(), attempt, error = %reason, "ARM request failed");
                    if !transient || attempt >= attempts {
                        return Err(Error::Transport {
                            method: method.to_string(),
                            resource: resource.to_owned(),
                            reason: format!("{reason} (attempt {attempt} of {attempts})"),
                        });
                    }
                    self.backoff(attempt)
                }
            };
            bump(&self.counters.retries);
            self.sleep(wait).await?;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        method: &Method,
        url: Url,
        token: &AccessToken,
        body: Option<&Value>,
        purpose: Purpose,
    ) -> reqwest::Result<Reply> {
        // Counted here, so that a request cancelled before it starts is not.
        bump(&self.counters.requests);
        if purpose == Purpose::Poll {
            bump(&self.counters.polls);
        }
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(token.token.secret())
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// The cached token, or a new one from the credential.
    async fn token(&self) -> Result<AccessToken> {
        if let Some(token) = self
            .token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|t| t.expires_on - OffsetDateTime::now_utc() > TOKEN_REFRESH_MARGIN)
        {
            return Ok(token.clone());
        }
        let token = self
            .cancellable(self.credential.get_token(&[&self.scope], None))
            .await?
            .map_err(|e| Error::Credential { reason: chain(&e) })?;
        if token.token.secret().trim().is_empty() {
            return Err(Error::Credential {
                reason: "the credential gave an empty access token".into(),
            });
        }
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = Some(token.clone());
        Ok(token)
    }

    fn forget_token(&self) {
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Runs `future` unless the cancellation token fires first.
    async fn cancellable<F: Future>(&self, future: F) -> Result<F::Output> {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(Error::Cancelled),
            output = future => Ok(output),
        }
    }

    pub(super) async fn sleep(&self, duration: Duration) -> Result<()> {
        self.cancellable(tokio::time::sleep(duration)).await
    }

    /// The wait before retry number `attempt`: uniform in `[0, min(cap, base * 2^(attempt-1))]`.
    fn backoff(&self, attempt: u32) -> Duration {
        let doubling = 1u32 << attempt.saturating_sub(1).min(31);
        let ceiling = self
            .config
            .backoff_base
            .saturating_mul(doubling)
            .min(self.config.backoff_cap);
        ceiling.mul_f64(self.unit())
    }

    /// A uniform draw in `[0, 1)` (SplitMix64).
    fn unit(&self) -> f64 {
        const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut z = self
            .jitter
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(super) fn resource_url(&self, resource_id: &str, api_version: &str) -> Result<Url> {
        if !resource_id.starts_with('/') {
            return Err(Error::invalid(
                "ARM resource id",
                resource_id,
                "expected a path such as /subscriptions/…/providers/Microsoft.EventGrid/namespaces/ns",
            ));
        }
        let mut url = self.config.endpoint.clone();
        url.set_path(resource_id);
        url.set_fragment(None);
        url.query_pairs_mut()
            .clear()
            .append_pair("api-version", api_version);
        Ok(url)
    }

    /// A URL from an answer (`nextLink`, a monitor header), moved onto the configured endpoint.
    pub(super) fn link(&self, link: &str, method: &Method, resource: &str) -> Result<Url> {
        let parsed = self.config.endpoint.join(link).map_err(|e| {
            malformed(
                method,
                resource,
                &format!("invalid link {link:?} in the answer: {e}"),
            )
        })?;
        let mut url = self.config.endpoint.clone();
        url.set_path(parsed.path());
        url.set_query(parsed.query());
        url.set_fragment(None);
        if parsed.origin() != url.origin() {
            tracing::debug!(resource, from = %parsed.origin().ascii_serialization(), "following a link on the configured endpoint");
        }
        Ok(url)
    }
}

fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// Failures worth another attempt: connecting, timeouts, a connection lost while sending or
/// reading. Not: building the request, decoding, redirects.
fn is_transient(error: &reqwest::Error) -> bool {
    error.is_connect() || error.is_timeout() || error.is_request() || error.is_body()
}

pub(super) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::ArmConfig;
    use super::super::tests::client;
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        let arm = client(ArmConfig {
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_millis(300),
            ..ArmConfig::default()
        });
        let first: Vec<Duration> = (0..50).map(|_| arm.backoff(1)).collect();
        assert!(first.iter().all(|d| *d <= Duration::from_millis(100)));
        assert!(first.iter().any(|d| *d != first[0]), "no jitter");
        assert!((0..50).all(|_| arm.backoff(40) <= Duration::from_millis(300)));
    }

    #[test]
    fn urls_and_links_stay_on_the_endpoint() {
        let arm = client(ArmConfig {
            endpoint: Url::parse("http://127.0.0.1:4000/ignored").unwrap(),
            ..ArmConfig::default()
        });
        assert_eq!(arm.scope, "http://127.0.0.1:4000/.default");
        let url = arm
            .resource_url("/subscriptions/s/x/$all", "2025-02-15")
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:4000/subscriptions/s/x/$all?api-version=2025-02-15"
        );
        let link = arm
            .link(
                "https://management.azure.com/subscriptions/s/ops/1?api-version=v&$skiptoken=ab",
                &Method::GET,
                "/r",
            )
            .unwrap();
        assert_eq!(
            link.as_str(),
            "http://127.0.0.1:4000/subscriptions/s/ops/1?api-version=v&$skiptoken=ab"
        );
        assert!(matches!(
            arm.resource_url("subscriptions/s", "v"),
            Err(Error::InvalidInput { .. })
        ));
        let default = client(ArmConfig::default());
        assert_eq!(default.scope, "https://management.azure.com/.default");
    }
}
