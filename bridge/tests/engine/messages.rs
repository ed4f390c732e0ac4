//! What happens to a message on its way: MQTT 5 properties, QoS 2 downgraded, the hop limit,
//! retain flags, oversize messages.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_properties_survive_both_directions() {
    let env = Env::new("");
    let bridge = start_bridge(&env.config(1, BOTH_WAYS), run_options());
    bridge.ready().await;
    let (mut remote, mut local) = clients(&env, "props", "e2e/out/#", QoS::AtLeastOnce).await;
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
    let (mut remote, local) = clients(&env, "qos", "e2e/out/#", QoS::ExactlyOnce).await;

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
    let (mut remote, local) = clients(&env, "drop", "e2e/out/#", QoS::AtLeastOnce).await;
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
    let (mut remote, local) = clients(&env, "big", "e2e/out/#", QoS::AtLeastOnce).await;
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
