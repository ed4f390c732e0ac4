//! MQTT topic names and topic filters (MQTT v5 §4.7): syntax checks and matching.
//!
//! Matching follows the standard: `+` matches one level, `#` matches the rest including the
//! parent level (`a/#` matches `a`), and a filter starting with a wildcard does not match a
//! topic starting with `$` (§4.7.2).

use std::fmt;

use serde::Serialize;

/// Longest topic or filter MQTT can carry (a two-byte length prefix).
pub const MAX_TOPIC_BYTES: usize = 65_535;
/// Most topic levels Event Grid accepts in a topic or filter.
pub const EVENT_GRID_MAX_LEVELS: usize = 8;
/// Longest topic Event Grid accepts, in bytes.
pub const EVENT_GRID_MAX_TOPIC_BYTES: usize = 256;

/// Why a string is not a valid topic name or filter. The `Display` text completes the
/// sentence "invalid topic filter `x`: ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The string is empty.
    #[error("it is empty")]
    Empty,
    /// The string contains U+0000.
    #[error("it contains a NUL character")]
    Nul,
    /// The string is longer than [`MAX_TOPIC_BYTES`].
    #[error("it is {0} bytes long; MQTT allows at most 65535")]
    TooLong(usize),
    /// `#` is not the whole last level.
    #[error("`#` must be the last level and stand alone in it")]
    MultiLevelWildcard,
    /// `+` shares its level with other characters.
    #[error("`+` must stand alone in its level")]
    SingleLevelWildcard,
    /// A topic name contains `+` or `#`.
    #[error("a topic name cannot contain `+` or `#`")]
    Wildcard,
}

/// A syntactically valid MQTT topic filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TopicFilter(String);

impl TopicFilter {
    /// Checks `filter` against MQTT v5 §4.7.
    ///
    /// # Errors
    ///
    /// The first rule `filter` breaks.
    pub fn parse(filter: &str) -> Result<Self, TopicError> {
        check_common(filter)?;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level.contains('#') && (level != "#" || levels.peek().is_some()) {
                return Err(TopicError::MultiLevelWildcard);
            }
            if level.contains('+') && level != "+" {
                return Err(TopicError::SingleLevelWildcard);
            }
        }
        Ok(TopicFilter(filter.to_owned()))
    }

    /// The filter text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Number of topic levels.
    pub fn level_count(&self) -> usize {
        self.0.split('/').count()
    }

    /// Whether the filter contains `+` or `#`.
    pub fn has_wildcards(&self) -> bool {
        self.0.contains(['+', '#'])
    }

    /// Whether the filter is a shared subscription (`$share/...`).
    pub fn is_shared(&self) -> bool {
        self.0.starts_with("$share/") || self.0 == "$share"
    }

    /// Whether `topic` (a topic name) matches this filter.
    pub fn matches(&self, topic: &str) -> bool {
        !topic.contains(['+', '#']) && levels_overlap(&self.0, topic)
    }

    /// Whether some topic name matches both filters.
    pub fn overlaps(&self, other: &TopicFilter) -> bool {
        levels_overlap(&self.0, &other.0)
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a topic name (no wildcards) against MQTT v5 §4.7.
///
/// # Errors
///
/// The first rule `topic` breaks.
pub fn check_topic_name(topic: &str) -> Result<(), TopicError> {
    check_common(topic)?;
    if topic.contains(['+', '#']) {
        return Err(TopicError::Wildcard);
    }
    Ok(())
}

fn check_common(text: &str) -> Result<(), TopicError> {
    if text.is_empty() {
        Err(TopicError::Empty)
    } else if text.contains('\0') {
        Err(TopicError::Nul)
    } else if text.len() > MAX_TOPIC_BYTES {
        Err(TopicError::TooLong(text.len()))
    } else {
        Ok(())
    }
}

/// Whether one topic can match both filters (a topic name is a filter without wildcards).
fn levels_overlap(a: &str, b: &str) -> bool {
    let wildcard = |level: &str| level == "+" || level == "#";
    let mut a_levels = a.split('/');
    let mut b_levels = b.split('/');
    // §4.7.2: a leading wildcard never matches a `$` topic.
    let (a_first, b_first) = (a_levels.next(), b_levels.next());
    if let (Some(x), Some(y)) = (a_first, b_first)
        && ((x.starts_with('$') && wildcard(y)) || (y.starts_with('$') && wildcard(x)))
    {
        return false;
    }
    let mut pair = (a_first, b_first);
    loop {
        match pair {
            (Some("#"), _) | (_, Some("#")) | (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(x), Some(y)) => {
                if x != "+" && y != "+" && x != y {
                    return false;
                }
            }
        }
        pair = (a_levels.next(), b_levels.next());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(text: &str) -> TopicFilter {
        TopicFilter::parse(text).unwrap()
    }

    #[test]
    fn valid_filters_parse() {
        for text in [
            "#", "+", "a/+/c", "a/#", "+/+", "/", "a//b", "$SYS/#", "a/b/",
        ] {
            assert!(TopicFilter::parse(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn invalid_filters_name_the_rule() {
        let cases = [
            ("", TopicError::Empty),
            ("a\0b", TopicError::Nul),
            ("a/#/b", TopicError::MultiLevelWildcard),
            ("a#", TopicError::MultiLevelWildcard),
            ("a/b#", TopicError::MultiLevelWildcard),
            ("a+/b", TopicError::SingleLevelWildcard),
            ("a/+b", TopicError::SingleLevelWildcard),
        ];
        for (text, expected) in cases {
            assert_eq!(TopicFilter::parse(text), Err(expected), "{text:?}");
        }
        let long = "a".repeat(MAX_TOPIC_BYTES + 1);
        assert_eq!(
            TopicFilter::parse(&long),
            Err(TopicError::TooLong(MAX_TOPIC_BYTES + 1))
        );
        assert!(TopicFilter::parse(&"a".repeat(MAX_TOPIC_BYTES)).is_ok());
    }

    #[test]
    fn topic_names_reject_wildcards() {
        assert_eq!(check_topic_name("a/+"), Err(TopicError::Wildcard));
        assert_eq!(check_topic_name("a/#"), Err(TopicError::Wildcard));
        assert_eq!(check_topic_name(""), Err(TopicError::Empty));
        assert_eq!(check_topic_name("factory/telemetry/alert"), Ok(()));
    }

    #[test]
    fn matching_follows_the_standard() {
        let yes = [
            ("a/#", "a"),
            ("a/#", "a/b/c"),
            ("#", "a/b"),
            ("a/+/c", "a/b/c"),
            ("+", "a"),
            ("+/+", "/x"),
            ("$SYS/#", "$SYS/uptime"),
            ("a/b", "a/b"),
        ];
        for (f, t) in yes {
            assert!(filter(f).matches(t), "{f} should match {t}");
        }
        let no = [
            ("a/+", "a"),
            ("a/+", "a/b/c"),
            ("#", "$SYS/uptime"),
            ("+/uptime", "$SYS/uptime"),
            ("a/b", "a/c"),
            ("a/b", "a/b/c"),
            ("a/#", "a/+"),
        ];
        for (f, t) in no {
            assert!(!filter(f).matches(t), "{f} should not match {t}");
        }
    }

    #[test]
    fn overlap_is_symmetric_and_exact() {
        let yes = [
            ("factory/telemetry/#", "factory/telemetry/anomaly/#"),
            ("a/+/c", "a/b/+"),
            ("a/#", "a"),
            ("#", "x/y"),
            ("+/b", "a/+"),
        ];
        for (x, y) in yes {
            assert!(filter(x).overlaps(&filter(y)), "{x} ~ {y}");
            assert!(filter(y).overlaps(&filter(x)), "{y} ~ {x}");
        }
        let no = [
            ("command/#", "factory/#"),
            ("a/+", "a"),
            ("a/+/c", "a/b/d"),
            ("#", "$SYS/#"),
            ("a/b", "a/b/c"),
        ];
        for (x, y) in no {
            assert!(!filter(x).overlaps(&filter(y)), "{x} !~ {y}");
            assert!(!filter(y).overlaps(&filter(x)), "{y} !~ {x}");
        }
    }
}
