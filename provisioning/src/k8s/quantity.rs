//! Kubernetes resource quantities for sizes in bytes: `512Mi`, `1Gi`, `10G`, `1.5Gi`,
//! `1073741824`.
//!
//! Only what a byte count can be: binary suffixes `Ki` `Mi` `Gi` `Ti` `Pi` `Ei`, decimal
//! suffixes `k` `M` `G` `T` `P` `E`, plain digits, and a decimal fraction when the result is a
//! whole number of bytes. Exponents (`1e9`), signs and milli (`m`) are refused.

use crate::{Error, Result};

const BINARY: [(&str, u64); 6] = [
    ("Ei", 1 << 60),
    ("Pi", 1 << 50),
    ("Ti", 1 << 40),
    ("Gi", 1 << 30),
    ("Mi", 1 << 20),
    ("Ki", 1 << 10),
];

const DECIMAL: [(&str, u64); 6] = [
    ("E", 1_000_000_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("T", 1_000_000_000_000),
    ("G", 1_000_000_000),
    ("M", 1_000_000),
    ("k", 1_000),
];

const EXPECTED: &str = "give a size in bytes as a Kubernetes quantity: digits (an optional \
                        fraction) with Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P or E, e.g. 512Mi, \
                        1Gi, 10G or 1073741824";

/// Parses a quantity of bytes; `flag` names where it came from in the error.
///
/// # Errors
/// [`Error::InvalidInput`] naming `flag` and the value, for anything that is not a whole number
/// of bytes in the forms above, or more than `u64::MAX` bytes.
pub fn parse_bytes(flag: &str, value: &str) -> Result<u64> {
    let bad = |reason: &str| Error::invalid(flag, value, reason);
    let split = value
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(value.len());
    let (number, suffix) = value.split_at(split);
    let multiplier = match suffix {
        "" => 1,
        _ => BINARY
            .iter()
            .chain(&DECIMAL)
            .find(|(s, _)| *s == suffix)
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                let hint = match suffix {
                    "K" => "; Kubernetes spells kilo `k` (or binary `Ki`)",
                    s if s.ends_with('B') || s.ends_with('b') => {
                        "; Kubernetes quantities have no `B` (`512Mi`, not `512MiB`)"
                    }
                    _ => "",
                };
                bad(&format!("{EXPECTED}{hint}"))
            })?,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(bad(EXPECTED));
    }
    // Exact arithmetic: (whole.fraction × multiplier) must be a whole number of bytes.
    let digits = format!("{whole}{fraction}");
    let mantissa: u128 = digits.parse().map_err(|_| bad(EXPECTED))?;
    let scale = u32::try_from(fraction.len())
        .ok()
        .and_then(|n| 10u128.checked_pow(n))
        .ok_or_else(|| bad("too many fraction digits"))?;
    let scaled = mantissa
        .checked_mul(u128::from(multiplier))
        .ok_or_else(|| bad("too large"))?;
    if !scaled.is_multiple_of(scale) {
        return Err(bad("not a whole number of bytes"));
    }
    u64::try_from(scaled / scale).map_err(|_| bad("too large"))
}

/// Formats bytes as the shortest exact quantity: `1Gi`, `10G`, `512Mi`, or plain bytes when no
/// suffix divides evenly. Binary wins a tie.
#[must_use]
pub fn format_bytes(bytes: u64) -> String {
    let mut best = bytes.to_string();
    if bytes == 0 {
        return best;
    }
    for (suffix, multiplier) in BINARY.iter().chain(&DECIMAL) {
        if bytes.is_multiple_of(*multiplier) {
            let candidate = format!("{}{suffix}", bytes / multiplier);
            if candidate.len() < best.len() {
                best = candidate;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_kubernetes_accepts() {
        for (text, bytes) in [
            ("0", 0),
            ("1073741824", 1 << 30),
            ("512Mi", 512 << 20),
            ("1Gi", 1 << 30),
            ("10Gi", 10 << 30),
            ("1.5Gi", 3 << 29),
            ("0.5Mi", 1 << 19),
            (".5Ki", 512),
            ("1.", 1),
            ("16Ki", 16 << 10),
            ("2Ti", 2 << 40),
            ("1Pi", 1 << 50),
            ("1Ei", 1 << 60),
            ("1k", 1_000),
            ("500M", 500_000_000),
            ("10G", 10_000_000_000),
            ("1.25G", 1_250_000_000),
            ("3T", 3_000_000_000_000),
            ("1P", 1_000_000_000_000_000),
            ("15E", 15_000_000_000_000_000_000),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(parse_bytes("--spool-size", text).unwrap(), bytes, "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_whole_number_of_bytes() {
        for text in [
            "",
            "Gi",
            ".",
            "1..5Gi",
            "1.2.3",
            "-1Gi",
            "+1Gi",
            "1e9",
            "1m",
            "1K",
            "1MiB",
            "1GB",
            "1 Gi",
            " 1Gi",
            "1gi",
            "0.3",
            "1.0000001Ki",
            "16Ei",
            "18446744073709551616",
            "99999999999999999999999999999999999999999999",
        ] {
            let err = parse_bytes("--spool-size", text).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid --spool-size {text:?}: ")),
                "{text}: {err}"
            );
        }
        let err = parse_bytes("--spool-size", "900MiB")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not `512MiB`"), "{err}");
        let err = parse_bytes("--spool-size", "1K").unwrap_err().to_string();
        assert!(err.contains("spells kilo `k`"), "{err}");
    }

    #[test]
    fn formats_the_shortest_exact_quantity() {
        for (bytes, text) in [
            (0, "0"),
            (1, "1"),
            (1000, "1k"),
            (1024, "1Ki"),
            (1 << 30, "1Gi"),
            (10 << 30, "10Gi"),
            (512 << 20, "512Mi"),
            (3 << 29, "1536Mi"),
            (10_000_000_000, "10G"),
            (16_000_000, "16M"),
            (1_073_741_825, "1073741825"),
            (u64::MAX, "18446744073709551615"),
        ] {
            assert_eq!(format_bytes(bytes), text, "{bytes}");
            assert_eq!(parse_bytes("x", text).unwrap(), bytes, "{text}");
        }
    }
}
