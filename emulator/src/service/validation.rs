//! Checks of a write against the spec of its api-version and the service limits: the body
//! against the OpenAPI definition, the resource name against the spec's pattern, and quotas.

use serde_json::Value;

use crate::ResourceKind;
use crate::arm::ArmError;
use crate::spec::{Direction, Spec};

use super::Ctx;

pub(super) fn validate_body(ctx: &Ctx<'_>, definition: &str) -> Result<Value, ArmError> {
    let (spec, body) = (ctx.spec, &ctx.request.body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ArmError::invalid_content(
            "The request content was invalid and could not be deserialized: the body is empty.",
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ArmError::invalid_content(format!(
            "The request content was invalid and could not be deserialized: {e}."
        ))
    })?;
    spec.validate(definition, &value, Direction::Request)
        .map_err(|violation| {
            let error =
                ArmError::invalid_content(format!("The request content is invalid: {violation}."));
            if violation.path.is_empty() {
                error
            } else {
                error.with_target(violation.path)
            }
        })
}

pub(super) fn check_name(spec: &Spec, kind: ResourceKind, name: &str) -> Result<(), ArmError> {
    let Some(rule) = spec.name_rule(kind) else {
        return Ok(());
    };
    rule.check(name).map_err(|reason| {
        ArmError::bad_request(format!(
            "The {} name '{name}' is invalid: it {reason}.",
            kind.label()
        ))
        .with_target(kind.name_parameter())
    })
}

pub(super) fn check_quota(count: usize, limit: usize, what: &str) -> Result<(), ArmError> {
    if count >= limit {
        Err(ArmError::bad_request(format!(
            "The limit of {limit} {what} has been reached."
        )))
    } else {
        Ok(())
    }
}
