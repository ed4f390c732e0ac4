//! The ARM REST client: GET, paged LIST, PUT, PATCH and DELETE of Event Grid resources, with
//! retries, long-running operations and cancellation (eventgrid.md §2, §4, §5, §6, §10).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use e4k_provisioning::eventgrid::arm::{ArmClient, ArmConfig};
//! use e4k_provisioning::eventgrid::credential::StaticToken;
//! use tokio_util::sync::CancellationToken;
//!
//! let config = ArmConfig {
//!     endpoint: "http://127.0.0.1:8080".parse()?, // the emulator; default: management.azure.com
//!     ..ArmConfig::default()
//! };
//! let arm = ArmClient::new(config, Arc::new(StaticToken::new("t")), CancellationToken::new())?;
//! let ns = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.EventGrid/namespaces/ns";
//! let body = serde_json::json!({
//!     "location": "westus",
//!     "properties": { "topicSpacesConfiguration": { "state": "Enabled" } },
//! });
//! let namespace = arm.put(ns, "2026-06-15-preview", &body).await?; // waits for Succeeded
//! let clients = arm.list(&format!("{ns}/clients"), "2025-02-15").await?; // every page
//! arm.delete(&format!("{ns}/clients/c1"), "2025-02-15").await?; // a missing one is fine
//! println!("{} ARM requests", arm.stats().requests);
//! # let _ = (namespace, clients);
//! # Ok(())
//! # }
//! ```
//!
//! # Behaviour
//! - **Retries.** 429, 500, 502, 503 and 504 answers and transport failures (connection refused
//!   or reset, timeouts) are retried, up to [`ArmConfig::max_attempts`] attempts per HTTP call,
//!   polls and `nextLink` pages included. The wait is the server's `Retry-After` (seconds or an
//!   HTTP date; `retry-after-ms` too), capped at [`ArmConfig::max_retry_after`], else a capped
//!   exponential backoff with full jitter. Other 4xx answers are never retried.
//! - **Long-running operations.** A write answered with `Azure-AsyncOperation` is polled there
//!   until `Succeeded`, `Failed` or `Canceled`; else a `201`/`202` with `Location` is polled until
//!   it stops answering `202`; else a non-terminal `properties.provisioningState` in the body is
//!   polled by GETting the resource. Polls wait for `Retry-After` (clamped to
//!   [`ArmConfig::min_poll_interval`]..[`ArmConfig::max_retry_after`]) or
//!   [`ArmConfig::poll_interval`], for at most [`ArmConfig::operation_timeout`].
//! - **Links.** `nextLink`, `Azure-AsyncOperation` and `Location` URLs are followed on the
//!   configured endpoint (scheme, host and port are replaced by its own): the token goes to no
//!   other host, and the emulator works behind any address.
//! - **Cancellation.** Every request, token fetch and wait races the [`CancellationToken`];
//!   cancelling it ends the call with [`Error::Cancelled`].
//! - **Tokens** are fetched for `{endpoint}/.default` and kept until five minutes before they
//!   expire (or until a `401`); they are never logged, and `Debug` does not show them.
//!
//! # Layout
//! This module holds [`ArmClient`] itself (construction, configuration, counters); `config` the
//! [`ArmConfig`] and [`ArmStats`]; `calls` the typed resource calls (GET, LIST, PUT, PATCH,
//! DELETE); `lro` the long-running operations and their polling; `transport` one request with
//! its retries, token, cancellation and URLs; `reply` an answer's body, `Retry-After` and error
//! mapping (HTTP status, ARM error code and message).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::credential::chain;
use crate::{Error, Result};

mod calls;
mod config;
mod lro;
mod reply;
mod transport;

use config::Counters;
pub use config::{ArmConfig, ArmStats, DEFAULT_ENDPOINT, LIST_PAGE_SIZE};

/// A client of Azure Resource Manager for one endpoint, credential and cancellation token.
///
/// Resource ids are ARM paths (`/subscriptions/…/namespaces/ns/clients/c`); `api_version` is
/// sent as the `api-version` query parameter. The client is `Send + Sync`: share it behind an
/// `Arc` between concurrent tasks; the counters of [`stats`](Self::stats) are shared too.
pub struct ArmClient {
    http: reqwest::Client,
    config: ArmConfig,
    scope: String,
    credential: Arc<dyn TokenCredential>,
    token: Mutex<Option<AccessToken>>,
    cancel: CancellationToken,
    counters: Counters,
    /// SplitMix64 state for the backoff jitter.
    jitter: AtomicU64,
}

// Hand-written: the cached token stays out of it.
impl fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArmClient")
            .field("config", &self.config)
            .field("credential", &self.credential)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ArmClient {
    /// Builds a client. No request is sent and no token fetched yet.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the endpoint is not an `http(s)` URL with a host;
    /// [`Error::Transport`] when the HTTP client cannot be built (TLS setup).
    pub fn new(
        config: ArmConfig,
        credential: Arc<dyn TokenCredential>,
        cancel: CancellationToken,
    ) -> Result<Self> {
        let endpoint = &config.endpoint;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err(Error::invalid(
                "ARM endpoint",
                endpoint.as_str(),
                "expected an http(s) URL such as https://management.azure.com",
            ));
        }
        if endpoint.scheme() == "http" && !transport::is_loopback(endpoint) {
            tracing::warn!(endpoint = %endpoint, "the ARM endpoint is plain HTTP: access tokens are sent unencrypted");
        }
        let http = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            // ARM does not redirect; a redirect would only carry the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Transport {
                method: "-".into(),
                resource: endpoint.to_string(),
                reason: format!("cannot build the HTTP client: {}", chain(&e)),
            })?;
        let scope = format!("{}/.default", endpoint.origin().ascii_serialization());
        let seed = getrandom::u64().unwrap_or_else(|_| {
            OffsetDateTime::now_utc()
                .unix_timestamp_nanos()
                .unsigned_abs() as u64
        });
        Ok(Self {
            http,
            config,
            scope,
            credential,
            token: Mutex::new(None),
            cancel,
            counters: Counters::default(),
            jitter: AtomicU64::new(seed),
        })
    }

    /// The configuration the client was built with.
    #[must_use]
    pub fn config(&self) -> &ArmConfig {
        &self.config
    }

    /// A snapshot of the request counters.
    #[must_use]
    pub fn stats(&self) -> ArmStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let c = &self.counters;
        ArmStats {
            requests: read(&c.requests),
            retries: read(&c.retries),
            throttled: read(&c.throttled),
            polls: read(&c.polls),
            writes: read(&c.writes),
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use reqwest::header::{HeaderMap, HeaderValue};
    use time::macros::datetime;
    use url::Url;

    use super::reply::Reply;
    use super::*;

    /// A whole answer, for the checks of each module's tests.
    pub(super) fn reply(status: u16, headers: &[(&'static str, &str)], body: &str) -> Reply {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: body.as_bytes().to_vec(),
        }
    }

    /// A client with a static token, sending nothing.
    pub(super) fn client(config: ArmConfig) -> ArmClient {
        let credential = Arc::new(super::super::credential::StaticToken::new("t"));
        ArmClient::new(config, credential, CancellationToken::new()).unwrap()
    }

    #[test]
    fn debug_shows_no_token() {
        let arm = client(ArmConfig::default());
        *arm.token.lock().unwrap() = Some(AccessToken::new(
            "cached-secret-token",
            datetime!(2999-01-01 0:00 UTC),
        ));
        let debug = format!("{arm:?}");
        assert!(!debug.contains("cached-secret-token"), "{debug}");
        assert!(debug.contains("StaticToken"), "{debug}");
    }

    #[test]
    fn endpoint_must_be_http() {
        let credential = Arc::new(super::super::credential::StaticToken::new("t"));
        let config = ArmConfig {
            endpoint: Url::parse("ftp://example.com").unwrap(),
            ..ArmConfig::default()
        };
        assert!(matches!(
            ArmClient::new(config, credential, CancellationToken::new()),
            Err(Error::InvalidInput { .. })
        ));
    }
}
