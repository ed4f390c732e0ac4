//! What the data plane serves and follows: ARM changes, the seed's bridge routes, MQTT over
//! WebSockets, and shutdown.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arm_changes_reach_the_broker_within_a_second_or_two() {
    let (emulator, arm) = seeded().await;
    let mut bridge = connect(&emulator, "bridge-1", "mqttbridge").await.unwrap();
    bridge.subscribe("command/#", QoS::AtLeastOnce).await;
    let mut commander = connect(&emulator, "commander", "mosquitto").await.unwrap();
    assert_eq!(
        commander.publish("command/x", "before").await,
        Ok(PubAckReason::Success)
    );
    assert_eq!(bridge.message(ARRIVAL).await.as_deref(), Some("before"));

    // Revoke: the live connection's next PUBLISH is denied.
    let started = Instant::now();
    arm.delete("/permissionBindings/commanders-publish-command")
        .await;
    let mut denied_after = None;
    for i in 0..40 {
        if commander.publish("command/x", &format!("probe-{i}")).await
            == Ok(PubAckReason::NotAuthorized)
        {
            denied_after = Some(started.elapsed());
            break;
        }
        let _ = bridge.message(Duration::from_millis(20)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let denied_after = denied_after.expect("the revoked binding is still enforced");
    assert!(denied_after < Duration::from_secs(2), "{denied_after:?}");

    // Grant again, to the client's own authentication name this time.
    arm.put(
        "/clientGroups/named",
        json!({ "properties": { "query": "authenticationName = 'MOSQUITTO'" } }),
    )
    .await;
    arm.put(
        "/permissionBindings/named-publish-command",
        json!({ "properties": {
            "topicSpaceName": "command", "clientGroupName": "named", "permission": "Publisher"
        } }),
    )
    .await;
    assert!(emulator.mqtt_synced(Duration::from_secs(2)).await);
    while bridge.message(Duration::from_millis(100)).await.is_some() {}
    assert_eq!(
        commander.publish("command/x", "after").await,
        Ok(PubAckReason::Success)
    );
    assert_eq!(bridge.message(ARRIVAL).await.as_deref(), Some("after"));

    // Disabling a client shuts its new connections out at once.
    arm.put(
        "/clients/mosquitto",
        client_body("Disabled", json!({ "commander": "true" })),
    )
    .await;
    assert_eq!(
        refused(connect(&emulator, "commander-2", "mosquitto").await),
        ConnectReturnCode::NotAuthorized
    );
    emulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_seed_routes_work() {
    let (emulator, _arm) = seeded().await;
    // mosquitto (the commander) subscribes to telemetry, the bridge's three instances to
    // commands (the bridge connector runs bridgeInstances: 3 under one authentication name).
    let mut commander = connect(&emulator, "commander", "mosquitto").await.unwrap();
    commander
        .subscribe("factory/telemetry/#", QoS::AtLeastOnce)
        .await;
    let mut instances = Vec::new();
    for i in 1..=3 {
        let mut bridge = connect(&emulator, &format!("e4k-{i}"), "mqttbridge")
            .await
            .unwrap();
        bridge.subscribe("command/#", QoS::AtLeastOnce).await;
        instances.push(bridge);
    }
    // local-to-remote "publish-telemetry-same-topic" and "prioritize-alerts".
    for (topic, payload) in [
        ("factory/telemetry/line1/temp", "21.5"),
        ("factory/telemetry/alert", "anomaly"),
    ] {
        assert_eq!(
            instances[0].publish(topic, payload).await,
            Ok(PubAckReason::Success)
        );
        assert_eq!(commander.message(ARRIVAL).await.as_deref(), Some(payload));
    }
    // remote-to-local "command-from-cloud": every instance's subscription receives it.
    assert_eq!(
        commander.publish("command/restart", "now").await,
        Ok(PubAckReason::Success)
    );
    for bridge in &mut instances {
        assert_eq!(bridge.message(ARRIVAL).await.as_deref(), Some("now"));
    }
    emulator.shutdown().await.unwrap();
}

/// MQTT over secure WebSockets: `wss://…/mqtt` with subprotocol `mqtt` and the client
/// certificate is the same session as on the TLS port (authenticated, authorized by the
/// bindings); another path is refused at the upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_over_websocket_is_served_on_mqtt_path() {
    let (emulator, _arm) = seeded_with(MqttConfig {
        websocket_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..MqttConfig::default()
    })
    .await;
    let port = emulator.mqtt_websocket_addr().unwrap().port();
    let over_websocket = |id: &str, cert: &str, path: &str| {
        let pki = pki();
        let mut options = MqttOptions::new(id, format!("wss://localhost:{port}{path}"), port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_transport(Transport::Wss(TlsConfiguration::Rustls(tls(
            &emulator,
            &pki.cert(cert),
            &pki.key(cert),
        ))));
        options
    };
    let mut bridge = connect_with(over_websocket("bridge-ws", "mqttbridge", "/mqtt"))
        .await
        .unwrap();
    bridge.subscribe("command/#", QoS::AtLeastOnce).await;
    let mut commander = connect(&emulator, "commander", "mosquitto").await.unwrap();
    assert_eq!(
        commander.publish("command/x", "over-ws").await,
        Ok(PubAckReason::Success)
    );
    assert_eq!(bridge.message(ARRIVAL).await.as_deref(), Some("over-ws"));
    // The bindings hold over WebSocket too: the bridge may not publish commands.
    assert_ne!(
        bridge.publish("command/x", "nope").await,
        Ok(PubAckReason::Success)
    );
    let error = connect_with(over_websocket("bridge-ws2", "mqttbridge", "/other"))
        .await
        .err()
        .expect("a WebSocket upgrade on another path is refused");
    assert!(error.to_string().contains("404"), "{error}");
    emulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_mosquitto() {
    let (emulator, _arm) = seeded().await;
    let addr = emulator.mqtt_addr().unwrap();
    let ca = emulator.mqtt_ca_pem_path().unwrap().to_owned();
    assert!(
        std::fs::read_to_string(&ca)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    emulator.shutdown().await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the MQTT port is closed"
    );
    assert!(!ca.exists(), "the temporary CA file is removed");
}
