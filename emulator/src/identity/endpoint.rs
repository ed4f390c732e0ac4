//! The managed-identity endpoint: App Service's protocol (api-version 2019-08-01), served on
//! the ARM port at [`PATH`].
//!
//! `azure_identity` 1.0's `ManagedIdentityCredential` picks this protocol when both
//! `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set (and `IDENTITY_SERVER_THUMBPRINT` is not).
//! It sends `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<scope without
//! /.default>[&client_id=|&object_id=|&msi_res_id=]` with `X-IDENTITY-HEADER:
//! {IDENTITY_HEADER}` and `Metadata: true`, and reads `access_token` and `expires_on` (Unix
//! seconds as a string) from the JSON answer; a 400 means "the requested identity has not
//! been assigned to this resource". (Its IMDS protocol has the fixed address 169.254.169.254,
//! so it cannot be pointed at a local emulator.)

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Identity, TokenRequest, unix_seconds};
use crate::route::percent_decode;

/// The path of the endpoint on the ARM port (App Service's own is `/msi/token` too).
pub(crate) const PATH: &str = "/msi/token";
/// The one protocol version served.
const API_VERSION: &str = "2019-08-01";
/// The header carrying `IDENTITY_HEADER`.
const SECRET_HEADER: &str = "x-identity-header";

fn refuse(status: StatusCode, error: &str, description: String) -> Response {
    tracing::info!(%status, %error, %description, "identity token request refused");
    let body =
        json!({ "statusCode": status.as_u16(), "error": error, "error_description": description });
    (status, Json(body)).into_response()
}

/// The query parameters, decoded (`+` is a space in a query).
fn parameters(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |text: &str| percent_decode(&text.replace('+', " "));
            (decode(name), decode(value))
        })
        .collect()
}

/// Answers one token request.
pub(crate) fn answer(identity: &Identity, query: Option<&str>, headers: &HeaderMap) -> Response {
    let secret = headers.get(SECRET_HEADER).and_then(|v| v.to_str().ok());
    if secret != Some(identity.config.header_secret.as_str()) {
        let why = if secret.is_some() {
            "X-IDENTITY-HEADER does not hold the emulator's IDENTITY_HEADER value"
        } else {
            "the request has no X-IDENTITY-HEADER (set IDENTITY_HEADER)"
        };
        return refuse(StatusCode::UNAUTHORIZED, "unauthorized", why.into());
    }
    let params = parameters(query);
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if param("api-version") != Some(API_VERSION) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("api-version must be {API_VERSION}"),
        );
    }
    let Some(resource) = param("resource").filter(|r| !r.trim().is_empty()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the resource parameter is missing".into(),
        );
    };
    let config = &identity.config;
    let same = |requested: Option<&str>, ours: &str| {
        requested.is_none_or(|r| r.eq_ignore_ascii_case(ours))
    };
    let resource_id = param("msi_res_id").or(param("mi_res_id"));
    if !same(param("client_id"), &config.client_id)
        || !same(param("object_id"), &config.principal_id)
        || !same(param("principal_id"), &config.principal_id)
        || resource_id.is_some()
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!(
                "the emulator's only identity is client id {} / principal id {}",
                config.client_id, config.principal_id
            ),
        );
    }
    let request =
        TokenRequest::entra(&config.principal_id, resource).lifetime(config.token_lifetime);
    let expires_on = unix_seconds(request.issued_at + request.lifetime);
    match identity.issuer.token(&request) {
        Ok(token) => {
            tracing::debug!(%resource, principal = %config.principal_id, "identity token issued");
            Json(json!({
                "access_token": token,
                "expires_on": expires_on.to_string(),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": config.client_id,
            }))
            .into_response()
        }
        Err(error) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            error.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded() {
        assert_eq!(
            parameters(Some(
                "api-version=2019-08-01&resource=https%3A%2F%2Feventgrid.azure.net&x"
            )),
            [
                ("api-version".to_owned(), API_VERSION.to_owned()),
                (
                    "resource".to_owned(),
                    "https://eventgrid.azure.net".to_owned()
                ),
                ("x".to_owned(), String::new()),
            ]
        );
        assert!(parameters(None).is_empty());
    }
}
