//! The bridge's sessions over time: an unreachable remote retried, shutdown drains and a restart
//! resumes, MQTT 3.1.1 sessions.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_remote_is_retried_until_it_comes_up() {
    let env = Env::new("");
    let port = e4k_tests::free_port().unwrap();
    let configs = resolve_to(&env, &setup::yaml(1, BOTH_WAYS), port, &env.pki.root_file);
    let bridge = start_bridge(&configs, run_options());
    let readiness = wait_for_error(&bridge, "connection refused").await;
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
    let remote_broker = Mosquitto::start_on(port, &setup::remote_config(&env.pki, "")).unwrap();
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
    let (mut remote, local) = clients(&env, "drain", "e2e/out/#", QoS::AtLeastOnce).await;
    const N: usize = 300;
    publish_numbers(&local, "e2e/out/seq", N).await;
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

/// `protocol: v3` speaks MQTT 3.1.1 to both brokers (mosquitto logs the protocol level of
/// every CONNECT: `p2` is 3.1.1, `p5` is 5): messages flow both ways, message properties
/// are not carried (3.1.1 has none), and the persistent sessions resume after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_v3_bridges_with_mqtt_3_1_1_sessions() {
    let env = Env::new("");
    let yaml = setup::yaml(1, BOTH_WAYS).replace("protocol: v5", "protocol: v3");
    let configs = resolve_to(&env, &yaml, env.remote.port(), &env.pki.root_file);
    let bridge = start_bridge(&configs, run_options());
    bridge.ready().await;
    for (broker, name) in [(&env.local, "local"), (&env.remote, "remote")] {
        let log = broker.log();
        assert!(
            log.contains(" as e4k-0 (p2, c0,"),
            "the {name} broker did not see an MQTT 3.1.1 persistent session:\n{log}"
        );
    }
    let (mut remote, mut local) = clients(&env, "v3", "e2e/out/#", QoS::AtLeastOnce).await;
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
