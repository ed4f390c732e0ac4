//! Event Grid's inbound publish quota per session (1,000 PUBLISH/s and 1 MB/s by default), as
//! the front end enforces it: a faster session is read more slowly, and TCP backpressure slows
//! the client down. (How the real service enforces the quota is not documented; slowing down
//! is the behaviour a client can count on least, so it is what a bridge must be built for.)

use std::time::{Duration, Instant};

use crate::config::PublishLimit;

/// Event Grid's per-session inbound quota as two virtual clocks, one for messages and one for
/// bytes: each PUBLISH moves them forward by its cost (1/rate), a clock never lags more than
/// [`Throttle::BURST`] behind real time (the credit a quiet session may save up), and a
/// PUBLISH is passed on once both clocks are no longer ahead of real time.
#[derive(Debug)]
pub(crate) struct Throttle {
    per_message: Option<Duration>,
    per_byte_nanos: Option<f64>,
    messages: Instant,
    bytes: Instant,
}

impl Throttle {
    /// The most credit a session saves up: 100 ms of quota.
    const BURST: Duration = Duration::from_millis(100);

    pub(crate) fn new(limit: PublishLimit) -> Self {
        Self::starting_at(limit, Instant::now())
    }

    /// A new session starts with the whole burst credit.
    fn starting_at(limit: PublishLimit, now: Instant) -> Self {
        let now = now.checked_sub(Self::BURST).unwrap_or(now);
        Throttle {
            per_message: (limit.messages_per_second > 0)
                .then(|| Duration::from_secs(1) / limit.messages_per_second),
            per_byte_nanos: (limit.bytes_per_second > 0)
                .then(|| 1e9 / f64::from(limit.bytes_per_second)),
            messages: now,
            bytes: now,
        }
    }

    /// Charges a PUBLISH of `len` bytes; returns when it may pass, if that is later than now.
    pub(crate) fn admit(&mut self, len: usize) -> Option<Instant> {
        self.admit_at(len, Instant::now())
    }

    fn admit_at(&mut self, len: usize, now: Instant) -> Option<Instant> {
        let floor = now.checked_sub(Self::BURST).unwrap_or(now);
        if let Some(cost) = self.per_message {
            self.messages = self.messages.max(floor) + cost;
        }
        if let Some(per_byte) = self.per_byte_nanos {
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let cost = Duration::from_nanos((len as f64 * per_byte) as u64);
            self.bytes = self.bytes.max(floor) + cost;
        }
        let until = self.messages.max(self.bytes);
        (until > now).then_some(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_holds_a_session_to_its_quota_after_a_burst() {
        let t0 = Instant::now();
        let mut throttle = Throttle::starting_at(
            PublishLimit {
                messages_per_second: 1_000,
                bytes_per_second: 0,
            },
            t0,
        );
        // 100 ms of credit: the first 100 pass at once, then one per millisecond.
        assert!((0..100).all(|_| throttle.admit_at(10, t0).is_none()));
        let ms = Duration::from_millis(1);
        assert_eq!(throttle.admit_at(10, t0), Some(t0 + ms));
        assert_eq!(throttle.admit_at(10, t0), Some(t0 + 2 * ms));
        // After a quiet second, at most 100 ms of credit again.
        let t1 = t0 + Duration::from_secs(1);
        assert!((0..100).all(|_| throttle.admit_at(10, t1).is_none()));
        assert_eq!(throttle.admit_at(10, t1), Some(t1 + ms));
    }

    #[test]
    fn throttle_counts_bytes_too() {
        let t0 = Instant::now();
        let mut throttle = Throttle::starting_at(
            PublishLimit {
                messages_per_second: 0,
                bytes_per_second: 1_000_000,
            },
            t0,
        );
        assert_eq!(throttle.admit_at(100_000, t0), None);
        assert_eq!(
            throttle.admit_at(100_000, t0),
            Some(t0 + Duration::from_millis(100))
        );
    }
}
