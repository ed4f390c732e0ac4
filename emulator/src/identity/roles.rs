//! Role assignments held in the emulator's state (`NamespaceEntry::role_assignments`): how a
//! test puts one there without an ARM route, and how the data plane reads them.
//!
//! A stored assignment is the resource as GET returns it: `{id, name, type, properties:
//! {roleDefinitionId, principalId, principalType, scope}}`. Only assignments whose
//! `roleDefinitionId` names a [`DataRole`] and whose `scope` is the namespace id or
//! `{namespaceId}/topicSpaces/{name}` (compared case-insensitively) grant anything.

use serde_json::{Value, json};

use super::DataRole;
use crate::EmulatorError;
use crate::store::{NamespaceEntry, State, key};

/// What one role assignment grants, read from the stored document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoleGrant {
    /// `principalId`, lowercase.
    pub(crate) principal: String,
    /// The role.
    pub(crate) role: DataRole,
    /// The topic space (lowercase), or `None` for every topic space of the namespace.
    pub(crate) topic_space: Option<String>,
}

/// Where `scope` points inside the namespace whose id is `namespace_id`: `Some(None)` for the
/// namespace, `Some(Some(topic space))` for one of its topic spaces, `None` elsewhere.
fn scope_in(namespace_id: &str, scope: &str) -> Option<Option<String>> {
    let scope = key(scope.trim_end_matches('/'));
    let rest = scope.strip_prefix(&key(namespace_id))?;
    if rest.is_empty() {
        return Some(None);
    }
    let name = rest.strip_prefix("/topicspaces/")?;
    (!name.is_empty() && !name.contains('/')).then(|| Some(name.to_owned()))
}

fn namespace_id(entry: &NamespaceEntry) -> Option<&str> {
    entry.doc.get("id").and_then(Value::as_str)
}

/// The grants of a namespace's role assignments; malformed ones are skipped.
pub(crate) fn grants(entry: &NamespaceEntry) -> Vec<RoleGrant> {
    let Some(id) = namespace_id(entry) else {
        return Vec::new();
    };
    entry
        .role_assignments
        .values()
        .filter_map(|doc| {
            let props = doc.get("properties")?;
            let text = |name: &str| props.get(name).and_then(Value::as_str);
            let role = DataRole::from_definition_id(text("roleDefinitionId")?)?;
            let topic_space = scope_in(id, text("scope")?)?;
            Some(RoleGrant {
                principal: text("principalId")?.to_lowercase(),
                role,
                topic_space,
            })
        })
        .collect()
}

/// The namespace `scope` is in.
fn namespace_of<'a>(state: &'a mut State, scope: &str) -> Option<&'a mut NamespaceEntry> {
    state
        .namespaces
        .values_mut()
        .find(|entry| namespace_id(entry).is_some_and(|id| scope_in(id, scope).is_some()))
}

/// Stores the assignment `name` of `role` to `principal_id` at `scope`, replacing one of the
/// same name.
pub(crate) fn assign(
    state: &mut State,
    name: &str,
    principal_id: &str,
    role: DataRole,
    scope: &str,
) -> Result<(), EmulatorError> {
    let entry = namespace_of(state, scope).ok_or_else(|| EmulatorError::RoleAssignment {
        reason: format!(
            "the scope {scope} is neither a namespace the emulator holds nor one of its topic \
             spaces"
        ),
    })?;
    let subscription = scope.split('/').nth(2).unwrap_or_default();
    let scope = scope.trim_end_matches('/');
    entry.role_assignments.insert(
        key(name),
        json!({
            "id": format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"),
            "name": name,
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "roleDefinitionId": role.definition_id(subscription),
                "principalId": principal_id,
                "principalType": "ServicePrincipal",
                "scope": scope,
            },
        }),
    );
    Ok(())
}

/// Removes the assignment `name` from the namespace `scope` is in; whether there was one.
pub(crate) fn remove(state: &mut State, scope: &str, name: &str) -> bool {
    namespace_of(state, scope)
        .and_then(|entry| entry.role_assignments.remove(&key(name)))
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str =
        "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.EventGrid/namespaces/ns1";

    fn state() -> State {
        let mut state = State::default();
        let entry = NamespaceEntry {
            doc: json!({ "id": NS, "name": "ns1" }),
            ..NamespaceEntry::default()
        };
        state.namespaces.insert("s1/rg/ns1".into(), entry);
        state
    }

    #[test]
    fn scopes_are_the_namespace_or_its_topic_spaces() {
        assert_eq!(scope_in(NS, NS), Some(None));
        assert_eq!(scope_in(NS, &NS.to_uppercase()), Some(None));
        assert_eq!(
            scope_in(NS, &format!("{NS}/topicSpaces/Telemetry")),
            Some(Some("telemetry".into()))
        );
        assert_eq!(scope_in(NS, &format!("{NS}2")), None);
        assert_eq!(scope_in(NS, &format!("{NS}/clients/c1")), None);
        assert_eq!(scope_in(NS, "/subscriptions/s1"), None);
    }

    #[test]
    fn assignments_are_stored_as_arm_resources_and_read_back() {
        let mut state = state();
        assign(&mut state, "a1", "P1", DataRole::Publisher, NS).unwrap();
        let ts = format!("{NS}/topicSpaces/cmd");
        assign(&mut state, "a2", "p2", DataRole::Subscriber, &ts).unwrap();
        assert!(matches!(
            assign(
                &mut state,
                "a3",
                "p3",
                DataRole::Publisher,
                "/subscriptions/s1"
            ),
            Err(EmulatorError::RoleAssignment { .. })
        ));
        let entry = &state.namespaces["s1/rg/ns1"];
        let doc = &entry.role_assignments["a1"];
        assert_eq!(
            doc["properties"]["roleDefinitionId"],
            "/subscriptions/s1/providers/Microsoft.Authorization/roleDefinitions/a12b0b94-b317-4dcd-84a8-502ce99884c6"
        );
        assert_eq!(doc["type"], "Microsoft.Authorization/roleAssignments");
        assert_eq!(
            grants(entry),
            [
                RoleGrant {
                    principal: "p1".into(),
                    role: DataRole::Publisher,
                    topic_space: None
                },
                RoleGrant {
                    principal: "p2".into(),
                    role: DataRole::Subscriber,
                    topic_space: Some("cmd".into())
                },
            ]
        );
        assert!(remove(&mut state, NS, "A1"));
        assert!(!remove(&mut state, NS, "a1"));
    }
}
