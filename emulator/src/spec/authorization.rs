//! Microsoft's `Microsoft.Authorization` role assignments spec (stable `2022-04-01`,
//! `specs/authorization/2022-04-01/authorization-RoleAssignmentsCalls.json`), loaded into the
//! same [`Spec`] validator as the Event Grid specs.
//!
//! It has no name rules (a role assignment name "can be any valid GUID", checked by the routes)
//! and references common-types only from its error responses, so the definitions served,
//! `RoleAssignmentCreateParameters` (PUT body) and `RoleAssignment` (the resource), resolve
//! within the file; that is checked when the spec is loaded.

use std::collections::HashMap;

use serde_json::Value;

use super::{COMMON_JSON, Doc, Spec};
use crate::EmulatorError;

const AUTHORIZATION_JSON: &str =
    include_str!("../../specs/authorization/2022-04-01/authorization-RoleAssignmentsCalls.json");

/// The api-version of the embedded role assignments spec, the only one the role assignment
/// routes serve.
pub const AUTHORIZATION_API_VERSION: &str = "2022-04-01";

/// The definition of a role assignment PUT body.
pub const ROLE_ASSIGNMENT_CREATE_DEFINITION: &str = "RoleAssignmentCreateParameters";

/// The definition of a role assignment as GET returns it.
const ROLE_ASSIGNMENT_DEFINITION: &str = "RoleAssignment";

impl Spec {
    /// The embedded `Microsoft.Authorization` role assignments spec (`2022-04-01`).
    pub fn authorization() -> Result<Self, EmulatorError> {
        let fail = |reason: String| EmulatorError::Spec {
            api_version: AUTHORIZATION_API_VERSION.to_owned(),
            reason,
        };
        let definitions = |text: &str, what: &str| -> Result<_, EmulatorError> {
            let mut doc: Value =
                serde_json::from_str(text).map_err(|e| fail(format!("{what}: not JSON: {e}")))?;
            match doc.get_mut("definitions").map(Value::take) {
                Some(Value::Object(map)) => Ok(map),
                _ => Err(fail(format!("{what}: no definitions"))),
            }
        };
        let spec = Self {
            api_version: AUTHORIZATION_API_VERSION,
            definitions: definitions(AUTHORIZATION_JSON, "authorization")?,
            common: definitions(COMMON_JSON, "common-types")?,
            subtypes: HashMap::new(),
            names: HashMap::new(),
        };
        spec.check_served().map_err(fail)?;
        Ok(spec)
    }

    /// Resolves every `$ref` reachable from the two definitions the routes use.
    fn check_served(&self) -> Result<(), String> {
        self.check_reachable(vec![
            (Doc::Main, ROLE_ASSIGNMENT_CREATE_DEFINITION),
            (Doc::Main, ROLE_ASSIGNMENT_DEFINITION),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Direction;
    use serde_json::json;

    #[test]
    fn role_assignment_bodies_are_checked() {
        let spec = Spec::authorization().unwrap();
        assert_eq!(spec.api_version(), AUTHORIZATION_API_VERSION);
        let check = |body: Value| {
            spec.validate(ROLE_ASSIGNMENT_CREATE_DEFINITION, &body, Direction::Request)
        };
        let ok = check(json!({ "properties": {
            "roleDefinitionId": "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/a12b0b94-b317-4dcd-84a8-502ce99884c6",
            "principalId": "6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90",
            "principalType": "serviceprincipal",
            "scope": "read-only, dropped",
            "description": "managed by e4k" } }))
        .unwrap();
        assert_eq!(ok["properties"]["principalType"], "ServicePrincipal");
        assert!(ok["properties"].get("scope").is_none());
        assert_eq!(check(json!({})).unwrap_err().path, "properties");
        let err = check(json!({ "properties": { "principalId": "p" } })).unwrap_err();
        assert_eq!(err.path, "properties.roleDefinitionId");
        let err = check(
            json!({ "properties": { "roleDefinitionId": "r", "principalId": "p",
            "principalType": "Robot" } }),
        )
        .unwrap_err();
        assert_eq!(err.path, "properties.principalType");
        let err = check(
            json!({ "properties": { "roleDefinitionId": "r", "principalId": "p",
            "colour": "red" } }),
        )
        .unwrap_err();
        assert_eq!(err.path, "properties.colour");
        assert_eq!(
            Spec::for_api_version(AUTHORIZATION_API_VERSION)
                .unwrap()
                .api_version(),
            AUTHORIZATION_API_VERSION
        );
    }
}
