//! Static validation of a [`Spec`], before any network call.
//!
//! Every problem names its place in the spec (`clients[1].allowedThumbprints`) and says what to
//! do. Errors stop `plan`/`setup`; warnings (a CA certificate close to expiry) are reported.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use serde::Serialize;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{
    rules::{check_query, check_template},
    spec::{Spec, ValidationScheme},
};
use crate::certs::read_certificates;

/// Event Grid's namespace quotas (Nov 2023 limits).
pub mod quota {
    /// CA certificates per namespace.
    pub const CA_CERTIFICATES: usize = 10;
    /// Client groups per namespace (`$all` not counted).
    pub const CLIENT_GROUPS: usize = 10;
    /// Topic spaces per namespace.
    pub const TOPIC_SPACES: usize = 10;
    /// Topic templates per topic space.
    pub const TOPIC_TEMPLATES: usize = 10;
    /// Permission bindings per namespace.
    pub const PERMISSION_BINDINGS: usize = 100;
}

/// How soon a CA certificate's expiry is worth a warning.
const EXPIRY_WARNING: Duration = Duration::days(30);

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The spec cannot be applied.
    Error,
    /// The spec can be applied, but something deserves attention.
    Warning,
}

/// One problem in a spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// Where in the spec, e.g. `clients[1].allowedThumbprints`.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.path, self.message)
    }
}

/// What a bridge configuration needs from the namespace: its sessions per authentication name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSessions {
    /// Where the figure comes from, for messages (e.g. `bridge.yaml`).
    pub source: String,
    /// The authentication name the bridge connects as (its certificate's CN).
    pub authentication_name: Option<String>,
    /// How many sessions the bridge opens at once with that name.
    pub sessions: u32,
}

/// Options of [`validate`].
#[derive(Debug, Clone, Default)]
pub struct ValidateOptions {
    /// Check that the namespace allows the sessions a bridge configuration opens.
    pub bridge: Option<BridgeSessions>,
}

/// Validates a spec. `spec_dir` is where relative file paths start.
#[must_use]
pub fn validate(spec: &Spec, spec_dir: &Path, options: &ValidateOptions) -> Vec<Problem> {
    let mut v = Validator::default();
    v.namespace(spec, options);
    v.ca_certificates(spec, spec_dir);
    v.clients(spec);
    v.topic_spaces(spec);
    v.client_groups(spec);
    v.permission_bindings(spec);
    super::rbac::validate::validate(spec, &mut v.problems);
    super::jwt::validate(spec, spec_dir, &mut v.problems);
    v.problems
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

/// The name rule of each resource type (eventgrid.md §7, from the spec's path parameters).
#[derive(Clone, Copy)]
enum NameRule {
    /// 3–50 of `[a-zA-Z0-9-]`: namespaces, CA certificates, client groups, topic spaces,
    /// permission bindings.
    Short,
    /// 1–128 of `[-a-zA-Z0-9:._]`: clients.
    Client,
}

impl Validator {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
        });
    }

    fn warning(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            severity: Severity::Warning,
            path: path.into(),
            message: message.into(),
        });
    }

    fn name(&mut self, path: &str, name: &str, rule: NameRule) {
        let (min, max, allowed, described): (usize, usize, fn(char) -> bool, &str) = match rule {
            NameRule::Short => (
                3,
                50,
                |c| c.is_ascii_alphanumeric() || c == '-',
                "letters, digits and '-'",
            ),
            NameRule::Client => (
                1,
                128,
                |c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '_'),
                "letters, digits, '-', ':', '.' and '_'",
            ),
        };
        let len = name.chars().count();
        if len < min || len > max || !name.chars().all(allowed) {
            self.error(
                path,
                format!("{name:?} is not a valid name: use {min} to {max} characters, {described}"),
            );
        }
    }

    /// Reports duplicate names among `names` (optionally case-insensitively).
    fn unique<'a>(
        &mut self,
        list: &str,
        field: &str,
        names: impl Iterator<Item = &'a str>,
        case_insensitive: bool,
    ) {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (index, name) in names.enumerate() {
            let key = if case_insensitive {
                name.to_lowercase()
            } else {
                name.to_owned()
            };
            if let Some(first) = seen.get(&key) {
                self.error(
                    format!("{list}[{index}].{field}"),
                    format!("{name:?} is already used by {list}[{first}]; names must be unique"),
                );
            } else {
                seen.insert(key, index);
            }
        }
    }

    fn quota(&mut self, path: &str, count: usize, limit: usize, what: &str) {
        if count > limit {
            self.error(
                path,
                format!("{count} {what}: Event Grid allows at most {limit} per namespace"),
            );
        }
    }

    fn namespace(&mut self, spec: &Spec, options: &ValidateOptions) {
        self.name("namespace.name", &spec.namespace.name, NameRule::Short);
        if spec.subscription.trim().is_empty() {
            self.error("subscription", "the subscription id is empty");
        }
        if spec.resource_group.trim().is_empty() {
            self.error("resourceGroup", "the resource group is empty");
        }
        if let Some(create) = &spec.namespace.create {
            if create.location.trim().is_empty() {
                self.error(
                    "namespace.create.location",
                    "the location is empty, e.g. westeurope",
                );
            }
            if let Some(capacity) = create.capacity
                && !(1..=40).contains(&capacity)
            {
                self.error(
                    "namespace.create.capacity",
                    format!("{capacity} throughput units: use 1 to 40"),
                );
            }
        }
        let mqtt = &spec.namespace.mqtt;
        if let Some(n) = mqtt.max_client_sessions_per_authentication_name
            && !(1..=100).contains(&n)
        {
            self.error(
                "namespace.mqtt.maxClientSessionsPerAuthenticationName",
                format!("{n}: use 1 to 100"),
            );
        }
        if let Some(h) = mqtt.max_session_expiry_in_hours
            && !(1..=8).contains(&h)
        {
            self.error(
                "namespace.mqtt.maxSessionExpiryInHours",
                format!("{h}: use 1 to 8"),
            );
        }
        if !mqtt.alternative_authentication_name_sources.is_empty()
            && !spec.api_versions.namespace.ends_with("-preview")
        {
            self.error(
                "namespace.mqtt.alternativeAuthenticationNameSources",
                format!(
                    "needs a preview api-version (clientAuthentication is not in {}); remove apiVersions.namespace to use the default",
                    spec.api_versions.namespace
                ),
            );
        }
        let mut seen = HashSet::new();
        for (i, source) in mqtt
            .alternative_authentication_name_sources
            .iter()
            .enumerate()
        {
            if !seen.insert(source) {
                self.error(
                    format!("namespace.mqtt.alternativeAuthenticationNameSources[{i}]"),
                    format!("{source:?} is listed twice"),
                );
            }
        }
        if let Some(bridge) = &options.bridge {
            let allowed = mqtt
                .max_client_sessions_per_authentication_name
                .unwrap_or(1);
            if bridge.sessions > allowed {
                let who = bridge
                    .authentication_name
                    .as_deref()
                    .map(|n| format!(" as {n:?}"))
                    .unwrap_or_default();
                self.error(
                    "namespace.mqtt.maxClientSessionsPerAuthenticationName",
                    format!(
                        "{allowed} session(s) allowed, but {} opens {} sessions{who}; set it to at least {}",
                        bridge.source, bridge.sessions, bridge.sessions
                    ),
                );
            }
        }
    }

    fn ca_certificates(&mut self, spec: &Spec, spec_dir: &Path) {
        let list = &spec.ca_certificates;
        self.quota(
            "caCertificates",
            list.len(),
            quota::CA_CERTIFICATES,
            "CA certificates",
        );
        self.unique(
            "caCertificates",
            "name",
            list.iter().map(|c| c.name.as_str()),
            true,
        );
        let now = OffsetDateTime::now_utc();
        for (i, ca) in list.iter().enumerate() {
            let path = format!("caCertificates[{i}]");
            self.name(&format!("{path}.name"), &ca.name, NameRule::Short);
            let file = spec_dir.join(&ca.file);
            let certs = match read_certificates(&file) {
                Ok(certs) => certs,
                Err(e) => {
                    self.error(format!("{path}.file"), e.to_string());
                    continue;
                }
            };
            if certs.len() > 1 {
                self.error(
                    format!("{path}.file"),
                    format!(
                        "{} holds {} certificates; upload each CA as its own entry",
                        file.display(),
                        certs.len()
                    ),
                );
                continue;
            }
            let Some(Ok((_, cert))) = certs.first().map(|der| X509Certificate::from_der(der))
            else {
                self.error(
                    format!("{path}.file"),
                    format!("{} is not a valid X.509 certificate", file.display()),
                );
                continue;
            };
            if !cert.is_ca() {
                self.error(
                    format!("{path}.file"),
                    format!(
                        "{} is not a CA certificate ({}); upload the CA that signed the client certificates",
                        file.display(),
                        cert.subject()
                    ),
                );
            }
            let not_after = cert.validity().not_after.to_datetime();
            if not_after <= now {
                self.error(
                    format!("{path}.file"),
                    format!(
                        "{} expired on {}; create a new CA",
                        file.display(),
                        crate::certs::rfc3339(not_after)
                    ),
                );
            } else if not_after - now <= EXPIRY_WARNING {
                self.warning(
                    format!("{path}.file"),
                    format!(
                        "{} expires on {} ({} days left)",
                        file.display(),
                        crate::certs::rfc3339(not_after),
                        (not_after - now).whole_days()
                    ),
                );
            }
        }
    }

    fn clients(&mut self, spec: &Spec) {
        let list = &spec.clients;
        self.unique(
            "clients",
            "name",
            list.iter().map(|c| c.name.as_str()),
            false,
        );
        self.unique(
            "clients",
            "authenticationName",
            list.iter().map(|c| c.authentication_name()),
            true,
        );
        for (i, client) in list.iter().enumerate() {
            let path = format!("clients[{i}]");
            self.name(&format!("{path}.name"), &client.name, NameRule::Client);
            if let Some(auth) = &client.authentication_name
                && (auth.is_empty() || auth.chars().count() > 128)
            {
                self.error(
                    format!("{path}.authenticationName"),
                    "use 1 to 128 characters",
                );
            }
            let thumbprints = &client.allowed_thumbprints;
            if client.validation_scheme == ValidationScheme::ThumbprintMatch {
                if thumbprints.is_empty() || thumbprints.len() > 2 {
                    self.error(
                        format!("{path}.allowedThumbprints"),
                        "ThumbprintMatch needs 1 or 2 thumbprints (primary and secondary); get them with `e4k certs fingerprint`",
                    );
                }
                for (j, t) in thumbprints.iter().enumerate() {
                    if !(t.len() == 64 || t.len() == 40)
                        || !t.chars().all(|c| c.is_ascii_hexdigit())
                    {
                        self.error(
                            format!("{path}.allowedThumbprints[{j}]"),
                            format!("{t:?} is not a thumbprint: expected 64 hex digits (SHA-256, `e4k certs fingerprint`)"),
                        );
                    }
                }
            } else if !thumbprints.is_empty() {
                self.error(
                    format!("{path}.allowedThumbprints"),
                    format!(
                        "thumbprints are only allowed with validationScheme ThumbprintMatch (this client uses {:?})",
                        client.validation_scheme
                    ),
                );
            }
            let mut size = 0;
            for (key, value) in &client.attributes {
                if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    self.error(
                        format!("{path}.attributes.{key}"),
                        "attribute names may hold only letters, digits and '_'",
                    );
                }
                size += key.len()
                    + serde_json::to_string(value)
                        .map(|s| s.len())
                        .unwrap_or_default();
            }
            if size >= 4096 {
                self.error(
                    format!("{path}.attributes"),
                    format!("{size} bytes of attributes: Event Grid allows less than 4 KB"),
                );
            }
        }
    }

    fn topic_spaces(&mut self, spec: &Spec) {
        let list = &spec.topic_spaces;
        self.quota(
            "topicSpaces",
            list.len(),
            quota::TOPIC_SPACES,
            "topic spaces",
        );
        self.unique(
            "topicSpaces",
            "name",
            list.iter().map(|t| t.name.as_str()),
            true,
        );
        for (i, space) in list.iter().enumerate() {
            let path = format!("topicSpaces[{i}]");
            self.name(&format!("{path}.name"), &space.name, NameRule::Short);
            if space.topic_templates.is_empty() {
                self.error(
                    format!("{path}.topicTemplates"),
                    "a topic space needs at least one topic template",
                );
            }
            if space.topic_templates.len() > quota::TOPIC_TEMPLATES {
                self.error(
                    format!("{path}.topicTemplates"),
                    format!(
                        "{} templates: Event Grid allows at most {} per topic space",
                        space.topic_templates.len(),
                        quota::TOPIC_TEMPLATES
                    ),
                );
            }
            let mut seen = HashSet::new();
            for (j, template) in space.topic_templates.iter().enumerate() {
                let tpath = format!("{path}.topicTemplates[{j}]");
                if let Err(reason) = check_template(template) {
                    self.error(tpath.clone(), format!("{template:?}: {reason}"));
                }
                if !seen.insert(template) {
                    self.error(tpath, format!("{template:?} is listed twice"));
                }
            }
        }
    }

    fn client_groups(&mut self, spec: &Spec) {
        let list = &spec.client_groups;
        self.quota(
            "clientGroups",
            list.len(),
            quota::CLIENT_GROUPS,
            "client groups",
        );
        self.unique(
            "clientGroups",
            "name",
            list.iter().map(|g| g.name.as_str()),
            true,
        );
        for (i, group) in list.iter().enumerate() {
            let path = format!("clientGroups[{i}]");
            if group.name == "$all" {
                self.error(
                    format!("{path}.name"),
                    "$all is built in and cannot be defined; bind to it directly",
                );
                continue;
            }
            self.name(&format!("{path}.name"), &group.name, NameRule::Short);
            if let Err(reason) = check_query(&group.query) {
                self.error(
                    format!("{path}.query"),
                    format!("{:?}: {reason}", group.query),
                );
            }
        }
    }

    fn permission_bindings(&mut self, spec: &Spec) {
        let list = &spec.permission_bindings;
        self.quota(
            "permissionBindings",
            list.len(),
            quota::PERMISSION_BINDINGS,
            "permission bindings",
        );
        self.unique(
            "permissionBindings",
            "name",
            list.iter().map(|b| b.name.as_str()),
            true,
        );
        let groups: HashSet<String> = spec
            .client_groups
            .iter()
            .map(|g| g.name.to_lowercase())
            .collect();
        let spaces: HashSet<String> = spec
            .topic_spaces
            .iter()
            .map(|t| t.name.to_lowercase())
            .collect();
        for (i, binding) in list.iter().enumerate() {
            let path = format!("permissionBindings[{i}]");
            self.name(&format!("{path}.name"), &binding.name, NameRule::Short);
            if binding.client_group != "$all"
                && !groups.contains(&binding.client_group.to_lowercase())
            {
                self.error(
                    format!("{path}.clientGroup"),
                    format!(
                        "client group {:?} is not defined in clientGroups (the built-in group of all clients is $all)",
                        binding.client_group
                    ),
                );
            }
            if !spaces.contains(&binding.topic_space.to_lowercase()) {
                self.error(
                    format!("{path}.topicSpace"),
                    format!(
                        "topic space {:?} is not defined in topicSpaces",
                        binding.topic_space
                    ),
                );
            }
        }
    }
}
