//! How the bridge reaches and logs in to one broker: endpoint, transport, TLS trust,
//! authentication and MQTT session settings.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::config::endpoint::Endpoint;
use crate::config::files::ClientCertFiles;

/// How to reach and log in to one broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerConnection {
    /// Host and port.
    pub endpoint: Endpoint,
    /// MQTT over TCP or over WebSocket.
    pub transport: Transport,
    /// TLS settings; `None` for plain TCP.
    pub tls: Option<Tls>,
    /// How the bridge authenticates.
    pub authentication: Authentication,
    /// MQTT session settings.
    pub session: SessionSettings,
}

/// The transport under MQTT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// MQTT over TCP (`mqtt`).
    Tcp,
    /// MQTT over WebSocket (`webSocket`, v1beta1).
    WebSocket,
}

/// TLS settings of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tls {
    /// Which CA certificates verify the broker.
    pub trust: TrustRoots,
}

/// Which CA certificates verify a broker's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TrustRoots {
    /// The public web PKI roots (Event Grid's certificate chains to DigiCert Global Root G3).
    Public,
    /// Every PEM certificate in a config map directory.
    ConfigMap {
        /// Config map name.
        name: String,
        /// `<configmaps_dir>/<name>`.
        dir: PathBuf,
    },
    /// Every certificate of one PEM file given by the caller
    /// ([`ConfigOptions::remote_ca_file`](super::ConfigOptions::remote_ca_file)).
    File {
        /// The PEM file.
        path: PathBuf,
    },
}

/// How the bridge authenticates to a broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Authentication {
    /// TLS client certificate from a secret.
    X509(ClientCertFiles),
    /// Kubernetes service account token, sent as MQTT v5 enhanced authentication.
    ServiceAccountToken {
        /// The token file, re-read at each connect.
        token_file: PathBuf,
    },
    /// Username and password from a secret.
    UsernamePassword {
        /// Secret name.
        secret: String,
        /// File holding the username.
        username_file: PathBuf,
        /// File holding the password.
        password_file: PathBuf,
    },
    /// A Microsoft Entra ID access token for `audience`, from azure_identity (workload identity,
    /// managed identity or a developer credential), sent as MQTT 5 enhanced authentication
    /// `OAUTH2-JWT` (`systemAssignedManagedIdentity`).
    EntraToken {
        /// The audience (resource) the token is requested for.
        audience: String,
    },
    /// A JWT read from a file (a projected service account token, a sidecar's output), re-read
    /// when it changes, sent as `CUSTOM-JWT` (the `e4k.dev/remote-jwt-token-file` annotation).
    JwtFile {
        /// The token file.
        token_file: PathBuf,
    },
    /// No credentials.
    Anonymous,
}

/// MQTT v5 session settings of one connection.
///
/// The CRDs cannot set these (`docs/bridge.md` §1.3), so e4k chooses: persistent sessions so
/// that nothing is lost across reconnects, and a maximum packet size of 512 KiB on *both*
/// sides — a larger message could not be forwarded to Event Grid anyway, and announcing the
/// limit to the local broker makes it drop such messages instead of making us disconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SessionSettings {
    /// MQTT v5 Clean Start; `false` resumes the previous session.
    pub clean_start: bool,
    /// Session expiry interval.
    #[serde(serialize_with = "as_secs")]
    pub session_expiry: Duration,
    /// Keep-alive interval.
    #[serde(serialize_with = "as_secs")]
    pub keep_alive: Duration,
    /// Largest packet the bridge accepts, in bytes.
    pub max_packet_size: u32,
    /// Receive Maximum announced to the broker.
    pub receive_maximum: u16,
}

fn as_secs<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_secs())
}
