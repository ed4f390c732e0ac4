//! The resource types the emulator serves: the Event Grid namespace, its MQTT children, and
//! the `Microsoft.Authorization/roleAssignments` made on them.

use serde::{Deserialize, Serialize};

/// A resource type served by the emulator: the Event Grid namespace, its MQTT children, and role
/// assignments at the namespace or a topic space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResourceKind {
    /// `Microsoft.EventGrid/namespaces`.
    Namespace,
    /// `Microsoft.EventGrid/namespaces/caCertificates`.
    CaCertificate,
    /// `Microsoft.EventGrid/namespaces/clients`.
    Client,
    /// `Microsoft.EventGrid/namespaces/clientGroups`.
    ClientGroup,
    /// `Microsoft.EventGrid/namespaces/topicSpaces`.
    TopicSpace,
    /// `Microsoft.EventGrid/namespaces/permissionBindings`.
    PermissionBinding,
    /// `Microsoft.Authorization/roleAssignments` at a namespace or one of its topic spaces.
    RoleAssignment,
}

impl ResourceKind {
    /// Every resource kind, namespace first, role assignments last.
    pub const ALL: [Self; 7] = [
        Self::Namespace,
        Self::CaCertificate,
        Self::Client,
        Self::ClientGroup,
        Self::TopicSpace,
        Self::PermissionBinding,
        Self::RoleAssignment,
    ];

    /// The kinds the Event Grid OpenAPI specs define (all but role assignments).
    pub const EVENT_GRID: [Self; 6] = [
        Self::Namespace,
        Self::CaCertificate,
        Self::Client,
        Self::ClientGroup,
        Self::TopicSpace,
        Self::PermissionBinding,
    ];

    /// The child kinds (everything under a namespace).
    pub const CHILDREN: [Self; 5] = [
        Self::CaCertificate,
        Self::Client,
        Self::ClientGroup,
        Self::TopicSpace,
        Self::PermissionBinding,
    ];

    /// The URL segment of the collection, e.g. `clientGroups`.
    pub fn segment(self) -> &'static str {
        match self {
            Self::Namespace => "namespaces",
            Self::CaCertificate => "caCertificates",
            Self::Client => "clients",
            Self::ClientGroup => "clientGroups",
            Self::TopicSpace => "topicSpaces",
            Self::PermissionBinding => "permissionBindings",
            Self::RoleAssignment => "roleAssignments",
        }
    }

    /// The child kind whose collection segment is `segment`, compared case-insensitively as ARM
    /// does. Never returns [`ResourceKind::Namespace`].
    pub fn child_from_segment(segment: &str) -> Option<Self> {
        Self::CHILDREN
            .into_iter()
            .find(|kind| kind.segment().eq_ignore_ascii_case(segment))
    }

    /// The ARM `type` of a resource of this kind.
    pub fn arm_type(self) -> &'static str {
        match self {
            Self::Namespace => "Microsoft.EventGrid/namespaces",
            Self::CaCertificate => "Microsoft.EventGrid/namespaces/caCertificates",
            Self::Client => "Microsoft.EventGrid/namespaces/clients",
            Self::ClientGroup => "Microsoft.EventGrid/namespaces/clientGroups",
            Self::TopicSpace => "Microsoft.EventGrid/namespaces/topicSpaces",
            Self::PermissionBinding => "Microsoft.EventGrid/namespaces/permissionBindings",
            Self::RoleAssignment => "Microsoft.Authorization/roleAssignments",
        }
    }

    /// The OpenAPI definition of the PUT body (and of the resource), e.g. `TopicSpace`; for role
    /// assignments, the resource (`RoleAssignment`, in the Authorization spec) whose PUT body is
    /// `RoleAssignmentCreateParameters`.
    pub fn definition(self) -> &'static str {
        match self {
            Self::Namespace => "Namespace",
            Self::CaCertificate => "CaCertificate",
            Self::Client => "Client",
            Self::ClientGroup => "ClientGroup",
            Self::TopicSpace => "TopicSpace",
            Self::PermissionBinding => "PermissionBinding",
            Self::RoleAssignment => "RoleAssignment",
        }
    }

    /// The OpenAPI path parameter that carries the resource name, e.g. `clientName`.
    pub fn name_parameter(self) -> &'static str {
        match self {
            Self::Namespace => "namespaceName",
            Self::CaCertificate => "caCertificateName",
            Self::Client => "clientName",
            Self::ClientGroup => "clientGroupName",
            Self::TopicSpace => "topicSpaceName",
            Self::PermissionBinding => "permissionBindingName",
            Self::RoleAssignment => "roleAssignmentName",
        }
    }

    /// A human name for messages, e.g. `topic space`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Namespace => "namespace",
            Self::CaCertificate => "CA certificate",
            Self::Client => "client",
            Self::ClientGroup => "client group",
            Self::TopicSpace => "topic space",
            Self::PermissionBinding => "permission binding",
            Self::RoleAssignment => "role assignment",
        }
    }
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.segment())
    }
}
