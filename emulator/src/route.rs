//! Parsing of ARM request paths and query strings.
//!
//! Fixed segments (`subscriptions`, `resourceGroups`, `providers`, `Microsoft.EventGrid`,
//! `namespaces`, the child collection names) match case-insensitively, as in ARM.

use crate::ResourceKind;

/// The namespace a request is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NamespacePath {
    pub(crate) subscription: String,
    pub(crate) resource_group: String,
    pub(crate) namespace: String,
}

/// Role assignments at a namespace or at one of its topic spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoleAssignmentPath {
    pub(crate) namespace: NamespacePath,
    /// The topic space, or `None` for the namespace scope.
    pub(crate) topic_space: Option<String>,
    /// The assignment, or `None` for the collection.
    pub(crate) name: Option<String>,
}

/// What a request path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// The namespaces of a subscription, or of one of its resource groups.
    NamespaceList {
        subscription: String,
        resource_group: Option<String>,
    },
    /// One namespace.
    Namespace(NamespacePath),
    /// A child collection of a namespace.
    ChildList(NamespacePath, ResourceKind),
    /// One child resource.
    Child(NamespacePath, ResourceKind, String),
    /// `{scope}/providers/Microsoft.Authorization/roleAssignments[/{name}]`.
    RoleAssignments(RoleAssignmentPath),
    /// An `Azure-AsyncOperation` status monitor.
    OperationStatus(String),
    /// A `Location` operation-result monitor.
    OperationResult(String),
    /// Anything else.
    Unknown,
}

/// Path segment of the operation-status monitor.
pub(crate) const OPERATION_STATUS_SEGMENT: &str = "operationsStatus";
/// Path segment of the operation-result monitor.
pub(crate) const OPERATION_RESULT_SEGMENT: &str = "operationResults";

impl Route {
    /// Parses a request path (still percent-encoded).
    pub(crate) fn parse(path: &str) -> Self {
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
        let is = |i: usize, fixed: &str| seg.get(i).is_some_and(|s| s.eq_ignore_ascii_case(fixed));
        if !is(0, "subscriptions") || seg.len() < 5 {
            return Self::Unknown;
        }
        let subscription = seg[1].to_owned();
        // /subscriptions/{s}/providers/Microsoft.EventGrid/...
        if is(2, "providers") && is(3, "Microsoft.EventGrid") {
            return match seg[4..] {
                [ns] if ns.eq_ignore_ascii_case("namespaces") => Self::NamespaceList {
                    subscription,
                    resource_group: None,
                },
                [locations, _, kind, id] if locations.eq_ignore_ascii_case("locations") => {
                    if kind.eq_ignore_ascii_case(OPERATION_STATUS_SEGMENT) {
                        Self::OperationStatus(id.to_owned())
                    } else if kind.eq_ignore_ascii_case(OPERATION_RESULT_SEGMENT) {
                        Self::OperationResult(id.to_owned())
                    } else {
                        Self::Unknown
                    }
                }
                _ => Self::Unknown,
            };
        }
        let fixed = [
            (2, "resourceGroups"),
            (4, "providers"),
            (5, "Microsoft.EventGrid"),
            (6, "namespaces"),
        ];
        if !fixed.iter().all(|(i, s)| is(*i, s)) {
            return Self::Unknown;
        }
        let resource_group = seg[3].to_owned();
        let Some(namespace) = seg.get(7) else {
            return Self::NamespaceList {
                subscription,
                resource_group: Some(resource_group),
            };
        };
        let ns = NamespacePath {
            subscription,
            resource_group,
            namespace: (*namespace).to_owned(),
        };
        match seg[8..] {
            [] => Self::Namespace(ns),
            [collection] => match ResourceKind::child_from_segment(collection) {
                Some(kind) => Self::ChildList(ns, kind),
                None => Self::Unknown,
            },
            [collection, name] => match ResourceKind::child_from_segment(collection) {
                Some(kind) => Self::Child(ns, kind, name.to_owned()),
                None => Self::Unknown,
            },
            ref rest => role_assignments(ns, rest).unwrap_or(Self::Unknown),
        }
    }

    /// The resource kind the route addresses, for statistics.
    pub(crate) fn kind(&self) -> Option<ResourceKind> {
        match self {
            Self::NamespaceList { .. } | Self::Namespace(_) => Some(ResourceKind::Namespace),
            Self::ChildList(_, kind) | Self::Child(_, kind, _) => Some(*kind),
            Self::RoleAssignments(_) => Some(ResourceKind::RoleAssignment),
            _ => None,
        }
    }

    /// Whether a GET of the route reads a collection.
    pub(crate) fn is_collection(&self) -> bool {
        match self {
            Self::NamespaceList { .. } | Self::ChildList(..) => true,
            Self::RoleAssignments(path) => path.name.is_none(),
            _ => false,
        }
    }
}

/// `[topicSpaces/{ts}/]providers/Microsoft.Authorization/roleAssignments[/{name}]` after a
/// namespace.
fn role_assignments(namespace: NamespacePath, rest: &[&str]) -> Option<Route> {
    let (topic_space, rest) = match rest {
        [collection, space, rest @ ..] if collection.eq_ignore_ascii_case("topicSpaces") => {
            (Some((*space).to_owned()), rest)
        }
        _ => (None, rest),
    };
    let (fixed, name) = match rest {
        [a, b, c] => ([a, b, c], None),
        [a, b, c, name] => ([a, b, c], Some((*name).to_owned())),
        _ => return None,
    };
    let expected = ["providers", "Microsoft.Authorization", "roleAssignments"];
    fixed
        .iter()
        .zip(expected)
        .all(|(s, e)| s.eq_ignore_ascii_case(e))
        .then_some(Route::RoleAssignments(RoleAssignmentPath {
            namespace,
            topic_space,
            name,
        }))
}

/// The query parameters the emulator reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Query {
    pub(crate) api_version: Option<String>,
    pub(crate) top: Option<String>,
    pub(crate) skip_token: Option<String>,
    pub(crate) filter: Option<String>,
}

impl Query {
    /// Parses a raw query string; parameter names match case-insensitively.
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let mut query = Self::default();
        for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = Some(percent_decode(&value.replace('+', " ")));
            match percent_decode(key).to_ascii_lowercase().as_str() {
                "api-version" => query.api_version = value,
                "$top" => query.top = value,
                "$skiptoken" => query.skip_token = value,
                "$filter" => query.filter = value,
                _ => {}
            }
        }
        query
    }
}

/// Decodes `%XX` escapes; malformed escapes are kept as they are.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str =
        "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.EventGrid/namespaces/ns1";

    #[test]
    fn parses_resources_case_insensitively() {
        let ns = NamespacePath {
            subscription: "s1".into(),
            resource_group: "rg1".into(),
            namespace: "ns1".into(),
        };
        assert_eq!(Route::parse(NS), Route::Namespace(ns.clone()));
        let lower = NS.to_lowercase();
        assert_eq!(Route::parse(&lower), Route::Namespace(ns.clone()));
        assert_eq!(
            Route::parse(&format!("{NS}/CLIENTS")),
            Route::ChildList(ns.clone(), ResourceKind::Client)
        );
        assert_eq!(
            Route::parse(&format!("{NS}/clientGroups/%24all")),
            Route::Child(ns.clone(), ResourceKind::ClientGroup, "$all".into())
        );
        assert_eq!(Route::parse(&format!("{NS}/topics/t")), Route::Unknown);
        let ra = |topic_space: Option<&str>, name: Option<&str>| {
            Route::RoleAssignments(RoleAssignmentPath {
                namespace: ns.clone(),
                topic_space: topic_space.map(str::to_owned),
                name: name.map(str::to_owned),
            })
        };
        let auth = "providers/Microsoft.Authorization/roleAssignments";
        assert_eq!(Route::parse(&format!("{NS}/{auth}")), ra(None, None));
        assert_eq!(
            Route::parse(&format!("{NS}/{auth}/g1")),
            ra(None, Some("g1"))
        );
        assert_eq!(
            Route::parse(&format!("{NS}/topicspaces/t1/{}", auth.to_lowercase())),
            ra(Some("t1"), None)
        );
        assert_eq!(
            Route::parse(&format!("{NS}/topicSpaces/t1/{auth}/g1")),
            ra(Some("t1"), Some("g1"))
        );
        assert_eq!(
            Route::parse(&format!("{NS}/clients/c/{auth}")),
            Route::Unknown
        );
        assert_eq!(Route::parse(&format!("{NS}/{auth}/g1/x")), Route::Unknown);
        assert_eq!(Route::parse("/"), Route::Unknown);
    }

    #[test]
    fn parses_lists_and_operations() {
        assert_eq!(
            Route::parse("/subscriptions/s/providers/microsoft.eventgrid/namespaces"),
            Route::NamespaceList {
                subscription: "s".into(),
                resource_group: None
            }
        );
        assert_eq!(
            Route::parse(
                "/subscriptions/s/resourcegroups/r/providers/Microsoft.EventGrid/Namespaces"
            ),
            Route::NamespaceList {
                subscription: "s".into(),
                resource_group: Some("r".into())
            }
        );
        assert_eq!(
            Route::parse(
                "/subscriptions/s/providers/Microsoft.EventGrid/locations/westus/operationsStatus/abc"
            ),
            Route::OperationStatus("abc".into())
        );
    }

    #[test]
    fn query_and_escapes() {
        let q = Query::parse(Some("API-VERSION=2025-02-15&%24top=2&$skiptoken=a%2Fb"));
        assert_eq!(q.api_version.as_deref(), Some("2025-02-15"));
        assert_eq!(q.top.as_deref(), Some("2"));
        assert_eq!(q.skip_token.as_deref(), Some("a/b"));
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
