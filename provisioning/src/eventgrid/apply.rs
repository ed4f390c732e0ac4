//! Reading the current state and carrying out a [`Plan`] through ARM.
//!
//! Order: the namespace (create or patch), then CA certificates, topic spaces, client groups and
//! clients in parallel (bounded), then permission bindings and role assignments (they reference
//! topic spaces and groups), then deletions with bindings and role assignments first (so
//! nothing they reference disappears under them). Every write is a full, idempotent PUT: a run stopped half-way is finished by the next.
//! Writes are not read back (one GET of the namespace at the end reports its hostname).

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::{sync::Semaphore, task::JoinSet};

use super::{
    arm::ArmClient,
    model::{Desired, ResourceKind},
    plan::{Action, Change, Current, Plan},
    rbac,
};
use crate::{Error, Result};

/// How many ARM writes run at once by default.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Reads what ARM holds for the desired namespace: one GET for the namespace and one paged list
/// per child type (in parallel), then, when the spec manages role assignments, one list per
/// scope (the namespace and each existing topic space).
///
/// # Errors
/// ARM and transport errors ([`Error::Arm`], [`Error::Transport`], [`Error::Cancelled`]).
pub async fn read_current(arm: &ArmClient, desired: &Desired) -> Result<Current> {
    let namespace = arm
        .get(&desired.namespace_id, &desired.namespace_api_version)
        .await?;
    let mut current = Current {
        namespace,
        ..Current::default()
    };
    if current.namespace.is_none() {
        return Ok(current);
    }
    let lists = ResourceKind::CHILDREN.map(|kind| {
        let id = desired.collection_id(kind);
        async move { (kind, arm.list(&id, &desired.child_api_version).await) }
    });
    for (kind, result) in futures_join_all(lists).await {
        current.children.insert(kind, result?);
    }
    if desired.role_assignments.is_some() {
        current.role_assignments = rbac::sync::read(arm, desired, &current).await?;
    }
    Ok(current)
}

/// Awaits futures concurrently, keeping their order (all borrow the same client).
async fn futures_join_all<F: std::future::Future>(futures: [F; 5]) -> [F::Output; 5] {
    let [a, b, c, d, e] = futures;
    let (a, b, c, d, e) = tokio::join!(a, b, c, d, e);
    [a, b, c, d, e]
}

/// What happened to one resource.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// Its type.
    pub kind: ResourceKind,
    /// Its name.
    pub name: String,
    /// What was done.
    pub action: Action,
}

/// The result of [`apply`].
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    /// Resources written or deleted, in completion order.
    pub applied: Vec<Applied>,
    /// The namespace's MQTT hostname (for the bridge's `remoteBrokerConnection.endpoint`).
    pub hostname: Option<String>,
}

/// Options of [`apply`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// ARM writes in flight at once.
    pub concurrency: usize,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// Carries out a plan. `progress` is called as each resource completes.
///
/// # Errors
/// The first ARM error; resources already written stay (a rerun converges).
pub async fn apply(
    arm: &Arc<ArmClient>,
    desired: &Desired,
    plan: &Plan,
    options: &ApplyOptions,
    progress: &(dyn Fn(&Applied) + Sync),
) -> Result<ApplyReport> {
    let mut applied = Vec::new();
    let mut record = |item: Applied| {
        progress(&item);
        applied.push(item);
    };
    let ns_api = &desired.namespace_api_version;
    for change in plan
        .changes
        .iter()
        .filter(|c| c.kind == ResourceKind::Namespace)
    {
        match (change.action, &desired.namespace.create_body) {
            // The planner only plans a create when the spec has a create body.
            (Action::Create, Some(body)) => {
                arm.put_and_wait(&desired.namespace_id, ns_api, body)
                    .await?;
            }
            (Action::Update, _) => {
                let body = json!({ "properties": desired.namespace.mqtt_properties });
                arm.patch_and_wait(&desired.namespace_id, ns_api, &body)
                    .await?;
            }
            _ => continue,
        }
        record(Applied {
            kind: change.kind,
            name: change.name.clone(),
            action: change.action,
        });
    }

    let writes = |kinds: &[ResourceKind]| -> Vec<&Change> {
        plan.changes
            .iter()
            .filter(|c| kinds.contains(&c.kind))
            .filter(|c| matches!(c.action, Action::Create | Action::Update | Action::Replace))
            .collect()
    };
    let stages = [
        writes(&[
            ResourceKind::CaCertificate,
            ResourceKind::TopicSpace,
            ResourceKind::ClientGroup,
            ResourceKind::Client,
        ]),
        writes(&[
            ResourceKind::PermissionBinding,
            ResourceKind::RoleAssignment,
        ]),
        plan.changes
            .iter()
            .filter(|c| c.action == Action::Delete && references(c.kind))
            .collect(),
        plan.changes
            .iter()
            .filter(|c| {
                c.action == Action::Delete
                    && !references(c.kind)
                    && c.kind != ResourceKind::Namespace
            })
            .collect(),
    ];
    for stage in stages {
        for item in run_stage(arm, desired, &stage, options.concurrency).await? {
            record(item);
        }
    }
    // The namespace goes last, after everything in it ([`destroy_plan`]).
    if let Some(change) = plan
        .changes
        .iter()
        .find(|c| c.kind == ResourceKind::Namespace && c.action == Action::Delete)
    {
        arm.delete(&desired.namespace_id, ns_api).await?;
        record(Applied {
            kind: change.kind,
            name: change.name.clone(),
            action: Action::Delete,
        });
        return Ok(ApplyReport {
            applied,
            hostname: None,
        });
    }
    let hostname = arm
        .get(&desired.namespace_id, ns_api)
        .await?
        .as_ref()
        .and_then(hostname_of);
    Ok(ApplyReport { applied, hostname })
}

/// Kinds that name other resources (a binding its topic space and group, a role assignment its
/// topic space): written after them, deleted before them.
fn references(kind: ResourceKind) -> bool {
    matches!(
        kind,
        ResourceKind::PermissionBinding | ResourceKind::RoleAssignment
    )
}

/// The ARM id, api-version and PUT body of one change.
fn target(desired: &Desired, change: &Change) -> Result<(String, String, Option<Value>)> {
    if change.kind == ResourceKind::RoleAssignment {
        return rbac::sync::target(desired, change);
    }
    let body = desired
        .children
        .iter()
        .find(|c| c.kind == change.kind && c.name == change.name)
        .map(|c| c.body.clone());
    Ok((
        desired.child_id(change.kind, &change.name),
        desired.child_api_version.clone(),
        body,
    ))
}

/// The MQTT hostname in a namespace resource.
#[must_use]
pub fn hostname_of(namespace: &Value) -> Option<String> {
    namespace
        .pointer("/properties/topicSpacesConfiguration/hostname")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Runs one stage's changes in parallel, at most `concurrency` at a time; stops at the first
/// error (the tasks already running finish).
async fn run_stage(
    arm: &Arc<ArmClient>,
    desired: &Desired,
    changes: &[&Change],
    concurrency: usize,
) -> Result<Vec<Applied>> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for change in changes {
        let arm = Arc::clone(arm);
        let permits = Arc::clone(&permits);
        let (id, api, body) = target(desired, change)?;
        let applied = Applied {
            kind: change.kind,
            name: change.name.clone(),
            action: change.action,
        };
        tasks.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .map_err(|_| Error::Cancelled)?;
            if matches!(applied.action, Action::Delete | Action::Replace) {
                arm.delete(&id, &api).await?;
            }
            if let (Action::Create | Action::Update | Action::Replace, Some(body)) =
                (applied.action, &body)
            {
                match arm.put_and_wait(&id, &api, body).await {
                    // Someone made the same assignment since the plan: it is in place.
                    Err(e) if rbac::sync::already_exists(&e) => {
                        tracing::warn!(resource = %id, error = %e, "the role assignment already exists under another name; leaving it");
                    }
                    other => other?,
                }
            }
            Ok::<_, Error>(applied)
        });
    }
    let mut done = Vec::new();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(applied)) => done.push(applied),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
                // Let the writes already sent finish; start no new ones.
                permits.close();
            }
            Err(join) => {
                first_error.get_or_insert(Error::Transport {
                    method: "task".into(),
                    resource: desired.namespace_id.clone(),
                    reason: join.to_string(),
                });
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// Plans the removal of everything the spec manages (carried out by [`apply`]): bindings first, then the other children,
/// then the namespace when the spec creates it (`namespace.create`).
#[must_use]
pub fn destroy_plan(desired: &Desired, current: &Current) -> Plan {
    let exists = |kind: ResourceKind, name: &str| {
        current.children.get(&kind).is_some_and(|list| {
            list.iter().any(|r| {
                r.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
        })
    };
    let mut changes: Vec<Change> = rbac::sync::destroy(desired, current);
    for kind in ResourceKind::CHILDREN.iter().rev() {
        for child in desired.children.iter().filter(|c| c.kind == *kind) {
            if exists(child.kind, &child.name) {
                changes.push(Change {
                    kind: child.kind,
                    name: child.name.clone(),
                    action: Action::Delete,
                    fields: Vec::new(),
                });
            }
        }
    }
    let delete_namespace = current.namespace.is_some() && desired.namespace.create_body.is_some();
    let summary = super::plan::Summary {
        delete: changes.len() + usize::from(delete_namespace),
        ..Default::default()
    };
    if delete_namespace {
        changes.push(Change {
            kind: ResourceKind::Namespace,
            name: desired.namespace.name.clone(),
            action: Action::Delete,
            fields: Vec::new(),
        });
    }
    Plan {
        changes,
        unmanaged: Vec::new(),
        summary,
    }
}
