//! The seed (`templates/bridge.yaml`) and the spellings it may be written in: what they
//! resolve to, and the warnings they give.

use super::*;

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
