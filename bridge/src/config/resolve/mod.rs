//! The resolved, typed bridge configuration: defaults applied, references turned into file
//! paths, one [`BridgeConfig`] per `MqttBridgeConnector`.
//!
//! # Defaults
//!
//! | Setting | Default |
//! |---|---|
//! | `protocol` | `v5`; `v3` is MQTT 3.1.1 (see [`MqttVersion`]) |
//! | `bridgeInstances` | 1 |
//! | `clientIdPrefix` | the connector's `metadata.name` when absent or empty |
//! | `logLevel` | `info` |
//! | route `qos` | 1 |
//! | route `target` | none: each message keeps its own topic |
//! | local endpoint | `azedge-dmqtt-frontend:1883` (v1alpha4), `aio-mq-dmqtt-frontend:1883` |
//! | local TLS | off |
//! | local auth | token `/var/run/serviceaccount/localbroker/sat-token` (`…/sat` in v1beta1) |
//! | remote CA | public roots ([`TrustRoots::Public`]) |
//! | port when left out | 8883 with TLS, 1883 without (443/80 for WebSocket) |
//! | session | `clean_start = false`, expiry 1 h (Event Grid allows at most 8 h), keep-alive 60 s |
//! | maximum packet size | 512 KiB on both sides (Event Grid's limit; see [`SessionSettings`]) |
//!
//! # Client IDs
//!
//! Every bridge instance `k` (`0..bridgeInstances`) has one *main* session per broker, with
//! client ID `{prefix}-{k}`; it carries every route that has no shared subscription. A route
//! with a shared subscription gets its own member sessions: `M = instances ×
//! ceil(groupMinimumShareNumber / instances)` of them in total (so at least the minimum, and
//! the same number per instance), member `m` belongs to instance `m % instances` and has
//! client ID `{prefix}-{route}-{m}`. The member index is the last `-` part and a route name is
//! never empty, so IDs never collide within one connector; they stay stable as long as
//! `bridgeInstances` and the route names do. See [`BridgeConfig::client_id`].
//!
//! By default a member session exists only on its route's *source* broker (where it subscribes
//! `$share/<group>/<source>`); its messages are published over the main session of its
//! instance on the destination broker. With the connector annotation
//! `e4k.dev/shared-subscription-sessions: both` ([`MemberSessions::BothBrokers`]) each member
//! also has a session of its own on the destination broker, with the same client ID, and
//! publishes there: a local-to-remote shared route then spreads over as many Event Grid
//! sessions as it has members, each with its own per-session quota, at the cost of that many
//! more sessions per authentication name. So members of local-to-remote routes are local
//! sessions and do not count against Event Grid's "maximum client sessions per
//! authentication name"; members of remote-to-local routes are remote sessions and do. A main
//! session exists on a broker when a route without a shared subscription exists (in either
//! direction) or a shared route publishes to that broker. See
//! [`BridgeConfig::remote_session_count`] and [`BridgeConfig::local_session_count`].

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

pub use self::connection::{
    Authentication, BrokerConnection, SessionSettings, Tls, Transport, TrustRoots,
};
pub use self::route::{Direction, QoS, Route, SharedSubscription};

mod connection;
mod route;

/// Default directory holding one sub-directory per Kubernetes secret.
pub const DEFAULT_SECRETS_DIR: &str = "/var/run/secrets/e4k";
/// Default directory holding one sub-directory per Kubernetes config map.
pub const DEFAULT_CONFIGMAPS_DIR: &str = "/var/run/configmaps/e4k";
/// Default session expiry interval.
pub const DEFAULT_SESSION_EXPIRY: Duration = Duration::from_secs(3_600);
/// Longest session expiry Event Grid accepts.
pub const EVENT_GRID_MAX_SESSION_EXPIRY: Duration = Duration::from_secs(8 * 3_600);
/// Default keep-alive interval.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(60);
/// Longest keep-alive Event Grid accepts.
pub const EVENT_GRID_MAX_KEEP_ALIVE: Duration = Duration::from_secs(1_160);
/// Event Grid's maximum MQTT packet size.
pub const EVENT_GRID_MAX_PACKET_SIZE: u32 = 512 * 1024;
/// Most sessions Event Grid allows per authentication name.
pub const EVENT_GRID_MAX_SESSIONS: u32 = 100;
/// Default receive maximum: how many QoS 1 messages a broker may have in flight to us.
pub const DEFAULT_RECEIVE_MAXIMUM: u16 = 100;

/// Caller-side settings for resolving and validating a configuration.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConfigOptions {
    /// Directory holding one sub-directory per secret.
    pub secrets_dir: PathBuf,
    /// Directory holding one sub-directory per config map.
    pub configmaps_dir: PathBuf,
    /// Replaces the remote endpoint of every connector (e.g. `--remote-endpoint host:port`).
    pub remote_endpoint: Option<String>,
    /// Replaces the local endpoint of every connector.
    pub local_endpoint: Option<String>,
    /// A PEM file of CA certificates that replaces the remote connection's trusted roots
    /// (e.g. `--remote-ca-file`, for a test broker standing in for Event Grid).
    pub remote_ca_file: Option<PathBuf>,
    /// Session expiry interval for both brokers.
    pub session_expiry: Duration,
    /// Keep-alive interval for both brokers.
    pub keep_alive: Duration,
    /// Whether validation reads the secret and config map files.
    pub check_files: bool,
    /// The time certificates are checked against; `None` means now.
    pub now: Option<OffsetDateTime>,
    /// Warn when the client certificate expires within this long.
    pub expiry_warning: Duration,
}

impl Default for ConfigOptions {
    fn default() -> Self {
        ConfigOptions {
            secrets_dir: PathBuf::from(DEFAULT_SECRETS_DIR),
            configmaps_dir: PathBuf::from(DEFAULT_CONFIGMAPS_DIR),
            remote_endpoint: None,
            local_endpoint: None,
            remote_ca_file: None,
            session_expiry: DEFAULT_SESSION_EXPIRY,
            keep_alive: DEFAULT_KEEP_ALIVE,
            check_files: true,
            now: None,
            expiry_warning: Duration::from_secs(30 * 86_400),
        }
    }
}

/// The resolved configuration of one `MqttBridgeConnector` and the routes of every topic map
/// that refers to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BridgeConfig {
    /// The connector's `metadata.name`.
    pub name: String,
    /// The MQTT version spoken to both brokers (`spec.protocol`).
    pub protocol: MqttVersion,
    /// Where shared-subscription members have sessions (annotation
    /// `e4k.dev/shared-subscription-sessions`).
    pub member_sessions: MemberSessions,
    /// Number of bridge instances; at least 1.
    pub bridge_instances: u32,
    /// Prefix of every client ID.
    pub client_id_prefix: String,
    /// Log level.
    pub log_level: LogLevel,
    /// The remote (Event Grid) broker.
    pub remote: BrokerConnection,
    /// The local broker.
    pub local: BrokerConnection,
    /// The routes, in document order.
    pub routes: Vec<Route>,
}

/// The annotation of an `MqttBridgeConnector` that makes the remote connection authenticate
/// with a JWT read from this file (`CUSTOM-JWT`), together with
/// `authentication.systemAssignedManagedIdentity`.
pub const JWT_TOKEN_FILE_ANNOTATION: &str = "e4k.dev/remote-jwt-token-file";

/// Event Grid's audience for Microsoft Entra ID tokens (the default of
/// `systemAssignedManagedIdentity.audience`).
pub const EVENT_GRID_AUDIENCE: &str = "https://eventgrid.azure.net/";

/// The annotation of an `MqttBridgeConnector` that sets [`MemberSessions`]: `source` or
/// `both`.
pub const MEMBER_SESSIONS_ANNOTATION: &str = "e4k.dev/shared-subscription-sessions";

/// Where the members of a shared subscription have client sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MemberSessions {
    /// On the route's source broker only (`source`, the default): they publish through their
    /// instance's main session on the destination broker.
    #[default]
    SourceBroker,
    /// On both brokers (`both`): each member publishes through a destination session of its
    /// own.
    BothBrokers,
}

/// The MQTT version of a connector's sessions (`spec.protocol`), used for both brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MqttVersion {
    /// MQTT 5 (`v5`, the default): properties, Receive Maximum, No Local, session expiry.
    #[default]
    V5,
    /// MQTT 3.1.1 (`v3`): no properties, so message properties are not forwarded and the
    /// `e4k-hops` loop guard cannot be carried; no No Local; no enhanced authentication
    /// (`K8S-SAT`); the broker decides how long a persistent session lives and how many
    /// messages it sends unacknowledged.
    V3,
}

impl MqttVersion {
    /// `v5` or `v3`, as in the CRD.
    pub fn as_str(self) -> &'static str {
        match self {
            MqttVersion::V5 => "v5",
            MqttVersion::V3 => "v3",
        }
    }
}

/// Which session a client ID is for; see the [module docs](self) for the scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRole<'a> {
    /// The instance's session for all routes without a shared subscription.
    Main,
    /// Member `member` of a route's shared-subscription group.
    SharedMember {
        /// The route name.
        route: &'a str,
        /// The member index, `0..M`.
        member: u32,
    },
}

/// What a pod that runs a bridge must mount for the files the bridge reads: the Kubernetes
/// objects behind them and the service account token the local broker expects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Mounts {
    /// Secrets: client certificates and username/password secrets (sorted, once each).
    pub secrets: Vec<String>,
    /// Config maps holding the CA certificates the bridge trusts (sorted, once each).
    pub config_maps: Vec<String>,
    /// The service account token file of a `K8S-SAT` connection (the local broker's default).
    pub service_account_token: Option<PathBuf>,
}

impl BridgeConfig {
    /// What a pod running this bridge mounts (`e4k k8s manifests`, `e4k up`).
    pub fn mounts(&self) -> Mounts {
        let sides = [&self.remote, &self.local];
        let sorted = |mut names: Vec<String>| {
            names.sort();
            names.dedup();
            names
        };
        let secrets = sides.iter().filter_map(|side| match &side.authentication {
            Authentication::X509(files) => Some(files.secret.clone()),
            Authentication::UsernamePassword { secret, .. } => Some(secret.clone()),
            _ => None,
        });
        let config_maps =
            sides
                .iter()
                .filter_map(|side| match side.tls.as_ref().map(|tls| &tls.trust) {
                    Some(TrustRoots::ConfigMap { name, .. }) => Some(name.clone()),
                    _ => None,
                });
        Mounts {
            secrets: sorted(secrets.collect()),
            config_maps: sorted(config_maps.collect()),
            service_account_token: [&self.local, &self.remote]
                .iter()
                .find_map(|side| match &side.authentication {
                    Authentication::ServiceAccountToken { token_file } => Some(token_file.clone()),
                    _ => None,
                }),
        }
    }

    /// The client ID of a session of instance `instance`: `{prefix}-{instance}` for
    /// [`SessionRole::Main`], `{prefix}-{route}-{member}` for a shared-subscription member
    /// (the instance is implied by the member index).
    pub fn client_id(&self, instance: u32, role: SessionRole<'_>) -> String {
        match role {
            SessionRole::Main => format!("{}-{instance}", self.client_id_prefix),
            SessionRole::SharedMember { route, member } => {
                format!("{}-{route}-{member}", self.client_id_prefix)
            }
        }
    }

    /// The shared-subscription members of `route` that instance `instance` runs.
    pub fn shared_members(&self, route: &Route, instance: u32) -> Vec<u32> {
        let Some(shared) = &route.shared_subscription else {
            return Vec::new();
        };
        let instances = self.bridge_instances.max(1);
        (0..shared.members_per_instance(instances))
            .map(|slot| slot * instances + instance)
            .collect()
    }

    /// Whether every instance has a main session on the (local, remote) broker: when a
    /// route without a shared subscription exists, or a shared route publishes to that broker
    /// (its members forward through the main session of their instance there).
    pub(crate) fn main_sessions(&self) -> (bool, bool) {
        let instances = self.bridge_instances.max(1);
        let mut local = false;
        let mut remote = false;
        for route in &self.routes {
            match &route.shared_subscription {
                None => {
                    local = true;
                    remote = true;
                }
                Some(shared)
                    if shared.members_per_instance(instances) > 0
                        && self.member_sessions == MemberSessions::SourceBroker =>
                {
                    match route.direction {
                        Direction::LocalToRemote => remote = true,
                        Direction::RemoteToLocal => local = true,
                    }
                }
                Some(_) => {}
            }
        }
        (local, remote)
    }

    /// Shared-subscription member sessions over all instances whose routes start at
    /// `direction`'s source broker.
    fn member_count(&self, direction: Direction) -> u32 {
        let instances = self.bridge_instances.max(1);
        self.routes
            .iter()
            .filter(|route| route.direction == direction)
            .filter_map(|route| route.shared_subscription.as_ref())
            .map(|shared| shared.members_per_instance(instances) * instances)
            .sum()
    }

    /// Main sessions and shared-subscription member sessions the bridge opens to the remote
    /// broker over all instances: one main session per instance (when it has one there) plus
    /// the members of remote-to-local shared routes. Members of local-to-remote routes exist
    /// only on the local broker.
    pub fn remote_session_counts(&self) -> (u32, u32) {
        let (_, remote) = self.main_sessions();
        let mains = if remote {
            self.bridge_instances.max(1)
        } else {
            0
        };
        let mut members = self.member_count(Direction::RemoteToLocal);
        if self.member_sessions == MemberSessions::BothBrokers {
            members += self.member_count(Direction::LocalToRemote);
        }
        (mains, members)
    }

    /// Sessions the bridge opens to the remote broker over all instances (what Event Grid's
    /// "maximum client sessions per authentication name" must allow); see
    /// [`remote_session_counts`](Self::remote_session_counts).
    pub fn remote_session_count(&self) -> u32 {
        let (mains, members) = self.remote_session_counts();
        mains + members
    }

    /// Sessions the bridge opens to the local broker over all instances: one main session per
    /// instance (when it has one there) plus the members of local-to-remote shared routes.
    pub fn local_session_count(&self) -> u32 {
        let (local, _) = self.main_sessions();
        let mains = if local {
            self.bridge_instances.max(1)
        } else {
            0
        };
        let mut members = self.member_count(Direction::LocalToRemote);
        if self.member_sessions == MemberSessions::BothBrokers {
            members += self.member_count(Direction::RemoteToLocal);
        }
        mains + members
    }
}

/// Log level of the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// `debug`.
    Debug,
    /// `info`.
    Info,
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;

    use super::*;
    use crate::config::endpoint::Endpoint;
    use crate::config::files::ClientCertFiles;
    use crate::config::topic::TopicFilter;

    fn route(name: &str, shared: Option<u32>) -> Route {
        Route {
            name: name.into(),
            topic_map: "map".into(),
            direction: Direction::LocalToRemote,
            source: TopicFilter::parse("a/#").unwrap(),
            target: None,
            qos: QoS::AtLeastOnce,
            shared_subscription: shared.map(|n| SharedSubscription {
                group_name: "g".into(),
                group_minimum_share_number: n,
            }),
        }
    }

    fn connection() -> BrokerConnection {
        BrokerConnection {
            endpoint: Endpoint::parse("broker", 1883).unwrap(),
            transport: Transport::Tcp,
            tls: None,
            authentication: Authentication::Anonymous,
            session: SessionSettings {
                clean_start: false,
                session_expiry: DEFAULT_SESSION_EXPIRY,
                keep_alive: DEFAULT_KEEP_ALIVE,
                max_packet_size: EVENT_GRID_MAX_PACKET_SIZE,
                receive_maximum: DEFAULT_RECEIVE_MAXIMUM,
            },
        }
    }

    fn bridge(instances: u32, routes: Vec<Route>) -> BridgeConfig {
        BridgeConfig {
            name: "b".into(),
            protocol: MqttVersion::V5,
            member_sessions: MemberSessions::SourceBroker,
            bridge_instances: instances,
            client_id_prefix: "e4k".into(),
            log_level: LogLevel::Info,
            remote: connection(),
            local: connection(),
            routes,
        }
    }

    #[test]
    fn mounts_name_every_secret_config_map_and_token_once() {
        let trust = |name: &str| Tls {
            trust: TrustRoots::ConfigMap {
                name: name.into(),
                dir: PathBuf::from("/cm").join(name),
            },
        };
        let mut config = bridge(1, vec![route("r", None)]);
        config.remote.authentication =
            Authentication::X509(ClientCertFiles::new(Path::new("/s"), "bridge-client-cert"));
        config.remote.tls = Some(trust("ca"));
        config.local.authentication = Authentication::UsernamePassword {
            secret: "local-login".into(),
            username_file: "/s/local-login/username".into(),
            password_file: "/s/local-login/password".into(),
        };
        config.local.tls = Some(trust("ca"));
        let mounts = config.mounts();
        assert_eq!(mounts.secrets, ["bridge-client-cert", "local-login"]);
        assert_eq!(
            mounts.config_maps,
            ["ca"],
            "once, though both sides trust it"
        );
        assert_eq!(mounts.service_account_token, None);

        let token = PathBuf::from("/var/run/serviceaccount/localbroker/sat-token");
        config.local.authentication = Authentication::ServiceAccountToken {
            token_file: token.clone(),
        };
        config.local.tls = None;
        let mounts = config.mounts();
        assert_eq!(mounts.secrets, ["bridge-client-cert"]);
        assert_eq!(mounts.config_maps, ["ca"]);
        assert_eq!(mounts.service_account_token, Some(token));
    }

    #[test]
    fn client_ids_follow_the_scheme() {
        let config = bridge(3, vec![route("alerts", Some(2))]);
        assert_eq!(config.client_id(2, SessionRole::Main), "e4k-2");
        let role = SessionRole::SharedMember {
            route: "alerts",
            member: 1,
        };
        assert_eq!(config.client_id(1, role), "e4k-alerts-1");
    }

    #[test]
    fn shared_members_cover_the_minimum_evenly() {
        let config = bridge(3, vec![route("r", Some(4))]);
        let r = &config.routes[0];
        assert_eq!(config.shared_members(r, 0), vec![0, 3]);
        assert_eq!(config.shared_members(r, 2), vec![2, 5]);
        // Local-to-remote members are local sessions; they publish through the main ones.
        assert_eq!(config.remote_session_count(), 3);
        assert_eq!(config.local_session_count(), 6);

        let config = bridge(3, vec![route("r", Some(2))]);
        let r = &config.routes[0];
        assert_eq!(config.shared_members(r, 1), vec![1]);
        assert_eq!(config.remote_session_count(), 3);
        assert_eq!(config.local_session_count(), 3);

        // Remote-to-local members are remote sessions; the local main sessions publish.
        let mut r = route("r", Some(2));
        r.direction = Direction::RemoteToLocal;
        let config = bridge(3, vec![r]);
        assert_eq!(config.remote_session_counts(), (0, 3));
        assert_eq!(config.local_session_count(), 3);

        let mut down = route("down", Some(4));
        down.direction = Direction::RemoteToLocal;
        let config = bridge(3, vec![route("up", Some(2)), route("plain", None), down]);
        assert_eq!(config.remote_session_counts(), (3, 6));
        assert_eq!(config.local_session_count(), 3 + 3);
    }

    #[test]
    fn client_ids_are_unique() {
        let routes = vec![
            route("r", Some(5)),
            route("r-1", Some(5)),
            route("1", Some(5)),
            route("plain", None),
        ];
        let config = bridge(4, routes);
        let mut ids = HashSet::new();
        let mut count = 0;
        for instance in 0..4 {
            ids.insert(config.client_id(instance, SessionRole::Main));
            count += 1;
            for r in &config.routes {
                for member in config.shared_members(r, instance) {
                    let role = SessionRole::SharedMember {
                        route: &r.name,
                        member,
                    };
                    ids.insert(config.client_id(instance, role));
                    count += 1;
                }
            }
        }
        assert_eq!(ids.len(), count);
        assert_eq!(count as u32, config.local_session_count());
        assert_eq!(config.remote_session_count(), 4);
    }

    #[test]
    fn subscription_filter_adds_the_share_prefix() {
        assert_eq!(route("r", Some(2)).subscription_filter(), "$share/g/a/#");
        assert_eq!(route("r", None).subscription_filter(), "a/#");
        assert_eq!(route("r", None).target_topic("a/b"), "a/b");
    }
}
