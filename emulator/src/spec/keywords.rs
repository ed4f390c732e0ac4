//! The leaf keywords of a schema: `minLength`, `maxLength` and `pattern` on strings,
//! `format: int32`, `minimum` and `maximum` on numbers, `enum` (answered in canonical case), and
//! the messages of type mismatches.

use serde_json::Value;

use super::names::CharClass;
use super::{SchemaViolation, violation};

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

pub(super) fn type_error(path: &str, expected: &str, value: &Value) -> SchemaViolation {
    let found = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    violation(path, format!("must be {expected}, not {found}"))
}

pub(super) fn check_string(schema: &Value, text: &str, path: &str) -> Result<(), SchemaViolation> {
    let len = text.chars().count() as u64;
    if let Some(min) = schema
        .get("minLength")
        .and_then(Value::as_u64)
        .filter(|m| len < *m)
    {
        return Err(violation(
            path,
            format!("must be at least {min} characters long"),
        ));
    }
    if let Some(max) = schema
        .get("maxLength")
        .and_then(Value::as_u64)
        .filter(|m| len > *m)
    {
        return Err(violation(
            path,
            format!("must be at most {max} characters long"),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match CharClass::parse(pattern) {
            Some(class) if !text.chars().all(|c| class.contains(c)) => {
                return Err(violation(path, format!("must match {pattern}")));
            }
            Some(_) => {}
            None => tracing::debug!(pattern, "pattern form not supported; not checked"),
        }
    }
    Ok(())
}

pub(super) fn check_number(
    schema: &Value,
    value: &Value,
    path: &str,
) -> Result<(), SchemaViolation> {
    let n = value.as_f64().unwrap_or_default();
    if schema.get("format").and_then(Value::as_str) == Some("int32")
        && value.as_i64().is_none_or(|i| i32::try_from(i).is_err())
    {
        return Err(violation(path, "must fit in a 32-bit integer"));
    }
    if let Some(min) = schema
        .get("minimum")
        .and_then(Value::as_f64)
        .filter(|m| n < *m)
    {
        return Err(violation(path, format!("must be at least {min}")));
    }
    if let Some(max) = schema
        .get("maximum")
        .and_then(Value::as_f64)
        .filter(|m| n > *m)
    {
        return Err(violation(path, format!("must be at most {max}")));
    }
    Ok(())
}

pub(super) fn canonical_enum(
    allowed: &[Value],
    value: Value,
    path: &str,
) -> Result<Value, SchemaViolation> {
    let found = allowed.iter().find(|candidate| match (candidate, &value) {
        (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
        (a, b) => *a == b,
    });
    match found {
        Some(canonical) => Ok(canonical.clone()),
        None => {
            let names: Vec<String> = allowed.iter().map(Value::to_string).collect();
            Err(violation(
                path,
                format!("{value} is not one of {}", names.join(", ")),
            ))
        }
    }
}
