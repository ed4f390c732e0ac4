//! Quantities given as text on the command line: "a number and a unit suffix", as in `10s`,
//! `500ms`, `1GiB`. This module owns the one parser of that shape ([`split_quantity`]) and the
//! duration parser built on it ([`parse_duration`]); [`parse_size`](crate::spool::parse_size)
//! is the size parser built on it.

use std::time::Duration;

/// Splits trimmed `text` into its number and its unit suffix (what follows the leading digits
/// and dots, possibly empty); `None` when the number is not a valid decimal.
///
/// ```
/// assert_eq!(e4k_bridge::units::split_quantity("1.5GiB"), Some((1.5, "GiB")));
/// assert_eq!(e4k_bridge::units::split_quantity("10"), Some((10.0, "")));
/// assert_eq!(e4k_bridge::units::split_quantity("x"), None);
/// ```
#[must_use]
pub fn split_quantity(text: &str) -> Option<(f64, &str)> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    number.parse().ok().map(|value| (value, unit))
}

/// Parses `500ms`, `10s`, `2m`, `1h` (a bare number is seconds), as the `e4k bridge run`
/// duration flags take them.
///
/// # Errors
/// A message naming the text and the accepted forms or units.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (value, unit) = split_quantity(text)
        .ok_or_else(|| format!("`{text}` is not a duration; use e.g. 500ms, 10s, 2m or 1h"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`; use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration(" 10 "), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn duration_errors_name_the_text() {
        assert_eq!(
            parse_duration("10d"),
            Err("unknown unit `d` in `10d`; use ms, s, m or h".to_owned())
        );
        assert_eq!(
            parse_duration("x"),
            Err("`x` is not a duration; use e.g. 500ms, 10s, 2m or 1h".to_owned())
        );
        assert!(parse_duration("1.2.3s").is_err());
    }

    #[test]
    fn quantities_split() {
        assert_eq!(split_quantity("512MiB"), Some((512.0, "MiB")));
        assert_eq!(split_quantity("ms"), None);
        assert_eq!(split_quantity(""), None);
    }
}
