//! The desired ARM state a [`Spec`] describes: resource ids and request bodies.

use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{
    rbac::DesiredRoleAssignment,
    spec::{Spec, State},
};
use crate::{Error, Result, certs::read_certificates};

pub use super::kind::ResourceKind;

/// One child resource as the spec wants it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredResource {
    /// Its type.
    pub kind: ResourceKind,
    /// Its name.
    pub name: String,
    /// The full PUT body (`{"properties": {...}}`).
    pub body: Value,
}

/// What the spec wants of the namespace itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredNamespace {
    /// The namespace name.
    pub name: String,
    /// The full PUT body when the spec may create it (`namespace.create`).
    pub create_body: Option<Value>,
    /// The managed MQTT settings, as the `properties` of a PATCH body.
    pub mqtt_properties: Value,
}

/// Everything a spec wants, ready for ARM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desired {
    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.EventGrid/namespaces/{ns}`
    pub namespace_id: String,
    /// The namespace.
    pub namespace: DesiredNamespace,
    /// The children, in creation order.
    pub children: Vec<DesiredResource>,
    /// The role assignments, or `None` when the spec leaves them alone (no `roleAssignments`).
    pub role_assignments: Option<Vec<DesiredRoleAssignment>>,
    /// api-version for the namespace.
    pub namespace_api_version: String,
    /// api-version for the children.
    pub child_api_version: String,
}

impl Desired {
    /// The ARM id of a child resource.
    #[must_use]
    pub fn child_id(&self, kind: ResourceKind, name: &str) -> String {
        format!("{}/{}/{name}", self.namespace_id, kind.collection())
    }

    /// The ARM id of a child collection.
    #[must_use]
    pub fn collection_id(&self, kind: ResourceKind) -> String {
        format!("{}/{}", self.namespace_id, kind.collection())
    }
}

/// Builds the desired ARM state of a spec; CA files are read relative to `spec_dir`.
///
/// # Errors
/// [`Error::Spec`] when a CA file cannot be read (validation reports it first).
pub fn desired(spec: &Spec, spec_dir: &Path, spec_path: &Path) -> Result<Desired> {
    let namespace_id = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.EventGrid/namespaces/{}",
        spec.subscription, spec.resource_group, spec.namespace.name
    );
    let mqtt = &spec.namespace.mqtt;
    let mut tsc = Map::new();
    tsc.insert("state".into(), json!(state(mqtt.state)));
    if let Some(n) = mqtt.max_client_sessions_per_authentication_name {
        tsc.insert(
            "maximumClientSessionsPerAuthenticationName".into(),
            json!(n),
        );
    }
    if let Some(h) = mqtt.max_session_expiry_in_hours {
        tsc.insert("maximumSessionExpiryInHours".into(), json!(h));
    }
    let mut client_authentication = Map::new();
    if !mqtt.alternative_authentication_name_sources.is_empty() {
        client_authentication.insert(
            "alternativeAuthenticationNameSources".into(),
            json!(mqtt.alternative_authentication_name_sources),
        );
    }
    if let Some(jwt) = super::jwt::render(spec, spec_dir, spec_path)? {
        client_authentication.insert("customJwtAuthentication".into(), jwt);
    }
    if !client_authentication.is_empty() {
        tsc.insert(
            "clientAuthentication".into(),
            Value::Object(client_authentication),
        );
    }
    let mqtt_properties = json!({ "topicSpacesConfiguration": Value::Object(tsc) });
    let create_body = spec.namespace.create.as_ref().map(|create| {
        json!({
            "location": create.location,
            "tags": create.tags,
            "sku": { "name": "Standard", "capacity": create.capacity.unwrap_or(1) },
            "properties": mqtt_properties,
        })
    });

    let mut children = Vec::new();
    let with_description = |mut properties: Value, description: &Option<String>| {
        if let (Some(d), Some(map)) = (description, properties.as_object_mut()) {
            map.insert("description".into(), json!(d));
        }
        json!({ "properties": properties })
    };
    for ca in &spec.ca_certificates {
        let file = spec_dir.join(&ca.file);
        let der = read_certificates(&file)
            .map_err(|e| Error::spec(spec_path, format!("caCertificates {}: {e}", ca.name)))?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::spec(
                    spec_path,
                    format!("caCertificates {}: no certificate", ca.name),
                )
            })?;
        children.push(DesiredResource {
            kind: ResourceKind::CaCertificate,
            name: ca.name.clone(),
            body: with_description(
                json!({ "encodedCertificate": one_line_pem(&der) }),
                &ca.description,
            ),
        });
    }
    for space in &spec.topic_spaces {
        children.push(DesiredResource {
            kind: ResourceKind::TopicSpace,
            name: space.name.clone(),
            body: with_description(
                json!({ "topicTemplates": space.topic_templates }),
                &space.description,
            ),
        });
    }
    for group in &spec.client_groups {
        children.push(DesiredResource {
            kind: ResourceKind::ClientGroup,
            name: group.name.clone(),
            body: with_description(json!({ "query": group.query }), &group.description),
        });
    }
    for client in &spec.clients {
        let mut auth = json!({ "validationScheme": client.validation_scheme });
        if !client.allowed_thumbprints.is_empty()
            && let Some(map) = auth.as_object_mut()
        {
            let thumbprints: Vec<String> = client
                .allowed_thumbprints
                .iter()
                .map(|t| t.to_lowercase())
                .collect();
            map.insert("allowedThumbprints".into(), json!(thumbprints));
        }
        children.push(DesiredResource {
            kind: ResourceKind::Client,
            name: client.name.clone(),
            body: with_description(
                json!({
                    "authenticationName": client.authentication_name(),
                    "clientCertificateAuthentication": auth,
                    "state": state(client.state),
                    "attributes": client.attributes,
                }),
                &client.description,
            ),
        });
    }
    for binding in &spec.permission_bindings {
        children.push(DesiredResource {
            kind: ResourceKind::PermissionBinding,
            name: binding.name.clone(),
            body: with_description(
                json!({
                    "topicSpaceName": binding.topic_space,
                    "clientGroupName": binding.client_group,
                    "permission": binding.permission,
                }),
                &binding.description,
            ),
        });
    }
    let role_assignments = spec
        .role_assignments
        .as_ref()
        .map(|_| super::rbac::desired(spec, &namespace_id));
    Ok(Desired {
        namespace_id,
        namespace: DesiredNamespace {
            name: spec.namespace.name.clone(),
            create_body,
            mqtt_properties,
        },
        children,
        role_assignments,
        namespace_api_version: spec.api_versions.namespace.clone(),
        child_api_version: spec.api_versions.children.clone(),
    })
}

fn state(state: State) -> &'static str {
    match state {
        State::Enabled => "Enabled",
        State::Disabled => "Disabled",
    }
}

/// A certificate as Event Grid takes it in `encodedCertificate`: PEM with its line breaks
/// removed. The service refuses standard multi-line PEM (Azure/azure-cli#30243).
#[must_use]
pub fn one_line_pem(der: &[u8]) -> String {
    let pem = pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    pem.lines().collect()
}
