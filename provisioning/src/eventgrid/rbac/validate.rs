//! The static rules of `roleAssignments`, checked with the rest of the spec before any ARM
//! call: GUID syntax, exactly one scope, a topic space that the spec defines, no duplicates,
//! and one bridge identity at most. Unknown fields are refused by the parser already.

use std::collections::HashMap;

use super::{PrincipalType, is_guid};
use crate::eventgrid::{
    spec::Spec,
    validate::{Problem, Severity},
};

/// Appends the problems of `spec.roleAssignments` to `problems`.
pub(crate) fn validate(spec: &Spec, problems: &mut Vec<Problem>) {
    let Some(entries) = spec.role_assignments.as_deref() else {
        return;
    };
    let mut error = |path: String, message: String| {
        problems.push(Problem {
            severity: Severity::Error,
            path,
            message,
        });
    };
    let spaces: Vec<String> = spec
        .topic_spaces
        .iter()
        .map(|t| t.name.to_lowercase())
        .collect();
    let mut seen: HashMap<(Option<String>, super::Role, String), usize> = HashMap::new();
    let mut bridge: Option<(usize, String)> = None;
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("roleAssignments[{i}]");
        let principal = entry.principal_id.trim();
        if !is_guid(principal) {
            error(
                format!("{path}.principalId"),
                format!(
                    "{:?} is not a GUID: use the object (principal) id of the user, group or managed identity, e.g. 6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90",
                    entry.principal_id
                ),
            );
        }
        let scope = match (&entry.topic_space, entry.namespace) {
            (Some(_), true) => {
                error(
                    path.clone(),
                    "give either topicSpace: NAME or namespace: true, not both".into(),
                );
                continue;
            }
            (None, false) => {
                error(
                    path.clone(),
                    "give the scope: topicSpace: NAME (one topic space) or namespace: true (all of them)".into(),
                );
                continue;
            }
            (Some(space), false) => {
                if !spaces.contains(&space.to_lowercase()) {
                    error(
                        format!("{path}.topicSpace"),
                        format!("topic space {space:?} is not defined in topicSpaces"),
                    );
                }
                Some(space.to_lowercase())
            }
            (None, true) => None,
        };
        let key = (scope, entry.role, principal.to_lowercase());
        if let Some(first) = seen.get(&key) {
            error(
                path.clone(),
                format!(
                    "the same principal, role and scope as roleAssignments[{first}]; list each assignment once"
                ),
            );
        } else {
            seen.insert(key, i);
        }
        if let Some(client_id) = &entry.bridge_client_id {
            let client_id = client_id.trim();
            if !is_guid(client_id) {
                error(
                    format!("{path}.bridgeClientId"),
                    format!(
                        "{client_id:?} is not a GUID: use the managed identity's client (application) id"
                    ),
                );
            }
            if entry.principal_type != PrincipalType::ServicePrincipal {
                error(
                    format!("{path}.bridgeClientId"),
                    format!(
                        "the bridge runs as a managed identity (a ServicePrincipal), not a {:?}",
                        entry.principal_type
                    ),
                );
            }
            match &bridge {
                Some((first, other)) if !other.eq_ignore_ascii_case(client_id) => error(
                    format!("{path}.bridgeClientId"),
                    format!(
                        "roleAssignments[{first}] names another bridge identity ({other}); the bridge runs as one identity"
                    ),
                ),
                Some(_) => {}
                None => bridge = Some((i, client_id.to_owned())),
            }
        }
    }
}
