//! Azure RBAC role assignments on the namespace and its topic spaces (`roleAssignments`): the
//! spec entries, the two built-in roles, the deterministic assignment names and the desired
//! ARM state.
//!
//! ```yaml
//! roleAssignments:
//!   - principalId: 6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90   # the identity's object (principal) id
//!     principalType: ServicePrincipal                     # default; or User, Group
//!     role: publisher                                     # or subscriber
//!     topicSpace: telemetry                               # a topic space of this spec…
//!   - { principalId: 6f1c0a4e-…, role: subscriber, namespace: true }   # …or the whole namespace
//! ```
//!
//! Each entry becomes `PUT {scope}/providers/Microsoft.Authorization/roleAssignments/{name}`
//! (api-version [`API_VERSION`]) where `scope` is the namespace id or
//! `{namespaceId}/topicSpaces/{name}`, and `name` is a UUID v5 of the namespace id, the scope,
//! the role and the principal ([`assignment_name`]): the same entry always has the same name,
//! so a rerun writes nothing, and e4k can tell its own assignments from anyone else's.
//!
//! - [`validate`]: the static rules (GUIDs, scope, duplicates), before any ARM call.
//! - [`sync`]: reading the assignments at each scope, planning, applying and destroying.
//!
//! Leaving `roleAssignments` out means e4k neither reads nor touches role assignments;
//! `roleAssignments: []` manages them (with `--prune`, deletes every assignment e4k made).

pub mod sync;
pub mod validate;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use uuid::Uuid;

use super::spec::Spec;

/// The api-version of `Microsoft.Authorization/roleAssignments` e4k uses.
pub const API_VERSION: &str = "2022-04-01";

/// The `description` e4k writes on every assignment it makes, for people reading the portal.
/// It is not what prune relies on (anyone can edit it): see [`is_managed`].
pub const MANAGED_DESCRIPTION: &str = "managed by e4k";

/// Role definition GUID of the built-in role "EventGrid TopicSpaces Publisher" ("Lets you
/// publish messages on topicspaces"; data action `Microsoft.EventGrid/topicSpaces/publish/action`).
/// Source: Microsoft's Azure built-in roles reference, Integration section
/// (MicrosoftDocs/azure-docs `articles/role-based-access-control/built-in-roles.md`,
/// <https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/integration#eventgrid-topicspaces-publisher>).
pub const PUBLISHER_ROLE_ID: &str = "a12b0b94-b317-4dcd-84a8-502ce99884c6";

/// Role definition GUID of the built-in role "EventGrid TopicSpaces Subscriber" ("Lets you
/// subscribe messages on topicspaces"; data action `Microsoft.EventGrid/topicSpaces/subscribe/action`).
/// Same source as [`PUBLISHER_ROLE_ID`]
/// (<https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/integration#eventgrid-topicspaces-subscriber>).
pub const SUBSCRIBER_ROLE_ID: &str = "4b0f2fd7-60b4-4eca-896f-4435034f8bf5";

/// One role assignment of the spec.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleAssignmentSpec {
    /// The object (principal) id of the user, group or service principal (a managed identity's
    /// `principalId`), a GUID.
    pub principal_id: String,
    /// What the principal is (`ServicePrincipal` by default: managed identities and apps).
    #[serde(default)]
    pub principal_type: PrincipalType,
    /// `publisher` or `subscriber`.
    pub role: Role,
    /// The topic space of this spec the role applies to (or set `namespace: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_space: Option<String>,
    /// `true`: the role applies to every topic space of the namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub namespace: bool,
    /// When this principal is the user-assigned managed identity the bridge runs as (AKS
    /// workload identity): its client (application) id, a GUID. `e4k up` then annotates the
    /// bridge's ServiceAccount with `azure.workload.identity/client-id` and labels its pods
    /// `azure.workload.identity/use: "true"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge_client_id: Option<String>,
}

/// What a principal is (ARM `principalType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum PrincipalType {
    /// A service principal: an application or a managed identity (the default).
    #[default]
    ServicePrincipal,
    /// A Microsoft Entra user.
    User,
    /// A Microsoft Entra group.
    Group,
}

/// An Event Grid data-plane role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// "EventGrid TopicSpaces Publisher": publish to the topic spaces in scope.
    Publisher,
    /// "EventGrid TopicSpaces Subscriber": subscribe to the topic spaces in scope.
    Subscriber,
}

impl Role {
    /// Both roles.
    pub const ALL: [Self; 2] = [Self::Publisher, Self::Subscriber];

    /// The built-in role definition GUID.
    #[must_use]
    pub fn definition_guid(self) -> &'static str {
        match self {
            Self::Publisher => PUBLISHER_ROLE_ID,
            Self::Subscriber => SUBSCRIBER_ROLE_ID,
        }
    }

    /// The role definition id as ARM takes it in a subscription:
    /// `/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}`.
    #[must_use]
    pub fn definition_id(self, subscription: &str) -> String {
        format!(
            "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{}",
            self.definition_guid()
        )
    }

    /// The role a `roleDefinitionId` (any scope prefix, any case) names, if it is one of these.
    #[must_use]
    pub fn from_definition_id(id: &str) -> Option<Self> {
        let guid = id.rsplit('/').next().unwrap_or_default();
        Self::ALL
            .into_iter()
            .find(|role| role.definition_guid().eq_ignore_ascii_case(guid))
    }

    /// The Azure role name, e.g. `EventGrid TopicSpaces Publisher`.
    #[must_use]
    pub fn azure_name(self) -> &'static str {
        match self {
            Self::Publisher => "EventGrid TopicSpaces Publisher",
            Self::Subscriber => "EventGrid TopicSpaces Subscriber",
        }
    }
}

/// One role assignment as the spec wants it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredRoleAssignment {
    /// The deterministic name ([`assignment_name`]).
    pub name: String,
    /// The topic space it applies to, or `None` for the namespace.
    pub topic_space: Option<String>,
    /// The ARM id of the scope.
    pub scope: String,
    /// The role.
    pub role: Role,
    /// The principal id as written in the spec.
    pub principal_id: String,
    /// The full PUT body.
    pub body: Value,
}

impl DesiredRoleAssignment {
    /// The ARM id: `{scope}/providers/Microsoft.Authorization/roleAssignments/{name}`.
    #[must_use]
    pub fn id(&self) -> String {
        assignment_id(&self.scope, &self.name)
    }

    /// The name of its plan entry: `namespace/{name}` or `topicSpaces/{space}/{name}`.
    #[must_use]
    pub fn change_name(&self) -> String {
        change_name(self.topic_space.as_deref(), &self.name)
    }
}

/// `{scope}/providers/Microsoft.Authorization/roleAssignments/{name}`.
#[must_use]
pub fn assignment_id(scope: &str, name: &str) -> String {
    format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}")
}

/// The ARM id of a scope: the namespace, or one of its topic spaces.
#[must_use]
pub fn scope_id(namespace_id: &str, topic_space: Option<&str>) -> String {
    match topic_space {
        Some(space) => format!("{namespace_id}/topicSpaces/{space}"),
        None => namespace_id.to_owned(),
    }
}

/// The plan entry name of an assignment: `namespace/{name}` or `topicSpaces/{space}/{name}`.
#[must_use]
pub fn change_name(topic_space: Option<&str>, name: &str) -> String {
    match topic_space {
        Some(space) => format!("topicSpaces/{space}/{name}"),
        None => format!("namespace/{name}"),
    }
}

/// The scope and assignment name of a plan entry made by [`change_name`].
#[must_use]
pub fn parse_change_name(change: &str) -> Option<(Option<&str>, &str)> {
    let parts: Vec<&str> = change.split('/').collect();
    match parts.as_slice() {
        ["namespace", name] => Some((None, name)),
        ["topicSpaces", space, name] => Some((Some(space), name)),
        _ => None,
    }
}

/// The v5 UUID namespace of e4k's role assignment names (itself the v5 UUID of the URL
/// namespace and `urn:e4k:eventgrid:roleAssignment`).
fn name_namespace() -> Uuid {
    uuid_v5(&Uuid::NAMESPACE_URL, b"urn:e4k:eventgrid:roleAssignment")
}

/// A name-based (SHA-1) UUID, RFC 9562 §5.5; the same as `uuid`'s `new_v5`, built on the
/// `sha1` crate e4k already has instead of a second SHA-1 implementation.
#[must_use]
pub fn uuid_v5(namespace: &Uuid, name: &[u8]) -> Uuid {
    let mut hasher = Sha1::new();
    hasher.update(namespace.as_bytes());
    hasher.update(name);
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// The deterministic name of an assignment: the UUID v5 of the namespace id, the scope id, the
/// role definition GUID and the principal id, each lowercased (ARM ids and GUIDs compare
/// case-insensitively), joined by newlines.
#[must_use]
pub fn assignment_name(namespace_id: &str, scope: &str, role: Role, principal_id: &str) -> String {
    let input = format!(
        "{}\n{}\n{}\n{}",
        namespace_id.to_lowercase(),
        scope.to_lowercase(),
        role.definition_guid(),
        principal_id.trim().to_lowercase()
    );
    uuid_v5(&name_namespace(), input.as_bytes()).to_string()
}

/// Whether e4k made an existing assignment: its name is the deterministic name of its own
/// scope, role and principal. A name cannot be changed after creation and anyone else's
/// assignment (portal, CLI, Bicep) has another GUID, so only e4k's match; the description
/// marker is not used, because anyone can edit a description.
#[must_use]
pub fn is_managed(namespace_id: &str, existing: &Value) -> bool {
    let text = |pointer: &str| existing.pointer(pointer).and_then(Value::as_str);
    let (Some(name), Some(scope), Some(definition), Some(principal)) = (
        text("/name"),
        text("/properties/scope"),
        text("/properties/roleDefinitionId"),
        text("/properties/principalId"),
    ) else {
        return false;
    };
    Role::from_definition_id(definition).is_some_and(|role| {
        assignment_name(namespace_id, scope, role, principal).eq_ignore_ascii_case(name)
    })
}

/// The desired role assignments of a spec (empty when it has none).
#[must_use]
pub fn desired(spec: &Spec, namespace_id: &str) -> Vec<DesiredRoleAssignment> {
    let entries = spec.role_assignments.as_deref().unwrap_or_default();
    entries
        .iter()
        .map(|entry| {
            let topic_space = entry.topic_space.clone().filter(|_| !entry.namespace);
            let scope = scope_id(namespace_id, topic_space.as_deref());
            let principal_id = entry.principal_id.trim().to_owned();
            DesiredRoleAssignment {
                name: assignment_name(namespace_id, &scope, entry.role, &principal_id),
                body: json!({ "properties": {
                    "roleDefinitionId": entry.role.definition_id(&spec.subscription),
                    "principalId": principal_id,
                    "principalType": entry.principal_type,
                    "description": MANAGED_DESCRIPTION,
                }}),
                topic_space,
                scope,
                role: entry.role,
                principal_id,
            }
        })
        .collect()
}

/// The client id of the managed identity the bridge runs as, when an assignment says so.
#[must_use]
pub fn bridge_client_id(spec: &Spec) -> Option<&str> {
    spec.role_assignments
        .as_deref()?
        .iter()
        .find_map(|entry| entry.bridge_client_id.as_deref())
        .map(str::trim)
}

/// Whether `text` is a GUID: `8-4-4-4-12` hex digits, as ARM writes them (no braces).
#[must_use]
pub fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v5_matches_the_rfc_vector() {
        // RFC 9562 Appendix A.4: v5 of the DNS namespace and "www.example.com".
        assert_eq!(
            uuid_v5(&Uuid::NAMESPACE_DNS, b"www.example.com").to_string(),
            "2ed6657d-e927-568b-95e1-2665a8aea6a2"
        );
    }

    #[test]
    fn names_are_deterministic_and_case_insensitive() {
        let ns = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.EventGrid/namespaces/ns";
        let scope = scope_id(ns, Some("telemetry"));
        let principal = "6F1C0A4E-0C7E-4A57-9D5F-3F1E2D7C8B90";
        let a = assignment_name(ns, &scope, Role::Publisher, principal);
        assert_eq!(
            a,
            assignment_name(
                &ns.to_uppercase(),
                &scope.to_lowercase(),
                Role::Publisher,
                &principal.to_lowercase()
            )
        );
        assert!(is_guid(&a));
        assert_ne!(a, assignment_name(ns, &scope, Role::Subscriber, principal));
        assert_ne!(a, assignment_name(ns, ns, Role::Publisher, principal));
        let existing = json!({ "name": a.to_uppercase(), "properties": {
            "scope": scope, "principalId": principal,
            "roleDefinitionId": Role::Publisher.definition_id("s") } });
        assert!(is_managed(ns, &existing));
        let mut foreign = existing.clone();
        foreign["name"] = json!("00000000-0000-0000-0000-000000000001");
        assert!(!is_managed(ns, &foreign));
    }

    #[test]
    fn guids_and_change_names() {
        assert!(is_guid("6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90"));
        assert!(!is_guid("{6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90}"));
        assert!(!is_guid("6f1c0a4e0c7e4a579d5f3f1e2d7c8b90"));
        assert!(!is_guid("6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b9g"));
        assert_eq!(
            parse_change_name(&change_name(Some("t"), "g")),
            Some((Some("t"), "g"))
        );
        assert_eq!(
            parse_change_name(&change_name(None, "g")),
            Some((None, "g"))
        );
        assert_eq!(parse_change_name("x/y"), None);
        assert_eq!(
            Role::from_definition_id(
                "/providers/Microsoft.Authorization/roleDefinitions/4B0F2FD7-60B4-4ECA-896F-4435034F8BF5"
            ),
            Some(Role::Subscriber)
        );
    }
}
