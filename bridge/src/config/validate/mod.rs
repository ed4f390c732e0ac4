//! The validation pipeline: document checks, schema checks, resolution, cross-route checks
//! and file checks, all reporting into one [`Report`].
//!
//! - [`document`]: `apiVersion`, `kind`, `metadata.name` and the keys of each document.
//! - [`routes`]: overlapping routes and loops between the routes of one connector.

use std::collections::HashMap;

use super::build::{self, ConnectorDraft, Ctx, FileCheck, Side};
use super::crd::{KIND_TOPIC_MAP, RawDocument};
use super::endpoint::Endpoint;
use super::files::{self, ExpiryPolicy, FileError};
use super::parse::RawConfig;
use super::report::{Report, Site, show};
use super::resolve::{
    BridgeConfig, ConfigOptions, EVENT_GRID_MAX_KEEP_ALIVE, EVENT_GRID_MAX_SESSION_EXPIRY,
    EVENT_GRID_MAX_SESSIONS,
};

use self::document::{Header, check_schema, header, metadata_keys};
use self::routes::{check_loops, check_overlaps};

mod document;
mod routes;

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
