//! What an [`ArmClient`](super::ArmClient) is told and what it counts: [`ArmConfig`] (endpoint,
//! attempts, backoff, polling and timeouts) and [`ArmStats`], with the shared counters behind it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use url::Url;

/// The public Azure Resource Manager endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com";

/// Items per page asked of list calls (`$top`): the most Event Grid's lists allow.
pub const LIST_PAGE_SIZE: u32 = 100;

/// How an [`ArmClient`](super::ArmClient) talks to ARM. Start from [`Default`] and override fields.
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

/// Counts of what an [`ArmClient`](super::ArmClient) sent, e.g. to report the number of ARM calls.
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
pub(super) struct Counters {
    pub(super) requests: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) throttled: AtomicU64,
    pub(super) polls: AtomicU64,
    pub(super) writes: AtomicU64,
}

pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
