//! How an emulator instance behaves: address, state file, latency, faults, quotas, the
//! optional MQTT data plane and the local token issuer's identity.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::EmulatorError;

/// The api-versions accepted by default: the newest stable and the newest preview.
pub const DEFAULT_API_VERSIONS: [&str; 2] = ["2025-02-15", "2026-06-15-preview"];

/// The MQTT hostname template the real service follows; see [`EmulatorConfig::mqtt_hostname`].
pub const DEFAULT_MQTT_HOSTNAME: &str = "{namespace}.{region}-1.ts.eventgrid.azure.net";

/// Everything an emulator instance can be told. Start from [`Default`] and override fields.
///
/// ```
/// use std::time::Duration;
/// use e4k_emulator::EmulatorConfig;
///
/// let config = EmulatorConfig {
///     lro_delay: Duration::from_millis(50),
///     page_size: 2,
///     ..EmulatorConfig::default()
/// };
/// assert_eq!(config.listen.port(), 0);
/// ```
#[derive(Clone)]
pub struct EmulatorConfig {
    /// The address to listen on; port 0 picks a free port (default `127.0.0.1:0`).
    pub listen: SocketAddr,
    /// A JSON file holding the resources: loaded at start, rewritten atomically after each change.
    pub state_file: Option<PathBuf>,
    /// Added to every request before it is answered (default none).
    pub latency: Duration,
    /// How long a write stays in progress (`Creating`/`Updating`/`Deleting`) before it completes
    /// (default 100 ms). Zero completes writes at once, still with LRO headers.
    pub lro_delay: Duration,
    /// The `Retry-After` seconds sent with long-running-operation responses (default 0, so a client
    /// that honours it polls without waiting; the real service sends up to 60).
    pub lro_retry_after_secs: u64,
    /// Injected failures (default none).
    pub faults: FaultConfig,
    /// If set, the only bearer token accepted; otherwise any non-empty bearer token is.
    pub token: Option<String>,
    /// The accepted `api-version` values. A version ending in `-preview` is validated against the
    /// embedded preview spec, any other against the stable one.
    pub api_versions: Vec<String>,
    /// Items per page of a list when the request has no `$top` (default 5, to exercise paging;
    /// the real service uses 20). Must be 1..=100.
    pub page_size: usize,
    /// The template of `properties.topicSpacesConfiguration.hostname`; `{namespace}` and
    /// `{region}` (the location, lowercase, without spaces) are replaced. Default
    /// [`DEFAULT_MQTT_HOSTNAME`]; set e.g. `"localhost"` when the data plane is local.
    pub mqtt_hostname: String,
    /// Per-namespace limits (default: the documented Event Grid limits).
    pub quotas: Quotas,
    /// Keep a log of every request (method, path, api-version, body) for
    /// [`RunningEmulator::captured_requests`](crate::RunningEmulator::captured_requests) (default on).
    pub capture_requests: bool,
    /// The MQTT data plane: a TLS port enforcing the control-plane state, backed by a private
    /// mosquitto. `None` (the default) serves ARM only and needs no mosquitto.
    pub mqtt: Option<MqttConfig>,
    /// The local token issuer (a managed-identity endpoint for `azure_identity`, and the
    /// Microsoft Entra ID stand-in the MQTT front end trusts for `OAUTH2-JWT`).
    pub identity: IdentityConfig,
}

/// The emulator's managed identity: who the tokens of its identity endpoint name and how
/// long they last (see the README's "Token issuer" section).
///
/// ```
/// use std::time::Duration;
/// use e4k_emulator::{EmulatorConfig, IdentityConfig};
///
/// let config = EmulatorConfig {
///     identity: IdentityConfig { token_lifetime: Duration::from_secs(20), ..IdentityConfig::default() },
///     ..EmulatorConfig::default()
/// };
/// assert_eq!(config.identity.principal_id, e4k_emulator::identity::DEFAULT_PRINCIPAL_ID);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// The principal (object) id: the `oid` and `sub` of the tokens the endpoint issues, and
    /// the `principalId` a role assignment names (default
    /// [`DEFAULT_PRINCIPAL_ID`](crate::identity::DEFAULT_PRINCIPAL_ID)).
    pub principal_id: String,
    /// The identity's client (application) id: the `appid` claim; a request for this
    /// `client_id` is served like one for the system-assigned identity (default
    /// [`DEFAULT_CLIENT_ID`](crate::identity::DEFAULT_CLIENT_ID)).
    pub client_id: String,
    /// The tenant id: the `tid` claim and the last segment of the issuer URL (default
    /// [`DEFAULT_TENANT_ID`](crate::identity::DEFAULT_TENANT_ID)).
    pub tenant_id: String,
    /// How long an issued token is valid (default 1 hour, as Entra ID's managed-identity
    /// tokens; tests use seconds).
    pub token_lifetime: Duration,
    /// The secret a token request must carry in `X-IDENTITY-HEADER` (App Service's
    /// `IDENTITY_HEADER`; default
    /// [`DEFAULT_IDENTITY_HEADER`](crate::identity::DEFAULT_IDENTITY_HEADER)).
    pub header_secret: String,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        use crate::identity::{
            DEFAULT_CLIENT_ID, DEFAULT_IDENTITY_HEADER, DEFAULT_PRINCIPAL_ID, DEFAULT_TENANT_ID,
        };
        Self {
            principal_id: DEFAULT_PRINCIPAL_ID.to_owned(),
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            tenant_id: DEFAULT_TENANT_ID.to_owned(),
            token_lifetime: Duration::from_secs(3600),
            header_secret: DEFAULT_IDENTITY_HEADER.to_owned(),
        }
    }
}

// Hand-written so that the header secret never reaches a log.
impl fmt::Debug for IdentityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityConfig")
            .field("principal_id", &self.principal_id)
            .field("client_id", &self.client_id)
            .field("tenant_id", &self.tenant_id)
            .field("token_lifetime", &self.token_lifetime)
            .field("header_secret", &"<redacted>")
            .finish()
    }
}

/// The MQTT data plane's settings (see the README's "MQTT data plane" section).
///
/// ```
/// use e4k_emulator::{EmulatorConfig, MqttConfig};
///
/// let config = EmulatorConfig {
///     mqtt_hostname: "localhost".into(),
///     mqtt: Some(MqttConfig::default()),
///     ..EmulatorConfig::default()
/// };
/// assert_eq!(config.mqtt.unwrap().listen.port(), 0);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttConfig {
    /// The TLS MQTT address; port 0 picks a free port (default `127.0.0.1:0`; the real service
    /// uses 8883).
    pub listen: SocketAddr,
    /// The mosquitto binary (default: `/usr/sbin/mosquitto` if it exists, else `mosquitto` on
    /// `PATH`).
    pub mosquitto_binary: Option<PathBuf>,
    /// Where to write the data-plane CA certificate (PEM) that clients must trust; default a
    /// file in the emulator's temporary directory
    /// ([`RunningEmulator::mqtt_ca_pem_path`](crate::RunningEmulator::mqtt_ca_pem_path)).
    pub ca_file: Option<PathBuf>,
    /// Extra DNS names or IP addresses for the default server certificate, besides
    /// `localhost`, `127.0.0.1`, `::1`, the listen address and a placeholder-free
    /// [`EmulatorConfig::mqtt_hostname`]. (A client that sends another name in SNI gets a
    /// certificate for it anyway.)
    pub hostnames: Vec<String>,
    /// Also serve MQTT over secure WebSockets on this address (Event Grid's port 443, path
    /// `/mqtt`, subprotocol `mqtt`); `None` (the default) serves only MQTT over TLS. Port 0
    /// picks a free port.
    pub websocket_listen: Option<SocketAddr>,
    /// Event Grid's inbound limit per client session: PUBLISH packets per second and bytes
    /// per second a session may send (default 1,000 msg/s and 1 MB/s, the service's quota).
    /// The front end throttles a faster session by reading from it more slowly, so TCP
    /// backpressure slows the client down. `None` lifts the limit.
    pub session_publish_limit: Option<PublishLimit>,
}

/// A per-session inbound publish limit; see [`MqttConfig::session_publish_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishLimit {
    /// PUBLISH packets per second; 0 = no limit on the count.
    pub messages_per_second: u32,
    /// Bytes of PUBLISH packets per second; 0 = no limit on the size.
    pub bytes_per_second: u32,
}

impl PublishLimit {
    /// Event Grid's quota: 1,000 messages and 1 MB per second per session.
    pub const EVENT_GRID: PublishLimit = PublishLimit {
        messages_per_second: 1_000,
        bytes_per_second: 1_000_000,
    };
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            mosquitto_binary: None,
            ca_file: None,
            hostnames: Vec::new(),
            websocket_listen: None,
            session_publish_limit: Some(PublishLimit::EVENT_GRID),
        }
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            state_file: None,
            latency: Duration::ZERO,
            lro_delay: Duration::from_millis(100),
            lro_retry_after_secs: 0,
            faults: FaultConfig::default(),
            token: None,
            api_versions: DEFAULT_API_VERSIONS
                .iter()
                .map(|v| (*v).to_owned())
                .collect(),
            page_size: 5,
            mqtt_hostname: DEFAULT_MQTT_HOSTNAME.to_owned(),
            quotas: Quotas::default(),
            capture_requests: true,
            mqtt: None,
            identity: IdentityConfig::default(),
        }
    }
}

// Hand-written so that the expected token never reaches a log.
impl fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("listen", &self.listen)
            .field("state_file", &self.state_file)
            .field("latency", &self.latency)
            .field("lro_delay", &self.lro_delay)
            .field("lro_retry_after_secs", &self.lro_retry_after_secs)
            .field("faults", &self.faults)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("api_versions", &self.api_versions)
            .field("page_size", &self.page_size)
            .field("mqtt_hostname", &self.mqtt_hostname)
            .field("quotas", &self.quotas)
            .field("capture_requests", &self.capture_requests)
            .field("mqtt", &self.mqtt)
            .field("identity", &self.identity)
            .finish()
    }
}

impl EmulatorConfig {
    /// Checks the values that [`Emulator::bind`](crate::Emulator::bind) cannot work with.
    pub fn validate(&self) -> Result<(), EmulatorError> {
        let fail = |reason: String| Err(EmulatorError::Config { reason });
        if self.api_versions.is_empty() {
            return fail("api_versions is empty".into());
        }
        if !(1..=100).contains(&self.page_size) {
            return fail(format!("page_size {} is not in 1..=100", self.page_size));
        }
        if self.identity.token_lifetime.is_zero() {
            return fail("identity.token_lifetime is zero".into());
        }
        for (name, value) in [
            ("principal_id", &self.identity.principal_id),
            ("client_id", &self.identity.client_id),
            ("tenant_id", &self.identity.tenant_id),
            ("header_secret", &self.identity.header_secret),
        ] {
            if value.trim().is_empty() {
                return fail(format!("identity.{name} is empty"));
            }
        }
        self.faults.validate()
    }
}

/// Failure injection. Each request draws from a seeded generator, so the same sequence of
/// requests meets the same faults in every run.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultConfig {
    /// Share of requests answered `429 Too Many Requests` with `Retry-After` (0.0..=1.0).
    pub rate_429: f64,
    /// Share of requests answered `503 Service Unavailable` or `500 Internal Server Error`.
    pub rate_5xx: f64,
    /// Share of accepted writes whose long-running operation ends `Failed`.
    pub rate_lro_failure: f64,
    /// The seed of the generator.
    pub seed: u64,
    /// The `Retry-After` seconds sent with an injected 429 or 503.
    pub retry_after_secs: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            rate_429: 0.0,
            rate_5xx: 0.0,
            rate_lro_failure: 0.0,
            seed: 0,
            retry_after_secs: 1,
        }
    }
}

impl FaultConfig {
    fn validate(&self) -> Result<(), EmulatorError> {
        let rates = [
            ("rate_429", self.rate_429),
            ("rate_5xx", self.rate_5xx),
            ("rate_lro_failure", self.rate_lro_failure),
        ];
        for (name, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(EmulatorError::Config {
                    reason: format!("faults.{name} {rate} is not in 0.0..=1.0"),
                });
            }
        }
        if self.rate_429 + self.rate_5xx > 1.0 {
            return Err(EmulatorError::Config {
                reason: "faults.rate_429 + faults.rate_5xx exceeds 1.0".into(),
            });
        }
        Ok(())
    }
}

/// Per-namespace (and per-subscription) limits; the defaults are Event Grid's documented ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// CA certificates per namespace (10).
    pub ca_certificates: usize,
    /// Client groups per namespace, not counting `$all` (10).
    pub client_groups: usize,
    /// Topic spaces per namespace (10).
    pub topic_spaces: usize,
    /// Topic templates per topic space (10).
    pub topic_templates: usize,
    /// Permission bindings per namespace (100).
    pub permission_bindings: usize,
    /// Clients per throughput unit (`sku.capacity`) of the namespace (10,000).
    pub clients_per_throughput_unit: usize,
    /// Namespaces per subscription (50).
    pub namespaces_per_subscription: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            ca_certificates: 10,
            client_groups: 10,
            topic_spaces: 10,
            topic_templates: 10,
            permission_bindings: 100,
            clients_per_throughput_unit: 10_000,
            namespaces_per_subscription: 50,
        }
    }
}
