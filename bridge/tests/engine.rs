//! The engine against real brokers: a plain local mosquitto and a TLS mosquitto standing in
//! for Event Grid (client certificates, `use_identity_as_username`, an ACL).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use common::{Env, TestClient, Validity, metric, run_options, start_bridge};
use e4k_bridge::engine::{HOPS_PROPERTY, RetainPolicy};
use e4k_tests::Mosquitto;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::PublishProperties;

const BOTH_WAYS: &str = "    - direction: local-to-remote
      name: out
      source: e2e/out/#
    - direction: remote-to-local
      name: in
      source: e2e/in/#
";

fn user(props: &PublishProperties, key: &str) -> Vec<String> {
    props
        .user_properties
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_properties_survive_both_directions() {
    let env = Env::new("");
    let bridge = start_bridge(&env.config(1, BOTH_WAYS), run_options());
    bridge.ready().await;
    let mut remote = env.remote_client("props-remote").await;
    remote.subscribe("e2e/out/#", QoS::AtLeastOnce).await;
    let mut local = env.local_client("props-local").await;
    local.subscribe("e2e/in/#", QoS::AtLeastOnce).await;

    let sent = PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(300),
        response_topic: Some("e2e/reply".into()),
        correlation_data: Some(Bytes::from_static(b"corr-42")),
        user_properties: vec![("origin".into(), "test".into()), ("k".into(), "v2".into())],
        content_type: Some("application/json".into()),
        ..PublishProperties::default()
    };
    local
        .publish_with("e2e/out/a", QoS::AtLeastOnce, "{\"x\":1}", sent.clone())
        .await;
    remote
        .publish_with("e2e/in/b", QoS::AtLeastOnce, "{\"y\":2}", sent.clone())
        .await;

    for (client, topic) in [(&mut remote, "e2e/out/a"), (&mut local, "e2e/in/b")] {
        let got = client.recv().await;
        assert_eq!(&got.topic[..], topic.as_bytes());
        assert_eq!(got.qos, QoS::AtLeastOnce);
        let props = got.properties.expect("properties");
        assert_eq!(props.payload_format_indicator, Some(1));
        assert_eq!(props.content_type.as_deref(), Some("application/json"));
        assert_eq!(props.response_topic.as_deref(), Some("e2e/reply"));
        assert_eq!(props.correlation_data.as_deref(), Some(&b"corr-42"[..]));
        let expiry = props.message_expiry_interval.expect("expiry");
        assert!((290..=300).contains(&expiry), "{expiry}");
        assert_eq!(user(&props, "origin"), ["test"]);
        assert_eq!(user(&props, "k"), ["v2"]);
        assert_eq!(user(&props, HOPS_PROPERTY), ["1"]);
        assert_eq!(props.topic_alias, None);
        assert!(props.subscription_identifiers.is_empty());
    }
    bridge
        .wait_metric(
            "e4k_bridge_messages_forwarded_total{bridge=\"test-bridge\",route=\"out\",direction=\"local-to-remote\"} 1",
        )
        .await;
    bridge
        .wait_metric(
            "e4k_bridge_messages_forwarded_total{bridge=\"test-bridge\",route=\"in\",direction=\"remote-to-local\"} 1",
        )
        .await;
    let text = bridge.handle.metrics();
    assert!(
        text.contains(
            "e4k_bridge_forward_latency_seconds_count{bridge=\"test-bridge\",route=\"out\""
        )
    );
    assert!(text.contains(
        "e4k_bridge_connection_up{bridge=\"test-bridge\",broker=\"remote\",client_id=\"e4k-0\"} 1"
    ));
    // One message published on each session, whichever route it came from.
    for broker in ["remote", "local"] {
        assert!(
            text.contains(&format!(
                "e4k_bridge_connection_published_total{{bridge=\"test-bridge\",broker=\"{broker}\",client_id=\"e4k-0\"}} 1"
            )),
            "{text}"
        );
    }
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_is_downgraded_hops_are_limited_and_retain_is_kept() {
    let env = Env::new("");
    let bridge = start_bridge(&env.config(1, BOTH_WAYS), run_options());
    bridge.ready().await;
    let mut remote = env.remote_client("qos-remote").await;
    remote.subscribe("e2e/out/#", QoS::ExactlyOnce).await;
    let local = env.local_client("qos-local").await;

    // QoS 2 on the local broker arrives at QoS 1 on the remote one.
    local
        .publish("e2e/out/q2", QoS::ExactlyOnce, false, "two")
        .await;
    let got = remote.recv().await;
    assert_eq!(got.qos, QoS::AtLeastOnce);
    assert_eq!(&got.payload[..], b"two");

    // A message that already crossed 8 bridges is dropped; one that crossed 3 goes on.
    let hops = |n: &str| PublishProperties {
        user_properties: vec![(HOPS_PROPERTY.into(), n.into())],
        ..PublishProperties::default()
    };
    local
        .publish_with("e2e/out/loop", QoS::AtLeastOnce, "looping", hops("8"))
        .await;
    local
        .publish_with("e2e/out/ok", QoS::AtLeastOnce, "fine", hops("3"))
        .await;
    let got = remote.recv().await;
    assert_eq!(&got.payload[..], b"fine");
    assert_eq!(user(got.properties.as_ref().unwrap(), HOPS_PROPERTY), ["4"]);
    bridge.wait_metric("reason=\"hop_limit\"} 1").await;

    // Retain: kept by default, so a late subscriber on the remote gets the retained copy.
    local
        .publish("e2e/out/state", QoS::AtLeastOnce, true, "on")
        .await;
    let live = remote.recv().await;
    assert_eq!(&live.payload[..], b"on");
    let mut late = env.remote_client("qos-late").await;
    late.subscribe("e2e/out/state", QoS::AtLeastOnce).await;
    let retained = late.recv().await;
    assert!(retained.retain);
    assert_eq!(&retained.payload[..], b"on");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_drop_policy_clears_the_flag() {
    let env = Env::new("");
    let mut options = run_options();
    options.retain = RetainPolicy::Drop;
    let bridge = start_bridge(&env.config(1, BOTH_WAYS), options);
    bridge.ready().await;
    let mut remote = env.remote_client("drop-remote").await;
    remote.subscribe("e2e/out/#", QoS::AtLeastOnce).await;
    let local = env.local_client("drop-local").await;
    local
        .publish("e2e/out/state", QoS::AtLeastOnce, true, "on")
        .await;
    let live = remote.recv().await;
    assert!(!live.retain);
    let mut late = env.remote_client("drop-late").await;
    late.subscribe("e2e/out/state", QoS::AtLeastOnce).await;
    assert!(
        late.try_recv(Duration::from_millis(300)).await.is_none(),
        "nothing retained on the remote"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_message_is_dropped_and_counted_and_the_route_keeps_flowing() {
    // The remote announces a 16 KiB maximum packet size in its CONNACK.
    let env = Env::new("max_packet_size 16384");
    let bridge = start_bridge(&env.config(1, BOTH_WAYS), run_options());
    bridge.ready().await;
    let mut remote = env.remote_client("big-remote").await;
    remote.subscribe("e2e/out/#", QoS::AtLeastOnce).await;
    let local = env.local_client("big-local").await;
    local
        .publish(
            "e2e/out/big",
            QoS::AtLeastOnce,
            false,
            vec![b'x'; 64 * 1024],
        )
        .await;
    for i in 0..5 {
        local
            .publish(
                "e2e/out/small",
                QoS::AtLeastOnce,
                false,
                format!("small-{i}"),
            )
            .await;
    }
    for i in 0..5 {
        let got = remote.recv().await;
        assert_eq!(got.payload, format!("small-{i}").as_bytes());
    }
    bridge.wait_metric("reason=\"oversize\"} 1").await;
    bridge
        .wait_metric(
            "e4k_bridge_messages_forwarded_total{bridge=\"test-bridge\",route=\"out\",direction=\"local-to-remote\"} 5",
        )
        .await;
    assert!(bridge.handle.readiness().ready, "the route is not wedged");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_is_reported_and_retried() {
    let env = Env::new("");
    let other = common::Pki::new(&env.dir.path().join("other-pki"), "other");
    let configs = common::resolve(
        &common::yaml(1, BOTH_WAYS),
        &env.secrets(),
        env.remote.port(),
        env.local.port(),
        &other.root_file,
    );
    let bridge = start_bridge(&configs, run_options());
    let readiness = bridge
        .wait_for(|r| {
            r.connections.iter().any(|c| {
                c.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("not signed by a trusted CA"))
            })
        })
        .await
        .unwrap_or_else(|r| panic!("{r:#?}"));
    assert!(!readiness.ready);
    bridge
        .wait_for(|_| {
            metric(
                &bridge.handle.metrics(),
                "e4k_bridge_connection_attempts_failed_total{bridge=\"test-bridge\",broker=\"remote\"",
            ) >= 3.0
        })
        .await
        .unwrap_or_else(|r| panic!("not retrying: {r:#?}"));
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_client_certificate_is_reported_then_a_rotated_one_is_used() {
    let env = Env::new("");
    let secrets = env.secrets();
    env.pki.client_secret(
        &secrets,
        "bridge-client-cert",
        "mqttbridge",
        Validity::Expired,
    );
    let bridge = start_bridge(&env.config(1, BOTH_WAYS), run_options());
    let readiness = bridge
        .wait_for(|r| {
            r.connections.iter().any(|c| {
                c.broker == "remote"
                    && c.last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("expired"))
            })
        })
        .await
        .unwrap_or_else(|r| panic!("{r:#?}"));
    assert!(!readiness.ready, "{readiness:#?}");
    // Rotate the certificate in place: the next attempt uses it, no restart.
    env.pki
        .client_secret(&secrets, "bridge-client-cert", "mqttbridge", Validity::Good);
    bridge.ready().await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_for_another_name_is_refused_by_the_acl() {
    let env = Env::new("");
    env.pki.client_secret(
        &env.secrets(),
        "bridge-client-cert",
        "intruder",
        Validity::Good,
    );
    let bridge = start_bridge(&env.config(1, BOTH_WAYS), run_options());
    // mosquitto accepts the TLS handshake (same CA) and, in 2.0, grants the subscription;
    // its ACL refuses the bridge's publishes (Event Grid refuses the CONNECT instead).
    bridge
        .wait_for(|r| r.connections.iter().all(|c| c.connected))
        .await
        .unwrap_or_else(|r| panic!("{r:#?}"));
    let local = env.local_client("acl-local").await;
    local
        .publish("e2e/out/denied", QoS::AtLeastOnce, false, "nope")
        .await;
    let readiness = bridge
        .wait_for(|r| {
            r.connections.iter().any(|c| {
                c.broker == "remote"
                    && (c
                        .last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("refused")))
            })
        })
        .await
        .unwrap_or_else(|r| panic!("{r:#?}"));
    assert!(!readiness.ready, "{readiness:#?}");
    bridge.wait_metric("reason=\"rejected\"} 1").await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_remote_is_retried_until_it_comes_up() {
    let env = Env::new("");
    let port = e4k_tests::free_port().unwrap();
    let configs = common::resolve(
        &common::yaml(1, BOTH_WAYS),
        &env.secrets(),
        port,
        env.local.port(),
        &env.pki.root_file,
    );
    let bridge = start_bridge(&configs, run_options());
    let readiness = bridge
        .wait_for(|r| {
            r.connections.iter().any(|c| {
                c.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("connection refused"))
            })
        })
        .await
        .unwrap_or_else(|r| panic!("{r:#?}"));
    assert!(!readiness.ready);
    // Messages published meanwhile wait in the local broker's session for the bridge.
    let local = env.local_client("late-local").await;
    // The local side is connected and subscribed: the message is queued for the bridge.
    bridge
        .wait_for(|r| {
            r.connections
                .iter()
                .any(|c| c.broker == "local" && c.subscribed)
        })
        .await
        .unwrap_or_else(|r| panic!("{r:#?}"));
    local
        .publish("e2e/out/early", QoS::AtLeastOnce, false, "queued")
        .await;
    let remote_broker = Mosquitto::start_on(port, &common::remote_config(&env.pki, "")).unwrap();
    bridge.ready().await;
    let mut remote = TestClient::remote(port, "late-remote", &env.pki, "mosquitto").await;
    remote.subscribe("e2e/out/#", QoS::AtLeastOnce).await;
    // The held message was published when the remote came up, possibly before our
    // subscription: publish another to prove the route works, and accept either.
    local
        .publish("e2e/out/after", QoS::AtLeastOnce, false, "after")
        .await;
    let mut seen = BTreeSet::new();
    while !seen.contains("after") {
        let got = remote.recv().await;
        seen.insert(String::from_utf8_lossy(&got.payload).into_owned());
    }
    bridge.stop().await;
    drop(remote_broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_and_a_restart_resumes_from_the_session() {
    let env = Env::new("");
    let configs = env.config(1, BOTH_WAYS);
    let bridge = start_bridge(&configs, run_options());
    bridge.ready().await;
    let mut remote = env.remote_client("drain-remote").await;
    remote.subscribe("e2e/out/#", QoS::AtLeastOnce).await;
    let local = env.local_client("drain-local").await;
    const N: usize = 300;
    for i in 0..N {
        local
            .publish("e2e/out/seq", QoS::AtLeastOnce, false, format!("{i}"))
            .await;
    }
    // Stop while messages are still flowing: what was taken is finished, the rest stays
    // queued in the local broker's persistent session.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = std::time::Instant::now();
    bridge.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "drain took too long"
    );

    // A new bridge with the same client IDs resumes the session and forwards the rest.
    let bridge = start_bridge(&configs, run_options());
    bridge.ready().await;
    let mut seen = BTreeSet::new();
    while seen.len() < N {
        let got = remote.recv().await;
        let n: usize = String::from_utf8_lossy(&got.payload).parse().unwrap();
        seen.insert(n);
    }
    assert_eq!(seen.len(), N, "every message arrived at least once");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_members_publish_through_their_instance_main_session() {
    // 2 instances; a local-to-remote shared route (1 member per instance) next to a plain
    // route: each remote main session publishes for two origins, its instance's local main
    // session and its member.
    const ROUTES: &str = "    - direction: local-to-remote
      name: out
      source: e2e/out/#
    - direction: local-to-remote
      name: share
      source: e2e/share/#
      sharedSubscription:
        groupName: g
        groupMinimumShareNumber: 2
";
    let env = Env::new("");
    let configs = env.config(2, ROUTES);
    assert_eq!(configs[0].remote_session_count(), 2);
    assert_eq!(configs[0].local_session_count(), 4);
    let bridge = start_bridge(&configs, run_options());
    bridge.ready().await;
    let ids = |broker: &str| -> BTreeSet<String> {
        bridge
            .handle
            .readiness()
            .connections
            .iter()
            .filter(|c| c.broker == broker)
            .map(|c| c.client_id.clone())
            .collect()
    };
    assert_eq!(
        ids("remote"),
        BTreeSet::from(["e4k-0".into(), "e4k-1".into()])
    );
    assert_eq!(
        ids("local"),
        BTreeSet::from([
            "e4k-0".into(),
            "e4k-1".into(),
            "e4k-share-0".into(),
            "e4k-share-1".into()
        ])
    );

    let mut remote = env.remote_client("share-remote").await;
    remote.subscribe("e2e/#", QoS::AtLeastOnce).await;
    let local = env.local_client("share-local").await;
    const N: usize = 300;
    for i in 0..N {
        local
            .publish("e2e/share/seq", QoS::AtLeastOnce, false, format!("{i}"))
            .await;
        local
            .publish("e2e/out/seq", QoS::AtLeastOnce, false, format!("{i}"))
            .await;
    }
    let mut shared = vec![0_u32; N];
    let mut plain = vec![0_u32; N];
    for _ in 0..2 * N {
        let got = remote.recv().await;
        let n: usize = String::from_utf8_lossy(&got.payload).parse().unwrap();
        match &got.topic[..] {
            b"e2e/share/seq" => shared[n] += 1,
            b"e2e/out/seq" => plain[n] += 1,
            other => panic!("unexpected topic {}", String::from_utf8_lossy(other)),
        }
    }
    assert!(shared.iter().all(|&c| c == 1), "shared route: {shared:?}");
    assert!(plain.iter().all(|&c| c == 1), "plain route: {plain:?}");
    assert!(remote.try_recv(Duration::from_millis(300)).await.is_none());
    for route in ["share", "out"] {
        bridge
            .wait_metric(&format!(
                "e4k_bridge_messages_forwarded_total{{bridge=\"test-bridge\",route=\"{route}\",direction=\"local-to-remote\"}} {N}"
            ))
            .await;
    }
    bridge.stop().await;

    // The sources were acknowledged: a restart with the same sessions gets nothing again.
    let bridge = start_bridge(&configs, run_options());
    bridge.ready().await;
    assert!(
        remote.try_recv(Duration::from_secs(1)).await.is_none(),
        "redelivered after a restart"
    );
    bridge.stop().await;

    // The remote broker only ever saw the two main sessions (and the test client).
    let log = env.remote.log();
    let clients: BTreeSet<&str> = log
        .lines()
        .filter(|line| line.contains("New client connected"))
        .filter_map(|line| line.split(" as ").nth(1))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    assert_eq!(
        clients,
        BTreeSet::from(["e4k-0", "e4k-1", "share-remote"]),
        "{log}"
    );
}

/// `protocol: v3` speaks MQTT 3.1.1 to both brokers (mosquitto logs the protocol level of
/// every CONNECT: `p2` is 3.1.1, `p5` is 5): messages flow both ways, message properties
/// are not carried (3.1.1 has none), and the persistent sessions resume after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_v3_bridges_with_mqtt_3_1_1_sessions() {
    let env = Env::new("");
    let yaml = common::yaml(1, BOTH_WAYS).replace("protocol: v5", "protocol: v3");
    let configs = common::resolve(
        &yaml,
        &env.secrets(),
        env.remote.port(),
        env.local.port(),
        &env.pki.root_file,
    );
    let bridge = start_bridge(&configs, run_options());
    bridge.ready().await;
    for (broker, name) in [(&env.local, "local"), (&env.remote, "remote")] {
        let log = broker.log();
        assert!(
            log.contains(" as e4k-0 (p2, c0,"),
            "the {name} broker did not see an MQTT 3.1.1 persistent session:\n{log}"
        );
    }
    let mut remote = env.remote_client("v3-remote").await;
    remote.subscribe("e2e/out/#", QoS::AtLeastOnce).await;
    let mut local = env.local_client("v3-local").await;
    local.subscribe("e2e/in/#", QoS::AtLeastOnce).await;
    let props = PublishProperties {
        user_properties: vec![("origin".into(), "test".into())],
        content_type: Some("text/plain".into()),
        ..PublishProperties::default()
    };
    local
        .publish_with("e2e/out/a", QoS::AtLeastOnce, "up", props.clone())
        .await;
    remote
        .publish_with("e2e/in/b", QoS::AtLeastOnce, "down", props)
        .await;
    for (client, topic, payload) in [
        (&mut remote, "e2e/out/a", "up"),
        (&mut local, "e2e/in/b", "down"),
    ] {
        let got = client.recv().await;
        assert_eq!(&got.topic[..], topic.as_bytes());
        assert_eq!(&got.payload[..], payload.as_bytes());
        assert_eq!(got.qos, QoS::AtLeastOnce);
        let props = got.properties.unwrap_or_default();
        assert!(props.user_properties.is_empty(), "{props:?}");
        assert_eq!(props.content_type, None);
    }

    // Messages published while the bridge is down wait in its 3.1.1 persistent session.
    bridge.stop().await;
    for i in 0..50 {
        local
            .publish("e2e/out/seq", QoS::AtLeastOnce, false, format!("{i}"))
            .await;
    }
    let bridge = start_bridge(&configs, run_options());
    bridge.ready().await;
    let mut seen = BTreeSet::new();
    while seen.len() < 50 {
        let got = remote.recv().await;
        seen.insert(
            String::from_utf8_lossy(&got.payload)
                .parse::<usize>()
                .unwrap(),
        );
    }
    bridge
        .wait_metric(
            "e4k_bridge_messages_forwarded_total{bridge=\"test-bridge\",route=\"out\",direction=\"local-to-remote\"} 50",
        )
        .await;
    bridge.stop().await;
}

/// With `e4k.dev/shared-subscription-sessions: both`, each member of a local-to-remote shared
/// route publishes through a remote session of its own: the route spreads over as many remote
/// sessions as it has members (Event Grid's quota is per session), and every message still
/// arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_members_with_their_own_remote_sessions_spread_the_route() {
    const ROUTES: &str = "    - direction: local-to-remote
      name: share
      source: e2e/share/#
      sharedSubscription:
        groupName: g
        groupMinimumShareNumber: 3
";
    let env = Env::new("");
    let yaml = common::yaml(1, ROUTES).replace(
        "  name: test-bridge\n",
        "  name: test-bridge\n  annotations:\n    e4k.dev/shared-subscription-sessions: both\n",
    );
    let configs = common::resolve(
        &yaml,
        &env.secrets(),
        env.remote.port(),
        env.local.port(),
        &env.pki.root_file,
    );
    assert_eq!(configs[0].remote_session_counts(), (0, 3));
    let bridge = start_bridge(&configs, run_options());
    bridge.ready().await;
    let members: BTreeSet<String> = (0..3).map(|m| format!("e4k-share-{m}")).collect();
    for broker in ["local", "remote"] {
        let ids: BTreeSet<String> = bridge
            .handle
            .readiness()
            .connections
            .iter()
            .filter(|c| c.broker == broker)
            .map(|c| c.client_id.clone())
            .collect();
        assert_eq!(ids, members, "{broker}");
    }
    let mut remote = env.remote_client("spread-remote").await;
    remote.subscribe("e2e/#", QoS::AtLeastOnce).await;
    let local = env.local_client("spread-local").await;
    const N: usize = 300;
    for i in 0..N {
        local
            .publish("e2e/share/seq", QoS::AtLeastOnce, false, format!("{i}"))
            .await;
    }
    let mut seen = vec![0_u32; N];
    for _ in 0..N {
        let got = remote.recv().await;
        seen[String::from_utf8_lossy(&got.payload)
            .parse::<usize>()
            .unwrap()] += 1;
    }
    assert!(seen.iter().all(|&c| c == 1), "{seen:?}");
    bridge
        .wait_metric(&format!(
            "e4k_bridge_messages_forwarded_total{{bridge=\"test-bridge\",route=\"share\",direction=\"local-to-remote\"}} {N}"
        ))
        .await;
    // Every member's remote session carried part of the route.
    let text = bridge.handle.metrics();
    let mut total = 0.0;
    for member in &members {
        let published = metric(
            &text,
            &format!(
                "e4k_bridge_connection_published_total{{bridge=\"test-bridge\",broker=\"remote\",client_id=\"{member}\"}}"
            ),
        );
        assert!(published > 0.0, "{member} published nothing:\n{text}");
        total += published;
    }
    assert!((total - N as f64).abs() < f64::EPSILON, "{text}");
    bridge.stop().await;
}

/// The remote broker moves to a server certificate from another CA: the bridge refuses it
/// (unknown issuer) until the trusted CA file is replaced, and then connects with the new CA
/// at its next attempt, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_trusted_ca_is_used_at_the_next_connection() {
    let mut env = Env::new("");
    let ca = env.dir.path().join("bridge-ca.pem");
    std::fs::copy(&env.pki.root_file, &ca).unwrap();
    let configs = common::resolve(
        &common::yaml(1, BOTH_WAYS),
        &env.secrets(),
        env.remote.port(),
        env.local.port(),
        &ca,
    );
    let bridge = start_bridge(&configs, run_options());
    bridge.ready().await;

    // The remote comes back with a server certificate from another CA (it still verifies
    // the bridge's client certificate against the old root).
    let other = common::Pki::new(&env.dir.path().join("pki-b"), "rotated");
    let other_root = std::fs::read(&other.root_file).unwrap();
    std::fs::copy(&env.pki.root_file, &other.root_file).unwrap();
    let port = env.remote.port();
    e4k_tests::faults::terminate(&mut env.remote).unwrap();
    env.remote = Mosquitto::start_on(port, &common::remote_config(&other, "")).unwrap();
    bridge
        .wait_for(|r| {
            r.connections.iter().any(|c| {
                c.broker == "remote"
                    && c.last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("unknown issuer"))
            })
        })
        .await
        .unwrap_or_else(|r| panic!("the new server certificate was not refused:\n{r:#?}"));

    // The operator rotates the trusted CA: the next attempt uses it.
    std::fs::write(&ca, other_root).unwrap();
    bridge.ready().await;
    bridge.stop().await;
}
