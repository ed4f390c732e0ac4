//! Integration tests of the bridge configuration: parsing, resolution, and one test per
//! validation problem with its exact message and path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use e4k_bridge::config::{
    self, Authentication, BridgeError, ConfigOptions, Direction, LogLevel, Problem, QoS, RawConfig,
    Report, SessionRole, Severity, SharedSubscription, Transport, TrustRoots,
};

// ---------------------------------------------------------------------------------------------
// Helpers

fn seed_yaml() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/bridge.yaml");
    std::fs::read_to_string(path).unwrap()
}

/// Options that do not touch the file system.
fn no_files() -> ConfigOptions {
    let mut options = ConfigOptions::default();
    options.check_files = false;
    options
}

const CONNECTOR: &str = "\
apiVersion: az-edge.com/v1alpha4
kind: MqttBridgeConnector
metadata:
  name: bridge
spec:
  bridgeInstances: 1
  clientIdPrefix: e4k
  remoteBrokerConnection:
    endpoint: example.westeurope-1.ts.eventgrid.azure.net:8883
    tls:
      tlsEnabled: true
    authentication:
      x509:
        clientK8sSecret: bridge-client-cert
";

/// A topic map named `name`, referring to connector `bridge`, whose `routes:` block is
/// `routes` (already indented), after the YAML `before`.
fn topic_map(before: &str, name: &str, routes: &str) -> String {
    format!(
        "{before}---
apiVersion: az-edge.com/v1alpha4
kind: MqttBridgeTopicMap
metadata:
  name: {name}
spec:
  mqttBridgeConnectorRef: bridge
  routes:
{routes}"
    )
}

/// The test connector plus topic map `map` with the given routes.
fn with_routes(routes: &str) -> String {
    topic_map(CONNECTOR, "map", routes)
}

/// `connector` plus topic map `map` with one valid route.
fn with_connector(connector: &str) -> String {
    topic_map(connector, "map", UP)
}

/// The test connector plus one route with the given `sharedSubscription` value.
fn with_shared_subscription(shared: &str) -> String {
    with_routes(&format!(
        "    - {{direction: local-to-remote, name: a, source: a/#, sharedSubscription: {shared}}}\n"
    ))
}

/// A valid local-to-remote route.
const UP: &str = "    - {direction: local-to-remote, name: up, source: up/#}\n";

fn report(yaml: &str, options: &ConfigOptions) -> Report {
    config::validate(&RawConfig::parse_str(yaml).unwrap(), options)
}

/// `(severity, path, message)` of every problem, without touching files.
fn problems(yaml: &str) -> Vec<(Severity, String, String)> {
    summarize(&report(yaml, &no_files()))
}

fn summarize(report: &Report) -> Vec<(Severity, String, String)> {
    report
        .problems
        .iter()
        .map(|p| (p.severity, p.path.clone(), p.message.clone()))
        .collect()
}

fn error(path: &str, message: &str) -> (Severity, String, String) {
    (Severity::Error, path.to_owned(), message.to_owned())
}

fn warning(path: &str, message: &str) -> (Severity, String, String) {
    (Severity::Warning, path.to_owned(), message.to_owned())
}

const CONN: &str = "documents[0](MqttBridgeConnector/bridge)";
const MAP: &str = "documents[1](MqttBridgeTopicMap/map)";

fn conn(field: &str) -> String {
    format!("{CONN}.{field}")
}

fn route(index: usize, field: &str) -> String {
    format!("{MAP}.spec.routes[{index}].{field}")
}

/// The connector cut off before `marker`, with a topic map.
fn connector_until(marker: &str) -> String {
    let end = CONNECTOR.find(marker).unwrap();
    with_connector(&CONNECTOR[..end])
}

/// The connector with one line of its spec replaced.
fn connector_replacing(from: &str, to: &str) -> String {
    assert!(CONNECTOR.contains(from), "{from}");
    with_connector(&CONNECTOR.replace(from, to))
}

/// Defines one test per validation problem: `name: yaml => [expected problems];` asserts that
/// validating `yaml` (without touching files) reports exactly the expected problems.
macro_rules! problem_tests {
    ($($name:ident: $yaml:expr => [$($expected:expr),* $(,)?];)*) => {
        $(
            #[test]
            fn $name() {
                assert_eq!(problems(&$yaml), [$($expected),*]);
            }
        )*
    };
}

/// `value.pipe(f)` = `f(value)`, to keep the problem tests one expression each.
trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl Pipe for String {}

// ---------------------------------------------------------------------------------------------
// The seed and the spellings

#[test]
fn seed_resolves_to_the_expected_config() {
    let raw = RawConfig::parse_str(&seed_yaml()).unwrap();
    let resolved = config::resolve(&raw, &no_files()).unwrap();
    assert_eq!(resolved.bridges.len(), 1);
    let bridge = &resolved.bridges[0];
    assert_eq!(bridge.name, "my-mqtt-bridge");
    assert_eq!(bridge.bridge_instances, 3);
    assert_eq!(bridge.client_id_prefix, "e4k");
    assert_eq!(bridge.log_level, LogLevel::Debug);

    let remote = &bridge.remote;
    assert_eq!(
        remote.endpoint.to_string(),
        "example.westeurope-1.ts.eventgrid.azure.net:8883"
    );
    assert_eq!(remote.transport, Transport::Tcp);
    assert_eq!(remote.tls.as_ref().unwrap().trust, TrustRoots::Public);
    let Authentication::X509(files) = &remote.authentication else {
        panic!("expected x509, got {:?}", remote.authentication);
    };
    assert_eq!(files.secret, "bridge-client-cert");
    assert_eq!(
        files.cert,
        PathBuf::from("/var/run/secrets/e4k/bridge-client-cert/client_cert.pem")
    );
    assert_eq!(remote.session.session_expiry.as_secs(), 3_600);
    assert_eq!(remote.session.max_packet_size, 512 * 1024);
    assert!(!remote.session.clean_start);

    let local = &bridge.local;
    assert_eq!(local.endpoint.to_string(), "azedge-dmqtt-frontend:1883");
    assert!(local.tls.is_none());
    assert_eq!(
        local.authentication,
        Authentication::ServiceAccountToken {
            token_file: PathBuf::from("/var/run/serviceaccount/localbroker/sat-token")
        }
    );

    let routes = &bridge.routes;
    assert_eq!(routes.len(), 3);
    let names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "command-from-cloud",
            "publish-telemetry-same-topic",
            "prioritize-alerts"
        ]
    );
    assert_eq!(routes[0].direction, Direction::RemoteToLocal);
    assert_eq!(routes[0].source.as_str(), "command/#");
    assert_eq!(routes[0].target, None);
    assert_eq!(routes[1].direction, Direction::LocalToRemote);
    assert_eq!(routes[1].source.as_str(), "factory/telemetry/#");
    assert!(routes.iter().all(|r| r.qos == QoS::AtLeastOnce));
    assert!(routes.iter().all(|r| r.topic_map == "my-topic-map"));
    let alerts = &routes[2];
    assert_eq!(alerts.target.as_deref(), Some("factory/telemetry/alert"));
    assert_eq!(
        alerts.shared_subscription,
        Some(SharedSubscription {
            group_name: "ShareTest".into(),
            group_minimum_share_number: 2
        })
    );
    assert_eq!(
        alerts.subscription_filter(),
        "$share/ShareTest/factory/telemetry/anomaly/#"
    );

    // Client IDs: a main session per instance, one share member per instance for the alerts.
    assert_eq!(bridge.client_id(0, SessionRole::Main), "e4k-0");
    assert_eq!(bridge.shared_members(alerts, 2), [2]);
    let member = SessionRole::SharedMember {
        route: &alerts.name,
        member: 2,
    };
    assert_eq!(bridge.client_id(2, member), "e4k-prioritize-alerts-2");
    // The members of the local-to-remote alerts route are local sessions that publish
    // through their instance's main session: Event Grid sees one session per instance, as
    // with Azure IoT MQ (the seed sets its session limit to 3).
    assert_eq!(bridge.remote_session_count(), 3);
    assert_eq!(bridge.remote_session_counts(), (3, 0));
    assert_eq!(bridge.local_session_count(), 6);
}

#[test]
fn seed_warns_about_its_intended_overlap_only() {
    // Its shared route is local-to-remote: the members are local sessions, so the remote
    // broker sees only the 3 main sessions and there is no session-count warning.
    assert_eq!(
        problems(&seed_yaml()),
        [warning(
            "documents[1](MqttBridgeTopicMap/my-topic-map).spec.routes[2].source",
            "route `prioritize-alerts` overlaps route `publish-telemetry-same-topic`: a \
             message matching both `factory/telemetry/anomaly/#` and `factory/telemetry/#` is \
             forwarded twice (to `factory/telemetry/alert` and to its own topic); fine if \
             intended"
        )]
    );
}

#[test]
fn remote_to_local_share_members_count_against_the_remote_session_limit() {
    let yaml = with_routes(
        "    - {direction: remote-to-local, name: down, source: down/#, sharedSubscription: \
         {groupName: g, groupMinimumShareNumber: 2}}\n",
    );
    assert_eq!(
        problems(&yaml),
        [warning(
            &conn("spec.bridgeInstances"),
            "the bridge opens 2 sessions to the remote broker (2 shared-subscription members); \
             set Event Grid's maximum client sessions per authentication name to at least 2"
        )]
    );
    let yaml = connector_replacing("bridgeInstances: 1", "bridgeInstances: 2").replace(
        "source: up/#}",
        "source: up/#}\n    - {direction: remote-to-local, name: down, source: down/#, \
         sharedSubscription: {groupName: g, groupMinimumShareNumber: 3}}",
    );
    assert_eq!(
        problems(&yaml),
        [warning(
            &conn("spec.bridgeInstances"),
            "the bridge opens 6 sessions to the remote broker (2 instances + 4 \
             shared-subscription members); set Event Grid's maximum client sessions per \
             authentication name to at least 6"
        )]
    );
}

#[test]
fn member_sessions_on_both_brokers_count_against_the_remote_limit() {
    // The seed with each share member publishing through a remote session of its own: its 3
    // members (one per instance) join the 3 main sessions on Event Grid.
    let seed = seed_yaml();
    assert!(seed.contains("  name: \"my-mqtt-bridge\"\n"));
    let yaml = seed.replace(
        "  name: \"my-mqtt-bridge\"\n",
        "  name: \"my-mqtt-bridge\"\n  annotations:\n    e4k.dev/shared-subscription-sessions: both\n",
    );
    let bridge = resolve_one(&yaml);
    assert_eq!(bridge.member_sessions, config::MemberSessions::BothBrokers);
    assert_eq!(bridge.remote_session_counts(), (3, 3));
    assert_eq!(bridge.local_session_count(), 6);
    assert!(problems(&yaml).contains(&warning(
        "documents[0](MqttBridgeConnector/my-mqtt-bridge).spec.bridgeInstances",
        "the bridge opens 6 sessions to the remote broker (3 instances + 3 \
         shared-subscription members); set Event Grid's maximum client sessions per \
         authentication name to at least 6"
    )));
    // Only shared routes: no main session on the destination broker at all.
    let yaml = CONNECTOR.replace(
        "  name: bridge\n",
        "  name: bridge\n  annotations:\n    e4k.dev/shared-subscription-sessions: both\n",
    );
    let yaml = topic_map(
        &yaml,
        "map",
        "    - {direction: local-to-remote, name: up, source: up/#, sharedSubscription: \
         {groupName: g, groupMinimumShareNumber: 4}}\n",
    );
    let bridge = resolve_one(&yaml);
    assert_eq!(bridge.remote_session_counts(), (0, 4));
    assert_eq!(bridge.local_session_count(), 4);
}

#[test]
fn e4k_annotations_are_checked() {
    let annotated = |annotations: &str| {
        topic_map(
            &CONNECTOR.replace(
                "  name: bridge\n",
                &format!("  name: bridge\n  annotations:\n{annotations}"),
            ),
            "map",
            UP,
        )
    };
    assert_eq!(
        problems(&annotated(
            "    e4k.dev/shared-subscription-sessions: remote\n    other.io/x: y\n"
        )),
        [error(
            &conn("metadata.annotations"),
            "annotation e4k.dev/shared-subscription-sessions is `remote`; use source (members \
             have sessions on their route's source broker only) or both (each member also \
             publishes through a session of its own on the destination broker)"
        )]
    );
    assert_eq!(
        problems(&annotated(
            "    e4k.dev/shared-subscription-session: both\n"
        )),
        [warning(
            &conn("metadata.annotations"),
            "unknown annotation e4k.dev/shared-subscription-session; e4k reads only \
             e4k.dev/shared-subscription-sessions and e4k.dev/remote-jwt-token-file"
        )]
    );
}

#[test]
fn default_qos_is_one_and_default_target_is_the_own_topic() {
    let yaml = with_routes(UP);
    let resolved = config::resolve(&RawConfig::parse_str(&yaml).unwrap(), &no_files()).unwrap();
    let route = &resolved.bridges[0].routes[0];
    assert_eq!(route.qos, QoS::AtLeastOnce);
    assert_eq!(route.target, None);
    assert_eq!(route.target_topic("up/x"), "up/x");
    assert!(resolved.warnings.is_empty(), "{}", resolved.warnings);
}

fn resolve_one(yaml: &str) -> config::BridgeConfig {
    let raw = RawConfig::parse_str(yaml).unwrap();
    let mut resolved = config::resolve(&raw, &no_files()).unwrap_or_else(|r| panic!("{r}"));
    resolved.bridges.remove(0)
}

fn resolve_seed_variant(from: &[(&str, &str)]) -> (config::BridgeConfig, Report) {
    let mut yaml = seed_yaml();
    for (old, new) in from {
        assert!(yaml.contains(old), "{old}");
        yaml = yaml.replace(old, new);
    }
    let raw = RawConfig::parse_str(&yaml).unwrap();
    let resolved = config::resolve(&raw, &no_files()).unwrap_or_else(|r| panic!("{r}"));
    (resolved.bridges[0].clone(), resolved.warnings)
}

#[test]
fn v1beta1_spelling_resolves_like_the_seed() {
    let (seed, _) = resolve_seed_variant(&[]);
    let (beta, warnings) = resolve_seed_variant(&[
        ("az-edge.com/v1alpha4", "mq.iotoperations.azure.com/v1beta1"),
        ("clientK8sSecret", "secretName"),
    ]);
    // Only the local default differs between the versions.
    assert_eq!(
        beta.local.endpoint.to_string(),
        "aio-mq-dmqtt-frontend:1883"
    );
    assert_eq!(
        beta.local.authentication,
        Authentication::ServiceAccountToken {
            token_file: PathBuf::from("/var/run/serviceaccount/localbroker/sat")
        }
    );
    assert_eq!(beta.remote, seed.remote);
    assert_eq!(beta.routes, seed.routes);
    // The seed's overlap warning (its members are local sessions: no session-count warning).
    assert_eq!(warnings.problems.len(), 1, "{warnings}");
}

#[test]
fn every_secret_alias_resolves_the_same() {
    let (seed, _) = resolve_seed_variant(&[]);
    for alias in ["clientCertKeySecret", "secretName"] {
        let (variant, _) = resolve_seed_variant(&[("clientK8sSecret", alias)]);
        assert_eq!(variant, seed, "{alias}");
    }
}

#[test]
fn both_ca_spellings_resolve_the_same() {
    let mut options = no_files();
    options.configmaps_dir = PathBuf::from("/maps");
    let resolve = |key: &str| {
        let yaml = connector_replacing(
            "      tlsEnabled: true\n",
            &format!("      tlsEnabled: true\n      {key}: my-ca\n"),
        );
        let raw = RawConfig::parse_str(&yaml).unwrap();
        config::resolve(&raw, &options).unwrap().bridges[0]
            .remote
            .clone()
    };
    let name = resolve("trustedCaCertificateName");
    assert_eq!(
        name.tls.as_ref().unwrap().trust,
        TrustRoots::ConfigMap {
            name: "my-ca".into(),
            dir: PathBuf::from("/maps/my-ca")
        }
    );
    assert_eq!(resolve("trustedCaCertificateConfigMap"), name);
}

#[test]
fn endpoint_override_replaces_the_remote_endpoint() {
    let mut options = no_files();
    options.remote_endpoint = Some("localhost".into());
    options.local_endpoint = Some("127.0.0.1:1884".into());
    let raw = RawConfig::parse_str(&seed_yaml()).unwrap();
    let bridge = &config::resolve(&raw, &options).unwrap().bridges[0];
    assert_eq!(bridge.remote.endpoint.to_string(), "localhost:8883");
    assert_eq!(bridge.local.endpoint.to_string(), "127.0.0.1:1884");
}

#[test]
fn local_connection_settings_are_read() {
    let yaml = connector_replacing(
        "  bridgeInstances: 1\n",
        "  bridgeInstances: 1
  localBrokerConnection:
    endpoint: mosquitto
    tls:
      tlsEnabled: true
    authentication:
      basic:
        anonymous: true
",
    );
    let bridge = resolve_one(&yaml);
    assert_eq!(bridge.local.endpoint.to_string(), "mosquitto:8883");
    assert_eq!(bridge.local.authentication, Authentication::Anonymous);
    assert_eq!(bridge.local.tls.unwrap().trust, TrustRoots::Public);
}

#[test]
fn empty_client_id_prefix_falls_back_to_the_connector_name() {
    let bridge = resolve_one(&connector_replacing(
        "clientIdPrefix: e4k",
        "clientIdPrefix: ''",
    ));
    assert_eq!(bridge.client_id(0, SessionRole::Main), "bridge-0");
}

#[test]
fn several_topic_maps_feed_one_connector() {
    let yaml = topic_map(
        &with_routes(UP),
        "second",
        "    - {direction: remote-to-local, name: down, source: down/#}\n",
    );
    let bridge = resolve_one(&yaml);
    let maps: Vec<(&str, &str)> = bridge
        .routes
        .iter()
        .map(|r| (r.name.as_str(), r.topic_map.as_str()))
        .collect();
    assert_eq!(maps, [("up", "map"), ("down", "second")]);
}

#[test]
fn kubectl_output_metadata_and_status_are_accepted_silently() {
    let yaml = CONNECTOR.replace(
        "  name: bridge\n",
        "  name: bridge\n  namespace: azure-iot-operations\n  uid: 1234\n  labels: {a: b}\n",
    ) + "status: {phase: Running}\n";
    assert_eq!(problems(&with_connector(&yaml)), []);
}

#[test]
fn ignored_fields_are_accepted_silently() {
    let yaml = connector_replacing(
        "  bridgeInstances: 1\n",
        "  bridgeInstances: 1
  image: {repository: edgebuilds.azurecr.io/mqttbridge, tag: 0.6.0, pullPolicy: IfNotPresent}
  nodeTolerations: [{key: a, operator: Equal, value: b, effect: NoSchedule}]
",
    );
    assert_eq!(problems(&yaml), []);
}

// ---------------------------------------------------------------------------------------------
// Document and schema problems

#[test]
fn unknown_field_is_an_error_with_path_and_location() {
    let yaml = with_routes(
        "    - direction: local-to-remote\n      name: up\n      source: up/#\n      qoss: 1\n",
    );
    let report = report(&yaml, &no_files());
    assert_eq!(
        summarize(&report),
        [error(
            &route(0, "qoss"),
            "unknown field `qoss`; remove it or use one of: direction, name, qos, source, \
             target, sharedSubscription"
        )]
    );
    let problem: &Problem = &report.problems[0];
    assert_eq!(problem.document, Some(1));
    assert_eq!(problem.resource.as_deref(), Some("MqttBridgeTopicMap/map"));
    assert_eq!(problem.field, "spec.routes[0].qoss");
    let location = problem.location.unwrap();
    assert_eq!((location.line, location.column), (26, 7));
}

#[test]
fn every_unknown_field_is_reported() {
    let yaml = connector_replacing(
        "  bridgeInstances: 1\n",
        "  bridgeInstance: 1\n  colour: red\n",
    )
    .replace("source: up/#}", "source: up/#, extra: 1}");
    let found: Vec<String> = problems(&yaml).into_iter().map(|p| p.1).collect();
    assert_eq!(
        found,
        [
            conn("spec.bridgeInstance"),
            conn("spec.colour"),
            route(0, "extra")
        ]
    );
}

#[test]
fn field_of_the_other_kind_is_an_error() {
    let yaml = connector_replacing(
        "  bridgeInstances: 1\n",
        "  bridgeInstances: 1\n  routes: []\n",
    );
    assert_eq!(
        problems(&yaml),
        [error(
            &conn("spec.routes"),
            "field `routes` belongs to MqttBridgeTopicMap, not MqttBridgeConnector; move it there"
        )]
    );
}

problem_tests! {
    two_aliases_of_one_field_are_an_error:
        connector_replacing(
            "        clientK8sSecret: bridge-client-cert\n",
            "        clientK8sSecret: bridge-client-cert\n        clientCertKeySecret: other\n",
        )
        => [error(
            &conn("spec.remoteBrokerConnection.authentication.x509.clientCertKeySecret"),
            "`clientCertKeySecret` sets the same field as `clientK8sSecret`; keep only one of them"
        )];

    spelling_of_the_other_version_is_a_warning:
        connector_replacing("clientK8sSecret", "secretName")
        => [warning(
            &conn("spec.remoteBrokerConnection.authentication.x509.secretName"),
            "`secretName` is the mq.iotoperations.azure.com/v1beta1 spelling; \
             az-edge.com/v1alpha4 spells it `clientK8sSecret` (accepted anyway)"
        )];

    field_of_the_other_version_is_a_warning:
        connector_replacing(
            "    endpoint: example",
            "    protocol: webSocket\n    endpoint: example",
        )
        => [warning(
            &conn("spec.remoteBrokerConnection.protocol"),
            "`protocol` is not part of az-edge.com/v1alpha4 (it comes from \
             mq.iotoperations.azure.com/v1beta1); accepted anyway"
        )];

    missing_kind_is_an_error:
        with_connector(CONNECTOR) + "---\napiVersion: v1\nmetadata: {name: x}\n"
        => [error(
            "documents[2].kind",
            "`kind` is missing; set MqttBridgeConnector or MqttBridgeTopicMap"
        )];

    other_kinds_are_skipped_with_a_warning:
        with_connector(CONNECTOR)
            + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: b}\n"
        => [warning(
            "documents[2](Secret/s).kind",
            "kind `Secret` is not a bridge resource; document ignored"
        )];

    unsupported_api_version_is_an_error:
        with_connector(&CONNECTOR.replace("az-edge.com/v1alpha4", "az-edge.com/v1"))
        => [
            error(
                &conn("apiVersion"),
                "apiVersion `az-edge.com/v1` is not supported; use az-edge.com/v1alpha4 or \
                 mq.iotoperations.azure.com/v1beta1"
            ),
            error("documents", "no MqttBridgeConnector found; add one"),
            error(
                &format!("{MAP}.spec.mqttBridgeConnectorRef"),
                "MqttBridgeConnector `bridge` is not defined in this input (none is defined); \
                 fix the reference"
            ),
        ];

    missing_api_version_is_an_error:
        with_connector(&CONNECTOR.replace("apiVersion: az-edge.com/v1alpha4\n", ""))
        => [
            error(
                &conn("apiVersion"),
                "`apiVersion` is missing; use az-edge.com/v1alpha4 or \
                 mq.iotoperations.azure.com/v1beta1"
            ),
            error("documents", "no MqttBridgeConnector found; add one"),
            error(
                &format!("{MAP}.spec.mqttBridgeConnectorRef"),
                "MqttBridgeConnector `bridge` is not defined in this input (none is defined); \
                 fix the reference"
            ),
        ];

    missing_name_is_an_error:
        with_routes(UP)
            .replace("  name: map\n", "  namespace: x\n")
        => [error(
            "documents[1](MqttBridgeTopicMap).metadata.name",
            "`metadata.name` is missing; name the resource"
        )];

    duplicate_connector_is_an_error:
        format!("{CONNECTOR}---\n{}", with_connector(CONNECTOR))
        => [error(
            "documents[1](MqttBridgeConnector/bridge).metadata.name",
            "MqttBridgeConnector `bridge` is defined twice (first in documents[0]); rename one"
        )];
}

#[test]
fn input_without_connector_is_an_error() {
    assert_eq!(
        problems(""),
        [error("documents", "no MqttBridgeConnector found; add one")]
    );
}

problem_tests! {
    topic_map_without_connector_ref_is_an_error:
        with_routes(UP)
            .replace("  mqttBridgeConnectorRef: bridge\n", "")
        => [
            error(
                &format!("{MAP}.spec.mqttBridgeConnectorRef"),
                "`mqttBridgeConnectorRef` is missing; set it to the name of an \
                 MqttBridgeConnector"
            ),
            warning(
                CONN,
                "no MqttBridgeTopicMap refers to this connector, so it bridges nothing; add one"
            ),
        ];

    topic_map_referring_to_a_missing_connector_is_an_error:
        with_routes(UP).replace(
            "mqttBridgeConnectorRef: bridge",
            "mqttBridgeConnectorRef: brige",
        )
        => [
            error(
                &format!("{MAP}.spec.mqttBridgeConnectorRef"),
                "MqttBridgeConnector `brige` is not defined in this input (defined: `bridge`); \
                 fix the reference"
            ),
            warning(
                CONN,
                "no MqttBridgeTopicMap refers to this connector, so it bridges nothing; add one"
            ),
        ];

    topic_map_without_routes_is_a_warning:
        with_routes("    []\n")
        => [warning(
            &format!("{MAP}.spec.routes"),
            "the topic map has no routes; add at least one"
        )];
}

// ---------------------------------------------------------------------------------------------
// Connector problems

problem_tests! {
    protocol_v3_with_a_service_account_token_is_a_warning:
        connector_replacing("  bridgeInstances: 1\n", "  protocol: v3\n")
        => [warning(
            &conn("spec.localBrokerConnection"),
            "localBrokerConnection authenticates with a Kubernetes service account token \
             (K8S-SAT), which needs MQTT 5 enhanced authentication: with protocol v3 the bridge \
             connects without credentials; set protocol: v5 or authentication.basic"
        )];

    protocol_v3_with_basic_authentication_is_valid:
        connector_replacing(
            "  bridgeInstances: 1\n",
            "  protocol: v3\n  localBrokerConnection:\n    endpoint: localhost:1883\n    \
             authentication:\n      basic:\n        anonymous: true\n",
        )
        => [];

    unknown_protocol_is_an_error:
        connector_replacing("  bridgeInstances: 1\n", "  protocol: v4\n")
        => [error(
            &conn("spec.protocol"),
            "protocol `v4` is not valid; use v5 (MQTT 5) or v3 (MQTT 3.1.1)"
        )];

    zero_bridge_instances_is_an_error:
        connector_replacing("bridgeInstances: 1", "bridgeInstances: 0")
        => [error(
            &conn("spec.bridgeInstances"),
            "bridgeInstances is 0; it must be between 1 and 100"
        )];

    invalid_log_level_is_an_error:
        connector_replacing("  bridgeInstances: 1\n", "  logLevel: verbose\n")
        => [error(
            &conn("spec.logLevel"),
            "logLevel `verbose` is not valid; use debug or info"
        )];
}

problem_tests! {
    missing_remote_connection_is_an_error:
        connector_until("  remoteBrokerConnection")
        => [error(
        &conn("spec.remoteBrokerConnection"),
        "`remoteBrokerConnection` is missing; set its endpoint, tls and authentication"
    )];
}

problem_tests! {
    missing_remote_endpoint_is_an_error:
        connector_replacing(
            "    endpoint: example.westeurope-1.ts.eventgrid.azure.net:8883\n",
            "",
        )
        => [error(
            &conn("spec.remoteBrokerConnection.endpoint"),
            "`endpoint` is missing; set it to the Event Grid MQTT hostname and port 8883"
        )];

    invalid_endpoint_is_an_error:
        connector_replacing(
            "example.westeurope-1.ts.eventgrid.azure.net:8883",
            "mqtts://example:8883",
        )
        => [error(
            &conn("spec.remoteBrokerConnection.endpoint"),
            "endpoint `mqtts://example:8883` is not valid: remove the `mqtts://` prefix; use \
             host:port, e.g. example.westeurope-1.ts.eventgrid.azure.net:8883"
        )];

    invalid_local_endpoint_is_an_error:
        connector_replacing(
            "  bridgeInstances: 1\n",
            "  localBrokerConnection:\n    endpoint: 'broker:99999'\n",
        )
        => [error(
            &conn("spec.localBrokerConnection.endpoint"),
            "endpoint `broker:99999` is not valid: port `99999` is not a number between 1 and \
             65535; use host:port, e.g. aio-mq-dmqtt-frontend:1883"
        )];
}

#[test]
fn invalid_endpoint_override_is_an_error() {
    let mut options = no_files();
    options.remote_endpoint = Some("::1:8883".into());
    assert_eq!(
        summarize(&report(&with_connector(CONNECTOR), &options)),
        [error(
            "options.remote_endpoint",
            "endpoint `::1:8883` is not valid: put an IPv6 address in brackets, e.g. \
             [::1]:8883; use host:port, e.g. example.westeurope-1.ts.eventgrid.azure.net:8883"
        )]
    );
}

problem_tests! {
    invalid_remote_transport_is_an_error:
        connector_replacing(
            "    endpoint: example",
            "    protocol: quic\n    endpoint: example",
        )
        .replace("az-edge.com/v1alpha4", "mq.iotoperations.azure.com/v1beta1")
        .replace("clientK8sSecret", "secretName")
        => [error(
            &conn("spec.remoteBrokerConnection.protocol"),
            "protocol `quic` is not valid; use mqtt or webSocket"
        )];

    missing_tls_is_an_error:
        connector_replacing("    tls:\n      tlsEnabled: true\n", "")
        => [error(
            &conn("spec.remoteBrokerConnection.tls"),
            "`tls` is missing; set tls.tlsEnabled: true (Event Grid requires TLS)"
        )];

    missing_tls_enabled_is_an_error:
        connector_replacing(
            "      tlsEnabled: true\n",
            "      trustedCaCertificateName: ca\n",
        )
        => [error(
            &conn("spec.remoteBrokerConnection.tls.tlsEnabled"),
            "`tlsEnabled` is missing; set it to true (Event Grid requires TLS)"
        )];

    disabled_tls_is_a_warning_and_breaks_x509:
        connector_replacing(
            "tlsEnabled: true\n",
            "tlsEnabled: false\n      trustedCaCertificateName: ca\n",
        )
        => [
            warning(
                &conn("spec.remoteBrokerConnection.tls.tlsEnabled"),
                "TLS is disabled toward the remote broker; Event Grid accepts only TLS on port \
                 8883"
            ),
            warning(
                &conn("spec.remoteBrokerConnection.tls.trustedCaCertificateName"),
                "`trustedCaCertificateName` is ignored because TLS is disabled"
            ),
            error(
                &conn("spec.remoteBrokerConnection.authentication.x509"),
                "x509 authentication needs TLS; set tls.tlsEnabled: true"
            ),
        ];
}

problem_tests! {
    missing_authentication_is_an_error:
        connector_until("    authentication")
        => [error(
        &conn("spec.remoteBrokerConnection.authentication"),
        "`authentication` is missing; set x509 with the client certificate secret"
    )];
}

problem_tests! {
    authentication_without_method_is_an_error:
        connector_replacing(
            "    authentication:\n      x509:\n        clientK8sSecret: bridge-client-cert\n",
            "    authentication: {}\n",
        )
        => [error(
            &conn("spec.remoteBrokerConnection.authentication"),
            "`authentication` sets no method; set x509 with the client certificate secret"
        )];

    two_authentication_methods_are_an_error:
        connector_replacing(
            "      x509:\n",
            "      systemAssignedManagedIdentity: {audience: 'https://eventgrid.azure.net'}\n      \
             x509:\n",
        )
        => [error(
            &conn("spec.remoteBrokerConnection.authentication"),
            "`authentication` sets `x509` and `systemAssignedManagedIdentity`; keep exactly one"
        )];

    managed_identity_without_tls_is_an_error:
        connector_replacing(
            "      tlsEnabled: true\n    authentication:\n      x509:\n        clientK8sSecret: bridge-client-cert\n",
            "      tlsEnabled: false\n    authentication:\n      systemAssignedManagedIdentity: {audience: 'https://eventgrid.azure.net'}\n",
        )
        => [
            warning(
                &conn("spec.remoteBrokerConnection.tls.tlsEnabled"),
                "TLS is disabled toward the remote broker; Event Grid accepts only TLS on port 8883"
            ),
            error(
                &conn("spec.remoteBrokerConnection.authentication.systemAssignedManagedIdentity"),
                "a Microsoft Entra ID token must not cross a plain connection; set \
                 tls.tlsEnabled: true"
            ),
        ];

    managed_identity_with_a_bad_audience_is_an_error:
        connector_replacing(
            "      x509:\n        clientK8sSecret: bridge-client-cert\n",
            "      systemAssignedManagedIdentity: {audience: 'eventgrid'}\n",
        )
        => [error(
            &conn("spec.remoteBrokerConnection.authentication.systemAssignedManagedIdentity.audience"),
            "audience `eventgrid` is not a resource URI; Event Grid's is https://eventgrid.azure.net/"
        )];

    managed_identity_over_mqtt_3_is_an_error:
        connector_replacing(
            "      x509:\n        clientK8sSecret: bridge-client-cert\n",
            "      systemAssignedManagedIdentity: {audience: 'https://eventgrid.azure.net'}\n",
        ).replace("  bridgeInstances: 1\n", "  bridgeInstances: 1\n  protocol: v3\n")
        => [
            error(
                &conn("spec.protocol"),
                "JWT authentication toward the remote broker needs MQTT 5 (the token is sent as \
                 enhanced authentication); set protocol: v5 or use x509"
            ),
            warning(
                &conn("spec.localBrokerConnection"),
                "localBrokerConnection authenticates with a Kubernetes service account token \
                 (K8S-SAT), which needs MQTT 5 enhanced authentication: with protocol v3 the \
                 bridge connects without credentials; set protocol: v5 or authentication.basic"
            ),
        ];

    a_token_file_annotation_without_managed_identity_is_an_error:
        CONNECTOR
            .replace(
                "  name: bridge\n",
                "  name: bridge\n  annotations:\n    e4k.dev/remote-jwt-token-file: /var/run/token\n",
            )
            .pipe(|c| topic_map(&c, "map", UP))
        => [error(
            &conn("spec.remoteBrokerConnection"),
            "annotation e4k.dev/remote-jwt-token-file replaces the Microsoft Entra token of \
             remoteBrokerConnection.authentication.systemAssignedManagedIdentity with the \
             file's (CUSTOM-JWT); set that authentication method"
        )];

    x509_without_secret_is_an_error:
        connector_replacing(
            "        clientK8sSecret: bridge-client-cert\n",
            "        {}\n",
        )
        => [error(
            &conn("spec.remoteBrokerConnection.authentication.x509"),
            "x509 needs the client certificate secret; set `clientK8sSecret`"
        )];

    secret_name_with_a_path_is_an_error:
        connector_replacing("bridge-client-cert", "../etc")
        => [error(
            &conn("spec.remoteBrokerConnection.authentication.x509.clientK8sSecret"),
            "`../etc` is not a valid Kubernetes name; use lowercase letters, digits, `-` and `.`"
        )];

    basic_without_secret_is_an_error:
        connector_replacing(
            "  bridgeInstances: 1\n",
            "  localBrokerConnection:\n    authentication:\n      basic: {usernameKey: user}\n",
        )
        => [error(
            &conn("spec.localBrokerConnection.authentication.basic.k8sSecretName"),
            "basic needs `k8sSecretName` (or anonymous: true)"
        )];
}

// ---------------------------------------------------------------------------------------------
// Route problems

problem_tests! {
    missing_direction_is_an_error:
        with_routes("    - {name: up, source: up/#}\n")
        => [error(
            &route(0, "direction"),
            "`direction` is missing; use local-to-remote or remote-to-local"
        )];

    invalid_direction_is_an_error:
        with_routes("    - {direction: both, name: up, source: up/#}\n")
        => [error(
            &route(0, "direction"),
            "direction `both` is not valid; use local-to-remote or remote-to-local"
        )];

    missing_route_name_is_an_error:
        with_routes("    - {direction: local-to-remote, source: up/#}\n")
        => [error(
            &route(0, "name"),
            "`name` is missing; name the route (it is part of client IDs)"
        )];

    duplicate_route_names_are_an_error_across_topic_maps:
        topic_map(
            &with_routes(UP),
            "second",
            "    - {direction: remote-to-local, name: up, source: down/#}\n",
        )
        => [error(
            "documents[2](MqttBridgeTopicMap/second).spec.routes[0].name",
            &format!(
                "route name `up` is already used by {}; route names must be unique per connector",
                route(0, "name")
            )
        )];

    missing_source_is_an_error:
        with_routes("    - {direction: local-to-remote, name: up}\n")
        => [error(
            &route(0, "source"),
            "`source` is missing; set the topic filter to subscribe to"
        )];

    invalid_source_filters_are_errors:
        with_routes(
            "    - {direction: local-to-remote, name: a, source: 'a/#/b'}
    - {direction: local-to-remote, name: b, source: 'a+/b'}
    - {direction: local-to-remote, name: c, source: ''}
    - {direction: local-to-remote, name: d, source: \"a\\0b\"}
",
        )
        => [
            error(
                &route(0, "source"),
                "source `a/#/b` is not a valid topic filter: `#` must be the last level and \
                 stand alone in it"
            ),
            error(
                &route(1, "source"),
                "source `a+/b` is not a valid topic filter: `+` must stand alone in its level"
            ),
            error(
                &route(2, "source"),
                "source `` is not a valid topic filter: it is empty"
            ),
            error(
                &route(3, "source"),
                "source `a\\u{0}b` is not a valid topic filter: it contains a NUL character"
            ),
        ];
}

problem_tests! {
    shared_subscription_in_source_is_an_error:
        with_routes("    - {direction: local-to-remote, name: a, source: $share/g/a/#}\n")
        => [error(
            &route(0, "source"),
            "source `$share/g/a/#` is a shared subscription; put the plain topic filter in \
             source and use sharedSubscription instead"
        )];

    wildcard_target_is_an_error:
        with_routes(
            "    - {direction: local-to-remote, name: a, source: a/#, target: 'factory/+/alert'}\n",
        )
        => [error(
            &route(0, "target"),
            "target `factory/+/alert` contains a wildcard; a target is a single topic: remove \
             `+` and `#`, or omit target to keep each message's own topic"
        )];
}

#[test]
fn empty_target_is_an_error() {
    let yaml =
        with_routes("    - {direction: local-to-remote, name: a, source: a/#, target: ''}\n");
    assert_eq!(
        problems(&yaml),
        [error(
            &route(0, "target"),
            "target `` is not a valid topic: it is empty"
        )]
    );
}

problem_tests! {
    qos_out_of_range_is_an_error:
        with_routes("    - {direction: local-to-remote, name: a, source: a/#, qos: 3}\n")
        => [error(&route(0, "qos"), "qos 3 is not valid; use 0, 1 or 2")];

    qos_2_toward_event_grid_is_an_error:
        with_routes("    - {direction: local-to-remote, name: a, source: a/#, qos: 2}\n")
        => [error(
            &route(0, "qos"),
            "qos 2 is not supported by Event Grid; use qos 1"
        )];

    qos_2_from_event_grid_is_a_warning:
        with_routes("    - {direction: remote-to-local, name: a, source: a/#, qos: 2}\n")
        => [warning(
            &route(0, "qos"),
            "Event Grid delivers at most QoS 1, so qos 2 adds nothing on this route; use qos 1"
        )];
}

#[test]
fn qos_0_is_accepted() {
    let yaml = with_routes("    - {direction: local-to-remote, name: a, source: a/#, qos: 0}\n");
    assert_eq!(resolve_one(&yaml).routes[0].qos, QoS::AtMostOnce);
}

problem_tests! {
    invalid_share_group_name_is_an_error:
        with_shared_subscription("{groupName: 'a/b', groupMinimumShareNumber: 1}")
        => [error(
            &route(0, "sharedSubscription.groupName"),
            "groupName `a/b` is not valid; it must be non-empty and contain no `/`, `+` or `#`"
        )];

    missing_share_group_name_is_an_error:
        with_shared_subscription("{groupMinimumShareNumber: 1}")
        => [error(
            &route(0, "sharedSubscription.groupName"),
            "`groupName` is missing; name the shared subscription group"
        )];

    missing_share_number_is_an_error:
        with_shared_subscription("{groupName: g}")
        => [error(
            &route(0, "sharedSubscription.groupMinimumShareNumber"),
            "`groupMinimumShareNumber` is missing; set how many sessions share the subscription \
             (at least 1)"
        )];

    zero_share_number_is_an_error:
        with_shared_subscription("{groupName: g, groupMinimumShareNumber: 0}")
        => [error(
            &route(0, "sharedSubscription.groupMinimumShareNumber"),
            "groupMinimumShareNumber is 0; it must be between 1 and 100"
        )];

    too_many_sessions_for_event_grid_is_an_error:
        connector_replacing("bridgeInstances: 1", "bridgeInstances: 100").replace(
            "source: up/#}",
            "source: up/#}\n    - {direction: remote-to-local, name: down, source: down/#, \
             sharedSubscription: {groupName: g, groupMinimumShareNumber: 100}}",
        )
        => [error(
            &conn("spec.bridgeInstances"),
            "the bridge would open 200 sessions to the remote broker (100 instances + 100 \
             shared-subscription members), over Event Grid's limit of 100 per authentication \
             name; lower bridgeInstances or groupMinimumShareNumber"
        )];
}

problem_tests! {
    over_long_source_filter_is_an_error:
        with_routes(&format!(
            "    - {{direction: local-to-remote, name: a, source: {}, target: t}}\n",
            "a".repeat(65_536)
        ))
        => [error(
            &route(0, "source"),
            &format!(
                "source `{}` is not a valid topic filter: it is 65536 bytes long; MQTT allows at \
                 most 65535",
                "a".repeat(65_536)
            )
        )];

    too_many_levels_for_event_grid_is_an_error:
        with_routes("    - {direction: remote-to-local, name: a, source: a/b/c/d/e/f/g/h/#}\n")
        => [error(
            &route(0, "source"),
            "`a/b/c/d/e/f/g/h/#` has 9 topic levels; Event Grid allows at most 8"
        )];

    too_long_topic_for_event_grid_is_an_error:
        with_routes(&format!(
            "    - {{direction: local-to-remote, name: a, source: a/#, target: {}}}\n",
            "t".repeat(257)
        ))
        => [error(
            &route(0, "target"),
            &format!("`{}` is 257 bytes long; Event Grid allows at most 256", "t".repeat(257))
        )];
}

// ---------------------------------------------------------------------------------------------
// Overlaps and loops

problem_tests! {
    overlapping_routes_to_their_own_topics_are_an_error:
        with_routes(
            "    - {direction: local-to-remote, name: all, source: factory/#}
    - {direction: local-to-remote, name: telemetry, source: factory/telemetry/#}
",
        )
        => [error(
            &route(1, "source"),
            "routes `all` and `telemetry` both send messages matching `factory/#` and \
             `factory/telemetry/#` to their own topic, so such messages arrive twice; narrow one \
             source or give the routes different targets"
        )];

    overlapping_routes_to_one_target_are_an_error:
        with_routes(
            "    - {direction: local-to-remote, name: a, source: 'a/+/c', target: out}
    - {direction: local-to-remote, name: b, source: 'a/b/+', target: out}
",
        )
        => [error(
            &route(1, "source"),
            "routes `a` and `b` both send messages matching `a/+/c` and `a/b/+` to `out`, so \
             such messages arrive twice; narrow one source or give the routes different targets"
        )];

    overlap_whose_target_matches_both_sources_is_an_error:
        with_routes(
            "    - {direction: local-to-remote, name: all, source: factory/#}
    - {direction: local-to-remote, name: alerts, source: 'factory/+', target: factory/alert}
",
        )
        => [error(
            &route(1, "source"),
            "routes `all` and `alerts` both send messages matching `factory/#` and `factory/+` \
             to `factory/alert`, so such messages arrive twice; narrow one source or give the \
             routes different targets"
        )];
}

#[test]
fn routes_of_different_directions_do_not_overlap() {
    let yaml = with_routes(
        "    - {direction: local-to-remote, name: up, source: up/#}
    - {direction: remote-to-local, name: down, source: down/#}
",
    );
    assert_eq!(problems(&yaml), []);
}

#[test]
fn bridging_one_topic_both_ways_is_a_loop_warning() {
    let yaml = with_routes(
        "    - {direction: remote-to-local, name: down, source: command/#}
    - {direction: local-to-remote, name: up, source: command/#}
",
    );
    assert_eq!(
        problems(&yaml),
        [warning(
            &route(1, "source"),
            "routes `up` (local-to-remote) and `down` (remote-to-local) can loop: messages the \
             first sends to the remote broker match the second, which sends them back; use \
             distinct topics on each side"
        )]
    );
}

#[test]
fn a_loop_is_an_error_with_protocol_v3() {
    let connector = CONNECTOR.replace("  bridgeInstances: 1\n", "  protocol: v3\n")
        + "  localBrokerConnection:\n    authentication:\n      basic:\n        anonymous: true\n";
    let yaml = topic_map(
        &connector,
        "map",
        "    - {direction: remote-to-local, name: down, source: command/#}
    - {direction: local-to-remote, name: up, source: command/#}
",
    );
    assert_eq!(
        problems(&yaml),
        [error(
            &route(1, "source"),
            "routes `up` (local-to-remote) and `down` (remote-to-local) can loop: messages the \
             first sends to the remote broker match the second, which sends them back; use \
             distinct topics on each side (with protocol v3 nothing stops such a loop: MQTT \
             3.1.1 has neither No Local nor the user property that carries the hop count)"
        )]
    );
}

#[test]
fn static_targets_that_lead_back_are_a_loop_warning() {
    let yaml = with_routes(
        "    - {direction: local-to-remote, name: up, source: local/#, target: cloud/in}
    - {direction: remote-to-local, name: down, source: cloud/#, target: local/in}
",
    );
    assert_eq!(problems(&yaml).len(), 1);
    let yaml = yaml.replace("target: local/in", "target: other/in");
    assert_eq!(problems(&yaml), []);
}

// ---------------------------------------------------------------------------------------------
// Options

#[test]
fn session_expiry_over_8_hours_is_an_error() {
    let mut options = no_files();
    options.session_expiry = std::time::Duration::from_secs(9 * 3_600);
    assert_eq!(
        summarize(&report(&with_connector(CONNECTOR), &options)),
        [error(
            "options.session_expiry",
            "session expiry of 32400 s exceeds Event Grid's maximum of 28800 s; lower it"
        )]
    );
}

#[test]
fn keep_alive_over_event_grid_limit_is_an_error() {
    let mut options = no_files();
    options.keep_alive = std::time::Duration::from_secs(1_200);
    assert_eq!(
        summarize(&report(&with_connector(CONNECTOR), &options)),
        [error(
            "options.keep_alive",
            "keep-alive of 1200 s exceeds Event Grid's maximum of 1160 s; lower it"
        )]
    );
}

// ---------------------------------------------------------------------------------------------
// Report output

#[test]
fn report_renders_as_text_and_json() {
    let yaml = with_routes("    - {direction: local-to-remote, name: a, source: a/#, qos: 3}\n");
    let report = report(&yaml, &no_files());
    assert_eq!(
        report.to_string(),
        format!(
            "error: {}: qos 3 is not valid; use 0, 1 or 2\n",
            route(0, "qos")
        )
    );
    assert_eq!(
        report.problems[0].to_string(),
        format!("{}: qos 3 is not valid; use 0, 1 or 2", route(0, "qos"))
    );
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"problems": [{
            "severity": "error",
            "path": route(0, "qos"),
            "document": 1,
            "resource": "MqttBridgeTopicMap/map",
            "field": "spec.routes[0].qos",
            "location": {"line": 23, "column": 58},
            "message": "qos 3 is not valid; use 0, 1 or 2",
        }]})
    );
    assert!(report.has_errors());
    assert_eq!(report.warnings().count(), 0);
}

#[test]
fn resolve_fails_with_the_full_report() {
    let yaml = with_routes(
        "    - {direction: local-to-remote, name: a, source: a/#, qos: 3}
    - {direction: local-to-remote, name: b, source: b/#, target: 'x/#'}
",
    );
    let report = config::resolve(&RawConfig::parse_str(&yaml).unwrap(), &no_files()).unwrap_err();
    assert_eq!(report.errors().count(), 2);
}

// ---------------------------------------------------------------------------------------------
// Malformed input

fn yaml_error(yaml: &str) -> BridgeError {
    RawConfig::parse_str(yaml).unwrap_err()
}

#[test]
fn malformed_yaml_is_a_config_error_with_line_and_column() {
    let yaml = with_routes("    - {direction: local-to-remote, name: a, source: [a/#}\n");
    let BridgeError::Yaml {
        path, line, column, ..
    } = yaml_error(&yaml)
    else {
        panic!("expected a YAML error");
    };
    assert!(path.starts_with("documents[1].spec.routes[0]"), "{path}");
    assert_eq!(line, Some(23));
    assert!(column.is_some());
}

#[test]
fn wrong_type_is_a_config_error_with_its_path() {
    let yaml = with_routes("    - {direction: local-to-remote, name: a, source: a/#, qos: high}\n");
    let error = yaml_error(&yaml);
    let BridgeError::Yaml {
        path, line, column, ..
    } = &error
    else {
        panic!("expected a YAML error, got {error}");
    };
    assert_eq!(path, "documents[1].spec.routes[0].qos");
    assert_eq!((*line, *column), (Some(23), Some(63)));
    assert_eq!(
        error.to_string(),
        "invalid bridge config <input>:23:63: documents[1].spec.routes[0].qos: invalid i64"
    );
}

#[test]
fn hostile_yaml_fails_without_panicking() {
    // "Billion laughs": each level refers ten times to the one before.
    let mut bomb = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let refs = vec![format!("*l{}", i - 1); 10].join(", ");
        bomb += &format!("l{i}: &l{i} [{refs}]\n");
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let documents = "---\na: 1\n".repeat(5_000);
    for input in [&bomb, &deep, &documents] {
        let error = yaml_error(input);
        assert!(matches!(error, BridgeError::Yaml { .. }), "{error}");
    }
    for input in [
        "\u{0}\u{1}\u{2}",
        "kind: [",
        "- - - - -",
        "{",
        "? [a]\n: b",
        "*x",
    ] {
        // Whatever parses must still validate without panicking.
        if let Ok(raw) = RawConfig::parse_str(input) {
            let _ = config::validate(&raw, &no_files());
        }
    }
}

#[test]
fn oversized_input_is_refused() {
    let yaml = format!("# {}\n", "x".repeat(5 * 1024 * 1024));
    assert!(matches!(
        yaml_error(&yaml),
        BridgeError::TooLarge { limit, .. } if limit == 4 * 1024 * 1024
    ));
}

#[test]
fn unreadable_file_is_a_config_error_with_its_path() {
    let missing = Path::new("/nonexistent/bridge.yaml");
    let error = RawConfig::load(missing).unwrap_err();
    assert!(matches!(&error, BridgeError::Read { path, .. } if path == missing));
    assert_eq!(
        error.to_string(),
        "cannot read bridge config /nonexistent/bridge.yaml"
    );
}

#[test]
fn seed_file_loads_from_disk() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/bridge.yaml");
    let raw = RawConfig::load(&path).unwrap();
    assert_eq!(raw.documents.len(), 2);
    assert_eq!(raw.source_name, path.display().to_string());
}

#[test]
fn managed_identity_and_token_files_resolve_to_jwt_authentication() {
    let entra = topic_map(
        &CONNECTOR.replace(
            "      x509:\n        clientK8sSecret: bridge-client-cert\n",
            "      systemAssignedManagedIdentity: {audience: 'https://eventgrid.azure.net'}\n",
        ),
        "map",
        UP,
    );
    let raw = RawConfig::parse_str(&entra).unwrap();
    let resolved = config::resolve(&raw, &no_files()).unwrap();
    assert_eq!(
        resolved.bridges[0].remote.authentication,
        Authentication::EntraToken {
            audience: "https://eventgrid.azure.net".into()
        }
    );
    // The default audience is Event Grid's.
    let default = entra.replace("{audience: 'https://eventgrid.azure.net'}", "{}");
    let raw = RawConfig::parse_str(&default).unwrap();
    let resolved = config::resolve(&raw, &no_files()).unwrap();
    assert_eq!(
        resolved.bridges[0].remote.authentication,
        Authentication::EntraToken {
            audience: config::EVENT_GRID_AUDIENCE.into()
        }
    );
    let file = entra.replace(
        "  name: bridge\n",
        "  name: bridge\n  annotations:\n    e4k.dev/remote-jwt-token-file: /var/run/secrets/tokens/eventgrid\n",
    );
    let raw = RawConfig::parse_str(&file).unwrap();
    let resolved = config::resolve(&raw, &no_files()).unwrap();
    assert_eq!(
        resolved.bridges[0].remote.authentication,
        Authentication::JwtFile {
            token_file: "/var/run/secrets/tokens/eventgrid".into()
        }
    );
}
