//! One HTTP answer read whole, and its meaning: the `Retry-After` it asks for, its JSON body,
//! or the [`Error`] it stands for (HTTP status, ARM error code and message, or an excerpt of a
//! non-JSON body).

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use time::OffsetDateTime;

use crate::{Error, Result};

/// Millisecond variants of `Retry-After` that some Azure services send; they take precedence.
const RETRY_AFTER_MS: [&str; 2] = ["retry-after-ms", "x-ms-retry-after-ms"];
/// How much of a non-JSON error body goes into an error message.
const EXCERPT_CHARS: usize = 200;

/// One HTTP answer, read whole.
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
}

impl Reply {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }

    pub(super) fn retry_after(&self) -> Option<Duration> {
        let millis = RETRY_AFTER_MS
            .iter()
            .find_map(|name| self.header(name)?.parse::<u64>().ok());
        match millis {
            Some(ms) => Some(Duration::from_millis(ms)),
            None => parse_retry_after(
                self.header(RETRY_AFTER.as_str())?,
                OffsetDateTime::now_utc(),
            ),
        }
    }

    /// The JSON body of a 2xx answer (`Null` when empty), or the error the answer stands for.
    pub(super) fn success(&self, method: &Method, resource: &str) -> Result<Value> {
        if !self.status.is_success() {
            return Err(self.error(method, resource));
        }
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            malformed(
                method,
                resource,
                &format!("the answer is not valid JSON: {e}"),
            )
        })
    }

    /// [`Error::Arm`] from the status and the ARM error body (or an excerpt of another body).
    pub(super) fn error(&self, method: &Method, resource: &str) -> Error {
        let json = serde_json::from_slice::<Value>(&self.body).ok();
        let (code, message) = json.as_ref().map(error_fields).unwrap_or_default();
        let message = message.unwrap_or_else(|| {
            excerpt(&self.body).unwrap_or_else(|| {
                let reason = self.status.canonical_reason().unwrap_or("error");
                format!("{reason} (empty body)")
            })
        });
        Error::Arm {
            method: method.to_string(),
            resource: resource.to_owned(),
            status: self.status.as_u16(),
            code,
            message,
        }
    }
}

/// `code` and `message` of an ARM error: `{"error": {...}}`, or the object itself.
pub(super) fn error_fields(value: &Value) -> (Option<String>, Option<String>) {
    let error = value
        .get("error")
        .filter(|e| e.is_object())
        .unwrap_or(value);
    let field = |name: &str| {
        error
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    (field("code"), field("message"))
}

/// The start of a body as one line, or `None` when it is blank.
fn excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return None;
    }
    let line = words.join(" ");
    Some(match line.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line,
    })
}

pub(super) fn malformed(method: &Method, resource: &str, reason: &str) -> Error {
    Error::Transport {
        method: method.to_string(),
        resource: resource.to_owned(),
        reason: reason.to_owned(),
    }
}

/// A `Retry-After` value: delay seconds, or an HTTP date (a date in the past means now).
fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let date = azure_core::time::parse_rfc7231(value).ok()?;
    Some(Duration::try_from(date - now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::super::tests::reply;
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = datetime!(2026-03-01 12:00:00 UTC);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after("Sun, 01 Mar 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn retry_after_ms_takes_precedence() {
        let r = reply(429, &[("retry-after", "10"), ("retry-after-ms", "250")], "");
        assert_eq!(r.retry_after(), Some(Duration::from_millis(250)));
        assert_eq!(reply(429, &[], "").retry_after(), None);
    }

    #[test]
    fn arm_error_bodies() {
        let method = Method::PUT;
        let r = reply(
            400,
            &[],
            r#"{"error":{"code":"BadRequest","message":"bad name","target":"name"}}"#,
        );
        match r.error(&method, "/x") {
            Error::Arm {
                status,
                code,
                message,
                method,
                resource,
            } => {
                assert_eq!(
                    (status, method.as_str(), resource.as_str()),
                    (400, "PUT", "/x")
                );
                assert_eq!(code.as_deref(), Some("BadRequest"));
                assert_eq!(message, "bad name");
            }
            other => panic!("{other:?}"),
        }
        let html = format!(
            "<html>\n  <body>Bad   Gateway</body>{}</html>",
            "x".repeat(400)
        );
        match reply(502, &[], &html).error(&method, "/x") {
            Error::Arm { code, message, .. } => {
                assert_eq!(code, None);
                assert!(
                    message.starts_with("<html> <body>Bad Gateway</body>xx"),
                    "{message}"
                );
                assert_eq!(message.chars().count(), EXCERPT_CHARS + 1);
            }
            other => panic!("{other:?}"),
        }
        match reply(503, &[], "").error(&method, "/x") {
            Error::Arm { message, .. } => assert_eq!(message, "Service Unavailable (empty body)"),
            other => panic!("{other:?}"),
        }
        let text = reply(409, &[], r#"{"code":"Conflict","message":"busy"}"#)
            .error(&method, "/x")
            .to_string();
        assert_eq!(text, "PUT /x: HTTP 409 Conflict: busy");
    }
}
