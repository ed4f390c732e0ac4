//! Validity periods as users write them: `2400h`, `90d`, `1y`, `1y6m`... or an RFC 3339 time.

use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{Error, Result};

/// Parses a duration such as `2400h`, `90d`, `10y`, `1d12h` or `30m`.
///
/// Units: `s`, `m` (minutes), `h`, `d`, `w`, `y` (365 days, as `step` and openssl count years
/// for certificates). Terms may be combined (`1y30d`); the result must be positive.
///
/// # Errors
/// [`Error::InvalidInput`] naming the value when it is empty, has an unknown unit, a number
/// without a unit, or overflows.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let invalid = |reason: &str| Error::invalid("duration", text, reason);
    let s = text.trim();
    if s.is_empty() {
        return Err(invalid("expected e.g. 2400h, 90d or 1y"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid(
                "expected a number before each unit, e.g. 2400h, 90d or 1y",
            ));
        }
        let number: i64 = rest[..digits]
            .parse()
            .map_err(|_| invalid("number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds_per_unit: i64 = match &rest[..unit_len] {
            "s" => 1,
            "m" | "min" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "y" => 365 * 86_400,
            "" => return Err(invalid("missing unit: use s, m, h, d, w or y (e.g. 90d)")),
            other => {
                return Err(invalid(&format!(
                    "unknown unit {other:?}: use s, m, h, d, w or y (e.g. 90d)"
                )));
            }
        };
        rest = &rest[unit_len..];
        let term = number
            .checked_mul(seconds_per_unit)
            .ok_or_else(|| invalid("too large"))?;
        total = total
            .checked_add(Duration::seconds(term))
            .ok_or_else(|| invalid("too large"))?;
    }
    if total <= Duration::ZERO {
        return Err(invalid("must be longer than zero"));
    }
    // Certificates cannot be valid past 9999-12-31 (GeneralizedTime), so cap at ~1000 years.
    if total > Duration::days(365 * 1000) {
        return Err(invalid("too large: at most 1000y"));
    }
    Ok(total)
}

/// When a certificate stops being valid: after a period from now, or at a fixed time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAfter {
    /// This long after the certificate is issued.
    In(Duration),
    /// At this instant.
    At(OffsetDateTime),
}

impl NotAfter {
    /// Parses a duration (see [`parse_duration`]) or an RFC 3339 time such as
    /// `2027-01-01T00:00:00Z`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the text is neither.
    pub fn parse(text: &str) -> Result<Self> {
        if text.contains('T') && text.contains('-') {
            return OffsetDateTime::parse(text.trim(), &Rfc3339)
                .map(Self::At)
                .map_err(|e| Error::invalid("time", text, format!("not an RFC 3339 time ({e})")));
        }
        parse_duration(text).map(Self::In)
    }

    /// The instant, given the moment of issue.
    #[must_use]
    pub fn resolve(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            Self::In(d) => now + d,
            Self::At(t) => t,
        }
    }
}

impl std::str::FromStr for NotAfter {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("2400h").unwrap(), Duration::hours(2400));
        assert_eq!(parse_duration("90d").unwrap(), Duration::days(90));
        assert_eq!(parse_duration("1y").unwrap(), Duration::days(365));
        assert_eq!(parse_duration("2w").unwrap(), Duration::days(14));
        assert_eq!(parse_duration("30m").unwrap(), Duration::minutes(30));
        assert_eq!(parse_duration("45s").unwrap(), Duration::seconds(45));
        assert_eq!(
            parse_duration("1d12h").unwrap(),
            Duration::days(1) + Duration::hours(12)
        );
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "h",
            "10",
            "10x",
            "-1d",
            "0d",
            "1.5d",
            "99999999999999999999d",
            "1001y",
        ] {
            let err = parse_duration(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid duration"), "{bad}: {err}");
        }
        assert_eq!(
            parse_duration("10x").unwrap_err().to_string(),
            "invalid duration \"10x\": unknown unit \"x\": use s, m, h, d, w or y (e.g. 90d)"
        );
    }

    #[test]
    fn not_after_time_or_duration() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            NotAfter::parse("1d").unwrap().resolve(now),
            now + Duration::days(1)
        );
        let at = NotAfter::parse("2030-01-02T03:04:05Z")
            .unwrap()
            .resolve(now);
        assert_eq!(at.year(), 2030);
        assert!(NotAfter::parse("2030-13-02T03:04:05Z").is_err());
    }
}
