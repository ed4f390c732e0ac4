//! Capped, jittered exponential backoff between connection attempts.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::time::Duration;

/// How long to wait between connection attempts: `initial`, doubling up to `max`, each delay
/// moved randomly by up to ±`jitter` (a fraction) so that many sessions that lost their broker
/// together do not reconnect together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// Relative jitter, 0.0..=1.0 (0.25 = ±25 %).
    pub jitter: f64,
}

impl Default for BackoffPolicy {
    /// 1 s doubling to 2 min, ±25 % (HiveMQ's bridge uses the same).
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(120),
            jitter: 0.25,
        }
    }
}

impl BackoffPolicy {
    /// From `initial` doubling to `max` (raised to `initial` when below it), with the default
    /// jitter: `--reconnect-initial` and `--reconnect-max`.
    #[must_use]
    pub fn between(initial: Duration, max: Duration) -> Self {
        BackoffPolicy {
            initial,
            max: max.max(initial),
            ..BackoffPolicy::default()
        }
    }
}

/// The state of one connection's backoff.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
    seed: u64,
}

impl Backoff {
    pub(crate) fn new(policy: BackoffPolicy) -> Self {
        // RandomState is randomly keyed per process and per instance: enough for jitter.
        let seed = RandomState::new().build_hasher().finish() | 1;
        Backoff {
            policy,
            attempt: 0,
            seed,
        }
    }

    /// The delay before the next attempt; each call doubles the base delay.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self
            .policy
            .initial
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.policy.max);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = self.policy.jitter.clamp(0.0, 1.0);
        // xorshift64
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        #[allow(clippy::cast_precision_loss)]
        let unit = (self.seed >> 11) as f64 / (1u64 << 53) as f64; // 0.0..1.0
        let factor = 1.0 + jitter * (2.0 * unit - 1.0);
        base.mul_f64(factor.max(0.0))
            .min(self.policy.max.mul_f64(1.0 + jitter))
    }

    /// A connection succeeded: the next failure starts from `initial` again.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn between_raises_max_to_the_initial_delay() {
        let backoff = BackoffPolicy::between(Duration::from_secs(30), Duration::from_secs(5));
        assert_eq!(backoff.initial, Duration::from_secs(30));
        assert_eq!(backoff.max, Duration::from_secs(30));
        assert!((backoff.jitter - BackoffPolicy::default().jitter).abs() < f64::EPSILON);
    }

    #[test]
    fn doubles_up_to_the_cap_within_the_jitter() {
        let policy = BackoffPolicy::default();
        let mut backoff = Backoff::new(policy);
        let delays: Vec<Duration> = (0..12).map(|_| backoff.next_delay()).collect();
        let within = |d: Duration, base: f64| {
            let s = d.as_secs_f64();
            s >= base * 0.75 - 1e-9 && s <= base * 1.25 + 1e-9
        };
        assert!(within(delays[0], 1.0), "{delays:?}");
        assert!(within(delays[1], 2.0), "{delays:?}");
        assert!(within(delays[3], 8.0), "{delays:?}");
        assert!(within(delays[11], 120.0), "{delays:?}");
        backoff.reset();
        assert!(within(backoff.next_delay(), 1.0));
    }
}
