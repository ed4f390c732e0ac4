//! Comparing the desired state with what ARM holds: create / update / replace / delete / no-op,
//! each with the fields that differ.
//!
//! Only the fields a spec manages are compared: read-only fields (`provisioningState`, ids,
//! `systemData`) and settings the spec leaves unset are not. A rerun right after `setup` plans
//! no change at all.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Value, json};

use super::model::{Desired, ResourceKind};
use crate::{Error, Result};

/// What ARM holds now, as read by list calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Current {
    /// The namespace, or `None` when it does not exist.
    pub namespace: Option<Value>,
    /// The child resources of each kind.
    pub children: BTreeMap<ResourceKind, Vec<Value>>,
    /// The role assignments made at the namespace and at its topic spaces (read only when the
    /// spec manages role assignments).
    pub role_assignments: Vec<Value>,
}

/// What happens to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// It does not exist yet: PUT it.
    Create,
    /// It differs: PUT it whole (PATCH for the namespace).
    Update,
    /// A field that cannot change differs (a client's authenticationName): delete it, then
    /// create it again.
    Replace,
    /// It exists but is not in the spec, and `--prune` was given: delete it.
    Delete,
    /// It is as the spec wants.
    NoOp,
}

/// One field that differs; `from`/`to` are absent when the field is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// The field, e.g. `properties.topicTemplates`.
    pub path: String,
    /// The value ARM holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    /// The value the spec wants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
}

/// The plan for one resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Its type.
    pub kind: ResourceKind,
    /// Its name.
    pub name: String,
    /// What happens to it.
    pub action: Action,
    /// The fields that differ (empty for no-op and delete).
    pub fields: Vec<FieldChange>,
}

/// How many resources each action touches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Resources to create.
    pub create: usize,
    /// Resources to update.
    pub update: usize,
    /// Resources to delete and create again.
    pub replace: usize,
    /// Resources to delete.
    pub delete: usize,
    /// Resources already as wanted.
    pub no_op: usize,
}

impl Summary {
    /// Whether the plan changes anything.
    #[must_use]
    pub fn changes(&self) -> usize {
        self.create + self.update + self.replace + self.delete
    }
}

/// A plan: every resource of the spec (and, with prune, every extra one) and its action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The namespace first, then the children in creation order, then deletions.
    pub changes: Vec<Change>,
    /// Resources that exist but are not in the spec and stay (no `--prune`).
    pub unmanaged: Vec<(ResourceKind, String)>,
    /// Counts per action.
    pub summary: Summary,
}

/// Plans the changes that take `current` to `desired`.
///
/// # Errors
/// [`Error::Spec`] when the namespace does not exist and the spec does not say how to create
/// it (`namespace.create`).
pub fn plan(
    desired: &Desired,
    current: &Current,
    prune: bool,
    spec_path: &std::path::Path,
) -> Result<Plan> {
    let mut changes = Vec::new();
    match &current.namespace {
        None => {
            let body = desired.namespace.create_body.as_ref().ok_or_else(|| {
                Error::spec(
                    spec_path,
                    format!(
                        "namespace {} does not exist ({}); create it first or add namespace.create (location) to the spec",
                        desired.namespace.name, desired.namespace_id
                    ),
                )
            })?;
            changes.push(Change {
                kind: ResourceKind::Namespace,
                name: desired.namespace.name.clone(),
                action: Action::Create,
                fields: additions(body, ""),
            });
        }
        Some(namespace) => {
            let mut fields = Vec::new();
            diff(
                &desired.namespace.mqtt_properties,
                namespace.get("properties").unwrap_or(&Value::Null),
                "properties",
                &mut fields,
            );
            changes.push(Change {
                kind: ResourceKind::Namespace,
                name: desired.namespace.name.clone(),
                action: if fields.is_empty() {
                    Action::NoOp
                } else {
                    Action::Update
                },
                fields,
            });
        }
    }

    let mut existing: HashMap<(ResourceKind, String), &Value> = HashMap::new();
    for (kind, resources) in &current.children {
        for resource in resources {
            if let Some(name) = resource.get("name").and_then(Value::as_str) {
                existing.insert((*kind, name.to_lowercase()), resource);
            }
        }
    }
    let mut wanted = std::collections::HashSet::new();
    for child in &desired.children {
        wanted.insert((child.kind, child.name.to_lowercase()));
        let change = match existing.get(&(child.kind, child.name.to_lowercase())) {
            None => Change {
                kind: child.kind,
                name: child.name.clone(),
                action: Action::Create,
                fields: additions(&child.body, ""),
            },
            Some(current) => {
                let mut fields = Vec::new();
                diff(
                    child.body.get("properties").unwrap_or(&Value::Null),
                    current.get("properties").unwrap_or(&Value::Null),
                    "properties",
                    &mut fields,
                );
                let immutable_changed = child.kind == ResourceKind::Client
                    && fields
                        .iter()
                        .any(|f| f.path == "properties.authenticationName");
                let action = if fields.is_empty() {
                    Action::NoOp
                } else if immutable_changed {
                    Action::Replace
                } else {
                    Action::Update
                };
                Change {
                    kind: child.kind,
                    name: child.name.clone(),
                    action,
                    fields,
                }
            }
        };
        changes.push(change);
    }

    let mut unmanaged = Vec::new();
    // Deletions in reverse dependency order: bindings before what they reference.
    for kind in ResourceKind::CHILDREN.iter().rev() {
        let Some(resources) = current.children.get(kind) else {
            continue;
        };
        for resource in resources {
            let Some(name) = resource.get("name").and_then(Value::as_str) else {
                continue;
            };
            if wanted.contains(&(*kind, name.to_lowercase())) {
                continue;
            }
            if prune {
                changes.push(Change {
                    kind: *kind,
                    name: name.to_owned(),
                    action: Action::Delete,
                    fields: Vec::new(),
                });
            } else {
                unmanaged.push((*kind, name.to_owned()));
            }
        }
    }

    super::rbac::sync::plan(desired, current, prune, &mut changes, &mut unmanaged);

    let mut summary = Summary::default();
    for change in &changes {
        match change.action {
            Action::Create => summary.create += 1,
            Action::Update => summary.update += 1,
            Action::Replace => summary.replace += 1,
            Action::Delete => summary.delete += 1,
            Action::NoOp => summary.no_op += 1,
        }
    }
    Ok(Plan {
        changes,
        unmanaged,
        summary,
    })
}

/// Every leaf of `value` as an addition (for a resource about to be created).
fn additions(value: &Value, path: &str) -> Vec<FieldChange> {
    let mut out = Vec::new();
    diff(value, &Value::Null, path, &mut out);
    out
}

/// Fields compared as a whole, not key by key: a key that disappears matters.
fn is_atomic(path: &str) -> bool {
    path.ends_with(".attributes") || path == "tags"
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Records where `desired` differs from `current`, for the fields `desired` has.
fn diff(desired: &Value, current: &Value, path: &str, out: &mut Vec<FieldChange>) {
    if let Value::Object(map) = desired
        && !is_atomic(path)
        && !map.is_empty()
    {
        for (key, value) in map {
            diff(
                value,
                current.get(key).unwrap_or(&Value::Null),
                &join(path, key),
                out,
            );
        }
        return;
    }
    if !same(path, desired, current) {
        out.push(FieldChange {
            path: path.to_owned(),
            from: (!current.is_null()).then(|| current.clone()),
            to: (!desired.is_null()).then(|| desired.clone()),
        });
    }
}

/// Equality after the normalisations ARM applies or that do not matter.
fn same(path: &str, desired: &Value, current: &Value) -> bool {
    if path.ends_with(".encodedCertificate") {
        let squash = |v: &Value| -> String {
            v.as_str()
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect()
        };
        return squash(desired) == squash(current);
    }
    if path.ends_with(".encodedIssuerCertificates") {
        // The same normalisation as `encodedCertificate`, per entry: whitespace does not count.
        let norm = |v: &Value| -> Vec<(String, String)> {
            let text = |item: &Value, key: &str| -> String {
                item.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect()
            };
            v.as_array()
                .into_iter()
                .flatten()
                .map(|item| (text(item, "kid"), text(item, "encodedCertificate")))
                .collect()
        };
        return norm(desired) == norm(current);
    }
    if path.ends_with(".allowedThumbprints") {
        let norm = |v: &Value| -> Vec<String> {
            let mut list: Vec<String> = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_lowercase)
                        .collect()
                })
                .unwrap_or_default();
            list.sort();
            list
        };
        return norm(desired) == norm(current);
    }
    let empty_map = json!({});
    let normal = |v: &'_ Value| -> Value {
        if is_atomic(path) && v.is_null() {
            empty_map.clone()
        } else {
            v.clone()
        }
    };
    normal(desired) == normal(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_reports_only_managed_fields() {
        let desired = json!({ "topicTemplates": ["a/#"], "description": "d" });
        let current = json!({ "topicTemplates": ["a/#"], "description": "d", "provisioningState": "Succeeded" });
        let mut out = Vec::new();
        diff(&desired, &current, "properties", &mut out);
        assert!(out.is_empty(), "{out:?}");
        let current = json!({ "topicTemplates": ["b/#"] });
        diff(&desired, &current, "properties", &mut out);
        // serde_json keeps object keys sorted.
        assert_eq!(
            out,
            [
                FieldChange {
                    path: "properties.description".into(),
                    from: None,
                    to: Some(json!("d"))
                },
                FieldChange {
                    path: "properties.topicTemplates".into(),
                    from: Some(json!(["b/#"])),
                    to: Some(json!(["a/#"]))
                },
            ]
        );
    }

    #[test]
    fn normalisations() {
        assert!(same(
            "properties.encodedCertificate",
            &json!("-----BEGIN X-----AB-----END X-----"),
            &json!("-----BEGIN X-----\nAB\n-----END X-----\n")
        ));
        assert!(same(
            "properties.clientCertificateAuthentication.allowedThumbprints",
            &json!(["ab", "CD"]),
            &json!(["cd", "AB"])
        ));
        assert!(same("properties.attributes", &json!({}), &Value::Null));
        assert!(!same(
            "properties.attributes",
            &json!({"a": 1}),
            &json!({"a": 1, "b": 2})
        ));
    }
}
