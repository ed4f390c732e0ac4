//! Paged lists: one page of a sorted collection with `$top`, and a `nextLink` whose skip token
//! is the hex-encoded key of the next page's first item.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::arm::ArmError;

use super::{App, Ctx, Reply};

impl App {
    /// One page of `items` (sorted by key): `{"value": [...], "nextLink": "..."}`. The skip token
    /// is the hex-encoded key of the first item of the next page, so paging stays stable while
    /// resources come and go.
    pub(super) fn page(&self, ctx: &Ctx<'_>, items: Vec<(String, Value)>) -> Reply {
        let (query, path) = (ctx.query, &ctx.request.path);
        if query.filter.is_some() {
            return Err(
                ArmError::bad_request("The emulator does not support $filter.")
                    .with_target("$filter"),
            );
        }
        let size = match query.top.as_deref() {
            None => self.config.page_size,
            Some(top) => top
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| {
                    ArmError::bad_request("$top must be an integer between 1 and 100.")
                        .with_target("$top")
                })?,
        };
        let start = match query.skip_token.as_deref() {
            None => None,
            Some(token) => Some(hex_decode(token).ok_or_else(|| {
                ArmError::bad_request("The $skiptoken is invalid.").with_target("$skiptoken")
            })?),
        };
        let mut rest = items
            .into_iter()
            .filter(|(k, _)| start.as_ref().is_none_or(|s| k >= s));
        let value: Vec<Value> = rest.by_ref().take(size).map(|(_, doc)| doc).collect();
        let mut body = json!({ "value": value });
        if let Some((next, _)) = rest.next() {
            let top = query
                .top
                .as_ref()
                .map(|t| format!("&$top={t}"))
                .unwrap_or_default();
            body["nextLink"] = json!(format!(
                "{}{path}?api-version={}{top}&$skiptoken={}",
                ctx.base,
                ctx.api_version,
                hex_encode(&next)
            ));
        }
        Ok((StatusCode::OK, axum::Json(body)).into_response())
    }
}

pub(super) fn hex_encode(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn hex_decode(text: &str) -> Option<String> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_tokens_round_trip() {
        let token = hex_encode("s/rg/ns-1");
        assert_eq!(hex_decode(&token).as_deref(), Some("s/rg/ns-1"));
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(hex_decode("abc"), None);
    }
}
