//! Long-running operations: starting one for an accepted write, settling those whose delay has
//! passed (or that a previous run left open), the write's answer with its monitor headers
//! (`Azure-AsyncOperation`, `Location`, `Retry-After`), and the monitors' own answers.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::ResourceKind;
use crate::arm::{ArmError, code};
use crate::route::{OPERATION_RESULT_SEGMENT, OPERATION_STATUS_SEGMENT};
use crate::rules;
use crate::store::{State, provisioning_state, set_provisioning_state, timestamp};

use super::role_assignments;
use super::{App, Ctx, Inner, Reply};

/// `provisioningState` values the emulator uses.
pub(super) mod provisioning {
    pub(in crate::service) const CREATING: &str = "Creating";
    pub(in crate::service) const UPDATING: &str = "Updating";
    pub(in crate::service) const DELETING: &str = "Deleting";
    pub(in crate::service) const SUCCEEDED: &str = "Succeeded";
    pub(in crate::service) const FAILED: &str = "Failed";
}

/// Header names ARM uses for long-running operations.
const AZURE_ASYNC_OPERATION: &str = "azure-asyncoperation";

/// What a long-running operation is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Target {
    Namespace(String),
    Child(String, ResourceKind, String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Action {
    Create,
    Update,
    Delete,
}

#[derive(Clone, Debug)]
pub(super) struct Operation {
    target: Target,
    action: Action,
    subscription: String,
    region: String,
    api_version: String,
    started: OffsetDateTime,
    due: Instant,
    fails: bool,
    finished: Option<OffsetDateTime>,
}

impl App {
    /// Completes the operations whose delay has passed; tells whether anything changed.
    pub(super) fn settle(&self, inner: &mut Inner) -> bool {
        let now = Instant::now();
        let due: Vec<String> = inner
            .operations
            .iter()
            .filter(|(_, op)| op.finished.is_none() && op.due <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &due {
            if let Some(op) = inner.operations.get_mut(id) {
                op.finished = Some(OffsetDateTime::now_utc());
                let (target, action, fails) = (op.target.clone(), op.action, op.fails);
                self.finish(&mut inner.state, &target, action, !fails);
            }
        }
        !due.is_empty()
    }

    /// Applies the end of an operation to the resource it targets.
    pub(super) fn finish(&self, state: &mut State, target: &Target, action: Action, success: bool) {
        if action == Action::Delete && success {
            match target {
                Target::Namespace(ns) => {
                    state.namespaces.remove(ns);
                }
                Target::Child(ns, kind, name) => {
                    if let Some(entry) = state.namespaces.get_mut(ns) {
                        if let Some(children) = entry.children.get_mut(kind) {
                            children.remove(name);
                        }
                        if *kind == ResourceKind::TopicSpace {
                            role_assignments::drop_scope(entry, name);
                        }
                    }
                }
            }
            return;
        }
        let Some(doc) = find_doc_mut(state, target) else {
            return;
        };
        let outcome = if success {
            provisioning::SUCCEEDED
        } else {
            provisioning::FAILED
        };
        set_provisioning_state(doc, outcome);
        if matches!(target, Target::Namespace(_)) {
            self.set_hostnames(doc);
        }
    }

    /// Starts an operation on `target` and settles it at once when there is no delay.
    fn start_operation(
        &self,
        inner: &mut Inner,
        ctx: &Ctx<'_>,
        target: Target,
        action: Action,
    ) -> (String, Operation) {
        let ns_key = match &target {
            Target::Namespace(ns) | Target::Child(ns, _, _) => ns,
        };
        let subscription = ns_key.split('/').next().unwrap_or_default().to_owned();
        let region = inner
            .state
            .namespaces
            .get(ns_key)
            .map(|entry| rules::region_of(&entry.doc))
            .unwrap_or_default();
        let fails = self.config.faults.rate_lro_failure > 0.0
            && inner.rng.unit() < self.config.faults.rate_lro_failure;
        let op = Operation {
            target,
            action,
            subscription,
            region,
            api_version: ctx.api_version.clone(),
            started: OffsetDateTime::now_utc(),
            due: Instant::now() + self.config.lro_delay,
            fails,
            finished: None,
        };
        let id = uuid::Uuid::new_v4().to_string();
        inner.operations.insert(id.clone(), op.clone());
        if self.config.lro_delay.is_zero() {
            self.settle(inner);
        }
        (id, op)
    }

    /// Starts the operation of an accepted write, saves the state and answers `status` with the
    /// resource as it is now (no body for a delete).
    pub(super) fn commit(
        &self,
        inner: &mut Inner,
        ctx: &Ctx<'_>,
        target: Target,
        action: Action,
        status: StatusCode,
    ) -> Reply {
        let (id, op) = self.start_operation(inner, ctx, target.clone(), action);
        self.persist(&inner.state)?;
        let current = match action {
            Action::Delete => None,
            Action::Create | Action::Update => find_doc(&inner.state, &target).cloned(),
        };
        Ok(self.accepted(ctx, status, current.as_ref(), &id, &op))
    }

    pub(super) fn busy(inner: &Inner, target: &Target) -> bool {
        inner
            .operations
            .values()
            .any(|op| op.finished.is_none() && op.target == *target)
    }

    fn operation_url(ctx: &Ctx<'_>, op: &Operation, segment: &str, id: &str) -> String {
        format!(
            "{}/subscriptions/{}/providers/Microsoft.EventGrid/locations/{}/{segment}/{id}?api-version={}",
            ctx.base, op.subscription, op.region, op.api_version
        )
    }

    /// A write's answer: `status`, the body, and the monitor headers.
    fn accepted(
        &self,
        ctx: &Ctx<'_>,
        status: StatusCode,
        body: Option<&Value>,
        id: &str,
        op: &Operation,
    ) -> Response {
        let mut response = match body {
            Some(body) => (status, axum::Json(body.clone())).into_response(),
            None => status.into_response(),
        };
        let headers = response.headers_mut();
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        };
        set(
            AZURE_ASYNC_OPERATION,
            Self::operation_url(ctx, op, OPERATION_STATUS_SEGMENT, id),
        );
        // Like the real service, the 202 answers also name a Location monitor.
        if status == StatusCode::ACCEPTED {
            set(
                "location",
                Self::operation_url(ctx, op, OPERATION_RESULT_SEGMENT, id),
            );
        }
        set("retry-after", self.config.lro_retry_after_secs.to_string());
        response
    }

    pub(super) fn operation_status(&self, inner: &Inner, ctx: &Ctx<'_>, id: &str) -> Reply {
        let op = find_operation(inner, id)?;
        let status = match (op.finished, op.fails) {
            (None, _) => "InProgress",
            (Some(_), false) => "Succeeded",
            (Some(_), true) => "Failed",
        };
        let url = Self::operation_url(ctx, op, OPERATION_STATUS_SEGMENT, id);
        let mut body = json!({
            "id": url.split('?').next().unwrap_or_default().trim_start_matches(&ctx.base),
            "name": id,
            "status": status,
            "startTime": timestamp(op.started),
        });
        if let Some(end) = op.finished {
            body["endTime"] = json!(timestamp(end));
        }
        if op.fails && op.finished.is_some() {
            body["error"] = failure(op).body()["error"].clone();
        }
        Ok((StatusCode::OK, axum::Json(body)).into_response())
    }

    pub(super) fn operation_result(&self, inner: &Inner, ctx: &Ctx<'_>, id: &str) -> Reply {
        let op = find_operation(inner, id)?;
        if op.finished.is_none() {
            return Ok(self.accepted(ctx, StatusCode::ACCEPTED, None, id, op));
        }
        if op.fails {
            return Err(failure(op));
        }
        match (op.action, find_doc(&inner.state, &op.target)) {
            (Action::Delete, _) | (_, None) => Ok(StatusCode::NO_CONTENT.into_response()),
            (_, Some(doc)) => Ok((StatusCode::OK, axum::Json(doc.clone())).into_response()),
        }
    }
}

/// The action a stored document's non-terminal `provisioningState` stands for.
pub(super) fn open_action(doc: &Value) -> Option<Action> {
    match provisioning_state(doc) {
        provisioning::CREATING => Some(Action::Create),
        provisioning::UPDATING => Some(Action::Update),
        provisioning::DELETING => Some(Action::Delete),
        _ => None,
    }
}

fn find_doc<'a>(state: &'a State, target: &Target) -> Option<&'a Value> {
    match target {
        Target::Namespace(ns) => state.namespaces.get(ns).map(|e| &e.doc),
        Target::Child(ns, kind, name) => state.namespaces.get(ns)?.children.get(kind)?.get(name),
    }
}

pub(super) fn find_doc_mut<'a>(state: &'a mut State, target: &Target) -> Option<&'a mut Value> {
    match target {
        Target::Namespace(ns) => state.namespaces.get_mut(ns).map(|e| &mut e.doc),
        Target::Child(ns, kind, name) => state
            .namespaces
            .get_mut(ns)?
            .children
            .get_mut(kind)?
            .get_mut(name),
    }
}

fn find_operation<'a>(inner: &'a Inner, id: &str) -> Result<&'a Operation, ArmError> {
    inner.operations.get(id).ok_or_else(|| {
        ArmError::new(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            format!("Operation '{id}' was not found."),
        )
    })
}

fn failure(op: &Operation) -> ArmError {
    let verb = match op.action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Delete => "delete",
    };
    ArmError::internal(format!(
        "The {verb} operation failed (injected by the emulator)."
    ))
}

pub(super) fn another_operation(kind: ResourceKind, name: &str) -> ArmError {
    ArmError::new(
        StatusCode::CONFLICT,
        code::ANOTHER_OPERATION,
        format!(
            "Another operation on the {} '{name}' is in progress.",
            kind.label()
        ),
    )
}
