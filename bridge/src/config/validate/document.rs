//! Document checks: `apiVersion`, `kind` and `metadata.name`, and the schema check that
//! reports unknown keys, keys of the other kind and keys of the other API version.

use crate::config::crd::{
    ApiVersion, KIND_CONNECTOR, KIND_TOPIC_MAP, Keys, RawDocument, RawSpec, Walk as _, join,
};
use crate::config::report::{Origin, Report, Site, show};

/// What the pipeline needs to know about a document of a bridge kind.
pub(super) struct Header {
    pub(super) kind: &'static str,
    pub(super) version: ApiVersion,
    pub(super) name: String,
    pub(super) origin: Origin,
}

pub(super) fn metadata_keys(doc: &RawDocument) -> Keys {
    doc.metadata
        .as_ref()
        .map_or_else(|| doc.keys.clone(), |m| m.keys.clone())
}

/// Checks `apiVersion`, `kind` and `metadata.name`; `None` for documents to skip.
pub(super) fn header(index: usize, doc: &RawDocument, report: &mut Report) -> Option<Header> {
    let name = doc
        .metadata
        .as_ref()
        .and_then(|m| m.name.clone())
        .unwrap_or_default();
    let resource = match (&doc.kind, name.is_empty()) {
        (Some(kind), false) => Some(format!("{kind}/{name}")),
        (Some(kind), true) => Some(kind.clone()),
        (None, _) => None,
    };
    let origin = Origin {
        document: Some(index),
        resource,
    };
    let site = |keys: &Keys, field: &str| Site {
        origin: origin.clone(),
        field: field.to_owned(),
        location: keys.location_of(field),
    };
    let kind = match doc.kind.as_deref() {
        Some(KIND_CONNECTOR) => KIND_CONNECTOR,
        Some(KIND_TOPIC_MAP) => KIND_TOPIC_MAP,
        None => {
            report.error(
                &site(&doc.keys, "kind"),
                "`kind` is missing; set MqttBridgeConnector or MqttBridgeTopicMap".to_owned(),
            );
            return None;
        }
        Some(other) => {
            report.warning(
                &site(&doc.keys, "kind"),
                format!(
                    "kind `{}` is not a bridge resource; document ignored",
                    show(other)
                ),
            );
            return None;
        }
    };
    let supported = "use az-edge.com/v1alpha4 or mq.iotoperations.azure.com/v1beta1";
    let version = match doc.api_version.as_deref() {
        None => {
            report.error(
                &site(&doc.keys, "apiVersion"),
                format!("`apiVersion` is missing; {supported}"),
            );
            return None;
        }
        Some(text) => match ApiVersion::parse(text) {
            Some(version) => version,
            None => {
                report.error(
                    &site(&doc.keys, "apiVersion"),
                    format!("apiVersion `{}` is not supported; {supported}", show(text)),
                );
                return None;
            }
        },
    };
    if name.is_empty() {
        let mut name_site = site(&metadata_keys(doc), "name");
        name_site.field = "metadata.name".to_owned();
        report.error(
            &name_site,
            "`metadata.name` is missing; name the resource".to_owned(),
        );
    }
    Some(Header {
        kind,
        version,
        name,
        origin,
    })
}

/// Keys that exist in one API version only: (parent key, key, its version, the other
/// version's spelling).
#[rustfmt::skip]
const VERSIONED_KEYS: &[(&str, &str, ApiVersion, Option<&str>)] = &[
    ("x509", "clientK8sSecret", ApiVersion::V1alpha4, Some("secretName")),
    ("x509", "clientCertKeySecret", ApiVersion::V1alpha4, Some("secretName")),
    ("x509", "secretName", ApiVersion::V1beta1, Some("clientK8sSecret")),
    ("tls", "trustedCaCertificateName", ApiVersion::V1alpha4, Some("trustedCaCertificateConfigMap")),
    ("tls", "trustedCaCertificateConfigMap", ApiVersion::V1beta1, Some("trustedCaCertificateName")),
    ("remoteBrokerConnection", "protocol", ApiVersion::V1beta1, None),
    ("authentication", "basic", ApiVersion::V1alpha4, None),
];

/// Reports unknown keys, keys of the other kind, repeated aliases and keys of the other API
/// version, everywhere in the document. `metadata` is not checked (Kubernetes bookkeeping).
pub(super) fn check_schema(doc: &RawDocument, header: &Header, report: &mut Report) {
    let (kind_fields, other_kind) = if header.kind == KIND_CONNECTOR {
        (RawSpec::CONNECTOR_FIELDS, KIND_TOPIC_MAP)
    } else {
        (RawSpec::TOPIC_MAP_FIELDS, KIND_CONNECTOR)
    };
    doc.walk("", &mut |path, keys, fields| {
        if path == "metadata" {
            return;
        }
        let fields = if path == "spec" { kind_fields } else { fields };
        let site = |key: &str, location| Site {
            origin: header.origin.clone(),
            field: join(path, key),
            location,
        };
        for (key, location) in &keys.unknown {
            report.error(
                &site(key, *location),
                format!(
                    "unknown field `{}`; remove it or use one of: {}",
                    show(key),
                    fields.join(", ")
                ),
            );
        }
        let parent = path.rsplit('.').next().unwrap_or_default();
        for key in &keys.known {
            let key_site = site(&key.spelled, key.location);
            if path == "spec" && !kind_fields.contains(&key.field) {
                report.error(
                    &key_site,
                    format!(
                        "field `{}` belongs to {other_kind}, not {}; move it there",
                        key.spelled, header.kind
                    ),
                );
            }
            if key.repeats_field {
                let first = keys.spelling(key.field);
                report.error(
                    &key_site,
                    format!(
                        "`{}` sets the same field as `{first}`; keep only one of them",
                        key.spelled
                    ),
                );
            }
            let rule = VERSIONED_KEYS.iter().find(|(p, k, version, _)| {
                *p == parent && *k == key.spelled && *version != header.version
            });
            if let Some((_, _, version, other)) = rule {
                let message = match other {
                    Some(other) => format!(
                        "`{}` is the {} spelling; {} spells it `{other}` (accepted anyway)",
                        key.spelled,
                        version.as_str(),
                        header.version.as_str()
                    ),
                    None => format!(
                        "`{}` is not part of {} (it comes from {}); accepted anyway",
                        key.spelled,
                        header.version.as_str(),
                        version.as_str()
                    ),
                };
                report.warning(&key_site, message);
            }
        }
    });
}
