//! The validation pipeline: document checks, schema checks, resolution, cross-route checks
//! and file checks, all reporting into one [`Report`].
//!
//! # Overlapping routes
//!
//! Two routes of the same direction whose source filters can match one topic both forward a
//! message on that topic: each has its own subscription, so the broker delivers it to each.
//! That is often intended (the seed's `factory/telemetry/#` plus a copy of the anomalies to
//! `factory/telemetry/alert`), so an overlap is a **warning** — unless the two copies land on
//! the **same target topic**, which is a duplicate no subscriber can tell apart: then it is an
//! **error**. That happens when both routes keep the message's own topic, when both have the
//! same static target, or when one keeps the topic and the other's static target `T` matches
//! both sources (a message published on `T` itself arrives on `T` twice).
//!
//! # Loops
//!
//! A local-to-remote route and a remote-to-local route form a loop when a message one sends
//! can be picked up by the other and sent back to where it started (e.g. both bridge
//! `command/#` and keep the topic). That is a **warning**: the engine's hop limit stops such
//! loops, but each message still crosses twice. With `protocol: v3` it is an **error**: MQTT
//! 3.1.1 carries no user property for the hop count and has no No Local, so nothing would
//! stop it.

use std::collections::HashMap;

use super::build::{self, ConnectorDraft, Ctx, FileCheck, PlacedRoute, Side};
use super::crd::{
    ApiVersion, KIND_CONNECTOR, KIND_TOPIC_MAP, Keys, RawDocument, RawSpec, Walk as _, join,
};
use super::endpoint::Endpoint;
use super::files::{self, ExpiryPolicy, FileError};
use super::parse::RawConfig;
use super::report::{Origin, Report, Site, show};
use super::resolve::{
    BridgeConfig, ConfigOptions, Direction, EVENT_GRID_MAX_KEEP_ALIVE,
    EVENT_GRID_MAX_SESSION_EXPIRY, EVENT_GRID_MAX_SESSIONS, MqttVersion,
};

/// Resolves every connector and collects every problem.
pub(crate) fn check(raw: &RawConfig, options: &ConfigOptions) -> (Vec<BridgeConfig>, Report) {
    let mut report = Report::default();
    check_options(options, &mut report);
    let mut connectors: Vec<ConnectorDraft> = Vec::new();
    let mut connector_docs: HashMap<String, usize> = HashMap::new();
    let mut topic_maps = Vec::new();
    for (index, doc) in raw.documents.iter().enumerate() {
        let Some(header) = header(index, doc, &mut report) else {
            continue;
        };
        check_schema(doc, &header, &mut report);
        if header.kind == KIND_TOPIC_MAP {
            topic_maps.push((doc, header));
            continue;
        }
        let mut ctx = Ctx {
            origin: header.origin.clone(),
            version: header.version,
            options,
            report: &mut report,
        };
        let first = connector_docs.get(&header.name);
        if let Some(first) = first.filter(|_| !header.name.is_empty()) {
            let site = ctx.site("metadata", &metadata_keys(doc), "name");
            ctx.report.error(
                &site,
                format!(
                    "MqttBridgeConnector `{}` is defined twice (first in documents[{first}]); \
                     rename one",
                    show(&header.name)
                ),
            );
            continue;
        }
        connector_docs.insert(header.name.clone(), index);
        connectors.push(build::connector(doc, &header.name, &mut ctx));
    }
    if connectors.is_empty() {
        report.error(
            &Site::option("documents"),
            "no MqttBridgeConnector found; add one".to_owned(),
        );
    }
    for (doc, header) in topic_maps {
        attach_topic_map(doc, &header, &mut connectors, options, &mut report);
    }
    let configs = connectors
        .into_iter()
        .filter_map(|draft| finish(draft, options, &mut report))
        .collect();
    (configs, report)
}

/// What the pipeline needs to know about a document of a bridge kind.
struct Header {
    kind: &'static str,
    version: ApiVersion,
    name: String,
    origin: Origin,
}

fn metadata_keys(doc: &RawDocument) -> Keys {
    doc.metadata
        .as_ref()
        .map_or_else(|| doc.keys.clone(), |m| m.keys.clone())
}

/// Checks `apiVersion`, `kind` and `metadata.name`; `None` for documents to skip.
fn header(index: usize, doc: &RawDocument, report: &mut Report) -> Option<Header> {
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
fn check_schema(doc: &RawDocument, header: &Header, report: &mut Report) {
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

/// Reports caller options that cannot work, once for all connectors.
fn check_options(options: &ConfigOptions, report: &mut Report) {
    for side in [Side::Remote, Side::Local] {
        if let Some(text) = side.override_value(options)
            && let Err(reason) = Endpoint::parse(text, 1)
        {
            report.error(
                &Site::option(side.override_option()),
                build::endpoint_message(&side, text, &reason),
            );
        }
    }
    if let Some(path) = options
        .remote_ca_file
        .as_ref()
        .filter(|_| options.check_files)
    {
        let problem = match std::fs::read(path) {
            Err(error) => Some(format!("cannot read CA file {}: {error}", path.display())),
            Ok(bytes) => {
                use rustls_pki_types::pem::PemObject as _;
                let certificates: Result<Vec<_>, _> =
                    rustls_pki_types::CertificateDer::pem_slice_iter(&bytes).collect();
                match certificates {
                    Ok(found) if !found.is_empty() => None,
                    Ok(_) => Some(format!("{} holds no PEM certificate", path.display())),
                    Err(error) => Some(format!("{} is not valid PEM: {error}", path.display())),
                }
            }
        };
        if let Some(message) = problem {
            report.error(&Site::option("options.remote_ca_file"), message);
        }
    }
    let limits = [
        (
            "options.session_expiry",
            "session expiry",
            options.session_expiry,
            EVENT_GRID_MAX_SESSION_EXPIRY,
        ),
        (
            "options.keep_alive",
            "keep-alive",
            options.keep_alive,
            EVENT_GRID_MAX_KEEP_ALIVE,
        ),
    ];
    for (option, what, value, max) in limits {
        if value > max {
            report.error(
                &Site::option(option),
                format!(
                    "{what} of {} s exceeds Event Grid's maximum of {} s; lower it",
                    value.as_secs(),
                    max.as_secs()
                ),
            );
        }
    }
}

/// Resolves a topic map's routes and attaches them to the connector it names.
fn attach_topic_map(
    doc: &RawDocument,
    header: &Header,
    connectors: &mut [ConnectorDraft],
    options: &ConfigOptions,
    report: &mut Report,
) {
    let mut ctx = Ctx {
        origin: header.origin.clone(),
        version: header.version,
        options,
        report,
    };
    let Some(spec) = &doc.spec else {
        ctx.error(
            "",
            &doc.keys,
            "spec",
            "`spec` is missing; add mqttBridgeConnectorRef and routes".to_owned(),
        );
        return;
    };
    let mut connector = match spec.mqtt_bridge_connector_ref.as_deref() {
        None => {
            ctx.error(
                "spec",
                &spec.keys,
                "mqttBridgeConnectorRef",
                "`mqttBridgeConnectorRef` is missing; set it to the name of an MqttBridgeConnector"
                    .to_owned(),
            );
            None
        }
        Some(reference) => {
            let position = connectors.iter().position(|c| c.name == reference);
            if position.is_none() {
                let names: Vec<String> = connectors
                    .iter()
                    .map(|c| format!("`{}`", show(&c.name)))
                    .collect();
                let defined = if names.is_empty() {
                    "none is defined".to_owned()
                } else {
                    format!("defined: {}", names.join(", "))
                };
                let site = ctx.site("spec", &spec.keys, "mqttBridgeConnectorRef");
                ctx.report.error(
                    &site,
                    format!(
                        "MqttBridgeConnector `{}` is not defined in this input ({defined}); fix \
                         the reference",
                        show(reference)
                    ),
                );
            }
            position.and_then(|index| connectors.get_mut(index))
        }
    };
    let routes = spec
        .routes
        .as_ref()
        .map(|list| list.0.as_slice())
        .unwrap_or_default();
    if routes.is_empty() {
        ctx.warning(
            "spec",
            &spec.keys,
            "routes",
            "the topic map has no routes; add at least one".to_owned(),
        );
    }
    if let Some(connector) = connector.as_mut() {
        connector.referenced = true;
    }
    for (index, raw) in routes.iter().enumerate() {
        let names = connector.as_mut().map(|c| &mut c.route_names);
        let placed = build::route(index, raw, &header.name, names, &mut ctx);
        if let (Some(connector), Some(placed)) = (connector.as_mut(), placed) {
            connector.routes.push(placed);
        }
    }
}

/// Runs the per-connector checks and builds the config when both connections resolved.
fn finish(
    draft: ConnectorDraft,
    options: &ConfigOptions,
    report: &mut Report,
) -> Option<BridgeConfig> {
    if !draft.referenced {
        report.warning(
            &draft.site,
            "no MqttBridgeTopicMap refers to this connector, so it bridges nothing; add one"
                .to_owned(),
        );
    }
    check_overlaps(&draft.routes, report);
    check_loops(&draft.routes, draft.protocol, report);
    if options.check_files {
        check_files(&draft.file_checks, options, report);
    }
    let config = BridgeConfig {
        name: draft.name,
        protocol: draft.protocol,
        member_sessions: draft.member_sessions,
        bridge_instances: draft.bridge_instances,
        client_id_prefix: draft.client_id_prefix,
        log_level: draft.log_level,
        remote: draft.remote?,
        local: draft.local?,
        routes: draft
            .routes
            .into_iter()
            .map(|placed| placed.route)
            .collect(),
    };
    check_sessions(&config, &draft.instances_site, report);
    Some(config)
}

/// Where a route's messages go, for messages.
fn destination(placed: &PlacedRoute) -> String {
    match &placed.route.target {
        Some(target) => format!("`{}`", show(target)),
        None => "its own topic".to_owned(),
    }
}

/// Whether a message matching both routes arrives twice on one target topic.
fn same_target_twice(a: &PlacedRoute, b: &PlacedRoute) -> bool {
    let (a, b) = (&a.route, &b.route);
    match (&a.target, &b.target) {
        (None, None) => true,
        (Some(x), Some(y)) => x == y,
        (Some(t), None) | (None, Some(t)) => a.source.matches(t) && b.source.matches(t),
    }
}

fn check_overlaps(routes: &[PlacedRoute], report: &mut Report) {
    for (j, b) in routes.iter().enumerate() {
        for a in &routes[..j] {
            let (ra, rb) = (&a.route, &b.route);
            if ra.direction != rb.direction || !ra.source.overlaps(&rb.source) {
                continue;
            }
            let (name_a, name_b) = (show(&ra.name), show(&rb.name));
            let (source_a, source_b) = (show(ra.source.as_str()), show(rb.source.as_str()));
            if same_target_twice(a, b) {
                let to = match (&ra.target, &rb.target) {
                    (None, None) => "their own topic".to_owned(),
                    (Some(t), _) | (_, Some(t)) => format!("`{}`", show(t)),
                };
                report.error(
                    &b.source_site,
                    format!(
                        "routes `{name_a}` and `{name_b}` both send messages matching \
                         `{source_a}` and `{source_b}` to {to}, so such messages arrive twice; \
                         narrow one source or give the routes different targets"
                    ),
                );
            } else {
                report.warning(
                    &b.source_site,
                    format!(
                        "route `{name_b}` overlaps route `{name_a}`: a message matching both \
                         `{source_b}` and `{source_a}` is forwarded twice (to {} and to {}); \
                         fine if intended",
                        destination(b),
                        destination(a)
                    ),
                );
            }
        }
    }
}

/// Whether a message `out` sends can come back through `back` and match `out` again.
fn loops(out: &PlacedRoute, back: &PlacedRoute) -> bool {
    let (out, back) = (&out.route, &back.route);
    match (&out.target, &back.target) {
        (None, None) => out.source.overlaps(&back.source),
        (Some(t), None) => back.source.matches(t) && out.source.matches(t),
        (None, Some(t)) => out.source.overlaps(&back.source) && out.source.matches(t),
        (Some(t_out), Some(t_back)) => back.source.matches(t_out) && out.source.matches(t_back),
    }
}

fn check_loops(routes: &[PlacedRoute], protocol: MqttVersion, report: &mut Report) {
    for (j, b) in routes.iter().enumerate() {
        for a in &routes[..j] {
            if a.route.direction == b.route.direction || !loops(a, b) {
                continue;
            }
            let (out, back) = if a.route.direction == Direction::LocalToRemote {
                (a, b)
            } else {
                (b, a)
            };
            let message = format!(
                "routes `{}` (local-to-remote) and `{}` (remote-to-local) can loop: messages \
                 the first sends to the remote broker match the second, which sends them back; \
                 use distinct topics on each side",
                show(&out.route.name),
                show(&back.route.name)
            );
            match protocol {
                MqttVersion::V5 => report.warning(&b.source_site, message),
                // MQTT 3.1.1 has neither No Local nor user properties for the hop count:
                // nothing would stop the loop.
                MqttVersion::V3 => report.error(
                    &b.source_site,
                    format!(
                        "{message} (with protocol v3 nothing stops such a loop: MQTT 3.1.1 has \
                         neither No Local nor the user property that carries the hop count)"
                    ),
                ),
            }
        }
    }
}

fn check_sessions(config: &BridgeConfig, site: &Site, report: &mut Report) {
    // Members of local-to-remote routes are local sessions: only the main sessions and the
    // members of remote-to-local routes count against Event Grid's limit.
    let (mains, members) = config.remote_session_counts();
    let sessions = mains + members;
    let breakdown = if mains > 0 {
        format!("{mains} instances + {members} shared-subscription members")
    } else {
        format!("{members} shared-subscription members")
    };
    if sessions > EVENT_GRID_MAX_SESSIONS {
        report.error(
            site,
            format!(
                "the bridge would open {sessions} sessions to the remote broker ({breakdown}), \
                 over Event Grid's limit of 100 per authentication name; lower \
                 bridgeInstances or groupMinimumShareNumber"
            ),
        );
    } else if members > 0 {
        report.warning(
            site,
            format!(
                "the bridge opens {sessions} sessions to the remote broker ({breakdown}); set \
                 Event Grid's maximum client sessions per authentication name to at least \
                 {sessions}"
            ),
        );
    }
}

fn check_files(checks: &[(FileCheck, Site)], options: &ConfigOptions, report: &mut Report) {
    let expiry = ExpiryPolicy {
        now: options.now.unwrap_or_else(time::OffsetDateTime::now_utc),
        warn_within: time::Duration::try_from(options.expiry_warning)
            .unwrap_or(time::Duration::MAX),
    };
    for (check, site) in checks {
        let problems = match check {
            FileCheck::ClientCert(files) => files::check_client_cert(files, &expiry),
            FileCheck::CaDir { name, dir } => files::check_ca_dir(name, dir),
            FileCheck::Credentials { secret, files } => files
                .iter()
                .filter(|file| !file.is_file())
                .map(|file| FileError::FileMissing {
                    secret: secret.clone(),
                    path: file.clone(),
                })
                .collect(),
            FileCheck::Token(file) => {
                if !file.is_file() {
                    report.warning(
                        site,
                        format!(
                            "service account token {} not found; the local broker will refuse \
                             the bridge unless it allows anonymous clients",
                            file.display()
                        ),
                    );
                }
                Vec::new()
            }
        };
        for problem in problems {
            report.push(problem.severity(), site, problem.to_string());
        }
    }
}
