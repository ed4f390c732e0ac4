//! Role assignments against ARM: reading those at each scope, planning them like every other
//! resource kind, and the ARM ids and bodies `apply` sends.
//!
//! - **Read**: `GET {scope}/providers/Microsoft.Authorization/roleAssignments?$filter=atScope()`
//!   at the namespace and at every topic space that exists. `atScope()` also returns what is
//!   inherited from above (subscription, resource group, the namespace for a topic space), so
//!   only assignments whose `properties.scope` is the scope itself are kept.
//! - **Plan**: a desired assignment whose deterministic name exists is compared field by field
//!   (a `principalType` change is a replace: ARM does not update the principal of an
//!   assignment); one that exists under another name with the same principal, role and scope
//!   (made in the portal, say) is already in place and planned as no-op, because ARM would
//!   refuse a second one (`409 RoleAssignmentExists`); anything else is created.
//! - **Prune**: only the assignments e4k made ([`is_managed`]: the name is the deterministic name
//!   of its own scope, role and principal) are listed as unmanaged and deleted with `--prune`;
//!   everybody else's assignments at these scopes are ignored, never listed nor deleted.
//! - **Apply**: role assignments are not long-running operations: PUT answers 201/200 with the
//!   resource, DELETE 200 with it or 204 when it is gone. A `409 RoleAssignmentExists` on PUT
//!   (someone made the same assignment between plan and apply) counts as already present.

use serde_json::Value;

use super::{
    API_VERSION, DesiredRoleAssignment, Role, assignment_id, change_name, is_managed,
    parse_change_name, scope_id,
};
use crate::{
    Error, Result,
    eventgrid::{
        arm::ArmClient,
        model::{Desired, ResourceKind},
        plan::{Action, Change, Current, FieldChange},
    },
};

/// The ARM error code of a PUT whose principal, role and scope already have an assignment under
/// another name.
pub const ROLE_ASSIGNMENT_EXISTS: &str = "RoleAssignmentExists";

/// Reads the role assignments made at the namespace and at each existing topic space (in
/// `current`), in that order.
///
/// # Errors
/// ARM and transport errors ([`Error::Arm`], [`Error::Transport`], [`Error::Cancelled`]).
pub async fn read(arm: &ArmClient, desired: &Desired, current: &Current) -> Result<Vec<Value>> {
    let spaces = current
        .children
        .get(&ResourceKind::TopicSpace)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("name").and_then(Value::as_str));
    let scopes: Vec<String> = std::iter::once(desired.namespace_id.clone())
        .chain(spaces.map(|space| scope_id(&desired.namespace_id, Some(space))))
        .collect();
    let mut found = Vec::new();
    for scope in &scopes {
        let collection = format!("{scope}/providers/Microsoft.Authorization/roleAssignments");
        let items = arm
            .list_with_query(&collection, API_VERSION, &[("$filter", "atScope()")])
            .await?;
        found.extend(items.into_iter().filter(|item| {
            item.pointer("/properties/scope")
                .and_then(Value::as_str)
                .is_some_and(|s| s.trim_end_matches('/').eq_ignore_ascii_case(scope))
        }));
    }
    Ok(found)
}

/// The topic space an assignment's `properties.scope` names, or `None` for the namespace.
fn topic_space_of<'a>(namespace_id: &str, existing: &'a Value) -> Option<&'a str> {
    let scope = existing.pointer("/properties/scope")?.as_str()?;
    let (head, rest) = (
        scope.get(..namespace_id.len())?,
        scope.get(namespace_id.len()..)?,
    );
    if !head.eq_ignore_ascii_case(namespace_id) {
        return None;
    }
    let mut parts = rest.trim_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(collection), Some(space), None) if collection.eq_ignore_ascii_case("topicSpaces") => {
            Some(space)
        }
        _ => None,
    }
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Whether `existing` grants what `wanted` asks: same scope, role and principal.
fn grants(wanted: &DesiredRoleAssignment, existing: &Value) -> bool {
    text(existing, "/properties/scope").eq_ignore_ascii_case(&wanted.scope)
        && Role::from_definition_id(text(existing, "/properties/roleDefinitionId"))
            == Some(wanted.role)
        && text(existing, "/properties/principalId").eq_ignore_ascii_case(&wanted.principal_id)
}

/// The fields of `wanted` that `existing` (same name) holds differently.
fn differences(wanted: &DesiredRoleAssignment, existing: &Value) -> Vec<FieldChange> {
    let mut fields = Vec::new();
    let properties = wanted.body.get("properties").and_then(Value::as_object);
    for (key, to) in properties.into_iter().flatten() {
        let from = existing.pointer(&format!("/properties/{key}"));
        let same = match key.as_str() {
            "roleDefinitionId" => {
                Role::from_definition_id(from.and_then(Value::as_str).unwrap_or_default())
                    == Some(wanted.role)
            }
            "principalId" => from
                .and_then(Value::as_str)
                .is_some_and(|f| f.eq_ignore_ascii_case(&wanted.principal_id)),
            _ => from == Some(to),
        };
        if !same {
            fields.push(FieldChange {
                path: format!("properties.{key}"),
                from: from.filter(|v| !v.is_null()).cloned(),
                to: Some(to.clone()),
            });
        }
    }
    fields
}

/// What a deletion removes, for the plan: the role and the principal.
fn removed_fields(existing: &Value) -> Vec<FieldChange> {
    ["roleDefinitionId", "principalId", "principalType"]
        .into_iter()
        .filter_map(|key| {
            let from = existing.pointer(&format!("/properties/{key}"))?;
            Some(FieldChange {
                path: format!("properties.{key}"),
                from: Some(from.clone()),
                to: None,
            })
        })
        .collect()
}

/// Plans the role assignments: appends their changes, and the e4k assignments that stay for
/// want of `--prune` to `unmanaged`. Nothing when the spec does not manage role assignments.
pub(crate) fn plan(
    desired: &Desired,
    current: &Current,
    prune: bool,
    changes: &mut Vec<Change>,
    unmanaged: &mut Vec<(ResourceKind, String)>,
) {
    let Some(wanted) = &desired.role_assignments else {
        return;
    };
    let existing = &current.role_assignments;
    let mut used = vec![false; existing.len()];
    let mut deferred = Vec::new();
    for want in wanted {
        let same_name = existing
            .iter()
            .position(|e| text(e, "/name").eq_ignore_ascii_case(&want.name));
        let (action, fields) = match same_name {
            Some(index) => {
                used[index] = true;
                let fields = differences(want, &existing[index]);
                let action = if fields.is_empty() {
                    Action::NoOp
                } else if fields.iter().any(|f| f.path != "properties.description") {
                    Action::Replace
                } else {
                    Action::Update
                };
                (action, fields)
            }
            None => {
                deferred.push(want);
                continue;
            }
        };
        changes.push(Change {
            kind: ResourceKind::RoleAssignment,
            name: want.change_name(),
            action,
            fields,
        });
    }
    // Second pass, once every name match is claimed: an equivalent assignment made by
    // someone else satisfies the spec (ARM refuses a duplicate under another name).
    for want in deferred {
        let equivalent = existing
            .iter()
            .enumerate()
            .position(|(i, e)| !used[i] && grants(want, e));
        let change = match equivalent {
            Some(index) => {
                used[index] = true;
                tracing::info!(
                    assignment = text(&existing[index], "/name"),
                    scope = %want.scope,
                    role = want.role.azure_name(),
                    principal = %want.principal_id,
                    "the role assignment exists under another name; leaving it as it is"
                );
                Change {
                    kind: ResourceKind::RoleAssignment,
                    name: want.change_name(),
                    action: Action::NoOp,
                    fields: Vec::new(),
                }
            }
            None => Change {
                kind: ResourceKind::RoleAssignment,
                name: want.change_name(),
                action: Action::Create,
                fields: differences(want, &Value::Null),
            },
        };
        changes.push(change);
    }
    for (index, item) in existing.iter().enumerate() {
        if used[index] || !is_managed(&desired.namespace_id, item) {
            continue;
        }
        let name = change_name(
            topic_space_of(&desired.namespace_id, item),
            text(item, "/name"),
        );
        if prune {
            changes.push(Change {
                kind: ResourceKind::RoleAssignment,
                name,
                action: Action::Delete,
                fields: removed_fields(item),
            });
        } else {
            unmanaged.push((ResourceKind::RoleAssignment, name));
        }
    }
}

/// The deletions of `destroy`: every assignment of the spec that exists under its name.
pub(crate) fn destroy(desired: &Desired, current: &Current) -> Vec<Change> {
    let wanted = desired.role_assignments.as_deref().unwrap_or_default();
    wanted
        .iter()
        .filter_map(|want| {
            let existing = current
                .role_assignments
                .iter()
                .find(|e| text(e, "/name").eq_ignore_ascii_case(&want.name))?;
            Some(Change {
                kind: ResourceKind::RoleAssignment,
                name: want.change_name(),
                action: Action::Delete,
                fields: removed_fields(existing),
            })
        })
        .collect()
}

/// The ARM id, api-version and PUT body (for writes) of a role assignment change.
///
/// # Errors
/// [`Error::InvalidInput`] for a plan entry that is not a role assignment name.
pub(crate) fn target(
    desired: &Desired,
    change: &Change,
) -> Result<(String, String, Option<Value>)> {
    let (space, name) = parse_change_name(&change.name).ok_or_else(|| {
        Error::invalid(
            "role assignment plan entry",
            &change.name,
            "expected namespace/{name} or topicSpaces/{space}/{name}",
        )
    })?;
    let id = assignment_id(&scope_id(&desired.namespace_id, space), name);
    let body = desired
        .role_assignments
        .iter()
        .flatten()
        .find(|want| want.change_name() == change.name)
        .map(|want| want.body.clone());
    Ok((id, API_VERSION.to_owned(), body))
}

/// Whether a PUT failed because the same assignment exists under another name.
#[must_use]
pub fn already_exists(error: &Error) -> bool {
    matches!(error, Error::Arm { status: 409, code: Some(code), .. } if code == ROLE_ASSIGNMENT_EXISTS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NS: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.EventGrid/namespaces/ns";

    #[test]
    fn topic_spaces_are_read_from_the_scope() {
        let at = |scope: &str| json!({ "properties": { "scope": scope } });
        assert_eq!(topic_space_of(NS, &at(NS)), None);
        assert_eq!(
            topic_space_of(NS, &at(&format!("{}/TOPICSPACES/t1", NS.to_lowercase()))),
            Some("t1")
        );
        assert_eq!(topic_space_of(NS, &at("/subscriptions/s")), None);
        assert_eq!(topic_space_of(NS, &at(&format!("{NS}/clients/c1/x"))), None);
    }
}
