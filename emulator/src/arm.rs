//! ARM error bodies: `{"error":{"code":"…","message":"…","target":"…"}}` with their HTTP status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The `error.code` values the emulator sends. ARM-level codes are ARM's own; the Event Grid
/// resource provider names its codes after the HTTP status (`BadRequest`, `Conflict`).
pub(crate) mod code {
    /// 401: no usable `Authorization: Bearer` header.
    pub(crate) const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    /// 401: a bearer token other than the configured one.
    pub(crate) const INVALID_TOKEN: &str = "InvalidAuthenticationToken";
    /// 400: no `api-version` query parameter.
    pub(crate) const MISSING_API_VERSION: &str = "MissingApiVersionParameter";
    /// 400: an `api-version` that is not a date (`YYYY-MM-DD[-suffix]`).
    pub(crate) const INVALID_API_VERSION: &str = "InvalidApiVersionParameter";
    /// 400: a well-formed `api-version` the provider does not serve.
    pub(crate) const NO_REGISTERED_PROVIDER: &str = "NoRegisteredProviderFound";
    /// 400: a body that is not JSON or does not match the OpenAPI schema.
    pub(crate) const INVALID_REQUEST_CONTENT: &str = "InvalidRequestContent";
    /// 400: a semantically invalid request (name, rule, quota, reference).
    pub(crate) const BAD_REQUEST: &str = "BadRequest";
    /// 409: a conflict with existing state (duplicate, in-use, wrong provisioning state).
    pub(crate) const CONFLICT: &str = "Conflict";
    /// 409: a write while another operation on the same resource is in progress.
    pub(crate) const ANOTHER_OPERATION: &str = "AnotherOperationInProgress";
    /// 409: a PUT that changes the location of an existing resource.
    pub(crate) const INVALID_LOCATION: &str = "InvalidResourceLocation";
    /// 404: the resource does not exist.
    pub(crate) const RESOURCE_NOT_FOUND: &str = "ResourceNotFound";
    /// 404: the parent namespace of a child resource does not exist.
    pub(crate) const PARENT_NOT_FOUND: &str = "ParentResourceNotFound";
    /// 404: no route (unknown path or resource type).
    pub(crate) const NOT_FOUND: &str = "NotFound";
    /// 405: a method the resource type does not support.
    pub(crate) const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";
    /// 429: injected throttling.
    pub(crate) const THROTTLED: &str = "TooManyRequests";
    /// 503: injected unavailability.
    pub(crate) const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
    /// 500: injected or real internal failure.
    pub(crate) const INTERNAL: &str = "InternalServerError";
}

/// A rejected request, rendered as an ARM error response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ArmError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) target: Option<String>,
    pub(crate) retry_after: Option<u64>,
}

impl ArmError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            target: None,
            retry_after: None,
        }
    }

    /// 400 `BadRequest`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code::BAD_REQUEST, message)
    }

    /// 400 `InvalidRequestContent`.
    pub(crate) fn invalid_content(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST_CONTENT,
            message,
        )
    }

    /// 409 `Conflict`.
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code::CONFLICT, message)
    }

    /// 500 `InternalServerError`.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL, message)
    }

    /// Names the offending property (a dotted JSON path) or parameter.
    #[must_use]
    pub(crate) fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Adds a `Retry-After` header.
    #[must_use]
    pub(crate) fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> serde_json::Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(target) = &self.target {
            error["target"] = json!(target);
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\"",
                ),
            );
        }
        response
    }
}
