//! JWT authentication toward Event Grid: `authentication.systemAssignedManagedIdentity`
//! (a Microsoft Entra ID token, MQTT 5 `OAUTH2-JWT`) and e4k's annotation
//! `e4k.dev/remote-jwt-token-file` (a token read from a file, `CUSTOM-JWT`).
//!
//! Both need MQTT 5 (the token travels as enhanced authentication on CONNECT and AUTH) and TLS
//! (a bearer token on a plain connection could be read off the wire).

use std::path::PathBuf;

use super::build::Ctx;
use super::crd::{Keys, RawManagedIdentity, RawMetadata};
use super::report::show;
use super::resolve::{
    Authentication, BrokerConnection, EVENT_GRID_AUDIENCE, JWT_TOKEN_FILE_ANNOTATION, MqttVersion,
};

/// `systemAssignedManagedIdentity` under `parent`: the audience (Event Grid's by default).
pub(crate) fn managed_identity(
    parent: &str,
    keys: &Keys,
    raw: &RawManagedIdentity,
    tls: bool,
    ctx: &mut Ctx<'_>,
) -> Option<Authentication> {
    if !tls {
        ctx.error(
            parent,
            keys,
            "systemAssignedManagedIdentity",
            "a Microsoft Entra ID token must not cross a plain connection; set \
             tls.tlsEnabled: true"
                .to_owned(),
        );
        return None;
    }
    let audience = raw
        .audience
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or(EVENT_GRID_AUDIENCE);
    if !(audience.starts_with("https://") || audience.starts_with("api://")) {
        ctx.error(
            &super::crd::join(parent, "systemAssignedManagedIdentity"),
            &raw.keys,
            "audience",
            format!(
                "audience `{}` is not a resource URI; Event Grid's is {EVENT_GRID_AUDIENCE}",
                show(audience)
            ),
        );
        return None;
    }
    Some(Authentication::EntraToken {
        audience: audience.to_owned(),
    })
}

/// The token file of the `e4k.dev/remote-jwt-token-file` annotation, if set.
pub(crate) fn token_file_annotation(metadata: &RawMetadata, ctx: &mut Ctx<'_>) -> Option<PathBuf> {
    let value = metadata
        .annotations
        .as_ref()?
        .get(JWT_TOKEN_FILE_ANNOTATION)?;
    let path = value.trim();
    if path.is_empty() || !path.starts_with('/') {
        ctx.error(
            "metadata",
            &metadata.keys,
            "annotations",
            format!(
                "annotation {JWT_TOKEN_FILE_ANNOTATION} is `{}`; give the absolute path of the \
                 token file",
                show(value)
            ),
        );
        return None;
    }
    Some(PathBuf::from(path))
}

/// Applies the token-file annotation to the resolved remote connection and checks what JWT
/// authentication needs of the connector.
pub(crate) fn finish(
    remote: &mut Option<BrokerConnection>,
    token_file: Option<PathBuf>,
    protocol: MqttVersion,
    spec_keys: &Keys,
    ctx: &mut Ctx<'_>,
) {
    let Some(remote) = remote.as_mut() else {
        return;
    };
    if let Some(token_file) = token_file {
        match remote.authentication {
            Authentication::EntraToken { .. } => {
                remote.authentication = Authentication::JwtFile { token_file };
            }
            _ => ctx.error(
                "spec",
                spec_keys,
                "remoteBrokerConnection",
                format!(
                    "annotation {JWT_TOKEN_FILE_ANNOTATION} replaces the Microsoft Entra token \
                     of remoteBrokerConnection.authentication.systemAssignedManagedIdentity \
                     with the file's (CUSTOM-JWT); set that authentication method"
                ),
            ),
        }
    }
    let jwt = matches!(
        remote.authentication,
        Authentication::EntraToken { .. } | Authentication::JwtFile { .. }
    );
    if jwt && protocol == MqttVersion::V3 {
        ctx.error(
            "spec",
            spec_keys,
            "protocol",
            "JWT authentication toward the remote broker needs MQTT 5 (the token is sent as \
             enhanced authentication); set protocol: v5 or use x509"
                .to_owned(),
        );
    }
}
