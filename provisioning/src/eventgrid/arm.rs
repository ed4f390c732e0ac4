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

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential};
use reqwest::header::{ACCEPT, HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::credential::chain;
use crate::{Error, Result};

/// The public Azure Resource Manager endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com";

const AZURE_ASYNC_OPERATION: &str = "azure-asyncoperation";
/// Millisecond variants of `Retry-After` that some Azure services send; they take precedence.
const RETRY_AFTER_MS: [&str; 2] = ["retry-after-ms", "x-ms-retry-after-ms"];
/// A cached token is renewed this long before it expires.
const TOKEN_REFRESH_MARGIN: time::Duration = time::Duration::minutes(5);
/// Items per page asked of list calls (`$top`): the most Event Grid's lists allow.
pub const LIST_PAGE_SIZE: u32 = 100;
/// How much of a non-JSON error body goes into an error message.
const EXCERPT_CHARS: usize = 200;

/// How an [`ArmClient`] talks to ARM. Start from [`Default`] and override fields.
#[derive(Clone, Debug)]
pub struct ArmConfig {
    /// The ARM endpoint (default [`DEFAULT_ENDPOINT`]; the emulator's `base_url()` in tests).
    /// Only its scheme, host and port are used; the token scope is `{endpoint}/.default`.
    pub endpoint: Url,
    /// Attempts per HTTP call, the first included (default 8; 0 counts as 1).
    pub max_attempts: u32,
    /// The first backoff ceiling, doubled per failed attempt (default 1 s).
    pub backoff_base: Duration,
    /// The largest backoff ceiling (default 60 s); the wait is drawn uniformly below the ceiling.
    pub backoff_cap: Duration,
    /// The longest wait accepted from a server's `Retry-After` (default 60 s).
    pub max_retry_after: Duration,
    /// The wait between polls of a long-running operation without `Retry-After` (default 1 s).
    pub poll_interval: Duration,
    /// The shortest wait between polls, whatever `Retry-After` says (default 1 s; tests use
    /// a few milliseconds).
    pub min_poll_interval: Duration,
    /// How long one long-running operation may take (default 30 min).
    pub operation_timeout: Duration,
    /// The timeout of one HTTP request, answer included (default 60 s).
    pub request_timeout: Duration,
    /// The `User-Agent` header (default `e4k/<version>`).
    pub user_agent: String,
}

impl Default for ArmConfig {
    #[allow(clippy::expect_used, reason = "a valid constant URL")]
    fn default() -> Self {
        Self {
            endpoint: Url::parse(DEFAULT_ENDPOINT).expect("valid default endpoint"),
            max_attempts: 8,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            min_poll_interval: Duration::from_secs(1),
            operation_timeout: Duration::from_secs(30 * 60),
            request_timeout: Duration::from_secs(60),
            user_agent: concat!("e4k/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Counts of what an [`ArmClient`] sent, e.g. to report the number of ARM calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArmStats {
    /// HTTP requests sent: every attempt, retries and polls included.
    pub requests: u64,
    /// Attempts that repeated a failed one (a retryable status or a transport failure).
    pub retries: u64,
    /// `429 Too Many Requests` answers received.
    pub throttled: u64,
    /// Requests that polled a long-running operation (attempts, retries included).
    pub polls: u64,
    /// PUT, PATCH and DELETE calls made, not counting their retries.
    pub writes: u64,
}

impl fmt::Display for ArmStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ARM requests ({} writes, {} polls, {} retries, {} throttled)",
            self.requests, self.writes, self.polls, self.retries, self.throttled
        )
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    polls: AtomicU64,
    writes: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Why a request is sent: for counting and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
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

/// One HTTP answer, read whole.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// How a write's long-running operation ended.
enum Finished {
    /// Polling ended: the resource has to be read again.
    Polled,
    /// The answer (or the last poll) holds the final resource.
    Resource(Value),
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
        if endpoint.scheme() == "http" && !is_loopback(endpoint) {
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

    /// Reads one resource; `None` when ARM answers 404.
    ///
    /// # Errors
    /// [`Error::Arm`] for any other error status, [`Error::Transport`], [`Error::Credential`],
    /// [`Error::Cancelled`].
    pub async fn get(&self, resource_id: &str, api_version: &str) -> Result<Option<Value>> {
        let url = self.resource_url(resource_id, api_version)?;
        let reply = self
            .send(&Method::GET, url, resource_id, None, Purpose::Call)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        reply.success(&Method::GET, resource_id).map(Some)
    }

    /// Reads every item of a collection (e.g. `…/namespaces/ns/clients`), following `nextLink`
    /// until a page has none.
    ///
    /// # Errors
    /// As [`get`](Self::get), and [`Error::Arm`] with status 404 when the parent is missing.
    pub async fn list(&self, collection_id: &str, api_version: &str) -> Result<Vec<Value>> {
        // The largest page ARM serves (`$top` 1..100, default 20): fewer round trips.
        let top = LIST_PAGE_SIZE.to_string();
        self.list_with_query(collection_id, api_version, &[("$top", &top)])
            .await
    }

    /// [`list`](Self::list) with other query parameters than `$top` (e.g. role assignments'
    /// `$filter=atScope()`, which have no `$top`).
    ///
    /// # Errors
    /// As [`list`](Self::list).
    pub async fn list_with_query(
        &self,
        collection_id: &str,
        api_version: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<Value>> {
        let mut url = self.resource_url(collection_id, api_version)?;
        url.query_pairs_mut().extend_pairs(query);
        let mut purpose = Purpose::Call;
        let mut items = Vec::new();
        loop {
            let reply = self
                .send(&Method::GET, url.clone(), collection_id, None, purpose)
                .await?;
            let mut page = reply.success(&Method::GET, collection_id)?;
            match page.get_mut("value").map(Value::take) {
                Some(Value::Array(values)) => items.extend(values),
                None | Some(Value::Null) => {}
                Some(_) => {
                    return Err(malformed(
                        &Method::GET,
                        collection_id,
                        "`value` is not an array",
                    ));
                }
            }
            let Some(link) = page
                .get("nextLink")
                .and_then(Value::as_str)
                .filter(|link| !link.is_empty())
            else {
                return Ok(items);
            };
            let next = self.link(link, &Method::GET, collection_id)?;
            if next == url {
                return Err(malformed(
                    &Method::GET,
                    collection_id,
                    "`nextLink` repeats the page",
                ));
            }
            url = next;
            purpose = Purpose::Page;
        }
    }

    /// Creates or replaces a resource with `body`, waits for its long-running operation and
    /// returns the resource as ARM then reports it.
    ///
    /// # Errors
    /// As [`get`](Self::get); [`Error::Operation`] when the operation ends `Failed` or
    /// `Canceled`; [`Error::OperationTimeout`] after [`ArmConfig::operation_timeout`].
    pub async fn put(&self, resource_id: &str, api_version: &str, body: &Value) -> Result<Value> {
        let finished = self
            .write(Method::PUT, resource_id, api_version, body)
            .await?;
        self.read_back(resource_id, api_version, finished).await
    }

    /// Like [`put`](Self::put), without reading the resource back afterwards: one ARM call
    /// fewer per write, for callers that do not need the result.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub async fn put_and_wait(
        &self,
        resource_id: &str,
        api_version: &str,
        body: &Value,
    ) -> Result<()> {
        self.write(Method::PUT, resource_id, api_version, body)
            .await
            .map(drop)
    }

    /// Updates a resource with a partial `body` (namespaces only), waits like [`put`](Self::put)
    /// and returns the updated resource.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub async fn patch(&self, resource_id: &str, api_version: &str, body: &Value) -> Result<Value> {
        let finished = self
            .write(Method::PATCH, resource_id, api_version, body)
            .await?;
        self.read_back(resource_id, api_version, finished).await
    }

    /// Like [`patch`](Self::patch), without reading the resource back afterwards.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub async fn patch_and_wait(
        &self,
        resource_id: &str,
        api_version: &str,
        body: &Value,
    ) -> Result<()> {
        self.write(Method::PATCH, resource_id, api_version, body)
            .await
            .map(drop)
    }

    /// Deletes a resource and waits until it is gone; a resource that does not exist (404, 204)
    /// is not an error.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub async fn delete(&self, resource_id: &str, api_version: &str) -> Result<()> {
        let method = Method::DELETE;
        let url = self.resource_url(resource_id, api_version)?;
        bump(&self.counters.writes);
        let reply = self
            .send(&method, url, resource_id, None, Purpose::Call)
            .await?;
        if matches!(reply.status, StatusCode::NOT_FOUND | StatusCode::NO_CONTENT) {
            return Ok(());
        }
        reply.success(&method, resource_id)?;
        self.wait(&method, resource_id, api_version, &reply, None)
            .await
            .map(drop)
    }

    /// Sends a PUT or PATCH and waits for its long-running operation.
    async fn write(
        &self,
        method: Method,
        resource_id: &str,
        api_version: &str,
        body: &Value,
    ) -> Result<Finished> {
        let url = self.resource_url(resource_id, api_version)?;
        bump(&self.counters.writes);
        let reply = self
            .send(&method, url, resource_id, Some(body), Purpose::Call)
            .await?;
        let answer = reply.success(&method, resource_id)?;
        self.wait(&method, resource_id, api_version, &reply, Some(answer))
            .await
    }

    /// The resource after a finished write: the write's own answer, or a GET when the
    /// operation was polled (ARM's final state is then the resource's).
    async fn read_back(
        &self,
        resource_id: &str,
        api_version: &str,
        finished: Finished,
    ) -> Result<Value> {
        match finished {
            Finished::Resource(resource) => Ok(resource),
            Finished::Polled => {
                self.get(resource_id, api_version)
                    .await?
                    .ok_or_else(|| Error::Arm {
                        method: Method::GET.to_string(),
                        resource: resource_id.to_owned(),
                        status: StatusCode::NOT_FOUND.as_u16(),
                        code: None,
                        message: "the resource is missing after its operation succeeded".into(),
                    })
            }
        }
    }

    /// Waits for the long-running operation a write's `reply` started. `answer` is the write's
    /// body (PUT, PATCH), whose `provisioningState` is the last resort.
    async fn wait(
        &self,
        method: &Method,
        resource_id: &str,
        api_version: &str,
        reply: &Reply,
        answer: Option<Value>,
    ) -> Result<Finished> {
        let deadline = Instant::now() + self.config.operation_timeout;
        let first = self.poll_delay(reply);
        if let Some(link) = reply.header(AZURE_ASYNC_OPERATION) {
            let url = self.link(link, method, resource_id)?;
            self.poll(resource_id, url, first, deadline, |r| {
                operation_status(r, resource_id)
            })
            .await?;
            return Ok(Finished::Polled);
        }
        if matches!(reply.status, StatusCode::CREATED | StatusCode::ACCEPTED)
            && let Some(link) = reply.header(LOCATION.as_str())
        {
            let url = self.link(link, method, resource_id)?;
            self.poll(resource_id, url, first, deadline, |r| {
                location_status(r, resource_id)
            })
            .await?;
            return Ok(Finished::Polled);
        }
        let Some(answer) = answer.filter(Value::is_object) else {
            return Ok(Finished::Polled);
        };
        match State::of(&answer) {
            State::Succeeded => Ok(Finished::Resource(answer)),
            State::Failed(status) => Err(state_failure(resource_id, status)),
            State::Running => {
                let url = self.resource_url(resource_id, api_version)?;
                self.poll(resource_id, url, first, deadline, |r| {
                    resource_state(r, resource_id)
                })
                .await
                .map(Finished::Resource)
            }
        }
    }

    /// GETs `url` until `check` tells the operation is over, waiting between polls.
    async fn poll<T>(
        &self,
        resource_id: &str,
        url: Url,
        first_delay: Duration,
        deadline: Instant,
        check: impl Fn(&Reply) -> Result<Option<T>>,
    ) -> Result<T> {
        let mut delay = first_delay;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Error::OperationTimeout {
                    resource: resource_id.to_owned(),
                    timeout: self.config.operation_timeout,
                });
            }
            self.sleep(delay.min(remaining)).await?;
            let reply = self
                .send(&Method::GET, url.clone(), resource_id, None, Purpose::Poll)
                .await?;
            if let Some(done) = check(&reply)? {
                return Ok(done);
            }
            delay = self.poll_delay(&reply);
        }
    }

    /// Sends one request, retrying retryable statuses and transport failures. Any other answer,
    /// error statuses included, is returned for the caller to judge.
    async fn send(
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

    async fn sleep(&self, duration: Duration) -> Result<()> {
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

    /// The wait before the next poll after `reply`.
    fn poll_delay(&self, reply: &Reply) -> Duration {
        let config = &self.config;
        reply
            .retry_after()
            .map_or(config.poll_interval, |wait| {
                wait.min(config.max_retry_after)
            })
            .max(config.min_poll_interval)
    }

    fn resource_url(&self, resource_id: &str, api_version: &str) -> Result<Url> {
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
    fn link(&self, link: &str, method: &Method, resource: &str) -> Result<Url> {
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

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }

    fn retry_after(&self) -> Option<Duration> {
        let millis = RETRY_AFTER_MS
            .iter()
            .find_map(|name| self.header(name)?.parse::<u64>().ok());
        match millis {
            Some(ms) => Some(Duration::from_millis(ms)),
            None => parse_retry_after(
                self.header(RETRY_AFTER.as_str())?,
                OffsetDateTime::now_utc(),
            ),
        }
    }

    /// The JSON body of a 2xx answer (`Null` when empty), or the error the answer stands for.
    fn success(&self, method: &Method, resource: &str) -> Result<Value> {
        if !self.status.is_success() {
            return Err(self.error(method, resource));
        }
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            malformed(
                method,
                resource,
                &format!("the answer is not valid JSON: {e}"),
            )
        })
    }

    /// [`Error::Arm`] from the status and the ARM error body (or an excerpt of another body).
    fn error(&self, method: &Method, resource: &str) -> Error {
        let json = serde_json::from_slice::<Value>(&self.body).ok();
        let (code, message) = json.as_ref().map(error_fields).unwrap_or_default();
        let message = message.unwrap_or_else(|| {
            excerpt(&self.body).unwrap_or_else(|| {
                let reason = self.status.canonical_reason().unwrap_or("error");
                format!("{reason} (empty body)")
            })
        });
        Error::Arm {
            method: method.to_string(),
            resource: resource.to_owned(),
            status: self.status.as_u16(),
            code,
            message,
        }
    }
}

/// `provisioningState` read as an operation outcome.
#[derive(Debug, PartialEq, Eq)]
enum State<'a> {
    /// `Succeeded`, or no state at all.
    Succeeded,
    /// `Failed`, `Canceled`, or a `…Failed` state (`CreateFailed`, `UpdatedFailed`, …).
    Failed(&'a str),
    /// Anything else: `Creating`, `Updating`, `Deleting`, `Accepted`, `InProgress`, …
    Running,
}

impl<'a> State<'a> {
    fn of(resource: &'a Value) -> Self {
        match resource
            .pointer("/properties/provisioningState")
            .and_then(Value::as_str)
        {
            None => Self::Succeeded,
            Some(state) => Self::parse(state),
        }
    }

    fn parse(state: &'a str) -> Self {
        let lower = state.to_ascii_lowercase();
        if lower == "succeeded" {
            Self::Succeeded
        } else if matches!(lower.as_str(), "canceled" | "cancelled") || lower.ends_with("failed") {
            Self::Failed(state)
        } else {
            Self::Running
        }
    }
}

/// The check of an `Azure-AsyncOperation` status monitor answer.
fn operation_status(reply: &Reply, resource: &str) -> Result<Option<()>> {
    let body = reply.success(&Method::GET, resource)?;
    let Some(status) = body.get("status").and_then(Value::as_str) else {
        return Err(malformed(
            &Method::GET,
            resource,
            "the operation status has no `status`",
        ));
    };
    match State::parse(status) {
        State::Succeeded => Ok(Some(())),
        State::Running => Ok(None),
        State::Failed(status) => {
            let (code, message) = body.get("error").map(error_fields).unwrap_or_default();
            Err(Error::Operation {
                resource: resource.to_owned(),
                status: status.to_owned(),
                code,
                message: message.unwrap_or_else(|| "no error details were given".into()),
            })
        }
    }
}

/// The check of a `Location` monitor answer: 202 while running, another 2xx when done.
fn location_status(reply: &Reply, resource: &str) -> Result<Option<()>> {
    if reply.status == StatusCode::ACCEPTED {
        return Ok(None);
    }
    reply.success(&Method::GET, resource).map(|_| Some(()))
}

/// The check of a resource GET while its `provisioningState` is not terminal.
fn resource_state(reply: &Reply, resource: &str) -> Result<Option<Value>> {
    let body = reply.success(&Method::GET, resource)?;
    match State::of(&body) {
        State::Succeeded => Ok(Some(body)),
        State::Running => Ok(None),
        State::Failed(status) => Err(state_failure(resource, status)),
    }
}

fn state_failure(resource: &str, status: &str) -> Error {
    Error::Operation {
        resource: resource.to_owned(),
        status: status.to_owned(),
        code: None,
        message: format!("the resource's provisioningState is {status}"),
    }
}

/// `code` and `message` of an ARM error: `{"error": {...}}`, or the object itself.
fn error_fields(value: &Value) -> (Option<String>, Option<String>) {
    let error = value
        .get("error")
        .filter(|e| e.is_object())
        .unwrap_or(value);
    let field = |name: &str| {
        error
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    (field("code"), field("message"))
}

/// The start of a body as one line, or `None` when it is blank.
fn excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return None;
    }
    let line = words.join(" ");
    Some(match line.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line,
    })
}

fn malformed(method: &Method, resource: &str, reason: &str) -> Error {
    Error::Transport {
        method: method.to_string(),
        resource: resource.to_owned(),
        reason: reason.to_owned(),
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

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A `Retry-After` value: delay seconds, or an HTTP date (a date in the past means now).
fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let date = azure_core::time::parse_rfc7231(value).ok()?;
    Some(Duration::try_from(date - now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    fn reply(status: u16, headers: &[(&'static str, &str)], body: &str) -> Reply {
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

    fn client(config: ArmConfig) -> ArmClient {
        let credential = Arc::new(super::super::credential::StaticToken::new("t"));
        ArmClient::new(config, credential, CancellationToken::new()).unwrap()
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = datetime!(2026-03-01 12:00:00 UTC);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after("Sun, 01 Mar 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn retry_after_ms_takes_precedence() {
        let r = reply(429, &[("retry-after", "10"), ("retry-after-ms", "250")], "");
        assert_eq!(r.retry_after(), Some(Duration::from_millis(250)));
        assert_eq!(reply(429, &[], "").retry_after(), None);
    }

    #[test]
    fn arm_error_bodies() {
        let method = Method::PUT;
        let r = reply(
            400,
            &[],
            r#"{"error":{"code":"BadRequest","message":"bad name","target":"name"}}"#,
        );
        match r.error(&method, "/x") {
            Error::Arm {
                status,
                code,
                message,
                method,
                resource,
            } => {
                assert_eq!(
                    (status, method.as_str(), resource.as_str()),
                    (400, "PUT", "/x")
                );
                assert_eq!(code.as_deref(), Some("BadRequest"));
                assert_eq!(message, "bad name");
            }
            other => panic!("{other:?}"),
        }
        let html = format!(
            "<html>\n  <body>Bad   Gateway</body>{}</html>",
            "x".repeat(400)
        );
        match reply(502, &[], &html).error(&method, "/x") {
            Error::Arm { code, message, .. } => {
                assert_eq!(code, None);
                assert!(
                    message.starts_with("<html> <body>Bad Gateway</body>xx"),
                    "{message}"
                );
                assert_eq!(message.chars().count(), EXCERPT_CHARS + 1);
            }
            other => panic!("{other:?}"),
        }
        match reply(503, &[], "").error(&method, "/x") {
            Error::Arm { message, .. } => assert_eq!(message, "Service Unavailable (empty body)"),
            other => panic!("{other:?}"),
        }
        let text = reply(409, &[], r#"{"code":"Conflict","message":"busy"}"#)
            .error(&method, "/x")
            .to_string();
        assert_eq!(text, "PUT /x: HTTP 409 Conflict: busy");
    }

    #[test]
    fn provisioning_states() {
        assert_eq!(State::parse("Succeeded"), State::Succeeded);
        assert_eq!(State::parse("creating"), State::Running);
        assert_eq!(State::parse("InProgress"), State::Running);
        assert_eq!(State::parse("Canceled"), State::Failed("Canceled"));
        assert_eq!(
            State::parse("UpdatedFailed"),
            State::Failed("UpdatedFailed")
        );
        assert_eq!(State::of(&json!({"properties": {}})), State::Succeeded);
    }

    #[test]
    fn operation_status_outcomes() {
        let done = reply(200, &[], r#"{"status":"Succeeded"}"#);
        assert_eq!(operation_status(&done, "/r").unwrap(), Some(()));
        let running = reply(200, &[], r#"{"status":"InProgress"}"#);
        assert_eq!(operation_status(&running, "/r").unwrap(), None);
        let failed = reply(
            200,
            &[],
            r#"{"status":"Failed","error":{"code":"Boom","message":"it broke"}}"#,
        );
        match operation_status(&failed, "/r") {
            Err(Error::Operation {
                status,
                code,
                message,
                ..
            }) => {
                assert_eq!(status, "Failed");
                assert_eq!(code.as_deref(), Some("Boom"));
                assert_eq!(message, "it broke");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            operation_status(&reply(200, &[], "{}"), "/r"),
            Err(Error::Transport { .. })
        ));
    }

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
    fn poll_delay_is_clamped() {
        let arm = client(ArmConfig {
            poll_interval: Duration::from_millis(40),
            min_poll_interval: Duration::from_millis(10),
            max_retry_after: Duration::from_secs(2),
            ..ArmConfig::default()
        });
        let delay = |headers: &[(&'static str, &str)]| arm.poll_delay(&reply(200, headers, ""));
        assert_eq!(delay(&[]), Duration::from_millis(40));
        assert_eq!(delay(&[("retry-after", "0")]), Duration::from_millis(10));
        assert_eq!(delay(&[("retry-after", "60")]), Duration::from_secs(2));
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
    fn calls_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let arm = client(ArmConfig::default());
        let body = json!({});
        assert_send(&arm.get("/r", "v"));
        assert_send(&arm.list("/r", "v"));
        assert_send(&arm.put("/r", "v", &body));
        assert_send(&arm.patch("/r", "v", &body));
        assert_send(&arm.delete("/r", "v"));
        assert_eq!(
            arm.stats().to_string(),
            "0 ARM requests (0 writes, 0 polls, 0 retries, 0 throttled)"
        );
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
