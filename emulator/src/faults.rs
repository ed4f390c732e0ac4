//! Deterministic fault injection.

use axum::http::StatusCode;

use crate::arm::{ArmError, code};
use crate::config::FaultConfig;

/// A failure chosen for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// 429 Too Many Requests.
    Throttle,
    /// 503 Service Unavailable.
    Unavailable,
    /// 500 Internal Server Error.
    Internal,
}

impl Fault {
    /// The ARM error answering the request; 429 and 503 carry `Retry-After`.
    pub(crate) fn error(self, retry_after_secs: u64) -> ArmError {
        let (status, code, message) = match self {
            Self::Throttle => (
                StatusCode::TOO_MANY_REQUESTS,
                code::THROTTLED,
                "The request was throttled (injected by the emulator). Retry after the number of seconds in Retry-After.",
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                code::SERVICE_UNAVAILABLE,
                "The service is temporarily unavailable (injected by the emulator).",
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                code::INTERNAL,
                "An internal error occurred (injected by the emulator).",
            ),
        };
        let error = ArmError::new(status, code, message);
        match self {
            Self::Internal => error,
            Self::Throttle | Self::Unavailable => error.with_retry_after(retry_after_secs),
        }
    }
}

/// SplitMix64: tiny, seedable and good enough to spread faults; the same seed gives the same
/// sequence on every platform.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        // The top 53 bits fill an f64 mantissa exactly.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Draws the fault (if any) for one request: one draw always, a second to pick the 5xx code.
    pub(crate) fn request_fault(&mut self, config: &FaultConfig) -> Option<Fault> {
        let draw = self.unit();
        if draw < config.rate_429 {
            Some(Fault::Throttle)
        } else if draw < config.rate_429 + config.rate_5xx {
            Some(if self.unit() < 0.5 {
                Fault::Unavailable
            } else {
                Fault::Internal
            })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults() {
        let config = FaultConfig {
            rate_429: 0.2,
            rate_5xx: 0.2,
            seed: 7,
            ..FaultConfig::default()
        };
        let run = || {
            let mut rng = Rng::new(config.seed);
            (0..200)
                .map(|_| rng.request_fault(&config))
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        let throttled = first
            .iter()
            .filter(|f| **f == Some(Fault::Throttle))
            .count();
        assert!((20..=60).contains(&throttled), "{throttled}");
        assert!(first.contains(&Some(Fault::Unavailable)));
        assert!(first.contains(&Some(Fault::Internal)));
    }

    #[test]
    fn zero_rates_never_fail() {
        let mut rng = Rng::new(1);
        let config = FaultConfig::default();
        assert!((0..100).all(|_| rng.request_fault(&config).is_none()));
    }
}
