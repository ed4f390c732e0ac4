//! The two broker connections of a connector: endpoints, ports, TLS and the Kubernetes
//! names of the secrets and config maps they refer to.

use crate::config::crd::{
    ApiVersion, Keys, RawLocalConnection, RawRemoteConnection, RawSpec, RawTls, join,
};
use crate::config::endpoint::{Endpoint, MQTT_PORT, MQTTS_PORT, WS_PORT, WSS_PORT};
use crate::config::report::{Site, show};
use crate::config::resolve::{BrokerConnection, ConfigOptions, Tls, Transport, TrustRoots};

use super::auth::{local_authentication, remote_authentication};
use super::{Ctx, FileCheck, session};

pub(super) fn remote_connection(
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

pub(super) fn local_connection(
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
pub(super) fn kubernetes_name(
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
