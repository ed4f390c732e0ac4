//! Turning raw documents into the resolved types, reporting problems on the way.
//!
//! Each function resolves what it can and reports the rest, so that one pass finds every
//! problem; a part that cannot be resolved comes back as `None`.

use std::collections::HashMap;
use std::path::PathBuf;

use super::crd::{ApiVersion, Keys, RawDocument, RawMetadata, join};
use super::files::ClientCertFiles;
use super::report::{Origin, Report, Site, show};
use super::resolve::{
    Authentication, BrokerConnection, ConfigOptions, DEFAULT_RECEIVE_MAXIMUM,
    EVENT_GRID_MAX_PACKET_SIZE, EVENT_GRID_MAX_SESSIONS, JWT_TOKEN_FILE_ANNOTATION, LogLevel,
    MEMBER_SESSIONS_ANNOTATION, MemberSessions, MqttVersion, Route, SessionSettings,
};

pub(crate) use self::connection::{Side, endpoint_message};
use self::connection::{local_connection, remote_connection};
pub(crate) use self::routes::route;

mod auth;
mod connection;
mod routes;

/// Resolution state of one document.
pub(crate) struct Ctx<'a> {
    /// The document.
    pub(crate) origin: Origin,
    /// Its API version.
    pub(crate) version: ApiVersion,
    /// Caller options.
    pub(crate) options: &'a ConfigOptions,
    /// Where problems go.
    pub(crate) report: &'a mut Report,
}

impl Ctx<'_> {
    /// The site of `field` in the mapping at `parent` with `keys`.
    pub(crate) fn site(&self, parent: &str, keys: &Keys, field: &str) -> Site {
        Site {
            origin: self.origin.clone(),
            field: join(parent, keys.spelling(field)),
            location: keys.location_of(field),
        }
    }

    /// Reports an error at `field`.
    pub(crate) fn error(&mut self, parent: &str, keys: &Keys, field: &str, message: String) {
        let site = self.site(parent, keys, field);
        self.report.error(&site, message);
    }

    /// Reports a warning at `field`.
    pub(crate) fn warning(&mut self, parent: &str, keys: &Keys, field: &str, message: String) {
        let site = self.site(parent, keys, field);
        self.report.warning(&site, message);
    }
}

/// A secret or config map to check once resolution is done.
#[derive(Debug, Clone)]
pub(crate) enum FileCheck {
    /// An X.509 client-certificate secret.
    ClientCert(ClientCertFiles),
    /// A CA config map.
    CaDir {
        /// Config map name.
        name: String,
        /// Its directory.
        dir: PathBuf,
    },
    /// A service account token (a missing one is only a warning).
    Token(PathBuf),
    /// A username/password secret.
    Credentials {
        /// Secret name.
        secret: String,
        /// Username and password files.
        files: [PathBuf; 2],
    },
}

/// A route with the sites validation needs.
#[derive(Debug, Clone)]
pub(crate) struct PlacedRoute {
    /// The resolved route.
    pub(crate) route: Route,
    /// Its `source` key.
    pub(crate) source_site: Site,
}

/// A connector being resolved; routes are attached as topic maps are read.
#[derive(Debug)]
pub(crate) struct ConnectorDraft {
    /// `metadata.name`.
    pub(crate) name: String,
    /// Resolved `protocol`.
    pub(crate) protocol: MqttVersion,
    /// Resolved `e4k.dev/shared-subscription-sessions` annotation.
    pub(crate) member_sessions: MemberSessions,
    /// Resolved `bridgeInstances`.
    pub(crate) bridge_instances: u32,
    /// Resolved `clientIdPrefix`.
    pub(crate) client_id_prefix: String,
    /// Resolved `logLevel`.
    pub(crate) log_level: LogLevel,
    /// The remote connection, when it resolved.
    pub(crate) remote: Option<BrokerConnection>,
    /// The local connection, when it resolved.
    pub(crate) local: Option<BrokerConnection>,
    /// The connector document itself.
    pub(crate) site: Site,
    /// `spec.bridgeInstances`, where session-count problems are reported.
    pub(crate) instances_site: Site,
    /// Files to check.
    pub(crate) file_checks: Vec<(FileCheck, Site)>,
    /// Resolved routes.
    pub(crate) routes: Vec<PlacedRoute>,
    /// Route names seen so far, with the full path of their `name` key.
    pub(crate) route_names: HashMap<String, String>,
    /// Whether a topic map refers to this connector.
    pub(crate) referenced: bool,
}

/// Resolves an `MqttBridgeConnector` document.
pub(crate) fn connector(doc: &RawDocument, name: &str, ctx: &mut Ctx<'_>) -> ConnectorDraft {
    let site = ctx.site("", &doc.keys, "");
    let mut draft = ConnectorDraft {
        name: name.to_owned(),
        protocol: MqttVersion::V5,
        member_sessions: MemberSessions::SourceBroker,
        bridge_instances: 1,
        client_id_prefix: name.to_owned(),
        log_level: LogLevel::Info,
        remote: None,
        local: None,
        instances_site: site.clone(),
        site,
        file_checks: Vec::new(),
        routes: Vec::new(),
        route_names: HashMap::new(),
        referenced: false,
    };
    let Some(spec) = &doc.spec else {
        ctx.error(
            "",
            &doc.keys,
            "spec",
            "`spec` is missing; add remoteBrokerConnection and the other connector settings"
                .to_owned(),
        );
        return draft;
    };
    draft.instances_site = ctx.site("spec", &spec.keys, "bridgeInstances");
    let mut token_file = None;
    if let Some(metadata) = &doc.metadata {
        draft.member_sessions = annotations(metadata, ctx);
        token_file = super::jwt::token_file_annotation(metadata, ctx);
    }
    match spec.protocol.as_deref() {
        None | Some("v5") => {}
        Some("v3") => draft.protocol = MqttVersion::V3,
        Some(other) => ctx.error(
            "spec",
            &spec.keys,
            "protocol",
            format!(
                "protocol `{}` is not valid; use v5 (MQTT 5) or v3 (MQTT 3.1.1)",
                show(other)
            ),
        ),
    }
    if let Some(instances) = spec.bridge_instances {
        match u32::try_from(instances) {
            Ok(n) if (1..=EVENT_GRID_MAX_SESSIONS).contains(&n) => draft.bridge_instances = n,
            _ => ctx.error(
                "spec",
                &spec.keys,
                "bridgeInstances",
                format!("bridgeInstances is {instances}; it must be between 1 and 100"),
            ),
        }
    }
    if let Some(prefix) = spec.client_id_prefix.as_deref().filter(|p| !p.is_empty()) {
        prefix.clone_into(&mut draft.client_id_prefix);
    }
    match spec.log_level.as_deref() {
        None | Some("info") => {}
        Some("debug") => draft.log_level = LogLevel::Debug,
        Some(other) => ctx.error(
            "spec",
            &spec.keys,
            "logLevel",
            format!("logLevel `{}` is not valid; use debug or info", show(other)),
        ),
    }
    draft.remote = remote_connection(spec, ctx, &mut draft.file_checks);
    draft.local = local_connection(spec, ctx, &mut draft.file_checks);
    super::jwt::finish(
        &mut draft.remote,
        token_file,
        draft.protocol,
        &spec.keys,
        ctx,
    );
    if draft.protocol == MqttVersion::V3 {
        for (connection, field) in [
            (&draft.remote, "remoteBrokerConnection"),
            (&draft.local, "localBrokerConnection"),
        ] {
            if let Some(BrokerConnection {
                authentication: Authentication::ServiceAccountToken { .. },
                ..
            }) = connection
            {
                ctx.warning(
                    "spec",
                    &spec.keys,
                    field,
                    format!(
                        "{field} authenticates with a Kubernetes service account token \
                         (K8S-SAT), which needs MQTT 5 enhanced authentication: with protocol \
                         v3 the bridge connects without credentials; set protocol: v5 or \
                         authentication.basic"
                    ),
                );
            }
        }
    }
    draft
}

/// Reads e4k's annotations of a connector: an unknown `e4k.dev/` annotation is a warning (a
/// misspelling would otherwise go unnoticed), an invalid value an error.
fn annotations(metadata: &RawMetadata, ctx: &mut Ctx<'_>) -> MemberSessions {
    let mut member_sessions = MemberSessions::SourceBroker;
    for (key, value) in metadata.annotations.iter().flatten() {
        if key == JWT_TOKEN_FILE_ANNOTATION {
            // Read by `jwt::token_file_annotation`.
        } else if key == MEMBER_SESSIONS_ANNOTATION {
            match value.as_str() {
                "source" => member_sessions = MemberSessions::SourceBroker,
                "both" => member_sessions = MemberSessions::BothBrokers,
                other => ctx.error(
                    "metadata",
                    &metadata.keys,
                    "annotations",
                    format!(
                        "annotation {MEMBER_SESSIONS_ANNOTATION} is `{}`; use source (members \
                         have sessions on their route's source broker only) or both (each \
                         member also publishes through a session of its own on the \
                         destination broker)",
                        show(other)
                    ),
                ),
            }
        } else if key.starts_with("e4k.dev/") {
            ctx.warning(
                "metadata",
                &metadata.keys,
                "annotations",
                format!(
                    "unknown annotation {}; e4k reads only {MEMBER_SESSIONS_ANNOTATION} and \
                     {JWT_TOKEN_FILE_ANNOTATION}",
                    show(key)
                ),
            );
        }
    }
    member_sessions
}

fn session(options: &ConfigOptions) -> SessionSettings {
    SessionSettings {
        clean_start: false,
        session_expiry: options.session_expiry,
        keep_alive: options.keep_alive,
        max_packet_size: EVENT_GRID_MAX_PACKET_SIZE,
        receive_maximum: DEFAULT_RECEIVE_MAXIMUM,
    }
}
