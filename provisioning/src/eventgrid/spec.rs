//! The Event Grid spec file: what a namespace should hold, as YAML users write and review.
//!
//! ```yaml
//! subscription: ${AZURE_SUBSCRIPTION_ID}
//! resourceGroup: factory-rg
//! namespace:
//!   name: factory-ns
//!   create: { location: westeurope }          # optional: create the namespace when missing
//!   mqtt:
//!     alternativeAuthenticationNameSources: [ClientCertificateSubject]
//!     maxClientSessionsPerAuthenticationName: 3
//! caCertificates:
//!   - { name: intermediate, file: pki/certs/intermediate_ca.crt }
//! clients:
//!   - { name: mosquitto, attributes: { commander: "true" } }
//! topicSpaces:
//!   - { name: command, topicTemplates: ["command/#"] }
//! clientGroups:
//!   - { name: commanders, query: 'attributes.commander = "true"' }
//! permissionBindings:
//!   - { name: commanders-publish-command, clientGroup: commanders, topicSpace: command, permission: Publisher }
//! roleAssignments:                            # optional: Azure RBAC (Microsoft Entra ID clients)
//!   - { principalId: 6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90, role: publisher, topicSpace: command }
//! ```
//!
//! `roleAssignments` is described in [`super::rbac`], `namespace.mqtt.customJwtAuthentication`
//! in [`super::jwt`].
//!
//! `${NAME}` is replaced by the environment variable `NAME` before parsing (`${NAME:-default}`
//! when it may be unset); `${client.…}` in topic templates is Event Grid's and left alone.
//! Unknown fields are errors, reported with their path and line.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

pub use super::jwt::{CustomJwtAuthentication, IssuerCertificate};
pub use super::rbac::{PrincipalType, Role, RoleAssignmentSpec};
use crate::{Error, Result};

/// The largest spec file read (a spec with thousands of clients is still far below).
const MAX_SPEC_BYTES: u64 = 16 * 1024 * 1024;

/// A whole spec: one namespace and the MQTT resources in it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// The Azure subscription id.
    pub subscription: String,
    /// The resource group holding the namespace.
    pub resource_group: String,
    /// The namespace and its MQTT settings.
    pub namespace: NamespaceSpec,
    /// CA certificates that sign client certificates.
    #[serde(default)]
    pub ca_certificates: Vec<CaCertificateSpec>,
    /// Registered clients.
    #[serde(default)]
    pub clients: Vec<ClientSpec>,
    /// Topic spaces.
    #[serde(default)]
    pub topic_spaces: Vec<TopicSpaceSpec>,
    /// Client groups (`$all` is built in and must not be listed).
    #[serde(default)]
    pub client_groups: Vec<ClientGroupSpec>,
    /// Permission bindings.
    #[serde(default)]
    pub permission_bindings: Vec<PermissionBindingSpec>,
    /// Azure RBAC role assignments on the namespace or its topic spaces. `None` (the field is
    /// absent): e4k leaves role assignments alone; a list, even empty: e4k manages its own.
    #[serde(default)]
    pub role_assignments: Option<Vec<RoleAssignmentSpec>>,
    /// ARM api-versions, when the defaults do not suit.
    #[serde(default)]
    pub api_versions: ApiVersions,
}

/// The namespace.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceSpec {
    /// Namespace name (3–50 characters: letters, digits, `-`).
    pub name: String,
    /// Create the namespace when it does not exist (otherwise it must exist).
    #[serde(default)]
    pub create: Option<NamespaceCreate>,
    /// MQTT broker settings (`topicSpacesConfiguration`).
    #[serde(default)]
    pub mqtt: MqttSettings,
}

/// How to create a namespace.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceCreate {
    /// Azure region, e.g. `westeurope`.
    pub location: String,
    /// Throughput units (1–40; default 1).
    #[serde(default)]
    pub capacity: Option<u32>,
    /// Resource tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// MQTT settings of the namespace.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MqttSettings {
    /// `Enabled` (default) or `Disabled`.
    #[serde(default = "enabled")]
    pub state: State,
    /// Where Event Grid reads a client's authentication name when CONNECT has no username, in
    /// order (needs a preview api-version, which is the default).
    #[serde(default)]
    pub alternative_authentication_name_sources: Vec<AlternativeAuthenticationNameSource>,
    /// Sessions one authentication name may hold (1–100; Event Grid's default is 1).
    #[serde(default)]
    pub max_client_sessions_per_authentication_name: Option<u32>,
    /// Longest session expiry in hours (1–8; Event Grid's default is 1).
    #[serde(default)]
    pub max_session_expiry_in_hours: Option<u32>,
    /// Clients authenticating with JWTs of another issuer (needs a preview api-version).
    #[serde(default)]
    pub custom_jwt_authentication: Option<CustomJwtAuthentication>,
}

impl Default for MqttSettings {
    fn default() -> Self {
        Self {
            state: State::Enabled,
            alternative_authentication_name_sources: Vec::new(),
            max_client_sessions_per_authentication_name: None,
            max_session_expiry_in_hours: None,
            custom_jwt_authentication: None,
        }
    }
}

fn enabled() -> State {
    State::Enabled
}

/// `Enabled` or `Disabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum State {
    /// On.
    Enabled,
    /// Off.
    Disabled,
}

/// A certificate field Event Grid may read the authentication name from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum AlternativeAuthenticationNameSource {
    /// The subject (common name).
    ClientCertificateSubject,
    /// A DNS SAN.
    ClientCertificateDns,
    /// A URI SAN.
    ClientCertificateUri,
    /// An IP SAN.
    ClientCertificateIp,
    /// An email SAN.
    ClientCertificateEmail,
}

/// A CA certificate to upload.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CaCertificateSpec {
    /// Resource name (3–50 characters: letters, digits, `-`).
    pub name: String,
    /// The PEM file, relative to the spec file (e.g. what `e4k certs init` wrote).
    pub file: PathBuf,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// A client.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientSpec {
    /// Resource name (1–128 characters: letters, digits, `-`, `:`, `.`, `_`).
    pub name: String,
    /// The name the client authenticates as (default: `name`); cannot change later.
    #[serde(default)]
    pub authentication_name: Option<String>,
    /// Which certificate field must carry the authentication name.
    #[serde(default)]
    pub validation_scheme: ValidationScheme,
    /// SHA-256 thumbprints (1–2), only with `ThumbprintMatch`.
    #[serde(default)]
    pub allowed_thumbprints: Vec<String>,
    /// Attributes that client group queries read.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeValue>,
    /// `Enabled` (default) or `Disabled`.
    #[serde(default = "enabled")]
    pub state: State,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

impl ClientSpec {
    /// The authentication name: as given, or the client's name.
    #[must_use]
    pub fn authentication_name(&self) -> &str {
        self.authentication_name.as_deref().unwrap_or(&self.name)
    }
}

/// Event Grid's client `validationScheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum ValidationScheme {
    /// The subject's common name (the default).
    #[default]
    SubjectMatchesAuthenticationName,
    /// A DNS SAN.
    DnsMatchesAuthenticationName,
    /// A URI SAN.
    UriMatchesAuthenticationName,
    /// An IP SAN.
    IpMatchesAuthenticationName,
    /// An email SAN.
    EmailMatchesAuthenticationName,
    /// The certificate thumbprint is one of `allowedThumbprints`.
    ThumbprintMatch,
}

impl std::str::FromStr for ValidationScheme {
    type Err = Error;
    /// Accepts the ARM name (`SubjectMatchesAuthenticationName`) or its short form (`subject`,
    /// `dns`, `uri`, `ip`, `email`, `thumbprint`), case-insensitively.
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        let short = lower.trim_end_matches("matchesauthenticationname");
        Ok(match short {
            "subject" => Self::SubjectMatchesAuthenticationName,
            "dns" => Self::DnsMatchesAuthenticationName,
            "uri" => Self::UriMatchesAuthenticationName,
            "ip" => Self::IpMatchesAuthenticationName,
            "email" => Self::EmailMatchesAuthenticationName,
            "thumbprint" | "thumbprintmatch" => Self::ThumbprintMatch,
            _ => {
                return Err(Error::invalid(
                    "--scheme",
                    s,
                    "expected subject, dns, uri, ip, email or thumbprint",
                ));
            }
        })
    }
}

/// A client attribute value: what Event Grid accepts.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum AttributeValue {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string. Quote values like `"true"` in YAML to keep them strings.
    String(String),
    /// A list of strings.
    Strings(Vec<String>),
}

/// A topic space.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TopicSpaceSpec {
    /// Resource name (3–50 characters: letters, digits, `-`).
    pub name: String,
    /// 1–10 topic templates.
    pub topic_templates: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// A client group.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientGroupSpec {
    /// Resource name (3–50 characters: letters, digits, `-`).
    pub name: String,
    /// The membership query, e.g. `attributes.commander = "true"`.
    pub query: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// A permission binding: a client group may publish to or subscribe from a topic space.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PermissionBindingSpec {
    /// Resource name (3–50 characters: letters, digits, `-`).
    pub name: String,
    /// A client group of the spec, or `$all`.
    pub client_group: String,
    /// A topic space of the spec.
    pub topic_space: String,
    /// `Publisher` or `Subscriber`.
    pub permission: Permission,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// What a binding allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Permission {
    /// Publish to the topic space.
    Publisher,
    /// Subscribe to the topic space.
    Subscriber,
}

/// Default api-version of the namespace: the newest preview, because only previews carry
/// `clientAuthentication` (alternative authentication name sources).
pub const NAMESPACE_API_VERSION: &str = "2026-06-15-preview";
/// Default api-version of the child resources: the stable version.
pub const CHILD_API_VERSION: &str = "2025-02-15";

/// ARM api-versions per resource type.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiVersions {
    /// For the namespace.
    #[serde(default = "namespace_api_version")]
    pub namespace: String,
    /// For CA certificates, clients, client groups, topic spaces and permission bindings.
    #[serde(default = "child_api_version")]
    pub children: String,
}

impl Default for ApiVersions {
    fn default() -> Self {
        Self {
            namespace: namespace_api_version(),
            children: child_api_version(),
        }
    }
}

fn namespace_api_version() -> String {
    NAMESPACE_API_VERSION.to_owned()
}

fn child_api_version() -> String {
    CHILD_API_VERSION.to_owned()
}

impl Spec {
    /// Reads a spec file, substituting `${ENV}` variables from the process environment.
    ///
    /// # Errors
    /// [`Error::Read`], or [`Error::Spec`] for a missing variable, malformed YAML, an unknown
    /// field or a value of the wrong type (with its path and line).
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// [`Spec::load`] with an explicit environment.
    ///
    /// # Errors
    /// As [`Spec::load`].
    pub fn load_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let read = |source| Error::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        if meta.len() > MAX_SPEC_BYTES {
            return Err(Error::spec(
                path,
                format!("larger than {MAX_SPEC_BYTES} bytes"),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Self::parse(&text, path, env)
    }

    /// Parses spec text; `origin` names it in errors.
    ///
    /// # Errors
    /// [`Error::Spec`] as for [`Spec::load`].
    pub fn parse(text: &str, origin: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let text = substitute_env(text, env).map_err(|e| Error::spec(origin, e))?;
        let path = RefCell::new(String::new());
        let result = serde_saphyr::with_deserializer_from_str(&text, |de| {
            serde_path_to_error::deserialize::<_, Spec>(de).map_err(|e| {
                *path.borrow_mut() = e.path().to_string();
                e.into_inner()
            })
        });
        result.map_err(|e| {
            let path = path.into_inner();
            // serde-saphyr's message ends with "at line L, column C" when it knows them.
            let message = e.without_snippet().to_string();
            let message = message.lines().next().unwrap_or_default().to_owned();
            let place = if path.is_empty() || path == "." {
                String::new()
            } else {
                format!("{path}: ")
            };
            Error::spec(origin, format!("{place}{message}"))
        })
    }
}

/// Replaces `${NAME}` and `${NAME:-default}` (NAME = `[A-Z_][A-Z0-9_]*`) with environment
/// values; anything else in `${…}` (Event Grid's `${client.…}` variables) is left alone.
fn substitute_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    // Whole-line comments are kept as they are: they may mention `${NAME}` to explain it.
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            out.push_str(&substitute_line(line, index + 1, env)?);
        }
    }
    Ok(out)
}

fn substitute_line(
    text: &str,
    line: usize,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        let is_env_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if is_env_name {
            match env(name)
                .filter(|v| !v.is_empty())
                .or(default.map(str::to_owned))
            {
                Some(value) => out.push_str(&value),
                None => {
                    return Err(format!(
                        "line {line}: environment variable {name} is not set (use ${{{name}:-default}} for an optional value)"
                    ));
                }
            }
        } else {
            out.push_str(&rest[start..start + 2 + end + 1]);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SUB" => Some("0000".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitution() {
        assert_eq!(substitute_env("a: ${SUB}", &env).unwrap(), "a: 0000");
        assert_eq!(substitute_env("a: ${NOPE:-rg}", &env).unwrap(), "a: rg");
        assert_eq!(substitute_env("a: ${EMPTY:-x}", &env).unwrap(), "a: x");
        assert_eq!(
            substitute_env("t: x/${client.authenticationName}/#", &env).unwrap(),
            "t: x/${client.authenticationName}/#"
        );
        assert_eq!(
            substitute_env("# ${NOPE}\na: 1", &env).unwrap(),
            "# ${NOPE}\na: 1"
        );
        assert_eq!(
            substitute_env("a: 1\nb: ${NOPE}", &env).unwrap_err(),
            "line 2: environment variable NOPE is not set (use ${NOPE:-default} for an optional value)"
        );
    }

    #[test]
    fn unknown_fields_and_types_name_their_path() {
        let origin = Path::new("spec.yaml");
        let base = "subscription: s\nresourceGroup: rg\nnamespace:\n  name: ns\n";
        let err = Spec::parse(
            &format!("{base}clients:\n  - name: a\n    colour: red\n"),
            origin,
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("spec.yaml: clients[0].colour: unknown field `colour`"),
            "{err}"
        );
        assert!(err.ends_with("at line 7, column 5"), "{err}");
        let err = Spec::parse(
            &format!("{base}permissionBindings:\n  - {{name: b, clientGroup: g, topicSpace: t, permission: Owner}}\n"),
            origin,
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("spec.yaml: permissionBindings[0].permission: unknown variant `Owner`"),
            "{err}"
        );
        let spec = Spec::parse(&format!("{base}clients:\n  - name: m\n    attributes: {{commander: \"true\", floor: 3, on: true, tags: [a, b]}}\n"), origin, &env).unwrap();
        let attrs = &spec.clients[0].attributes;
        assert_eq!(attrs["commander"], AttributeValue::String("true".into()));
        assert_eq!(attrs["floor"], AttributeValue::Int(3));
        assert_eq!(attrs["on"], AttributeValue::Bool(true));
        assert_eq!(
            attrs["tags"],
            AttributeValue::Strings(vec!["a".into(), "b".into()])
        );
        assert_eq!(spec.api_versions.namespace, NAMESPACE_API_VERSION);
    }
}
