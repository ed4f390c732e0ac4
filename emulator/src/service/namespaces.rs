//! The namespace handlers: list, GET, PUT (create or replace, with the service rules and the
//! subscription quota), PATCH, and the computed parts of the namespace document (defaults,
//! hostnames).

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::ResourceKind;
use crate::arm::ArmError;
use crate::route::NamespacePath;
use crate::rules;
use crate::spec::NAMESPACE_UPDATE_DEFINITION;
use crate::store::{
    State, key, namespace_id, namespace_key, provisioning_state, set_provisioning_state,
};

use super::documents::{identity, merge, not_found, system_data};
use super::operations::{Action, Target, another_operation, provisioning};
use super::validation::{check_name, check_quota, validate_body};
use super::{App, Ctx, Inner, Reply};

impl App {
    pub(super) fn list_namespaces(
        &self,
        inner: &Inner,
        ctx: &Ctx<'_>,
        subscription: &str,
        resource_group: Option<&str>,
    ) -> Reply {
        let prefix = match resource_group {
            Some(rg) => key(&format!("{subscription}/{rg}/")),
            None => key(&format!("{subscription}/")),
        };
        let items = inner
            .state
            .namespaces
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, e)| (k.clone(), e.doc.clone()))
            .collect();
        self.page(ctx, items)
    }

    pub(super) fn put_namespace(
        &self,
        inner: &mut Inner,
        ctx: &Ctx<'_>,
        path: &NamespacePath,
    ) -> Reply {
        check_name(ctx.spec, ResourceKind::Namespace, &path.namespace)?;
        let input = validate_body(ctx, ResourceKind::Namespace.definition())?;
        let ns_key = namespace_key(path);
        let target = Target::Namespace(ns_key.clone());
        if Self::busy(inner, &target) {
            return Err(another_operation(ResourceKind::Namespace, &path.namespace));
        }
        let existing = inner.state.namespaces.get(&ns_key);
        rules::namespace(&input, existing.map(|e| &e.doc))?;
        if existing.is_none() {
            self.check_new_namespace(&inner.state, path, &input)?;
        }
        let (state, action, status) = match existing {
            Some(_) => (provisioning::UPDATING, Action::Update, StatusCode::OK),
            None => (provisioning::CREATING, Action::Create, StatusCode::CREATED),
        };
        let doc = self.namespace_document(path, &input, existing.map(|e| &e.doc), state);
        let entry = inner.state.namespaces.entry(ns_key).or_default();
        entry.input = input;
        entry.doc = doc;
        self.commit(inner, ctx, target, action, status)
    }

    fn check_new_namespace(
        &self,
        state: &State,
        path: &NamespacePath,
        input: &Value,
    ) -> Result<(), ArmError> {
        let region = rules::region_of(input);
        let taken = state.namespaces.values().any(|e| {
            e.doc
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(&path.namespace))
                && rules::region_of(&e.doc) == region
        });
        if taken {
            return Err(ArmError::conflict(format!(
                "Namespace name '{}' is already in use in region '{region}'.",
                path.namespace
            ))
            .with_target("namespaceName"));
        }
        let prefix = key(&format!("{}/", path.subscription));
        let count = state
            .namespaces
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .count();
        check_quota(
            count,
            self.config.quotas.namespaces_per_subscription,
            "namespaces per subscription",
        )
    }

    pub(super) fn patch_namespace(
        &self,
        inner: &mut Inner,
        ctx: &Ctx<'_>,
        path: &NamespacePath,
    ) -> Reply {
        let patch = validate_body(ctx, NAMESPACE_UPDATE_DEFINITION)?;
        let ns_key = namespace_key(path);
        let target = Target::Namespace(ns_key.clone());
        let entry = inner
            .state
            .namespaces
            .get(&ns_key)
            .ok_or_else(|| not_found(path, None))?;
        if Self::busy(inner, &target) {
            return Err(another_operation(ResourceKind::Namespace, &path.namespace));
        }
        let mut input = entry.input.clone();
        if patch.get("tags").is_some()
            && let Some(obj) = input.as_object_mut()
        {
            // ARM replaces tags as a whole on PATCH.
            obj.remove("tags");
        }
        let input = merge(input, patch);
        rules::namespace(&input, Some(&entry.doc))?;
        let doc = self.namespace_document(path, &input, Some(&entry.doc), provisioning::UPDATING);
        if let Some(entry) = inner.state.namespaces.get_mut(&ns_key) {
            entry.input = input;
            entry.doc = doc;
        }
        self.commit(inner, ctx, target, Action::Update, StatusCode::ACCEPTED)
    }

    /// The namespace resource for a validated `input`, with service defaults and computed fields.
    fn namespace_document(
        &self,
        path: &NamespacePath,
        input: &Value,
        existing: Option<&Value>,
        state: &str,
    ) -> Value {
        let defaults = json!({
            "sku": { "name": "Standard", "capacity": 1 },
            "properties": {
                "publicNetworkAccess": "Enabled",
                "topicSpacesConfiguration": {
                    "state": "Disabled",
                    "maximumSessionExpiryInHours": 1,
                    "maximumClientSessionsPerAuthenticationName": 1
                }
            }
        });
        let mut doc = merge(defaults, input.clone());
        let identity = identity(existing, namespace_id(path), &path.namespace);
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("id".into(), identity.0);
            obj.insert("name".into(), identity.1);
            obj.insert("type".into(), json!(ResourceKind::Namespace.arm_type()));
            obj.insert("systemData".into(), system_data(existing));
        }
        set_provisioning_state(&mut doc, state);
        self.set_hostnames(&mut doc);
        doc
    }

    /// Fills the read-only hostnames; they are `null` while the namespace is being created.
    pub(super) fn set_hostnames(&self, doc: &mut Value) {
        let creating = provisioning_state(doc) == provisioning::CREATING;
        let name = doc
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let region = rules::region_of(doc);
        let (mqtt, http) = if creating {
            (Value::Null, Value::Null)
        } else {
            (
                json!(
                    self.config
                        .mqtt_hostname
                        .replace("{namespace}", &name)
                        .replace("{region}", &region)
                ),
                json!(format!("{name}.{region}-1.eventgrid.azure.net")),
            )
        };
        let Some(Value::Object(props)) = doc.get_mut("properties") else {
            return;
        };
        for (section, hostname) in [
            ("topicSpacesConfiguration", mqtt),
            ("topicsConfiguration", http),
        ] {
            if let Value::Object(config) = props.entry(section).or_insert_with(|| json!({})) {
                config.insert("hostname".into(), hostname);
            }
        }
    }
}

pub(super) fn get_namespace(inner: &Inner, path: &NamespacePath) -> Reply {
    let entry = inner
        .state
        .namespace(path)
        .ok_or_else(|| not_found(path, None))?;
    Ok((StatusCode::OK, axum::Json(entry.doc.clone())).into_response())
}
