//! Turning raw documents into the resolved types, reporting problems on the way.
//!
//! Each function resolves what it can and reports the rest, so that one pass finds every
//! problem; a part that cannot be resolved comes back as `None`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::crd::{
    ApiVersion, Keys, RawBasic, RawDocument, RawKubernetes, RawLocalConnection, RawMetadata,
    RawRemoteConnection, RawRoute, RawSharedSubscription, RawSpec, RawTls, join,
};
use super::endpoint::{Endpoint, MQTT_PORT, MQTTS_PORT, WS_PORT, WSS_PORT};
use super::files::ClientCertFiles;
use super::report::{Origin, Report, Site, show};
use super::resolve::{
    Authentication, BrokerConnection, ConfigOptions, DEFAULT_RECEIVE_MAXIMUM, Direction,
    EVENT_GRID_MAX_PACKET_SIZE, EVENT_GRID_MAX_SESSIONS, JWT_TOKEN_FILE_ANNOTATION, LogLevel,
    MEMBER_SESSIONS_ANNOTATION, MemberSessions, MqttVersion, QoS, Route, SessionSettings,
    SharedSubscription, Tls, Transport, TrustRoots,
};
use super::topic::{
    EVENT_GRID_MAX_LEVELS, EVENT_GRID_MAX_TOPIC_BYTES, TopicError, TopicFilter, check_topic_name,
};

/// Default `localBrokerConnection.authentication.kubernetes.secretPath`.
const DEFAULT_SAT_DIR: &str = "/var/run/serviceaccount/localbroker";

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

fn remote_connection(
    spec: &RawSpec,
    ctx: &mut Ctx<'_>,
    file_checks: &mut Vec<(FileCheck, Site)>,
) -> Option<BrokerConnection> {
    let Some(remote) = &spec.remote_broker_connection else {
        ctx.error(
            "spec",
            &spec.keys,
            "remoteBrokerConnection",
            "`remoteBrokerConnection` is missing; set its endpoint, tls and authentication"
                .to_owned(),
        );
        return None;
    };
    let parent = join("spec", spec.keys.spelling("remoteBrokerConnection"));
    let RawRemoteConnection {
        endpoint,
        protocol,
        tls,
        keys,
        ..
    } = remote;
    let transport = match protocol.as_deref() {
        None | Some("mqtt") => Transport::Tcp,
        Some("webSocket") => Transport::WebSocket,
        Some(other) => {
            ctx.error(
                &parent,
                keys,
                "protocol",
                format!(
                    "protocol `{}` is not valid; use mqtt or webSocket",
                    show(other)
                ),
            );
            Transport::Tcp
        }
    };
    let tls = match tls {
        Some(raw) => tls_settings(&parent, raw, true, ctx, file_checks).map(|tls| {
            match &ctx.options.remote_ca_file {
                Some(path) => Tls {
                    trust: TrustRoots::File { path: path.clone() },
                },
                None => tls,
            }
        }),
        None => {
            ctx.error(
                &parent,
                keys,
                "tls",
                "`tls` is missing; set tls.tlsEnabled: true (Event Grid requires TLS)".to_owned(),
            );
            // Carry on as the fix would have it, so that x509 is not reported as well.
            Some(Tls {
                trust: TrustRoots::Public,
            })
        }
    };
    let endpoint = resolve_endpoint(
        &Side::Remote,
        &parent,
        keys,
        endpoint.as_deref(),
        default_port(transport, tls.is_some()),
        ctx,
    );
    let authentication = remote_authentication(&parent, remote, tls.is_some(), ctx, file_checks);
    Some(BrokerConnection {
        endpoint: endpoint?,
        transport,
        tls,
        authentication: authentication?,
        session: session(ctx.options),
    })
}

fn local_connection(
    spec: &RawSpec,
    ctx: &mut Ctx<'_>,
    file_checks: &mut Vec<(FileCheck, Site)>,
) -> Option<BrokerConnection> {
    let default = RawLocalConnection::default();
    let local = spec.local_broker_connection.as_ref().unwrap_or(&default);
    let parent = join("spec", spec.keys.spelling("localBrokerConnection"));
    let tls = local
        .tls
        .as_ref()
        .and_then(|raw| tls_settings(&parent, raw, false, ctx, file_checks));
    let endpoint = resolve_endpoint(
        &Side::Local,
        &parent,
        &local.keys,
        local.endpoint.as_deref(),
        default_port(Transport::Tcp, tls.is_some()),
        ctx,
    );
    let authentication = local_authentication(&parent, local, ctx, file_checks);
    Some(BrokerConnection {
        endpoint: endpoint?,
        transport: Transport::Tcp,
        tls,
        authentication: authentication?,
        session: session(ctx.options),
    })
}

fn default_port(transport: Transport, tls: bool) -> u16 {
    match (transport, tls) {
        (Transport::Tcp, true) => MQTTS_PORT,
        (Transport::Tcp, false) => MQTT_PORT,
        (Transport::WebSocket, true) => WSS_PORT,
        (Transport::WebSocket, false) => WS_PORT,
    }
}

/// Which connection an endpoint belongs to.
pub(crate) enum Side {
    /// `remoteBrokerConnection`.
    Remote,
    /// `localBrokerConnection`.
    Local,
}

impl Side {
    /// The option that overrides this side's endpoint.
    pub(crate) fn override_option(&self) -> &'static str {
        match self {
            Side::Remote => "options.remote_endpoint",
            Side::Local => "options.local_endpoint",
        }
    }

    /// An example endpoint for messages.
    pub(crate) fn example(&self) -> &'static str {
        match self {
            Side::Remote => "example.westeurope-1.ts.eventgrid.azure.net:8883",
            Side::Local => "aio-mq-dmqtt-frontend:1883",
        }
    }

    /// The caller's override of this side's endpoint.
    pub(crate) fn override_value<'a>(&self, options: &'a ConfigOptions) -> Option<&'a str> {
        match self {
            Side::Remote => options.remote_endpoint.as_deref(),
            Side::Local => options.local_endpoint.as_deref(),
        }
    }
}

/// The message for an endpoint that does not parse.
pub(crate) fn endpoint_message(side: &Side, text: &str, reason: &dyn std::fmt::Display) -> String {
    format!(
        "endpoint `{}` is not valid: {reason}; use host:port, e.g. {}",
        show(text),
        side.example()
    )
}

/// The endpoint of one side: the caller's override, else the YAML value, else (local only)
/// the CRD default. A bad override is reported once by the pipeline, not here.
fn resolve_endpoint(
    side: &Side,
    parent: &str,
    keys: &Keys,
    value: Option<&str>,
    default_port: u16,
    ctx: &mut Ctx<'_>,
) -> Option<Endpoint> {
    if let Some(text) = side.override_value(ctx.options) {
        return Endpoint::parse(text, default_port).ok();
    }
    let text = match (value, side) {
        (Some(text), _) => text,
        (None, Side::Local) => match ctx.version {
            ApiVersion::V1alpha4 => "azedge-dmqtt-frontend:1883",
            ApiVersion::V1beta1 => "aio-mq-dmqtt-frontend:1883",
        },
        (None, Side::Remote) => {
            ctx.error(
                parent,
                keys,
                "endpoint",
                "`endpoint` is missing; set it to the Event Grid MQTT hostname and port 8883"
                    .to_owned(),
            );
            return None;
        }
    };
    match Endpoint::parse(text, default_port) {
        Ok(endpoint) => Some(endpoint),
        Err(reason) => {
            ctx.error(
                parent,
                keys,
                "endpoint",
                endpoint_message(side, text, &reason),
            );
            None
        }
    }
}

/// TLS settings; `None` when TLS is off.
fn tls_settings(
    connection: &str,
    raw: &RawTls,
    remote: bool,
    ctx: &mut Ctx<'_>,
    file_checks: &mut Vec<(FileCheck, Site)>,
) -> Option<Tls> {
    let parent = join(connection, "tls");
    let enabled = match raw.tls_enabled {
        Some(enabled) => enabled,
        None if remote => {
            ctx.error(
                &parent,
                &raw.keys,
                "tlsEnabled",
                "`tlsEnabled` is missing; set it to true (Event Grid requires TLS)".to_owned(),
            );
            true
        }
        None => false,
    };
    if !enabled && remote {
        ctx.warning(
            &parent,
            &raw.keys,
            "tlsEnabled",
            "TLS is disabled toward the remote broker; Event Grid accepts only TLS on port 8883"
                .to_owned(),
        );
    }
    let ca_field = "trustedCaCertificateConfigMap";
    let trust = match &raw.trusted_ca_certificate {
        None => TrustRoots::Public,
        Some(_) if !enabled => {
            let spelled = raw.keys.spelling(ca_field).to_owned();
            ctx.warning(
                &parent,
                &raw.keys,
                ca_field,
                format!("`{spelled}` is ignored because TLS is disabled"),
            );
            TrustRoots::Public
        }
        Some(name) => {
            let name = kubernetes_name(&parent, &raw.keys, ca_field, name, ctx)?;
            let dir = ctx.options.configmaps_dir.join(&name);
            let check = FileCheck::CaDir {
                name: name.clone(),
                dir: dir.clone(),
            };
            file_checks.push((check, ctx.site(&parent, &raw.keys, ca_field)));
            TrustRoots::ConfigMap { name, dir }
        }
    };
    enabled.then_some(Tls { trust })
}

/// Checks that a secret or config map name is a Kubernetes name, so that it is one plain
/// directory under the secrets or config maps directory (no `/`, no `..`).
fn kubernetes_name(
    parent: &str,
    keys: &Keys,
    field: &str,
    name: &str,
    ctx: &mut Ctx<'_>,
) -> Option<String> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        return Some(name.to_owned());
    }
    ctx.error(
        parent,
        keys,
        field,
        format!(
            "`{}` is not a valid Kubernetes name; use lowercase letters, digits, `-` and `.`",
            show(name)
        ),
    );
    None
}

/// The `authentication` keys that are set, as spelled.
fn methods_set(keys: &Keys, methods: &[&str]) -> Vec<String> {
    methods
        .iter()
        .filter_map(|method| keys.get(method))
        .map(|key| format!("`{}`", key.spelled))
        .collect()
}

/// Reports an `authentication` mapping that sets more than one method.
fn check_single_method(parent: &str, keys: &Keys, methods: &[&str], ctx: &mut Ctx<'_>) {
    let set = methods_set(keys, methods);
    if set.len() > 1 {
        let site = Site {
            origin: ctx.origin.clone(),
            field: parent.to_owned(),
            location: keys.location,
        };
        ctx.report.error(
            &site,
            format!(
                "`authentication` sets {}; keep exactly one",
                set.join(" and ")
            ),
        );
    }
}

fn remote_authentication(
    connection: &str,
    remote: &RawRemoteConnection,
    tls: bool,
    ctx: &mut Ctx<'_>,
    file_checks: &mut Vec<(FileCheck, Site)>,
) -> Option<Authentication> {
    let Some(auth) = &remote.authentication else {
        ctx.error(
            connection,
            &remote.keys,
            "authentication",
            "`authentication` is missing; set x509 with the client certificate secret".to_owned(),
        );
        return None;
    };
    let parent = join(connection, "authentication");
    check_single_method(
        &parent,
        &auth.keys,
        &["x509", "systemAssignedManagedIdentity", "basic"],
        ctx,
    );
    if let Some(x509) = &auth.x509 {
        let x509_parent = join(&parent, "x509");
        let secret_field = "clientK8sSecret";
        if !tls {
            ctx.error(
                &parent,
                &auth.keys,
                "x509",
                "x509 authentication needs TLS; set tls.tlsEnabled: true".to_owned(),
            );
        }
        let Some(secret) = &x509.secret else {
            let spelling = match ctx.version {
                ApiVersion::V1alpha4 => "clientK8sSecret",
                ApiVersion::V1beta1 => "secretName",
            };
            ctx.error(
                &parent,
                &auth.keys,
                "x509",
                format!("x509 needs the client certificate secret; set `{spelling}`"),
            );
            return None;
        };
        let secret = kubernetes_name(&x509_parent, &x509.keys, secret_field, secret, ctx)?;
        let files = ClientCertFiles::new(&ctx.options.secrets_dir, &secret);
        let site = ctx.site(&x509_parent, &x509.keys, secret_field);
        file_checks.push((FileCheck::ClientCert(files.clone()), site));
        Some(Authentication::X509(files))
    } else if let Some(identity) = &auth.system_assigned_managed_identity {
        super::jwt::managed_identity(&parent, &auth.keys, identity, tls, ctx)
    } else if let Some(basic) = &auth.basic {
        basic_authentication(&join(&parent, "basic"), basic, ctx, file_checks)
    } else {
        ctx.error(
            connection,
            &remote.keys,
            "authentication",
            "`authentication` sets no method; set x509 with the client certificate secret"
                .to_owned(),
        );
        None
    }
}

fn local_authentication(
    connection: &str,
    local: &RawLocalConnection,
    ctx: &mut Ctx<'_>,
    file_checks: &mut Vec<(FileCheck, Site)>,
) -> Option<Authentication> {
    let parent = join(connection, "authentication");
    let default = RawKubernetes::default();
    let (kubernetes, site) = match &local.authentication {
        Some(auth) => {
            check_single_method(&parent, &auth.keys, &["kubernetes", "basic"], ctx);
            if let Some(basic) = &auth.basic {
                return basic_authentication(&join(&parent, "basic"), basic, ctx, file_checks);
            }
            let site = ctx.site(&parent, &auth.keys, "kubernetes");
            (auth.kubernetes.as_ref().unwrap_or(&default), site)
        }
        None => (
            &default,
            ctx.site(connection, &local.keys, "authentication"),
        ),
    };
    let dir = kubernetes.secret_path.as_deref().unwrap_or(DEFAULT_SAT_DIR);
    let token_name =
        kubernetes
            .service_account_token_name
            .as_deref()
            .unwrap_or(match ctx.version {
                ApiVersion::V1alpha4 => "sat-token",
                ApiVersion::V1beta1 => "sat",
            });
    let token_file = Path::new(dir).join(token_name);
    file_checks.push((FileCheck::Token(token_file.clone()), site));
    Some(Authentication::ServiceAccountToken { token_file })
}

fn basic_authentication(
    parent: &str,
    basic: &RawBasic,
    ctx: &mut Ctx<'_>,
    file_checks: &mut Vec<(FileCheck, Site)>,
) -> Option<Authentication> {
    if basic.anonymous == Some(true) {
        return Some(Authentication::Anonymous);
    }
    let field = "k8sSecretName";
    let Some(secret) = &basic.k8s_secret_name else {
        ctx.error(
            parent,
            &basic.keys,
            field,
            "basic needs `k8sSecretName` (or anonymous: true)".to_owned(),
        );
        return None;
    };
    let secret = kubernetes_name(parent, &basic.keys, field, secret, ctx)?;
    let dir = ctx.options.secrets_dir.join(&secret);
    let username_file = dir.join(basic.username_key.as_deref().unwrap_or("username"));
    let password_file = dir.join(basic.password_key.as_deref().unwrap_or("password"));
    let check = FileCheck::Credentials {
        secret: secret.clone(),
        files: [username_file.clone(), password_file.clone()],
    };
    file_checks.push((check, ctx.site(parent, &basic.keys, field)));
    Some(Authentication::UsernamePassword {
        secret,
        username_file,
        password_file,
    })
}

/// Resolves `spec.routes[index]` of topic map `map`, reporting every problem; `None` when the
/// route cannot be used. Duplicate names are checked against `names` when given.
pub(crate) fn route(
    index: usize,
    raw: &RawRoute,
    map: &str,
    names: Option<&mut HashMap<String, String>>,
    ctx: &mut Ctx<'_>,
) -> Option<PlacedRoute> {
    let parent = format!("spec.routes[{index}]");
    let keys = &raw.keys;
    let direction = match raw.direction.as_deref() {
        Some("local-to-remote") => Some(Direction::LocalToRemote),
        Some("remote-to-local") => Some(Direction::RemoteToLocal),
        None => {
            ctx.error(
                &parent,
                keys,
                "direction",
                "`direction` is missing; use local-to-remote or remote-to-local".to_owned(),
            );
            None
        }
        Some(other) => {
            ctx.error(
                &parent,
                keys,
                "direction",
                format!(
                    "direction `{}` is not valid; use local-to-remote or remote-to-local",
                    show(other)
                ),
            );
            None
        }
    };
    let name = route_name(&parent, raw, names, ctx);
    let source = route_source(&parent, raw, direction, ctx);
    let target = route_target(&parent, raw, direction, ctx);
    let qos = route_qos(&parent, raw, direction, ctx);
    let shared_subscription = match &raw.shared_subscription {
        None => Some(None),
        Some(shared) => {
            shared_subscription(&join(&parent, "sharedSubscription"), shared, ctx).map(Some)
        }
    };
    Some(PlacedRoute {
        source_site: ctx.site(&parent, keys, "source"),
        route: Route {
            name: name?,
            topic_map: map.to_owned(),
            direction: direction?,
            source: source?,
            target: target?,
            qos: qos?,
            shared_subscription: shared_subscription?,
        },
    })
}

fn route_name(
    parent: &str,
    raw: &RawRoute,
    names: Option<&mut HashMap<String, String>>,
    ctx: &mut Ctx<'_>,
) -> Option<String> {
    let Some(name) = raw.name.as_deref().filter(|name| !name.is_empty()) else {
        ctx.error(
            parent,
            &raw.keys,
            "name",
            "`name` is missing; name the route (it is part of client IDs)".to_owned(),
        );
        return None;
    };
    let site = ctx.site(parent, &raw.keys, "name");
    if let Some(names) = names {
        if let Some(first) = names.get(name) {
            ctx.report.error(
                &site,
                format!(
                    "route name `{}` is already used by {first}; route names must be unique \
                     per connector",
                    show(name)
                ),
            );
            return None;
        }
        names.insert(name.to_owned(), site.path());
    }
    Some(name.to_owned())
}

fn route_source(
    parent: &str,
    raw: &RawRoute,
    direction: Option<Direction>,
    ctx: &mut Ctx<'_>,
) -> Option<TopicFilter> {
    let Some(source) = raw.source.as_deref() else {
        ctx.error(
            parent,
            &raw.keys,
            "source",
            "`source` is missing; set the topic filter to subscribe to".to_owned(),
        );
        return None;
    };
    let filter = TopicFilter::parse(source);
    let message = match &filter {
        Ok(filter) if filter.is_shared() => format!(
            "source `{}` is a shared subscription; put the plain topic filter in source and use \
             sharedSubscription instead",
            show(source)
        ),
        Ok(filter) => {
            // Event Grid sees the source of a remote-to-local route, and the topics of a
            // local-to-remote route that keeps each message's topic.
            let on_event_grid = match direction {
                Some(Direction::RemoteToLocal) => true,
                Some(Direction::LocalToRemote) => raw.target.is_none(),
                None => false,
            };
            if on_event_grid {
                event_grid_limits(parent, &raw.keys, "source", source, ctx);
            }
            return Some(filter.clone());
        }
        Err(reason) => format!(
            "source `{}` is not a valid topic filter: {reason}",
            show(source)
        ),
    };
    ctx.error(parent, &raw.keys, "source", message);
    None
}

/// `Some(None)` when there is no target, `None` when the target is invalid.
fn route_target(
    parent: &str,
    raw: &RawRoute,
    direction: Option<Direction>,
    ctx: &mut Ctx<'_>,
) -> Option<Option<String>> {
    let Some(target) = raw.target.as_deref() else {
        return Some(None);
    };
    let message = match check_topic_name(target) {
        Ok(()) => {
            if direction == Some(Direction::LocalToRemote) {
                event_grid_limits(parent, &raw.keys, "target", target, ctx);
            }
            return Some(Some(target.to_owned()));
        }
        Err(TopicError::Wildcard) => format!(
            "target `{}` contains a wildcard; a target is a single topic: remove `+` and `#`, \
             or omit target to keep each message's own topic",
            show(target)
        ),
        Err(reason) => format!("target `{}` is not a valid topic: {reason}", show(target)),
    };
    ctx.error(parent, &raw.keys, "target", message);
    None
}

fn route_qos(
    parent: &str,
    raw: &RawRoute,
    direction: Option<Direction>,
    ctx: &mut Ctx<'_>,
) -> Option<QoS> {
    let qos = match raw.qos {
        None | Some(1) => QoS::AtLeastOnce,
        Some(0) => QoS::AtMostOnce,
        Some(2) => QoS::ExactlyOnce,
        Some(other) => {
            ctx.error(
                parent,
                &raw.keys,
                "qos",
                format!("qos {other} is not valid; use 0, 1 or 2"),
            );
            return None;
        }
    };
    if qos == QoS::ExactlyOnce {
        match direction {
            Some(Direction::LocalToRemote) => {
                ctx.error(
                    parent,
                    &raw.keys,
                    "qos",
                    "qos 2 is not supported by Event Grid; use qos 1".to_owned(),
                );
                return None;
            }
            Some(Direction::RemoteToLocal) => ctx.warning(
                parent,
                &raw.keys,
                "qos",
                "Event Grid delivers at most QoS 1, so qos 2 adds nothing on this route; use qos 1"
                    .to_owned(),
            ),
            None => {}
        }
    }
    Some(qos)
}

/// Reports a topic or filter that Event Grid would refuse.
fn event_grid_limits(parent: &str, keys: &Keys, field: &str, topic: &str, ctx: &mut Ctx<'_>) {
    let levels = topic.split('/').count();
    if levels > EVENT_GRID_MAX_LEVELS {
        ctx.error(
            parent,
            keys,
            field,
            format!(
                "`{}` has {levels} topic levels; Event Grid allows at most 8",
                show(topic)
            ),
        );
    }
    if topic.len() > EVENT_GRID_MAX_TOPIC_BYTES {
        ctx.error(
            parent,
            keys,
            field,
            format!(
                "`{}` is {} bytes long; Event Grid allows at most 256",
                show(topic),
                topic.len()
            ),
        );
    }
}

fn shared_subscription(
    parent: &str,
    raw: &RawSharedSubscription,
    ctx: &mut Ctx<'_>,
) -> Option<SharedSubscription> {
    let group_name = match raw.group_name.as_deref() {
        None => {
            ctx.error(
                parent,
                &raw.keys,
                "groupName",
                "`groupName` is missing; name the shared subscription group".to_owned(),
            );
            None
        }
        Some(name) if name.is_empty() || name.contains(['/', '+', '#', '\0']) => {
            ctx.error(
                parent,
                &raw.keys,
                "groupName",
                format!(
                    "groupName `{}` is not valid; it must be non-empty and contain no `/`, `+` \
                     or `#`",
                    show(name)
                ),
            );
            None
        }
        Some(name) => Some(name.to_owned()),
    };
    let minimum = match raw.group_minimum_share_number {
        None => {
            ctx.error(
                parent,
                &raw.keys,
                "groupMinimumShareNumber",
                "`groupMinimumShareNumber` is missing; set how many sessions share the \
                 subscription (at least 1)"
                    .to_owned(),
            );
            None
        }
        Some(n) => match u32::try_from(n) {
            Ok(n) if (1..=EVENT_GRID_MAX_SESSIONS).contains(&n) => Some(n),
            _ => {
                ctx.error(
                    parent,
                    &raw.keys,
                    "groupMinimumShareNumber",
                    format!("groupMinimumShareNumber is {n}; it must be between 1 and 100"),
                );
                None
            }
        },
    };
    Some(SharedSubscription {
        group_name: group_name?,
        group_minimum_share_number: minimum?,
    })
}
