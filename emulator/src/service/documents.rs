//! What namespace and child documents share: the stored `id` and `name`, `systemData`, the
//! merge a PATCH applies, the not-found errors, and DELETE of either.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::ResourceKind;
use crate::arm::{ArmError, code};
use crate::route::NamespacePath;
use crate::store::{key, namespace_key, set_provisioning_state, timestamp};

use super::children::check_unreferenced;
use super::operations::{Action, Target, another_operation, find_doc_mut, provisioning};
use super::{App, Ctx, Inner, Reply};

impl App {
    /// DELETE of a namespace (`child` is `None`) or of a child.
    pub(super) fn delete(
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
}

/// The stored `id` and `name` of an existing resource (first PUT wins the case), or new ones.
pub(super) fn identity(existing: Option<&Value>, id: String, name: &str) -> (Value, Value) {
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

pub(super) fn system_data(existing: Option<&Value>) -> Value {
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
pub(super) fn merge(base: Value, overlay: Value) -> Value {
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

pub(super) fn not_found(path: &NamespacePath, child: Option<(ResourceKind, &str)>) -> ArmError {
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

pub(super) fn parent_not_found(path: &NamespacePath) -> ArmError {
    ArmError::new(
        StatusCode::NOT_FOUND,
        code::PARENT_NOT_FOUND,
        format!(
            "Can not perform requested operation on nested resource. Parent resource '{}' not found.",
            path.namespace
        ),
    )
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
}
