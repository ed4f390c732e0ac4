//! The spool's drain pace: a token bucket in front of the publisher.
//!
//! After an outage the spool holds a backlog; without a pace it would leave as fast as the
//! destination broker acknowledges (tens of thousands per second on loopback), and a consumer
//! behind that broker that reads slower would see its queue overflow (mosquitto at its defaults
//! keeps 1,000 messages per consumer and drops the rest). The pace allows
//! [`DrainRate::AUTO_FACTOR`] times the rate at which messages arrived in the last second, at
//! least [`DrainRate::AUTO_FLOOR`] per second, so live traffic passes at once and a backlog
//! drains at a multiple of it; or a fixed rate; or none.

use std::time::{Duration, Instant};

use crate::spool::DrainRate;

/// The arrival rate is measured over this many buckets…
const BUCKETS: usize = 10;
/// …of this length each (one second in all).
const BUCKET: Duration = Duration::from_millis(100);
/// A paced spool wakes up for this many messages at a time at the least, not for each.
const WAKE_BATCH: f64 = 16.0;

#[derive(Debug)]
pub(super) struct Pace {
    rate: DrainRate,
    /// Messages that may be sent now.
    tokens: f64,
    /// When `tokens` was last topped up.
    filled: Instant,
    /// Arrivals in the last [`BUCKETS`] buckets; `current` is being counted.
    arrivals: [u32; BUCKETS],
    current: usize,
    current_start: Instant,
}

impl Pace {
    pub(super) fn new(rate: DrainRate, now: Instant) -> Self {
        let mut pace = Pace {
            rate,
            tokens: 0.0,
            filled: now,
            arrivals: [0; BUCKETS],
            current: 0,
            current_start: now,
        };
        pace.tokens = Self::burst(pace.per_second());
        pace
    }

    /// Counts `n` messages taken into the spool.
    pub(super) fn arrived(&mut self, n: usize, now: Instant) {
        if matches!(self.rate, DrainRate::Auto) {
            self.roll(now);
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            self.arrivals[self.current] = self.arrivals[self.current].saturating_add(n);
        }
    }

    /// Takes one message's token; false when the pace says to wait.
    pub(super) fn take(&mut self, now: Instant) -> bool {
        if matches!(self.rate, DrainRate::Unlimited) {
            return true;
        }
        if self.tokens < 1.0 {
            self.top_up(now);
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When enough tokens for a batch of messages will be there (after a `take` said no).
    pub(super) fn wake_at(&mut self, now: Instant) -> Instant {
        let per_second = self.per_second();
        let missing = (WAKE_BATCH.min(Self::burst(per_second)) - self.tokens).max(0.0);
        now + Duration::from_secs_f64(missing / per_second)
    }

    /// The messages per second allowed now.
    fn per_second(&self) -> f64 {
        match self.rate {
            DrainRate::Unlimited => f64::INFINITY,
            DrainRate::PerSecond(n) => f64::from(n.get()),
            DrainRate::Auto => {
                let arrived: u32 = self.arrivals.iter().sum();
                f64::from(arrived.saturating_mul(DrainRate::AUTO_FACTOR))
                    .max(f64::from(DrainRate::AUTO_FLOOR))
            }
        }
    }

    /// A tenth of a second's worth, at least a wake batch.
    fn burst(per_second: f64) -> f64 {
        (per_second / 10.0).max(WAKE_BATCH)
    }

    fn top_up(&mut self, now: Instant) {
        self.roll(now);
        let per_second = self.per_second();
        let elapsed = now.saturating_duration_since(self.filled).as_secs_f64();
        self.filled = now;
        self.tokens = (self.tokens + elapsed * per_second).min(Self::burst(per_second));
    }

    /// Moves the current bucket to `now`, clearing the buckets passed.
    fn roll(&mut self, now: Instant) {
        let mut passed = 0;
        while now.saturating_duration_since(self.current_start) >= BUCKET && passed < BUCKETS {
            self.current = (self.current + 1) % BUCKETS;
            self.arrivals[self.current] = 0;
            self.current_start += BUCKET;
            passed += 1;
        }
        if passed == BUCKETS {
            self.current_start = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn sent_in(pace: &mut Pace, start: Instant, secs: f64, step_ms: u64) -> u32 {
        let mut sent = 0;
        let mut now = start;
        let end = start + Duration::from_secs_f64(secs);
        while now < end {
            while pace.take(now) {
                sent += 1;
            }
            now += Duration::from_millis(step_ms);
        }
        sent
    }

    #[test]
    fn a_fixed_rate_is_kept_over_a_second() {
        let start = Instant::now();
        let mut pace = Pace::new(DrainRate::PerSecond(NonZeroU32::new(500).unwrap()), start);
        let sent = sent_in(&mut pace, start, 1.0, 5);
        // 500/s plus the initial burst (a tenth of a second's worth).
        assert!((500..=560).contains(&sent), "{sent}");
    }

    #[test]
    fn auto_drains_at_the_floor_without_arrivals_and_a_multiple_of_them_with() {
        let start = Instant::now();
        let mut pace = Pace::new(DrainRate::Auto, start);
        let sent = sent_in(&mut pace, start, 1.0, 5);
        assert!((1_000..=1_120).contains(&sent), "{sent}");

        // 2,000 msg/s arriving: 8,000/s allowed once a second of arrivals is counted (the
        // bucket being filled counts from its start: between 7,200 and 8,000).
        let mut pace = Pace::new(DrainRate::Auto, start);
        let mut now = start;
        let mut sent = 0;
        while now < start + Duration::from_secs(3) {
            pace.arrived(10, now);
            while pace.take(now) {
                if now >= start + Duration::from_secs(2) {
                    sent += 1;
                }
            }
            now += Duration::from_millis(5);
        }
        assert!((7_000..=8_100).contains(&sent), "{sent}");
    }

    #[test]
    fn unlimited_never_waits_and_a_paced_wake_is_for_a_batch() {
        let start = Instant::now();
        let mut pace = Pace::new(DrainRate::Unlimited, start);
        assert!((0..100_000).all(|_| pace.take(start)));

        let mut pace = Pace::new(DrainRate::PerSecond(NonZeroU32::new(1_000).unwrap()), start);
        while pace.take(start) {}
        let wake = pace.wake_at(start);
        let wait = wake - start;
        assert!(
            (Duration::from_millis(15)..=Duration::from_millis(17)).contains(&wait),
            "{wait:?}"
        );
        assert!(pace.take(wake));
    }

    #[test]
    fn a_long_idle_spell_gives_one_burst_not_a_flood() {
        let start = Instant::now();
        let mut pace = Pace::new(DrainRate::Auto, start);
        while pace.take(start) {}
        let later = start + Duration::from_secs(60);
        let mut burst = 0;
        while pace.take(later) {
            burst += 1;
        }
        assert_eq!(burst, 100);
    }

    #[test]
    fn drain_rates_parse() {
        assert_eq!(DrainRate::parse("auto"), Ok(DrainRate::Auto));
        assert_eq!(DrainRate::parse("unlimited"), Ok(DrainRate::Unlimited));
        assert_eq!(
            DrainRate::parse("250"),
            Ok(DrainRate::PerSecond(NonZeroU32::new(250).unwrap()))
        );
        for bad in ["0", "-1", "fast", "1.5"] {
            let error = DrainRate::parse(bad).unwrap_err();
            assert!(error.contains(bad) && error.contains("auto"), "{error}");
        }
    }
}
