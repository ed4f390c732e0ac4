//! `Microsoft.Authorization/roleAssignments` at a namespace or one of its topic spaces:
//! `{scope}/providers/Microsoft.Authorization/roleAssignments[/{name}]`, api-version
//! `2022-04-01` only.
//!
//! - `PUT` validates the body against `RoleAssignmentCreateParameters` of Microsoft's spec, the
//!   name and principal id as GUIDs and the role definition id's shape; it answers `201` with a
//!   new assignment, `200` when the name exists with the same scope, role and principal
//!   (description, condition and principal type are updated), `409 RoleAssignmentUpdateNotPermitted`
//!   when the name exists with another scope, role or principal, and `409 RoleAssignmentExists`
//!   when the same principal, role and scope are assigned under another name. Role assignments
//!   are not long-running operations: no monitor headers, no `provisioningState`.
//! - `GET` of one answers `200` or `404 RoleAssignmentNotFound`; `DELETE` answers `200` with the
//!   deleted assignment or `204` when there is none.
//! - `GET` of the collection lists what applies at the scope: with `$filter=atScope()` the
//!   assignments at the scope and above it (a topic space sees the namespace's), without a filter
//!   also those below (the namespace lists its topic spaces'); any other `$filter` is refused.
//!   Pages hold `page_size` items and continue with `nextLink` (`$skipToken`).
//!
//! Assignments live in [`NamespaceEntry::role_assignments`] by lowercase name; deleting a topic
//! space deletes the assignments made on it ([`drop_scope`]), deleting the namespace all of them.

use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use e4k_provisioning::eventgrid::rbac::is_guid;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::admission::looks_like_api_version;
use super::documents::not_found;
use super::paging::{hex_decode, hex_encode};
use super::validation::validate_body;
use super::{App, Ctx, Inner, Reply, method_not_allowed};
use crate::ResourceKind;
use crate::arm::{ArmError, code};
use crate::route::{Query, RoleAssignmentPath};
use crate::spec::{AUTHORIZATION_API_VERSION, ROLE_ASSIGNMENT_CREATE_DEFINITION};
use crate::store::{NamespaceEntry, key, namespace_id, namespace_key, timestamp};

/// The `error.code` values of the Authorization resource provider.
mod auth_code {
    /// 400: the name in the path is not a GUID.
    pub(super) const INVALID_ID: &str = "InvalidRoleAssignmentId";
    /// 400: `properties.principalId` is not a GUID.
    pub(super) const INVALID_PRINCIPAL: &str = "InvalidPrincipalId";
    /// 400: `properties.roleDefinitionId` is not a role definition id.
    pub(super) const INVALID_ROLE_DEFINITION: &str = "InvalidRoleDefinitionId";
    /// 400: a `$filter` the emulator does not evaluate.
    pub(super) const UNSUPPORTED_FILTER: &str = "UnsupportedQuery";
    /// 404: no assignment of that name at the scope.
    pub(super) const NOT_FOUND: &str = "RoleAssignmentNotFound";
    /// 409: the same principal, role and scope under another name.
    pub(super) const EXISTS: &str = "RoleAssignmentExists";
    /// 409: a PUT that would change an assignment's scope, role or principal.
    pub(super) const UPDATE_NOT_PERMITTED: &str = "RoleAssignmentUpdateNotPermitted";
}

/// The `$filter` value that keeps the assignments at or above the scope.
const AT_SCOPE: &str = "atscope()";

/// The scope a request addresses, once it is known to exist.
struct Scope {
    /// The ARM id of the scope, in the case of the stored resources.
    id: String,
    /// `namespace_key` of the namespace.
    ns_key: String,
}

impl App {
    /// Answers a role assignment request (authorization already checked).
    pub(super) fn role_assignments(
        &self,
        inner: &mut Inner,
        request: &super::Request,
        query: &Query,
        path: &RoleAssignmentPath,
    ) -> Reply {
        check_api_version(query)?;
        self.inject_fault(inner)?;
        if self.settle(inner) {
            self.persist(&inner.state)?;
        }
        let ctx = Ctx {
            request,
            query,
            spec: &self.authorization,
            api_version: AUTHORIZATION_API_VERSION.to_owned(),
            base: self.base_url(&request.headers),
        };
        let method = &request.method;
        let scope = match resolve(inner, path) {
            Ok(scope) => scope,
            Err(_) if *method == Method::DELETE => {
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
            Err(e) => return Err(e),
        };
        match (method, path.name.as_deref()) {
            (&Method::GET, None) => self.list(inner, &ctx, &scope),
            (&Method::GET, Some(name)) => {
                let doc = find(inner, &scope, name).ok_or_else(|| missing(name))?;
                Ok((StatusCode::OK, axum::Json(doc.clone())).into_response())
            }
            (&Method::PUT, Some(name)) => self.put(inner, &ctx, &scope, name),
            (&Method::DELETE, Some(name)) => {
                if find(inner, &scope, name).is_none() {
                    return Ok(StatusCode::NO_CONTENT.into_response());
                }
                let removed = inner
                    .state
                    .namespaces
                    .get_mut(&scope.ns_key)
                    .and_then(|entry| entry.role_assignments.remove(&key(name)));
                self.persist(&inner.state)?;
                Ok((StatusCode::OK, axum::Json(removed)).into_response())
            }
            _ => Err(method_not_allowed(method)),
        }
    }

    fn put(&self, inner: &mut Inner, ctx: &Ctx<'_>, scope: &Scope, name: &str) -> Reply {
        if !is_guid(name) {
            return Err(ArmError::new(
                StatusCode::BAD_REQUEST,
                auth_code::INVALID_ID,
                format!(
                    "The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."
                ),
            )
            .with_target("roleAssignmentName"));
        }
        let input = validate_body(ctx, ROLE_ASSIGNMENT_CREATE_DEFINITION)?;
        let props = input
            .get("properties")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let text = |field: &str| props.get(field).and_then(Value::as_str).unwrap_or_default();
        let principal = text("principalId");
        if !is_guid(principal) {
            return Err(ArmError::new(
                StatusCode::BAD_REQUEST,
                auth_code::INVALID_PRINCIPAL,
                format!(
                    "The principal ID '{principal}' is not valid. Principal ID must be a GUID."
                ),
            )
            .with_target("properties.principalId"));
        }
        let subscription = scope.ns_key.split('/').next().unwrap_or_default();
        let role = role_guid(text("roleDefinitionId"), subscription).ok_or_else(|| {
            ArmError::new(
                StatusCode::BAD_REQUEST,
                auth_code::INVALID_ROLE_DEFINITION,
                format!(
                    "The role definition ID '{}' is not valid: expected /subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{{guid}}.",
                    text("roleDefinitionId")
                ),
            )
            .with_target("properties.roleDefinitionId")
        })?;
        let entry = inner
            .state
            .namespaces
            .get(&scope.ns_key)
            .ok_or_else(|| ArmError::internal("The namespace disappeared."))?;
        let existing = entry.role_assignments.get(&key(name));
        if let Some(doc) = existing
            && !grants(doc, &scope.id, &role, principal)
        {
            return Err(ArmError::new(
                StatusCode::CONFLICT,
                auth_code::UPDATE_NOT_PERMITTED,
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            ));
        }
        if existing.is_none()
            && entry
                .role_assignments
                .values()
                .any(|doc| grants(doc, &scope.id, &role, principal))
        {
            return Err(ArmError::new(
                StatusCode::CONFLICT,
                auth_code::EXISTS,
                "The role assignment already exists.",
            ));
        }
        let now = json!(timestamp(OffsetDateTime::now_utc()));
        let created = existing
            .and_then(|doc| doc.pointer("/properties/createdOn"))
            .cloned()
            .unwrap_or_else(|| now.clone());
        let stored_name = existing
            .and_then(|doc| doc.get("name"))
            .cloned()
            .unwrap_or_else(|| json!(name));
        let mut properties = props.clone();
        if let Value::Object(map) = &mut properties {
            map.entry("principalType").or_insert_with(|| json!("User"));
            map.insert("scope".into(), json!(scope.id));
            map.insert("createdOn".into(), created);
            map.insert("updatedOn".into(), now);
        }
        let doc = json!({
            "id": format!(
                "{}/providers/Microsoft.Authorization/roleAssignments/{}",
                scope.id,
                stored_name.as_str().unwrap_or(name)
            ),
            "name": stored_name,
            "type": ResourceKind::RoleAssignment.arm_type(),
            "properties": properties,
        });
        let status = if existing.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        if let Some(entry) = inner.state.namespaces.get_mut(&scope.ns_key) {
            entry.role_assignments.insert(key(name), doc.clone());
        }
        self.persist(&inner.state)?;
        Ok((status, axum::Json(doc)).into_response())
    }

    /// The assignments that apply at the scope, one page at a time.
    fn list(&self, inner: &Inner, ctx: &Ctx<'_>, scope: &Scope) -> Reply {
        let filter = ctx.query.filter.as_deref().map(str::trim);
        let at_scope = match filter {
            None | Some("") => false,
            Some(f) if f.eq_ignore_ascii_case(AT_SCOPE) => true,
            Some(f) => {
                return Err(ArmError::new(
                    StatusCode::BAD_REQUEST,
                    auth_code::UNSUPPORTED_FILTER,
                    format!("The emulator supports only $filter=atScope(), not '{f}'."),
                )
                .with_target("$filter"));
            }
        };
        let entry = inner.state.namespaces.get(&scope.ns_key);
        let own = scope.id.to_lowercase();
        let namespace = entry
            .and_then(|e| e.doc.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_lowercase();
        let applies = |doc: &Value| {
            let at = doc
                .pointer("/properties/scope")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_lowercase();
            // At the scope, above it (the namespace, for a topic space), or below it.
            at == own || at == namespace || (!at_scope && at.starts_with(&format!("{own}/")))
        };
        let start = match ctx.query.skip_token.as_deref() {
            None => None,
            Some(token) => Some(hex_decode(token).ok_or_else(|| {
                ArmError::bad_request("The $skipToken is invalid.").with_target("$skipToken")
            })?),
        };
        let mut rest = entry
            .into_iter()
            .flat_map(|e| e.role_assignments.iter())
            .filter(|(k, doc)| start.as_ref().is_none_or(|s| *k >= s) && applies(doc));
        let value: Vec<Value> = rest
            .by_ref()
            .take(self.config.page_size)
            .map(|(_, doc)| doc.clone())
            .collect();
        let mut body = json!({ "value": value });
        if let Some((next, _)) = rest.next() {
            let filter = filter
                .filter(|_| at_scope)
                .map(|f| format!("&$filter={f}"))
                .unwrap_or_default();
            body["nextLink"] = json!(format!(
                "{}{}?api-version={AUTHORIZATION_API_VERSION}{filter}&$skipToken={}",
                ctx.base,
                ctx.request.path,
                hex_encode(next)
            ));
        }
        Ok((StatusCode::OK, axum::Json(body)).into_response())
    }
}

/// Removes the assignments made at topic space `space` (a lowercase key) of `entry`.
pub(super) fn drop_scope(entry: &mut NamespaceEntry, space: &str) {
    let suffix = format!("/topicspaces/{}", key(space));
    entry.role_assignments.retain(|_, doc| {
        !doc.pointer("/properties/scope")
            .and_then(Value::as_str)
            .is_some_and(|scope| scope.to_lowercase().ends_with(&suffix))
    });
}

/// `2022-04-01` only; other versions are refused as ARM refuses them.
fn check_api_version(query: &Query) -> Result<(), ArmError> {
    let Some(version) = query.api_version.as_deref().filter(|v| !v.is_empty()) else {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            code::MISSING_API_VERSION,
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    };
    if version == AUTHORIZATION_API_VERSION {
        return Ok(());
    }
    let (status_code, message) = if looks_like_api_version(version) {
        (
            code::NO_REGISTERED_PROVIDER,
            format!(
                "No registered resource provider found for API version '{version}' and type 'roleAssignments'. The supported api-versions are '{AUTHORIZATION_API_VERSION}'."
            ),
        )
    } else {
        (
            code::INVALID_API_VERSION,
            format!(
                "The api-version '{version}' is invalid. The supported versions are '{AUTHORIZATION_API_VERSION}'."
            ),
        )
    };
    Err(ArmError::new(StatusCode::BAD_REQUEST, status_code, message).with_target("api-version"))
}

/// The scope of `path` when it exists: 404 for a missing namespace or topic space.
fn resolve(inner: &Inner, path: &RoleAssignmentPath) -> Result<Scope, ArmError> {
    let ns = &path.namespace;
    let ns_key = namespace_key(ns);
    let entry = inner
        .state
        .namespaces
        .get(&ns_key)
        .ok_or_else(|| not_found(ns, None))?;
    let ns_id = entry
        .doc
        .get("id")
        .and_then(Value::as_str)
        .map_or_else(|| namespace_id(ns), str::to_owned);
    let id = match &path.topic_space {
        None => ns_id,
        Some(space) => {
            let doc = entry
                .child(ResourceKind::TopicSpace, space)
                .ok_or_else(|| not_found(ns, Some((ResourceKind::TopicSpace, space))))?;
            let name = doc.get("name").and_then(Value::as_str).unwrap_or(space);
            format!("{ns_id}/topicSpaces/{name}")
        }
    };
    Ok(Scope { id, ns_key })
}

/// The assignment `name` when it is at `scope`.
fn find<'a>(inner: &'a Inner, scope: &Scope, name: &str) -> Option<&'a Value> {
    let doc = inner
        .state
        .namespaces
        .get(&scope.ns_key)?
        .role_assignments
        .get(&key(name))?;
    doc.pointer("/properties/scope")
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case(&scope.id))
        .then_some(doc)
}

fn missing(name: &str) -> ArmError {
    ArmError::new(
        StatusCode::NOT_FOUND,
        auth_code::NOT_FOUND,
        format!("The role assignment '{name}' is not found."),
    )
}

/// Whether a stored assignment gives `role` (a GUID) to `principal` at `scope`.
fn grants(doc: &Value, scope: &str, role: &str, principal: &str) -> bool {
    let text = |p: &str| doc.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let stored_role = text("/properties/roleDefinitionId")
        .rsplit('/')
        .next()
        .unwrap_or_default();
    text("/properties/scope").eq_ignore_ascii_case(scope)
        && stored_role.eq_ignore_ascii_case(role)
        && text("/properties/principalId").eq_ignore_ascii_case(principal)
}

/// The role GUID of a role definition id of `subscription` (or of the tenant: no prefix).
fn role_guid(id: &str, subscription: &str) -> Option<String> {
    let rest = match id.get(..15) {
        Some(prefix) if prefix.eq_ignore_ascii_case("/subscriptions/") => {
            let (sub, rest) = id[15..].split_once('/')?;
            sub.eq_ignore_ascii_case(subscription).then_some(rest)?
        }
        _ => id.strip_prefix('/')?,
    };
    const PREFIX: &str = "providers/Microsoft.Authorization/roleDefinitions/";
    let guid = rest
        .get(..PREFIX.len())
        .filter(|p| p.eq_ignore_ascii_case(PREFIX))
        .and_then(|_| rest.get(PREFIX.len()..))?;
    is_guid(guid).then(|| guid.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: &str = "a12b0b94-b317-4dcd-84a8-502ce99884c6";

    #[test]
    fn role_definition_ids() {
        let sub =
            format!("/subscriptions/S1/providers/Microsoft.Authorization/roleDefinitions/{GUID}");
        assert_eq!(role_guid(&sub, "s1").as_deref(), Some(GUID));
        assert_eq!(role_guid(&sub, "s2"), None);
        let tenant = format!("/providers/microsoft.authorization/roledefinitions/{GUID}");
        assert_eq!(role_guid(&tenant, "s1").as_deref(), Some(GUID));
        assert_eq!(
            role_guid("/providers/Microsoft.Authorization/roleDefinitions/x", "s"),
            None
        );
        assert_eq!(role_guid("Publisher", "s"), None);
        assert_eq!(role_guid("/subscriptions/ü", "s"), None);
    }

    #[test]
    fn dropping_a_topic_space_drops_its_assignments() {
        let mut entry = NamespaceEntry::default();
        for (name, scope) in [
            ("a", "/ns/topicSpaces/T1"),
            ("b", "/ns"),
            ("c", "/ns/topicSpaces/t10"),
        ] {
            entry
                .role_assignments
                .insert(name.into(), json!({ "properties": { "scope": scope } }));
        }
        drop_scope(&mut entry, "t1");
        assert_eq!(
            entry.role_assignments.keys().collect::<Vec<_>>(),
            ["b", "c"]
        );
    }
}
