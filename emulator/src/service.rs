//! Request handling: the emulator's shared state ([`App`]), routing a request to its ARM
//! operation, and the request counters.
//!
//! All state sits behind one `std::sync::Mutex`: every operation is short, synchronous and never
//! holds the lock across an `.await`, so the std mutex is both enough and cheaper than tokio's.
//! Long-running operations complete lazily: each request first settles the operations whose
//! delay has passed, so there is no timer task to shut down.
//!
//! The operations live in submodules: `admission` (bearer token, api-version, injected faults),
//! `validation` (bodies against the spec, names, quotas), `namespaces` and `children` (the
//! handlers of each resource type), `documents` (what both share: identity, `systemData`, merge,
//! not-found errors, DELETE), `operations` (long-running operations and their monitors),
//! `paging` (`nextLink` pages) and `role_assignments` (the `Microsoft.Authorization` routes).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::arm::{ArmError, code};
use crate::faults::Rng;
use crate::identity::{Identity, endpoint};
use crate::route::{Query, Route};
use crate::spec::Spec;
use crate::stats::{CapturedRequest, Stats, Verb};
use crate::store::State;
use crate::{EmulatorConfig, EmulatorError};

mod admission;
mod children;
mod documents;
mod namespaces;
mod operations;
mod paging;
/// The `Microsoft.Authorization/roleAssignments` routes.
mod role_assignments;
mod validation;

use children::get_child;
use namespaces::get_namespace;
use operations::{Operation, Target, open_action};

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
}

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

fn method_not_allowed(method: &Method) -> ArmError {
    ArmError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        code::METHOD_NOT_ALLOWED,
        format!("The method '{method}' is not allowed on this resource."),
    )
}
