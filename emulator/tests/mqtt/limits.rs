//! Event Grid's limits on what a session sends: no QoS 2, at most 512 KiB a message, a publish
//! quota per session.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_2_is_not_served() {
    let (emulator, _arm) = seeded().await;
    let mut bridge = connect(&emulator, "bridge-1", "mqttbridge").await.unwrap();
    // v5 CONNACK advertises Maximum QoS 1.
    let max_qos = bridge.connack.properties.as_ref().and_then(|p| p.max_qos);
    assert_eq!(max_qos, Some(1));
    // A QoS 2 subscription is granted QoS 1.
    match bridge.subscribe("command/#", QoS::ExactlyOnce).await {
        Packet::SubAck(ack) => {
            assert_eq!(format!("{:?}", ack.return_codes), "[Success(AtLeastOnce)]")
        }
        other => panic!("{other:?}"),
    }
    // A QoS 2 PUBLISH ends the connection (mosquitto disconnects the client); nothing is
    // delivered.
    let mut commander = connect(&emulator, "commander", "mosquitto").await.unwrap();
    commander
        .client
        .publish("command/x", QoS::ExactlyOnce, false, b"q2".to_vec())
        .await
        .unwrap();
    let outcome = commander
        .next(ARRIVAL, |p| {
            matches!(p, Packet::PubRec(_) | Packet::Disconnect(_))
        })
        .await;
    match outcome {
        Some(Ok(Packet::Disconnect(d))) => {
            assert_eq!(format!("{:?}", d.reason_code), "QoSNotSupported");
        }
        // rumqttc reports a server DISCONNECT as the error that ends its event loop.
        Some(Err(e)) if e.contains("QoSNotSupported") => {}
        other => panic!("QoS 2 was not refused with DISCONNECT 0x9B: {other:?}"),
    }
    // MQTT 3.1.1 has no DISCONNECT from the server: the connection is closed.
    let (ok, stderr) = mosquitto_pub(
        &emulator,
        "mosquitto",
        &["-V", "mqttv311", "-q", "2", "-t", "command/x", "-m", "q2"],
    );
    assert!(!ok, "a 3.1.1 QoS 2 publish went through");
    assert!(stderr.contains("connection was lost"), "{stderr}");
    assert_eq!(bridge.message(QUIET).await, None);
    emulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_512_kib_are_refused() {
    let (emulator, _arm) = seeded().await;
    let mut commander = connect(&emulator, "commander", "mosquitto").await.unwrap();
    commander
        .subscribe("factory/telemetry/#", QoS::AtLeastOnce)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    let large = dir.path().join("large");
    std::fs::write(&small, vec![b's'; 500 * 1024]).unwrap();
    std::fs::write(&large, vec![b'l'; 600 * 1024]).unwrap();
    let publish = |file: &Path| {
        mosquitto_pub(
            &emulator,
            "mqttbridge",
            &[
                "-V",
                "mqttv311",
                "-q",
                "1",
                "-t",
                "factory/telemetry/big",
                "-f",
                file.to_str().unwrap(),
            ],
        )
    };
    let (ok, stderr) = publish(&small);
    assert!(ok, "{stderr}");
    assert_eq!(
        commander.message(ARRIVAL).await.map(|m| m.len()),
        Some(500 * 1024)
    );
    // mosquitto closes the connection of a client that sends a packet over 512 KiB.
    let (ok, _) = publish(&large);
    assert!(!ok, "the 600 KiB publish was accepted");
    assert_eq!(commander.message(QUIET).await, None);
    emulator.shutdown().await.unwrap();
}
/// Event Grid's inbound quota per session, scaled down to 100 msg/s: after its 100 ms of
/// burst credit (10 messages) a session that publishes as fast as it can is slowed to the
/// quota, while a second session has a quota of its own. (A lower bound on the time taken:
/// proof of the throttle, not a speed goal.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_throttled_to_their_publish_quota() {
    let (emulator, _arm) = seeded_with(MqttConfig {
        session_publish_limit: Some(PublishLimit {
            messages_per_second: 100,
            bytes_per_second: 0,
        }),
        ..MqttConfig::default()
    })
    .await;
    let mut commander = connect(&emulator, "commander", "mosquitto").await.unwrap();
    commander
        .subscribe("factory/telemetry/#", QoS::AtMostOnce)
        .await;
    let a = connect(&emulator, "e4k-1", "mqttbridge").await.unwrap();
    let b = connect(&emulator, "e4k-2", "mqttbridge").await.unwrap();
    const EACH: usize = 40;
    let started = Instant::now();
    for i in 0..EACH {
        for (client, name) in [(&a, "a"), (&b, "b")] {
            client
                .client
                .publish(
                    "factory/telemetry/x",
                    QoS::AtMostOnce,
                    false,
                    format!("{name}{i}").into_bytes(),
                )
                .await
                .unwrap();
        }
    }
    let mut got = 0;
    while got < 2 * EACH {
        assert!(
            commander.message(ARRIVAL).await.is_some(),
            "only {got} messages arrived"
        );
        got += 1;
    }
    let elapsed = started.elapsed();
    // Each session: 10 at once, 30 at 100/s = at least 0.3 s; sharing one quota would take
    // 0.7 s.
    assert!(
        elapsed >= Duration::from_millis(280),
        "{elapsed:?}: not throttled"
    );
    emulator.shutdown().await.unwrap();
}
