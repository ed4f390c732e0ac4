//! The handlers of a namespace's MQTT children (CA certificates, clients, client groups, topic
//! spaces, permission bindings): list, GET, PUT with the per-kind service rules and quotas, and
//! the references that block a DELETE.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::ResourceKind;
use crate::arm::ArmError;
use crate::route::NamespacePath;
use crate::rules::{self, OtherClient};
use crate::store::{
    NamespaceEntry, key, namespace_id, namespace_key, provisioning_state, set_provisioning_state,
};

use super::documents::{identity, not_found, parent_not_found, system_data};
use super::operations::{Action, Target, another_operation, provisioning};
use super::validation::{check_name, check_quota, validate_body};
use super::{App, Ctx, Inner, Reply};

impl App {
    pub(super) fn list_children(
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

    pub(super) fn put_child(
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
}

pub(super) fn get_child(
    inner: &Inner,
    path: &NamespacePath,
    kind: ResourceKind,
    name: &str,
) -> Reply {
    let entry = inner
        .state
        .namespace(path)
        .ok_or_else(|| parent_not_found(path))?;
    let doc = entry
        .child(kind, name)
        .ok_or_else(|| not_found(path, Some((kind, name))))?;
    Ok((StatusCode::OK, axum::Json(doc.clone())).into_response())
}

/// Topic spaces and client groups that a permission binding names cannot be deleted.
pub(super) fn check_unreferenced(
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
