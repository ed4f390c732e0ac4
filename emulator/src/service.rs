//! Request handling: authentication, api-version, faults, routing and the ARM operations.
//!
//! All state sits behind one `std::sync::Mutex`: every operation is short, synchronous and never
//! holds the lock across an `.await`, so the std mutex is both enough and cheaper than tokio's.
//! Long-running operations complete lazily: each request first settles the operations whose
//! delay has passed, so there is no timer task to shut down.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::arm::{ArmError, code};
use crate::faults::{Fault, Rng};
use crate::identity::{Identity, endpoint};
use crate::route::{
    NamespacePath, OPERATION_RESULT_SEGMENT, OPERATION_STATUS_SEGMENT, Query, Route,
};
use crate::rules::{self, OtherClient};
use crate::spec::{self, Direction, NAMESPACE_UPDATE_DEFINITION, Spec};
use crate::stats::{CapturedRequest, Stats, Verb};
use crate::store::{
    NamespaceEntry, State, key, namespace_id, namespace_key, provisioning_state,
    set_provisioning_state, timestamp,
};
use crate::{EmulatorConfig, EmulatorError, ResourceKind};

/// The `Microsoft.Authorization/roleAssignments` routes.
mod role_assignments;

/// `provisioningState` values the emulator uses.
mod provisioning {
    pub(super) const CREATING: &str = "Creating";
    pub(super) const UPDATING: &str = "Updating";
    pub(super) const DELETING: &str = "Deleting";
    pub(super) const SUCCEEDED: &str = "Succeeded";
    pub(super) const FAILED: &str = "Failed";
}

/// Header names ARM uses for long-running operations.
const AZURE_ASYNC_OPERATION: &str = "azure-asyncoperation";

/// What a long-running operation is about.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Namespace(String),
    Child(String, ResourceKind, String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Create,
    Update,
    Delete,
}

#[derive(Clone, Debug)]
struct Operation {
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

/// What the request carries, already split from axum's types.
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// Per-request facts every operation needs.
struct Ctx<'a> {
    request: &'a Request,
    query: &'a Query,
    spec: &'a Spec,
    api_version: String,
    base: String,
}

struct Inner {
    state: State,
    operations: HashMap<String, Operation>,
    rng: Rng,
    stats: Stats,
    captured: Vec<CapturedRequest>,
}

/// The emulator's shared state and configuration.
pub(crate) struct App {
    config: EmulatorConfig,
    stable: Spec,
    /// The `Microsoft.Authorization` spec that validates role assignment bodies.
    authorization: Spec,
    preview: Spec,
    local_addr: SocketAddr,
    inner: Mutex<Inner>,
    /// Bumped on every change of the state, so the MQTT data plane rebuilds its view only then.
    generation: AtomicU64,
    /// The local token issuer and the managed identity it serves.
    identity: Identity,
}

type Reply = Result<Response, ArmError>;

impl App {
    /// Loads the specs and the state file, and completes operations a previous run left open.
    pub(crate) fn new(
        config: EmulatorConfig,
        local_addr: SocketAddr,
    ) -> Result<Self, EmulatorError> {
        config.validate()?;
        let state = match &config.state_file {
            Some(path) => State::load(path)?,
            None => State::default(),
        };
        let identity = Identity::new(config.identity.clone(), &format!("http://{local_addr}"))?;
        let app = Self {
            identity,
            stable: Spec::stable()?,
            preview: Spec::preview()?,
            authorization: Spec::authorization()?,
            local_addr,
            inner: Mutex::new(Inner {
                state,
                operations: HashMap::new(),
                rng: Rng::new(config.faults.seed),
                stats: Stats::default(),
                captured: Vec::new(),
            }),
            generation: AtomicU64::new(0),
            config,
        };
        app.complete_interrupted()?;
        Ok(app)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not take the emulator down with it; the state stays usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The per-request latency.
    pub(crate) fn latency(&self) -> std::time::Duration {
        self.config.latency
    }

    /// The request counters so far.
    pub(crate) fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// The captured requests so far.
    pub(crate) fn captured(&self) -> Vec<CapturedRequest> {
        self.lock().captured.clone()
    }

    /// Clears counters and captured requests.
    pub(crate) fn reset_stats(&self) {
        let mut inner = self.lock();
        inner.stats = Stats::default();
        inner.captured.clear();
    }

    /// Finishes writes that were in progress when the state was saved by an earlier run.
    fn complete_interrupted(&self) -> Result<(), EmulatorError> {
        let mut inner = self.lock();
        let mut open = Vec::new();
        for (ns_key, entry) in &inner.state.namespaces {
            if let Some(action) = open_action(&entry.doc) {
                open.push((Target::Namespace(ns_key.clone()), action));
            }
            for (kind, children) in &entry.children {
                for (name, doc) in children {
                    if let Some(action) = open_action(doc) {
                        open.push((Target::Child(ns_key.clone(), *kind, name.clone()), action));
                    }
                }
            }
        }
        for (target, action) in &open {
            self.finish(&mut inner.state, target, *action, true);
        }
        if !open.is_empty() {
            self.save(&inner.state)?;
        }
        Ok(())
    }

    /// Completes the operations that are due and hands the state to `f`. The MQTT data plane
    /// reads the state this way: it ticks, so operations finish on time even without requests.
    pub(crate) fn with_settled_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        let mut inner = self.lock();
        if self.settle(&mut inner) {
            // A failed save is logged by `persist`; the data plane goes on with the memory state.
            let _ = self.persist(&inner.state);
        }
        f(&inner.state)
    }

    /// The token issuer and the identity it serves.
    pub(crate) fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Answers a request to the managed-identity endpoint.
    pub(crate) fn identity_request(&self, query: Option<&str>, headers: &HeaderMap) -> Response {
        let response = endpoint::answer(&self.identity, query, headers);
        if response.status().is_success() {
            self.lock().stats.identity_tokens += 1;
        }
        response
    }

    /// Changes the state with `f` and saves it (the data plane picks the change up on its
    /// next sync). For state that has no ARM route here (role assignments).
    pub(crate) fn update_state<R>(
        &self,
        f: impl FnOnce(&mut State) -> R,
    ) -> Result<R, EmulatorError> {
        let mut inner = self.lock();
        let result = f(&mut inner.state);
        self.save(&inner.state)?;
        Ok(result)
    }

    /// A number that changes whenever the state does.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn save(&self, state: &State) -> Result<(), EmulatorError> {
        self.generation.fetch_add(1, Ordering::AcqRel);
        match &self.config.state_file {
            Some(path) => state.save(path),
            None => Ok(()),
        }
    }

    fn persist(&self, state: &State) -> Result<(), ArmError> {
        self.save(state).map_err(|e| {
            tracing::error!(error = %e, "cannot persist emulator state");
            ArmError::internal("The emulator could not persist its state.")
        })
    }

    /// Answers one request.
    pub(crate) fn handle(&self, request: Request) -> Response {
        let route = Route::parse(&request.path);
        let query = Query::parse(request.query.as_deref());
        let mut inner = self.lock();
        record(
            &mut inner,
            &request,
            &route,
            &query,
            self.config.capture_requests,
        );
        self.respond(&mut inner, &request, route, &query)
            .unwrap_or_else(IntoResponse::into_response)
    }

    fn respond(&self, inner: &mut Inner, request: &Request, route: Route, query: &Query) -> Reply {
        self.authorize(&request.headers)?;
        if let Route::RoleAssignments(path) = &route {
            return self.role_assignments(inner, request, query, path);
        }
        let ctx = Ctx {
            request,
            query,
            spec: self.spec_for(query)?,
            api_version: query.api_version.clone().unwrap_or_default(),
            base: self.base_url(&request.headers),
        };
        self.inject_fault(inner)?;
        if self.settle(inner) {
            self.persist(&inner.state)?;
        }
        let method = &request.method;
        match route {
            Route::NamespaceList {
                subscription,
                resource_group,
            } if method == Method::GET => {
                self.list_namespaces(inner, &ctx, &subscription, resource_group.as_deref())
            }
            Route::Namespace(path) => match *method {
                Method::GET => get_namespace(inner, &path),
                Method::PUT => self.put_namespace(inner, &ctx, &path),
                Method::PATCH => self.patch_namespace(inner, &ctx, &path),
                Method::DELETE => self.delete(inner, &ctx, &path, None),
                _ => Err(method_not_allowed(method)),
            },
            Route::ChildList(path, kind) if method == Method::GET => {
                self.list_children(inner, &ctx, &path, kind)
            }
            Route::Child(path, kind, name) => match *method {
                Method::GET => get_child(inner, &path, kind, &name),
                Method::PUT => self.put_child(inner, &ctx, &path, kind, &name),
                Method::DELETE => self.delete(inner, &ctx, &path, Some((kind, &name))),
                _ => Err(method_not_allowed(method)),
            },
            Route::OperationStatus(id) if method == Method::GET => {
                self.operation_status(inner, &ctx, &id)
            }
            Route::OperationResult(id) if method == Method::GET => {
                self.operation_result(inner, &ctx, &id)
            }
            Route::Unknown => Err(ArmError::new(
                StatusCode::NOT_FOUND,
                code::NOT_FOUND,
                format!("The emulator serves no resource at '{}'.", request.path),
            )),
            _ => Err(method_not_allowed(method)),
        }
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ArmError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty());
        let Some(token) = token else {
            return Err(ArmError::new(
                StatusCode::UNAUTHORIZED,
                code::AUTHENTICATION_FAILED,
                "Authentication failed. The 'Authorization' header is missing or is not a bearer token.",
            ));
        };
        match &self.config.token {
            Some(expected) if expected != token => Err(ArmError::new(
                StatusCode::UNAUTHORIZED,
                code::INVALID_TOKEN,
                "The access token is invalid.",
            )),
            _ => Ok(()),
        }
    }

    fn spec_for(&self, query: &Query) -> Result<&Spec, ArmError> {
        let supported = self.config.api_versions.join("', '");
        let Some(version) = query.api_version.as_deref().filter(|v| !v.is_empty()) else {
            return Err(ArmError::new(
                StatusCode::BAD_REQUEST,
                code::MISSING_API_VERSION,
                "The api-version query parameter (?api-version=) is required for all requests.",
            ));
        };
        if self.config.api_versions.iter().any(|v| v == version) {
            return Ok(if spec::is_preview(version) {
                &self.preview
            } else {
                &self.stable
            });
        }
        let (status_code, message) = if looks_like_api_version(version) {
            (
                code::NO_REGISTERED_PROVIDER,
                format!(
                    "No registered resource provider found for API version '{version}' and type 'namespaces'. The supported api-versions are '{supported}'."
                ),
            )
        } else {
            (
                code::INVALID_API_VERSION,
                format!(
                    "The api-version '{version}' is invalid. The supported versions are '{supported}'."
                ),
            )
        };
        Err(ArmError::new(StatusCode::BAD_REQUEST, status_code, message).with_target("api-version"))
    }

    fn base_url(&self, headers: &HeaderMap) -> String {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        match host {
            Some(host) => format!("http://{host}"),
            None => format!("http://{}", self.local_addr),
        }
    }

    fn inject_fault(&self, inner: &mut Inner) -> Result<(), ArmError> {
        let faults = &self.config.faults;
        let Some(fault) = inner.rng.request_fault(faults) else {
            return Ok(());
        };
        match fault {
            Fault::Throttle => inner.stats.throttled += 1,
            Fault::Unavailable | Fault::Internal => inner.stats.server_errors += 1,
        }
        Err(fault.error(faults.retry_after_secs))
    }

    // ---- long-running operations ----

    /// Completes the operations whose delay has passed; tells whether anything changed.
    fn settle(&self, inner: &mut Inner) -> bool {
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
    fn finish(&self, state: &mut State, target: &Target, action: Action, success: bool) {
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
    fn commit(
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

    fn busy(inner: &Inner, target: &Target) -> bool {
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

    fn operation_status(&self, inner: &Inner, ctx: &Ctx<'_>, id: &str) -> Reply {
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

    fn operation_result(&self, inner: &Inner, ctx: &Ctx<'_>, id: &str) -> Reply {
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

    // ---- namespaces ----

    fn list_namespaces(
        &self,
        inner: &Inner,
        ctx: &Ctx<'_>,
        subscription: &str,
        resource_group: Option<&str>,
    ) -> Reply {
        let prefix = match resource_group {
            Some(rg) => key(&format!("{subscription}/{rg}/")),
            None => key(&format!("{subscription}/")),
        };
        let items = inner
            .state
            .namespaces
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, e)| (k.clone(), e.doc.clone()))
            .collect();
        self.page(ctx, items)
    }

    fn put_namespace(&self, inner: &mut Inner, ctx: &Ctx<'_>, path: &NamespacePath) -> Reply {
        check_name(ctx.spec, ResourceKind::Namespace, &path.namespace)?;
        let input = validate_body(ctx, ResourceKind::Namespace.definition())?;
        let ns_key = namespace_key(path);
        let target = Target::Namespace(ns_key.clone());
        if Self::busy(inner, &target) {
            return Err(another_operation(ResourceKind::Namespace, &path.namespace));
        }
        let existing = inner.state.namespaces.get(&ns_key);
        rules::namespace(&input, existing.map(|e| &e.doc))?;
        if existing.is_none() {
            self.check_new_namespace(&inner.state, path, &input)?;
        }
        let (state, action, status) = match existing {
            Some(_) => (provisioning::UPDATING, Action::Update, StatusCode::OK),
            None => (provisioning::CREATING, Action::Create, StatusCode::CREATED),
        };
        let doc = self.namespace_document(path, &input, existing.map(|e| &e.doc), state);
        let entry = inner.state.namespaces.entry(ns_key).or_default();
        entry.input = input;
        entry.doc = doc;
        self.commit(inner, ctx, target, action, status)
    }

    fn check_new_namespace(
        &self,
        state: &State,
        path: &NamespacePath,
        input: &Value,
    ) -> Result<(), ArmError> {
        let region = rules::region_of(input);
        let taken = state.namespaces.values().any(|e| {
            e.doc
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(&path.namespace))
                && rules::region_of(&e.doc) == region
        });
        if taken {
            return Err(ArmError::conflict(format!(
                "Namespace name '{}' is already in use in region '{region}'.",
                path.namespace
            ))
            .with_target("namespaceName"));
        }
        let prefix = key(&format!("{}/", path.subscription));
        let count = state
            .namespaces
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .count();
        check_quota(
            count,
            self.config.quotas.namespaces_per_subscription,
            "namespaces per subscription",
        )
    }

    fn patch_namespace(&self, inner: &mut Inner, ctx: &Ctx<'_>, path: &NamespacePath) -> Reply {
        let patch = validate_body(ctx, NAMESPACE_UPDATE_DEFINITION)?;
        let ns_key = namespace_key(path);
        let target = Target::Namespace(ns_key.clone());
        let entry = inner
            .state
            .namespaces
            .get(&ns_key)
            .ok_or_else(|| not_found(path, None))?;
        if Self::busy(inner, &target) {
            return Err(another_operation(ResourceKind::Namespace, &path.namespace));
        }
        let mut input = entry.input.clone();
        if patch.get("tags").is_some()
            && let Some(obj) = input.as_object_mut()
        {
            // ARM replaces tags as a whole on PATCH.
            obj.remove("tags");
        }
        let input = merge(input, patch);
        rules::namespace(&input, Some(&entry.doc))?;
        let doc = self.namespace_document(path, &input, Some(&entry.doc), provisioning::UPDATING);
        if let Some(entry) = inner.state.namespaces.get_mut(&ns_key) {
            entry.input = input;
            entry.doc = doc;
        }
        self.commit(inner, ctx, target, Action::Update, StatusCode::ACCEPTED)
    }

    /// The namespace resource for a validated `input`, with service defaults and computed fields.
    fn namespace_document(
        &self,
        path: &NamespacePath,
        input: &Value,
        existing: Option<&Value>,
        state: &str,
    ) -> Value {
        let defaults = json!({
            "sku": { "name": "Standard", "capacity": 1 },
            "properties": {
                "publicNetworkAccess": "Enabled",
                "topicSpacesConfiguration": {
                    "state": "Disabled",
                    "maximumSessionExpiryInHours": 1,
                    "maximumClientSessionsPerAuthenticationName": 1
                }
            }
        });
        let mut doc = merge(defaults, input.clone());
        let identity = identity(existing, namespace_id(path), &path.namespace);
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("id".into(), identity.0);
            obj.insert("name".into(), identity.1);
            obj.insert("type".into(), json!(ResourceKind::Namespace.arm_type()));
            obj.insert("systemData".into(), system_data(existing));
        }
        set_provisioning_state(&mut doc, state);
        self.set_hostnames(&mut doc);
        doc
    }

    /// Fills the read-only hostnames; they are `null` while the namespace is being created.
    fn set_hostnames(&self, doc: &mut Value) {
        let creating = provisioning_state(doc) == provisioning::CREATING;
        let name = doc
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let region = rules::region_of(doc);
        let (mqtt, http) = if creating {
            (Value::Null, Value::Null)
        } else {
            (
                json!(
                    self.config
                        .mqtt_hostname
                        .replace("{namespace}", &name)
                        .replace("{region}", &region)
                ),
                json!(format!("{name}.{region}-1.eventgrid.azure.net")),
            )
        };
        let Some(Value::Object(props)) = doc.get_mut("properties") else {
            return;
        };
        for (section, hostname) in [
            ("topicSpacesConfiguration", mqtt),
            ("topicsConfiguration", http),
        ] {
            if let Value::Object(config) = props.entry(section).or_insert_with(|| json!({})) {
                config.insert("hostname".into(), hostname);
            }
        }
    }

    // ---- children ----

    fn list_children(
        &self,
        inner: &Inner,
        ctx: &Ctx<'_>,
        path: &NamespacePath,
        kind: ResourceKind,
    ) -> Reply {
        let entry = inner
            .state
            .namespace(path)
            .ok_or_else(|| parent_not_found(path))?;
        let items = entry
            .of(kind)
            .map(|(k, doc)| (k.clone(), doc.clone()))
            .collect();
        self.page(ctx, items)
    }

    fn put_child(
        &self,
        inner: &mut Inner,
        ctx: &Ctx<'_>,
        path: &NamespacePath,
        kind: ResourceKind,
        name: &str,
    ) -> Reply {
        check_name(ctx.spec, kind, name)?;
        let mut input = validate_body(ctx, kind.definition())?;
        let ns_key = namespace_key(path);
        let entry = inner
            .state
            .namespaces
            .get(&ns_key)
            .ok_or_else(|| parent_not_found(path))?;
        let ns_state = provisioning_state(&entry.doc);
        if ns_state != provisioning::SUCCEEDED {
            return Err(ArmError::conflict(format!(
                "The namespace '{}' is in provisioning state '{ns_state}'; wait until it is Succeeded.",
                path.namespace
            )));
        }
        let target = Target::Child(ns_key.clone(), kind, key(name));
        if Self::busy(inner, &target) {
            return Err(another_operation(kind, name));
        }
        let existing = entry.child(kind, name);
        self.check_child(entry, kind, name, &mut input, existing)?;
        let (state, action, status) = match existing {
            Some(_) => (provisioning::UPDATING, Action::Update, StatusCode::OK),
            None => (provisioning::CREATING, Action::Create, StatusCode::CREATED),
        };
        let ns_id = entry
            .doc
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| namespace_id(path), str::to_owned);
        let (id, child_name) =
            identity(existing, format!("{ns_id}/{}/{name}", kind.segment()), name);
        let mut doc = json!({
            "id": id,
            "name": child_name,
            "type": kind.arm_type(),
            "properties": input.get("properties").cloned().unwrap_or_else(|| json!({})),
            "systemData": system_data(existing),
        });
        set_provisioning_state(&mut doc, state);
        if let Some(entry) = inner.state.namespaces.get_mut(&ns_key) {
            entry
                .children
                .entry(kind)
                .or_default()
                .insert(key(name), doc);
        }
        self.commit(inner, ctx, target, action, status)
    }

    /// The per-kind service rules and quotas for a child PUT.
    fn check_child(
        &self,
        entry: &NamespaceEntry,
        kind: ResourceKind,
        name: &str,
        input: &mut Value,
        existing: Option<&Value>,
    ) -> Result<(), ArmError> {
        let quotas = &self.config.quotas;
        let count = entry.of(kind).count();
        let creating = existing.is_none();
        let quota = |limit: usize, what: &str| {
            if creating {
                check_quota(count, limit, what)
            } else {
                Ok(())
            }
        };
        match kind {
            ResourceKind::Namespace | ResourceKind::RoleAssignment => Ok(()),
            ResourceKind::Client => {
                let capacity = entry
                    .doc
                    .pointer("/sku/capacity")
                    .and_then(Value::as_u64)
                    .unwrap_or(1);
                let limit = quotas
                    .clients_per_throughput_unit
                    .saturating_mul(usize::try_from(capacity).unwrap_or(1));
                quota(limit, "clients")?;
                let others = entry.of(ResourceKind::Client).map(|(_, doc)| OtherClient {
                    name: doc.get("name").and_then(Value::as_str).unwrap_or_default(),
                    authentication_name: doc
                        .pointer("/properties/authenticationName")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                });
                rules::client(name, input, existing, others)
            }
            ResourceKind::CaCertificate => {
                quota(quotas.ca_certificates, "CA certificates")?;
                rules::ca_certificate(input)
            }
            ResourceKind::ClientGroup => {
                quota(quotas.client_groups, "client groups")?;
                rules::client_group(input)
            }
            ResourceKind::TopicSpace => {
                quota(quotas.topic_spaces, "topic spaces")?;
                rules::topic_space(input, quotas)
            }
            ResourceKind::PermissionBinding => {
                quota(quotas.permission_bindings, "permission bindings")?;
                rules::permission_binding(
                    input,
                    |ts| entry.child(ResourceKind::TopicSpace, ts).is_some(),
                    |cg| entry.child(ResourceKind::ClientGroup, cg).is_some(),
                )
            }
        }
    }

    /// DELETE of a namespace (`child` is `None`) or of a child.
    fn delete(
        &self,
        inner: &mut Inner,
        ctx: &Ctx<'_>,
        path: &NamespacePath,
        child: Option<(ResourceKind, &str)>,
    ) -> Reply {
        let ns_key = namespace_key(path);
        let Some(entry) = inner.state.namespaces.get(&ns_key) else {
            return Ok(StatusCode::NO_CONTENT.into_response());
        };
        let (target, kind, name) = match child {
            None => (
                Target::Namespace(ns_key.clone()),
                ResourceKind::Namespace,
                path.namespace.as_str(),
            ),
            Some((kind, name)) => {
                if entry.child(kind, name).is_none() {
                    return Ok(StatusCode::NO_CONTENT.into_response());
                }
                check_unreferenced(entry, kind, name)?;
                (Target::Child(ns_key.clone(), kind, key(name)), kind, name)
            }
        };
        if Self::busy(inner, &target) {
            return Err(another_operation(kind, name));
        }
        if let Some(doc) = find_doc_mut(&mut inner.state, &target) {
            set_provisioning_state(doc, provisioning::DELETING);
        }
        self.commit(inner, ctx, target, Action::Delete, StatusCode::ACCEPTED)
    }

    // ---- paging ----

    /// One page of `items` (sorted by key): `{"value": [...], "nextLink": "..."}`. The skip token
    /// is the hex-encoded key of the first item of the next page, so paging stays stable while
    /// resources come and go.
    fn page(&self, ctx: &Ctx<'_>, items: Vec<(String, Value)>) -> Reply {
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

// ---- helpers without access to the app ----

fn record(inner: &mut Inner, request: &Request, route: &Route, query: &Query, capture: bool) {
    let list = route.is_collection();
    let verb = match (&request.method, list) {
        (&Method::GET, true) => Some(Verb::List),
        (&Method::GET, false) => Some(Verb::Get),
        (&Method::PUT, false) => Some(Verb::Put),
        (&Method::PATCH, false) => Some(Verb::Patch),
        (&Method::DELETE, false) => Some(Verb::Delete),
        _ => None,
    };
    match (route, route.kind(), verb) {
        (Route::OperationStatus(_) | Route::OperationResult(_), _, _) => inner.stats.polls += 1,
        (_, Some(kind), Some(verb)) => *inner.stats.by_kind.entry((verb, kind)).or_default() += 1,
        _ => inner.stats.unrouted += 1,
    }
    if capture {
        inner.captured.push(CapturedRequest {
            method: request.method.to_string(),
            path: request.path.clone(),
            api_version: query.api_version.clone(),
            body: (!request.body.is_empty())
                .then(|| String::from_utf8_lossy(&request.body).into_owned()),
        });
    }
}

/// The action a stored document's non-terminal `provisioningState` stands for.
fn open_action(doc: &Value) -> Option<Action> {
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

fn find_doc_mut<'a>(state: &'a mut State, target: &Target) -> Option<&'a mut Value> {
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

/// The stored `id` and `name` of an existing resource (first PUT wins the case), or new ones.
fn identity(existing: Option<&Value>, id: String, name: &str) -> (Value, Value) {
    let field = |key: &str| {
        existing
            .and_then(|e| e.get(key))
            .filter(|v| v.is_string())
            .cloned()
    };
    (
        field("id").unwrap_or_else(|| json!(id)),
        field("name").unwrap_or_else(|| json!(name)),
    )
}

fn system_data(existing: Option<&Value>) -> Value {
    let now = json!(timestamp(OffsetDateTime::now_utc()));
    let created_at = existing
        .and_then(|e| e.pointer("/systemData/createdAt"))
        .cloned()
        .unwrap_or_else(|| now.clone());
    json!({
        "createdBy": "e4k-emulator",
        "createdByType": "Application",
        "createdAt": created_at,
        "lastModifiedBy": "e4k-emulator",
        "lastModifiedByType": "Application",
        "lastModifiedAt": now,
    })
}

/// Recursively merges `overlay` into `base`: objects merge, anything else replaces, `null` removes.
fn merge(base: Value, overlay: Value) -> Value {
    match (base, overlay) {
        (Value::Object(mut base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                if value.is_null() {
                    base.remove(&key);
                } else {
                    let merged = match base.remove(&key) {
                        Some(old) => merge(old, value),
                        None => value,
                    };
                    base.insert(key, merged);
                }
            }
            Value::Object(base)
        }
        (_, overlay) => overlay,
    }
}

fn validate_body(ctx: &Ctx<'_>, definition: &str) -> Result<Value, ArmError> {
    let (spec, body) = (ctx.spec, &ctx.request.body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ArmError::invalid_content(
            "The request content was invalid and could not be deserialized: the body is empty.",
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ArmError::invalid_content(format!(
            "The request content was invalid and could not be deserialized: {e}."
        ))
    })?;
    spec.validate(definition, &value, Direction::Request)
        .map_err(|violation| {
            let error =
                ArmError::invalid_content(format!("The request content is invalid: {violation}."));
            if violation.path.is_empty() {
                error
            } else {
                error.with_target(violation.path)
            }
        })
}

fn check_name(spec: &Spec, kind: ResourceKind, name: &str) -> Result<(), ArmError> {
    let Some(rule) = spec.name_rule(kind) else {
        return Ok(());
    };
    rule.check(name).map_err(|reason| {
        ArmError::bad_request(format!(
            "The {} name '{name}' is invalid: it {reason}.",
            kind.label()
        ))
        .with_target(kind.name_parameter())
    })
}

fn check_quota(count: usize, limit: usize, what: &str) -> Result<(), ArmError> {
    if count >= limit {
        Err(ArmError::bad_request(format!(
            "The limit of {limit} {what} has been reached."
        )))
    } else {
        Ok(())
    }
}

/// Topic spaces and client groups that a permission binding names cannot be deleted.
fn check_unreferenced(
    entry: &NamespaceEntry,
    kind: ResourceKind,
    name: &str,
) -> Result<(), ArmError> {
    let field = match kind {
        ResourceKind::TopicSpace => "topicSpaceName",
        ResourceKind::ClientGroup => "clientGroupName",
        _ => return Ok(()),
    };
    let user = entry
        .of(ResourceKind::PermissionBinding)
        .find(|(_, binding)| {
            binding
                .pointer(&format!("/properties/{field}"))
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        });
    match user {
        Some((binding, _)) => Err(ArmError::conflict(format!(
            "The {} '{name}' is used by permission binding '{binding}'; delete the binding first.",
            kind.label()
        ))),
        None => Ok(()),
    }
}

fn get_namespace(inner: &Inner, path: &NamespacePath) -> Reply {
    let entry = inner
        .state
        .namespace(path)
        .ok_or_else(|| not_found(path, None))?;
    Ok((StatusCode::OK, axum::Json(entry.doc.clone())).into_response())
}

fn get_child(inner: &Inner, path: &NamespacePath, kind: ResourceKind, name: &str) -> Reply {
    let entry = inner
        .state
        .namespace(path)
        .ok_or_else(|| parent_not_found(path))?;
    let doc = entry
        .child(kind, name)
        .ok_or_else(|| not_found(path, Some((kind, name))))?;
    Ok((StatusCode::OK, axum::Json(doc.clone())).into_response())
}

fn not_found(path: &NamespacePath, child: Option<(ResourceKind, &str)>) -> ArmError {
    let resource = match child {
        None => format!("Microsoft.EventGrid/namespaces/{}", path.namespace),
        Some((kind, name)) => format!(
            "Microsoft.EventGrid/namespaces/{}/{}/{name}",
            path.namespace,
            kind.segment()
        ),
    };
    ArmError::new(
        StatusCode::NOT_FOUND,
        code::RESOURCE_NOT_FOUND,
        format!(
            "The Resource '{resource}' under resource group '{}' was not found.",
            path.resource_group
        ),
    )
}

fn parent_not_found(path: &NamespacePath) -> ArmError {
    ArmError::new(
        StatusCode::NOT_FOUND,
        code::PARENT_NOT_FOUND,
        format!(
            "Can not perform requested operation on nested resource. Parent resource '{}' not found.",
            path.namespace
        ),
    )
}

fn another_operation(kind: ResourceKind, name: &str) -> ArmError {
    ArmError::new(
        StatusCode::CONFLICT,
        code::ANOTHER_OPERATION,
        format!(
            "Another operation on the {} '{name}' is in progress.",
            kind.label()
        ),
    )
}

fn method_not_allowed(method: &Method) -> ArmError {
    ArmError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        code::METHOD_NOT_ALLOWED,
        format!("The method '{method}' is not allowed on this resource."),
    )
}

/// `YYYY-MM-DD` optionally followed by `-suffix`.
fn looks_like_api_version(version: &str) -> bool {
    let bytes = version.as_bytes();
    let date = bytes.len() >= 10
        && bytes[..10].iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    date && (bytes.len() == 10 || (bytes[10] == b'-' && bytes.len() > 11))
}

fn hex_encode(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<String> {
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
    fn merge_replaces_and_removes() {
        let merged = merge(
            json!({"a": {"b": 1, "c": 2}, "d": [1], "e": 1}),
            json!({"a": {"b": 3}, "d": [2], "e": null}),
        );
        assert_eq!(merged, json!({"a": {"b": 3, "c": 2}, "d": [2]}));
    }

    #[test]
    fn api_version_shapes() {
        assert!(looks_like_api_version("2025-02-15"));
        assert!(looks_like_api_version("2099-01-01-preview"));
        assert!(!looks_like_api_version("latest"));
        assert!(!looks_like_api_version("2025-02-15-"));
    }

    #[test]
    fn skip_tokens_round_trip() {
        let token = hex_encode("s/rg/ns-1");
        assert_eq!(hex_decode(&token).as_deref(), Some("s/rg/ns-1"));
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(hex_decode("abc"), None);
    }
}
