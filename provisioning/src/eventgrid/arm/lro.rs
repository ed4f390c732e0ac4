//! Long-running operations: how a write's answer says it is still running
//! (`Azure-AsyncOperation`, `Location`, a non-terminal `provisioningState`), polling until it
//! ends, and what each kind of monitor answer means.

use std::time::Duration;

use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::ArmClient;
use super::reply::{Reply, error_fields, malformed};
use super::transport::Purpose;
use crate::{Error, Result};

const AZURE_ASYNC_OPERATION: &str = "azure-asyncoperation";

/// How a write's long-running operation ended.
pub(super) enum Finished {
    /// Polling ended: the resource has to be read again.
    Polled,
    /// The answer (or the last poll) holds the final resource.
    Resource(Value),
}

impl ArmClient {
    /// Waits for the long-running operation a write's `reply` started. `answer` is the write's
    /// body (PUT, PATCH), whose `provisioningState` is the last resort.
    pub(super) async fn wait(
        &self,
        method: &Method,
        resource_id: &str,
        api_version: &str,
        reply: &Reply,
        answer: Option<Value>,
    ) -> Result<Finished> {
        let deadline = Instant::now() + self.config.operation_timeout;
        let first = self.poll_delay(reply);
        if let Some(link) = reply.header(AZURE_ASYNC_OPERATION) {
            let url = self.link(link, method, resource_id)?;
            self.poll(resource_id, url, first, deadline, |r| {
                operation_status(r, resource_id)
            })
            .await?;
            return Ok(Finished::Polled);
        }
        if matches!(reply.status, StatusCode::CREATED | StatusCode::ACCEPTED)
            && let Some(link) = reply.header(LOCATION.as_str())
        {
            let url = self.link(link, method, resource_id)?;
            self.poll(resource_id, url, first, deadline, |r| {
                location_status(r, resource_id)
            })
            .await?;
            return Ok(Finished::Polled);
        }
        let Some(answer) = answer.filter(Value::is_object) else {
            return Ok(Finished::Polled);
        };
        match State::of(&answer) {
            State::Succeeded => Ok(Finished::Resource(answer)),
            State::Failed(status) => Err(state_failure(resource_id, status)),
            State::Running => {
                let url = self.resource_url(resource_id, api_version)?;
                self.poll(resource_id, url, first, deadline, |r| {
                    resource_state(r, resource_id)
                })
                .await
                .map(Finished::Resource)
            }
        }
    }

    /// GETs `url` until `check` tells the operation is over, waiting between polls.
    async fn poll<T>(
        &self,
        resource_id: &str,
        url: Url,
        first_delay: Duration,
        deadline: Instant,
        check: impl Fn(&Reply) -> Result<Option<T>>,
    ) -> Result<T> {
        let mut delay = first_delay;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Error::OperationTimeout {
                    resource: resource_id.to_owned(),
                    timeout: self.config.operation_timeout,
                });
            }
            self.sleep(delay.min(remaining)).await?;
            let reply = self
                .send(&Method::GET, url.clone(), resource_id, None, Purpose::Poll)
                .await?;
            if let Some(done) = check(&reply)? {
                return Ok(done);
            }
            delay = self.poll_delay(&reply);
        }
    }

    /// The wait before the next poll after `reply`.
    fn poll_delay(&self, reply: &Reply) -> Duration {
        let config = &self.config;
        reply
            .retry_after()
            .map_or(config.poll_interval, |wait| {
                wait.min(config.max_retry_after)
            })
            .max(config.min_poll_interval)
    }
}

/// `provisioningState` read as an operation outcome.
#[derive(Debug, PartialEq, Eq)]
enum State<'a> {
    /// `Succeeded`, or no state at all.
    Succeeded,
    /// `Failed`, `Canceled`, or a `…Failed` state (`CreateFailed`, `UpdatedFailed`, …).
    Failed(&'a str),
    /// Anything else: `Creating`, `Updating`, `Deleting`, `Accepted`, `InProgress`, …
    Running,
}

impl<'a> State<'a> {
    fn of(resource: &'a Value) -> Self {
        match resource
            .pointer("/properties/provisioningState")
            .and_then(Value::as_str)
        {
            None => Self::Succeeded,
            Some(state) => Self::parse(state),
        }
    }

    fn parse(state: &'a str) -> Self {
        let lower = state.to_ascii_lowercase();
        if lower == "succeeded" {
            Self::Succeeded
        } else if matches!(lower.as_str(), "canceled" | "cancelled") || lower.ends_with("failed") {
            Self::Failed(state)
        } else {
            Self::Running
        }
    }
}

/// The check of an `Azure-AsyncOperation` status monitor answer.
fn operation_status(reply: &Reply, resource: &str) -> Result<Option<()>> {
    let body = reply.success(&Method::GET, resource)?;
    let Some(status) = body.get("status").and_then(Value::as_str) else {
        return Err(malformed(
            &Method::GET,
            resource,
            "the operation status has no `status`",
        ));
    };
    match State::parse(status) {
        State::Succeeded => Ok(Some(())),
        State::Running => Ok(None),
        State::Failed(status) => {
            let (code, message) = body.get("error").map(error_fields).unwrap_or_default();
            Err(Error::Operation {
                resource: resource.to_owned(),
                status: status.to_owned(),
                code,
                message: message.unwrap_or_else(|| "no error details were given".into()),
            })
        }
    }
}

/// The check of a `Location` monitor answer: 202 while running, another 2xx when done.
fn location_status(reply: &Reply, resource: &str) -> Result<Option<()>> {
    if reply.status == StatusCode::ACCEPTED {
        return Ok(None);
    }
    reply.success(&Method::GET, resource).map(|_| Some(()))
}

/// The check of a resource GET while its `provisioningState` is not terminal.
fn resource_state(reply: &Reply, resource: &str) -> Result<Option<Value>> {
    let body = reply.success(&Method::GET, resource)?;
    match State::of(&body) {
        State::Succeeded => Ok(Some(body)),
        State::Running => Ok(None),
        State::Failed(status) => Err(state_failure(resource, status)),
    }
}

fn state_failure(resource: &str, status: &str) -> Error {
    Error::Operation {
        resource: resource.to_owned(),
        status: status.to_owned(),
        code: None,
        message: format!("the resource's provisioningState is {status}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::ArmConfig;
    use super::super::tests::{client, reply};
    use super::*;

    #[test]
    fn provisioning_states() {
        assert_eq!(State::parse("Succeeded"), State::Succeeded);
        assert_eq!(State::parse("creating"), State::Running);
        assert_eq!(State::parse("InProgress"), State::Running);
        assert_eq!(State::parse("Canceled"), State::Failed("Canceled"));
        assert_eq!(
            State::parse("UpdatedFailed"),
            State::Failed("UpdatedFailed")
        );
        assert_eq!(State::of(&json!({"properties": {}})), State::Succeeded);
    }

    #[test]
    fn operation_status_outcomes() {
        let done = reply(200, &[], r#"{"status":"Succeeded"}"#);
        assert_eq!(operation_status(&done, "/r").unwrap(), Some(()));
        let running = reply(200, &[], r#"{"status":"InProgress"}"#);
        assert_eq!(operation_status(&running, "/r").unwrap(), None);
        let failed = reply(
            200,
            &[],
            r#"{"status":"Failed","error":{"code":"Boom","message":"it broke"}}"#,
        );
        match operation_status(&failed, "/r") {
            Err(Error::Operation {
                status,
                code,
                message,
                ..
            }) => {
                assert_eq!(status, "Failed");
                assert_eq!(code.as_deref(), Some("Boom"));
                assert_eq!(message, "it broke");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            operation_status(&reply(200, &[], "{}"), "/r"),
            Err(Error::Transport { .. })
        ));
    }

    #[test]
    fn poll_delay_is_clamped() {
        let arm = client(ArmConfig {
            poll_interval: Duration::from_millis(40),
            min_poll_interval: Duration::from_millis(10),
            max_retry_after: Duration::from_secs(2),
            ..ArmConfig::default()
        });
        let delay = |headers: &[(&'static str, &str)]| arm.poll_delay(&reply(200, headers, ""));
        assert_eq!(delay(&[]), Duration::from_millis(40));
        assert_eq!(delay(&[("retry-after", "0")]), Duration::from_millis(10));
        assert_eq!(delay(&[("retry-after", "60")]), Duration::from_secs(2));
    }
}
