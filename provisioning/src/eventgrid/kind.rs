//! [`ResourceKind`]: the resource types e4k manages and the emulator serves (the Event Grid
//! namespace, its five MQTT child types and the role assignments made on them), with their ARM
//! names: URL segments, ARM `type`s, OpenAPI definitions and path parameters.

use serde::{Deserialize, Serialize};

/// The resource types e4k manages, in the order they are created: the namespace, its MQTT
/// children, and role assignments at the namespace or a topic space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResourceKind {
    /// `Microsoft.EventGrid/namespaces`.
    Namespace,
    /// `Microsoft.EventGrid/namespaces/caCertificates`.
    CaCertificate,
    /// `Microsoft.EventGrid/namespaces/topicSpaces`.
    TopicSpace,
    /// `Microsoft.EventGrid/namespaces/clientGroups`.
    ClientGroup,
    /// `Microsoft.EventGrid/namespaces/clients`.
    Client,
    /// `Microsoft.EventGrid/namespaces/permissionBindings`.
    PermissionBinding,
    /// `Microsoft.Authorization/roleAssignments` on the namespace or a topic space (not a child
    /// collection: see [`super::rbac`]).
    RoleAssignment,
}

impl ResourceKind {
    /// Every resource kind, in creation order: namespace first, role assignments last.
    pub const ALL: [Self; 7] = [
        Self::Namespace,
        Self::CaCertificate,
        Self::TopicSpace,
        Self::ClientGroup,
        Self::Client,
        Self::PermissionBinding,
        Self::RoleAssignment,
    ];

    /// The child kinds (everything under a namespace), in creation order.
    pub const CHILDREN: [Self; 5] = {
        let [_, ca, ts, cg, c, pb, _] = Self::ALL;
        [ca, ts, cg, c, pb]
    };

    /// The kinds the Event Grid OpenAPI specs define (all but role assignments): the namespace,
    /// then the children.
    pub const EVENT_GRID: [Self; 6] = {
        let [ns, ca, ts, cg, c, pb, _] = Self::ALL;
        [ns, ca, ts, cg, c, pb]
    };

    /// The URL segment of the collection, e.g. `clientGroups` (`namespaces`,
    /// `roleAssignments`).
    #[must_use]
    pub fn segment(self) -> &'static str {
        match self {
            Self::Namespace => "namespaces",
            Self::CaCertificate => "caCertificates",
            Self::TopicSpace => "topicSpaces",
            Self::ClientGroup => "clientGroups",
            Self::Client => "clients",
            Self::PermissionBinding => "permissionBindings",
            Self::RoleAssignment => "roleAssignments",
        }
    }

    /// The collection path under the namespace's ARM id (`caCertificates`…,
    /// `providers/Microsoft.Authorization/roleAssignments`); empty for the namespace.
    #[must_use]
    pub fn collection(self) -> &'static str {
        match self {
            Self::Namespace => "",
            Self::RoleAssignment => "providers/Microsoft.Authorization/roleAssignments",
            child => child.segment(),
        }
    }

    /// The child kind whose collection segment is `segment`, compared case-insensitively as ARM
    /// does. Never returns [`ResourceKind::Namespace`].
    #[must_use]
    pub fn child_from_segment(segment: &str) -> Option<Self> {
        Self::CHILDREN
            .into_iter()
            .find(|kind| kind.segment().eq_ignore_ascii_case(segment))
    }

    /// The ARM `type` of a resource of this kind.
    #[must_use]
    pub fn arm_type(self) -> &'static str {
        match self {
            Self::Namespace => "Microsoft.EventGrid/namespaces",
            Self::CaCertificate => "Microsoft.EventGrid/namespaces/caCertificates",
            Self::TopicSpace => "Microsoft.EventGrid/namespaces/topicSpaces",
            Self::ClientGroup => "Microsoft.EventGrid/namespaces/clientGroups",
            Self::Client => "Microsoft.EventGrid/namespaces/clients",
            Self::PermissionBinding => "Microsoft.EventGrid/namespaces/permissionBindings",
            Self::RoleAssignment => "Microsoft.Authorization/roleAssignments",
        }
    }

    /// The OpenAPI definition of the PUT body (and of the resource), e.g. `TopicSpace`; for role
    /// assignments, the resource (`RoleAssignment`, in the Authorization spec) whose PUT body is
    /// `RoleAssignmentCreateParameters`.
    #[must_use]
    pub fn definition(self) -> &'static str {
        match self {
            Self::Namespace => "Namespace",
            Self::CaCertificate => "CaCertificate",
            Self::TopicSpace => "TopicSpace",
            Self::ClientGroup => "ClientGroup",
            Self::Client => "Client",
            Self::PermissionBinding => "PermissionBinding",
            Self::RoleAssignment => "RoleAssignment",
        }
    }

    /// The OpenAPI path parameter that carries the resource name, e.g. `clientName`.
    #[must_use]
    pub fn name_parameter(self) -> &'static str {
        match self {
            Self::Namespace => "namespaceName",
            Self::CaCertificate => "caCertificateName",
            Self::TopicSpace => "topicSpaceName",
            Self::ClientGroup => "clientGroupName",
            Self::Client => "clientName",
            Self::PermissionBinding => "permissionBindingName",
            Self::RoleAssignment => "roleAssignmentName",
        }
    }

    /// A singular name for messages: `CA certificate`, `topic space`…
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Namespace => "namespace",
            Self::CaCertificate => "CA certificate",
            Self::TopicSpace => "topic space",
            Self::ClientGroup => "client group",
            Self::Client => "client",
            Self::PermissionBinding => "permission binding",
            Self::RoleAssignment => "role assignment",
        }
    }
}

/// The collection segment, e.g. `clientGroups`.
impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.segment())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_in_creation_order() {
        use ResourceKind::*;
        assert_eq!(
            ResourceKind::CHILDREN,
            [
                CaCertificate,
                TopicSpace,
                ClientGroup,
                Client,
                PermissionBinding
            ]
        );
        assert_eq!(ResourceKind::EVENT_GRID[0], Namespace);
        assert_eq!(ResourceKind::EVENT_GRID[1..], ResourceKind::CHILDREN);
    }

    #[test]
    fn names_round_trip() {
        for kind in ResourceKind::CHILDREN {
            assert_eq!(ResourceKind::child_from_segment(kind.segment()), Some(kind));
            assert_eq!(kind.collection(), kind.segment());
            assert!(kind.arm_type().ends_with(kind.segment()));
        }
        assert_eq!(
            ResourceKind::child_from_segment("CLIENTS"),
            Some(ResourceKind::Client)
        );
        assert_eq!(ResourceKind::child_from_segment("namespaces"), None);
        assert_eq!(
            serde_json::to_string(&ResourceKind::CaCertificate).unwrap(),
            "\"caCertificate\""
        );
    }
}
