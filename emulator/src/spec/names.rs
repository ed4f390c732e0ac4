//! Resource name rules: each resource type's `minLength`, `maxLength` and `pattern`, read from
//! the path parameter of its PUT operation, and the character classes those patterns use.

use std::collections::HashMap;

use serde_json::Value;

use crate::ResourceKind;

/// The rule a resource name must follow, read from the spec's path parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameRule {
    /// The minimum length in characters.
    pub min_len: usize,
    /// The maximum length in characters.
    pub max_len: usize,
    /// The pattern as written in the spec, e.g. `^[a-zA-Z0-9-]*$`.
    pub pattern: String,
    allowed: CharClass,
}

impl NameRule {
    /// Checks `name`; the error says which rule it breaks.
    pub fn check(&self, name: &str) -> Result<(), String> {
        let len = name.chars().count();
        if len < self.min_len || len > self.max_len {
            return Err(format!(
                "must be between {} and {} characters long (it has {len})",
                self.min_len, self.max_len
            ));
        }
        match name.chars().find(|c| !self.allowed.contains(*c)) {
            Some(c) => Err(format!("contains {c:?}; it must match {}", self.pattern)),
            None => Ok(()),
        }
    }
}

/// A set of characters parsed from a pattern of the form `^[…]*$` (or `+`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CharClass {
    ranges: Vec<(char, char)>,
}

impl CharClass {
    /// Parses `^[…]*$`; any other regex shape is refused (the specs use no other).
    pub(super) fn parse(pattern: &str) -> Option<Self> {
        let body = pattern
            .strip_prefix("^[")?
            .strip_suffix("]*$")
            .or_else(|| pattern.strip_prefix("^[")?.strip_suffix("]+$"))?;
        let mut literals = Vec::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            let literal = if c == '\\' { chars.next()? } else { c };
            literals.push((literal, c == '\\'));
        }
        let mut ranges = Vec::new();
        let mut i = 0;
        while i < literals.len() {
            let (lo, _) = literals[i];
            match (literals.get(i + 1), literals.get(i + 2)) {
                (Some(('-', false)), Some((hi, _))) => {
                    ranges.push((lo, *hi));
                    i += 3;
                }
                _ => {
                    ranges.push((lo, lo));
                    i += 1;
                }
            }
        }
        Some(Self { ranges })
    }

    pub(super) fn contains(&self, c: char) -> bool {
        self.ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c))
    }
}

/// Reads the name rule of every resource kind from the PUT operation's path parameters.
pub(super) fn name_rules(root: &Value) -> Result<HashMap<ResourceKind, NameRule>, String> {
    let paths = root
        .get("paths")
        .and_then(Value::as_object)
        .ok_or("no paths")?;
    let mut rules = HashMap::new();
    for kind in ResourceKind::EVENT_GRID {
        let param = kind.name_parameter();
        let suffix = format!("/{}/{{{param}}}", kind.segment());
        let operation = paths
            .iter()
            .find(|(template, _)| template.ends_with(&suffix))
            .and_then(|(_, item)| item.get("put"))
            .ok_or_else(|| format!("no PUT path ending in {suffix}"))?;
        let parameter = operation
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|p| resolve_parameter(root, p))
            .find(|p| p.get("name").and_then(Value::as_str) == Some(param))
            .ok_or_else(|| format!("no path parameter {param}"))?;
        let number = |key: &str| {
            parameter
                .get(key)
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| format!("{param} has no {key}"))
        };
        let pattern = parameter
            .get("pattern")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{param} has no pattern"))?;
        let allowed = CharClass::parse(pattern)
            .ok_or_else(|| format!("{param}: pattern {pattern} is not of the form ^[…]*$"))?;
        let rule = NameRule {
            min_len: number("minLength")?,
            max_len: number("maxLength")?,
            pattern: pattern.to_owned(),
            allowed,
        };
        rules.insert(kind, rule);
    }
    Ok(rules)
}

fn resolve_parameter<'a>(root: &'a Value, parameter: &'a Value) -> &'a Value {
    parameter
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/parameters/"))
        .and_then(|name| root.get("parameters")?.get(name))
        .unwrap_or(parameter)
}

#[cfg(test)]
mod tests {
    use super::super::Spec;
    use super::*;

    #[test]
    fn char_class_parses_ranges_escapes_and_dashes() {
        let class = CharClass::parse(r"^[-a-zA-Z0-9:\._]*$").unwrap();
        for c in ['-', 'a', 'Z', '5', ':', '.', '_'] {
            assert!(class.contains(c), "{c}");
        }
        assert!(!class.contains('$'));
        assert!(!class.contains('/'));
        assert!(CharClass::parse("^abc$").is_none());
    }

    #[test]
    fn name_rules_come_from_the_spec() {
        for spec in [Spec::stable().unwrap(), Spec::preview().unwrap()] {
            let client = spec.name_rule(ResourceKind::Client).unwrap();
            assert_eq!((client.min_len, client.max_len), (1, 128));
            assert!(client.check("dev:1.a_b").is_ok());
            let ts = spec.name_rule(ResourceKind::TopicSpace).unwrap();
            assert_eq!((ts.min_len, ts.max_len), (3, 50));
            assert!(ts.check("ab").is_err());
            assert!(ts.check("a_b").is_err());
            assert!(
                spec.name_rule(ResourceKind::ClientGroup)
                    .unwrap()
                    .check("$all")
                    .is_err()
            );
        }
    }
}
