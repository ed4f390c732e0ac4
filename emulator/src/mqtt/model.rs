//! What the data plane needs from the control plane, read out of the stored ARM documents:
//! namespaces, their clients, groups, topic spaces and bindings, the role assignments of
//! Microsoft Entra principals, and the custom JWT issuer (the ACL made from it is in `acl`).
//!
//! A resource takes effect once it is `Succeeded`; while it is `Updating` its new body applies
//! and while it is `Deleting` it still applies. `Creating` and `Failed` resources do not.

use std::collections::{BTreeMap, BTreeSet};

use e4k_provisioning::eventgrid::rules::Query;
use rustls_pki_types::CertificateDer;
use serde_json::{Map, Value};
use x509_parser::pem::parse_x509_pem;

use crate::ResourceKind;
use crate::identity::roles::{self, RoleGrant};
use crate::store::{NamespaceEntry, State, provisioning_state};

/// The built-in client group holding every client.
const ALL_CLIENTS: &str = "$all";

/// Where the authentication name comes from when CONNECT has no username (preview
/// `clientAuthentication.alternativeAuthenticationNameSources`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameSource {
    /// The subject: its CN, or the whole DN.
    Subject,
    /// A SAN dNSName.
    Dns,
    /// A SAN URI.
    Uri,
    /// A SAN iPAddress.
    Ip,
    /// A SAN rfc822Name.
    Email,
}

/// `clientCertificateAuthentication.validationScheme`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// The subject CN (or the whole DN) equals the authentication name.
    Subject,
    /// A SAN dNSName equals it.
    Dns,
    /// A SAN URI equals it.
    Uri,
    /// A SAN iPAddress equals it.
    Ip,
    /// A SAN rfc822Name equals it.
    Email,
    /// The certificate's SHA-256 or SHA-1 thumbprint is in `allowedThumbprints`.
    Thumbprint,
}

/// A permission binding's permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Permission {
    /// Publish: mosquitto `write`.
    Publisher,
    /// Subscribe and receive: mosquitto `read`.
    Subscriber,
}

/// A registered client.
#[derive(Clone, Debug)]
pub(crate) struct ClientView {
    /// The resource name (case of the first PUT).
    pub(crate) name: String,
    /// `authenticationName` (original case).
    pub(crate) authentication_name: String,
    /// `state` is `Enabled`.
    pub(crate) enabled: bool,
    /// The validation scheme.
    pub(crate) scheme: Scheme,
    /// `allowedThumbprints`, lowercase hex without separators.
    pub(crate) thumbprints: Vec<String>,
    /// `attributes`.
    pub(crate) attributes: Map<String, Value>,
}

/// A permission binding, with its names lowercased for lookups.
#[derive(Clone, Debug)]
pub(crate) struct BindingView {
    /// The bound topic space (lowercase).
    pub(crate) topic_space: String,
    /// The bound client group (lowercase; `$all` included).
    pub(crate) client_group: String,
    /// What it grants.
    pub(crate) permission: Permission,
}

/// One namespace as the data plane sees it.
#[derive(Clone, Debug)]
pub(crate) struct NamespaceView {
    /// The namespace resource name.
    pub(crate) name: String,
    /// `topicSpacesConfiguration.hostname`, if set.
    pub(crate) hostname: Option<String>,
    /// MQTT is enabled (`topicSpacesConfiguration.state`) and the namespace is provisioned.
    pub(crate) enabled: bool,
    /// `maximumClientSessionsPerAuthenticationName`.
    pub(crate) max_sessions: usize,
    /// `clientAuthentication.alternativeAuthenticationNameSources`, in order.
    pub(crate) name_sources: Vec<NameSource>,
    /// The uploaded CA certificates, DER.
    pub(crate) cas: Vec<CertificateDer<'static>>,
    /// The registered clients.
    pub(crate) clients: Vec<ClientView>,
    /// Client groups by lowercase name; a query that does not parse matches nobody.
    pub(crate) groups: BTreeMap<String, Option<Query>>,
    /// Topic templates of each topic space, by lowercase name.
    pub(crate) topic_spaces: BTreeMap<String, Vec<String>>,
    /// The permission bindings.
    pub(crate) bindings: Vec<BindingView>,
    /// What the role assignments grant Microsoft Entra principals (`OAUTH2-JWT`).
    pub(crate) role_grants: Vec<RoleGrant>,
    /// `clientAuthentication.customJwtAuthentication`, when it names an issuer.
    pub(crate) custom_jwt: Option<CustomJwt>,
}

/// A namespace's custom JWT issuer (`CUSTOM-JWT`).
#[derive(Clone, Debug)]
pub(crate) struct CustomJwt {
    /// `tokenIssuer`: the `iss` tokens must carry.
    pub(crate) issuer: String,
    /// `encodedIssuerCertificates`: key id and certificate (DER). `issuerCertificates` hold
    /// Key Vault URLs the emulator cannot fetch, so they verify nothing.
    pub(crate) certificates: Vec<(String, CertificateDer<'static>)>,
}

/// Every namespace, in key order.
#[derive(Clone, Debug, Default)]
pub(crate) struct View {
    /// The namespaces.
    pub(crate) namespaces: Vec<NamespaceView>,
    /// The state generation this view was read at.
    pub(crate) generation: u64,
}

/// Whether a stored document is in effect.
fn effective(doc: &Value) -> bool {
    matches!(
        provisioning_state(doc),
        "Succeeded" | "Updating" | "Deleting"
    )
}

fn str_at<'a>(doc: &'a Value, pointer: &str) -> Option<&'a str> {
    doc.pointer(pointer).and_then(Value::as_str)
}

impl View {
    /// Reads the data plane's view out of the state.
    pub(crate) fn from_state(state: &State, generation: u64) -> Self {
        Self {
            generation,
            namespaces: state
                .namespaces
                .values()
                .filter(|entry| effective(&entry.doc))
                .map(NamespaceView::from_entry)
                .collect(),
        }
    }
}

impl NamespaceView {
    fn from_entry(entry: &NamespaceEntry) -> Self {
        let doc = &entry.doc;
        let mqtt = "/properties/topicSpacesConfiguration";
        let enabled = str_at(doc, &format!("{mqtt}/state"))
            .is_some_and(|s| s.eq_ignore_ascii_case("Enabled"));
        let max_sessions = doc
            .pointer(&format!(
                "{mqtt}/maximumClientSessionsPerAuthenticationName"
            ))
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(1);
        let name_sources = doc
            .pointer(&format!(
                "{mqtt}/clientAuthentication/alternativeAuthenticationNameSources"
            ))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(name_source)
            .collect();
        let children = |kind| entry.of(kind).filter(|(_, doc)| effective(doc));
        let cas = children(ResourceKind::CaCertificate)
            .filter_map(|(_, doc)| str_at(doc, "/properties/encodedCertificate"))
            .filter_map(certificate_der)
            .collect();
        let clients = children(ResourceKind::Client)
            .filter_map(|(_, doc)| client(doc))
            .collect();
        let groups = children(ResourceKind::ClientGroup)
            .map(|(key, doc)| {
                let query = str_at(doc, "/properties/query").and_then(|q| Query::parse(q).ok());
                (key.clone(), query)
            })
            .collect();
        let topic_spaces = children(ResourceKind::TopicSpace)
            .map(|(key, doc)| {
                let templates = doc
                    .pointer("/properties/topicTemplates")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
                (key.clone(), templates)
            })
            .collect();
        let bindings = children(ResourceKind::PermissionBinding)
            .filter_map(|(_, doc)| {
                let permission = match str_at(doc, "/properties/permission")? {
                    p if p.eq_ignore_ascii_case("Publisher") => Permission::Publisher,
                    p if p.eq_ignore_ascii_case("Subscriber") => Permission::Subscriber,
                    _ => return None,
                };
                Some(BindingView {
                    topic_space: str_at(doc, "/properties/topicSpaceName")?.to_lowercase(),
                    client_group: str_at(doc, "/properties/clientGroupName")?.to_lowercase(),
                    permission,
                })
            })
            .collect();
        let jwt = format!("{mqtt}/clientAuthentication/customJwtAuthentication");
        let custom_jwt = str_at(doc, &format!("{jwt}/tokenIssuer")).map(|issuer| CustomJwt {
            issuer: issuer.to_owned(),
            certificates: doc
                .pointer(&format!("{jwt}/encodedIssuerCertificates"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|cert| {
                    let der = certificate_der(str_at(cert, "/encodedCertificate")?)?;
                    Some((str_at(cert, "/kid").unwrap_or_default().to_owned(), der))
                })
                .collect(),
        });
        Self {
            role_grants: roles::grants(entry),
            custom_jwt,
            name: str_at(doc, "/name").unwrap_or_default().to_owned(),
            hostname: str_at(doc, &format!("{mqtt}/hostname")).map(str::to_owned),
            enabled: enabled && matches!(provisioning_state(doc), "Succeeded" | "Updating"),
            max_sessions,
            name_sources,
            cas,
            clients,
            groups,
            topic_spaces,
            bindings,
        }
    }

    /// The client whose authentication name is `name` (case-insensitive).
    pub(crate) fn client(&self, name: &str) -> Option<&ClientView> {
        self.clients
            .iter()
            .find(|c| c.authentication_name.eq_ignore_ascii_case(name))
    }

    /// Whether `client` is in the group named `group` (lowercase).
    fn in_group(&self, client: &ClientView, group: &str) -> bool {
        group == ALL_CLIENTS
            || self.groups.get(group).is_some_and(|query| {
                query
                    .as_ref()
                    .is_some_and(|q| q.matches(&client.authentication_name, &client.attributes))
            })
    }

    /// The topic filters `client` may publish to and subscribe to, templates substituted.
    pub(crate) fn grants(&self, client: &ClientView) -> BTreeSet<(Permission, String)> {
        let mut grants = BTreeSet::new();
        for binding in &self.bindings {
            if !self.in_group(client, &binding.client_group) {
                continue;
            }
            let templates = self.topic_spaces.get(&binding.topic_space);
            for template in templates.into_iter().flatten() {
                if let Some(filter) = substitute(template, client) {
                    grants.insert((binding.permission, filter));
                }
            }
        }
        grants
    }
}

impl ClientView {
    /// A client a token describes (no registered resource): `name` is its authentication
    /// name, the attributes are the token's.
    pub(crate) fn from_token(name: &str, attributes: Map<String, Value>) -> Self {
        Self {
            name: name.to_owned(),
            authentication_name: name.to_owned(),
            enabled: true,
            scheme: Scheme::Subject,
            thumbprints: Vec::new(),
            attributes,
        }
    }
}

fn name_source(text: &str) -> Option<NameSource> {
    Some(match text.to_ascii_lowercase().as_str() {
        "clientcertificatesubject" => NameSource::Subject,
        "clientcertificatedns" => NameSource::Dns,
        "clientcertificateuri" => NameSource::Uri,
        "clientcertificateip" => NameSource::Ip,
        "clientcertificateemail" => NameSource::Email,
        _ => return None,
    })
}

fn scheme(text: &str) -> Option<Scheme> {
    Some(match text.to_ascii_lowercase().as_str() {
        "subjectmatchesauthenticationname" => Scheme::Subject,
        "dnsmatchesauthenticationname" => Scheme::Dns,
        "urimatchesauthenticationname" => Scheme::Uri,
        "ipmatchesauthenticationname" => Scheme::Ip,
        "emailmatchesauthenticationname" => Scheme::Email,
        "thumbprintmatch" => Scheme::Thumbprint,
        _ => return None,
    })
}

/// A thumbprint as compared: lowercase hex without `:` or spaces.
pub(crate) fn normalize_thumbprint(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn client(doc: &Value) -> Option<ClientView> {
    let name = str_at(doc, "/name")?.to_owned();
    let auth = "/properties/clientCertificateAuthentication";
    Some(ClientView {
        authentication_name: str_at(doc, "/properties/authenticationName")
            .unwrap_or(&name)
            .to_owned(),
        enabled: str_at(doc, "/properties/state").is_none_or(|s| s.eq_ignore_ascii_case("Enabled")),
        scheme: str_at(doc, &format!("{auth}/validationScheme"))
            .map_or(Some(Scheme::Subject), scheme)?,
        thumbprints: doc
            .pointer(&format!("{auth}/allowedThumbprints"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(normalize_thumbprint)
            .collect(),
        attributes: doc
            .pointer("/properties/attributes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        name,
    })
}

/// The DER of an `encodedCertificate` (one-line PEM or bare base64 DER, as the control plane
/// accepted it).
pub(crate) fn certificate_der(encoded: &str) -> Option<CertificateDer<'static>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let trimmed = encoded.trim();
    let body = trimmed
        .strip_prefix(BEGIN)
        .and_then(|rest| rest.strip_suffix(END))
        .unwrap_or(trimmed);
    let text = format!("{BEGIN}\n{}\n{END}\n", body.trim());
    let (_, pem) = parse_x509_pem(text.as_bytes()).ok()?;
    Some(CertificateDer::from(pem.contents))
}

/// A template with its variables replaced by the client's values, or `None` when a value is
/// missing or cannot stand in a topic (an array, or a value holding `/`, `+`, `#` or NUL: a
/// variable never spans segments nor adds wildcards).
pub(crate) fn substitute(template: &str, client: &ClientView) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        let variable = &after[..end];
        let value = match variable {
            "client.authenticationName" | "principal.name" => client.authentication_name.clone(),
            _ => {
                let key = variable
                    .strip_prefix("client.attributes.")
                    .or_else(|| variable.strip_prefix("principal.attributes."))?;
                match client.attributes.get(key)? {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return None,
                }
            }
        };
        if value.is_empty() || value.contains(['/', '+', '#', '\0', '\n', '\r']) {
            return None;
        }
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The mosquitto username of a client: `<namespace>/<client resource name>`, unique across
/// namespaces. Names the control plane accepted hold no whitespace; `None` if one somehow does.
pub(crate) fn broker_username(namespace: &str, client: &str) -> Option<String> {
    let name = format!("{namespace}/{client}");
    (!name.chars().any(|c| c.is_whitespace() || c.is_control())).then_some(name)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::NamespaceEntry;
    use serde_json::json;

    fn doc(name: &str, properties: Value) -> Value {
        json!({ "name": name, "properties": properties })
    }

    fn succeeded(mut properties: Value) -> Value {
        properties["provisioningState"] = json!("Succeeded");
        properties
    }

    /// The e4k seed, as stored documents.
    pub(crate) fn seed_state() -> State {
        let mut entry = NamespaceEntry {
            doc: doc(
                "e4k-seed",
                succeeded(json!({ "topicSpacesConfiguration": {
                    "state": "Enabled",
                    "hostname": "localhost",
                    "maximumClientSessionsPerAuthenticationName": 3,
                    "clientAuthentication": {
                        "alternativeAuthenticationNameSources": ["ClientCertificateSubject"]
                    }
                } })),
            ),
            ..NamespaceEntry::default()
        };
        let mut add = |kind: ResourceKind, name: &str, properties: Value| {
            entry
                .children
                .entry(kind)
                .or_default()
                .insert(name.to_lowercase(), doc(name, succeeded(properties)));
        };
        let scheme = json!({ "validationScheme": "SubjectMatchesAuthenticationName" });
        add(
            ResourceKind::Client,
            "mqttbridge",
            json!({ "authenticationName": "mqttbridge", "state": "Enabled",
                    "clientCertificateAuthentication": scheme }),
        );
        add(
            ResourceKind::Client,
            "mosquitto",
            json!({ "authenticationName": "mosquitto", "state": "Enabled",
                    "clientCertificateAuthentication": scheme,
                    "attributes": { "commander": "true", "room": 12, "tags": ["a"] } }),
        );
        add(
            ResourceKind::Client,
            "off",
            json!({ "authenticationName": "off", "state": "Disabled",
                    "clientCertificateAuthentication": scheme }),
        );
        add(
            ResourceKind::TopicSpace,
            "telemetry",
            json!({ "topicTemplates": ["factory/telemetry/#"] }),
        );
        add(
            ResourceKind::TopicSpace,
            "command",
            json!({ "topicTemplates": ["command/#"] }),
        );
        add(
            ResourceKind::TopicSpace,
            "own",
            json!({ "topicTemplates": [
                "clients/${client.authenticationName}/+",
                "rooms/${client.attributes.room}/x",
                "tags/${client.attributes.tags}",
                "fleet/${client.attributes.fleet}/#"
            ] }),
        );
        add(
            ResourceKind::ClientGroup,
            "commanders",
            json!({ "query": "attributes.commander = \"true\"" }),
        );
        for (name, ts, group, permission) in [
            ("all-pub-telemetry", "telemetry", "$all", "Publisher"),
            ("all-sub-command", "command", "$all", "Subscriber"),
            ("cmd-pub-command", "command", "Commanders", "Publisher"),
            ("cmd-sub-telemetry", "telemetry", "commanders", "Subscriber"),
            ("all-own", "own", "$all", "Publisher"),
        ] {
            add(
                ResourceKind::PermissionBinding,
                name,
                json!({ "topicSpaceName": ts, "clientGroupName": group, "permission": permission }),
            );
        }
        let mut state = State::default();
        state.namespaces.insert("s/rg/e4k-seed".into(), entry);
        state
    }

    #[test]
    fn the_view_reads_the_seed() {
        let view = View::from_state(&seed_state(), 0);
        let ns = &view.namespaces[0];
        assert!(ns.enabled);
        assert_eq!(ns.max_sessions, 3);
        assert_eq!(ns.name_sources, [NameSource::Subject]);
        assert_eq!(ns.hostname.as_deref(), Some("localhost"));
        assert_eq!(
            ns.client("MOSQUITTO").map(|c| c.name.as_str()),
            Some("mosquitto")
        );
        assert!(!ns.client("off").unwrap().enabled);
        assert!(ns.client("nobody").is_none());
    }

    #[test]
    fn substitution_refuses_values_that_would_change_the_filter() {
        let mut client = ClientView {
            name: "c".into(),
            authentication_name: "dev/1".into(),
            enabled: true,
            scheme: Scheme::Subject,
            thumbprints: Vec::new(),
            attributes: json!({"a": "x+y", "b": true, "c": "ok"})
                .as_object()
                .cloned()
                .unwrap(),
        };
        assert_eq!(substitute("d/${client.authenticationName}", &client), None);
        assert_eq!(substitute("d/${client.attributes.a}", &client), None);
        assert_eq!(
            substitute("d/${client.attributes.b}/#", &client).as_deref(),
            Some("d/true/#")
        );
        assert_eq!(
            substitute("m/${principal.attributes.c}.f1/t", &client).as_deref(),
            Some("m/ok.f1/t")
        );
        client.authentication_name = "dev1".into();
        assert_eq!(
            substitute("m/${client.authenticationName}.factory1/temp", &client).as_deref(),
            Some("m/dev1.factory1/temp")
        );
        assert_eq!(substitute("plain/#", &client).as_deref(), Some("plain/#"));
    }

    #[test]
    fn thumbprints_and_certificates_are_normalized() {
        assert_eq!(normalize_thumbprint("AB:cd 01"), "abcd01");
        assert!(certificate_der("not a certificate").is_none());
        assert_eq!(broker_username("ns", "a b"), None);
    }
}
