//! Who may connect and publish: the seed's commander and bridge, refused clients, the session
//! limit per client name.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commander_publishes_commands_and_the_bridge_receives_them() {
    let (emulator, _arm) = seeded().await;
    let mut bridge = connect(&emulator, "bridge-1", "mqttbridge").await.unwrap();
    bridge.subscribe("command/#", QoS::AtLeastOnce).await;

    // The real mosquitto client (MQTT 3.1.1), as the seed's commander uses it.
    let (ok, stderr) = mosquitto_pub(
        &emulator,
        "mosquitto",
        &[
            "-V",
            "mqttv311",
            "-i",
            "commander",
            "-q",
            "1",
            "-t",
            "command/x",
            "-m",
            "from-cli",
        ],
    );
    assert!(ok, "mosquitto_pub failed: {stderr}");
    assert_eq!(bridge.message(ARRIVAL).await.as_deref(), Some("from-cli"));

    // And over MQTT 5: PUBACK success.
    let mut commander = connect(&emulator, "commander-5", "mosquitto")
        .await
        .unwrap();
    assert_eq!(
        commander.publish("command/x", "from-v5").await,
        Ok(PubAckReason::Success)
    );
    assert_eq!(bridge.message(ARRIVAL).await.as_deref(), Some("from-v5"));
    emulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_may_not_publish_commands() {
    let (emulator, _arm) = seeded().await;
    let mut commander = connect(&emulator, "commander", "mosquitto").await.unwrap();
    commander.subscribe("command/#", QoS::AtLeastOnce).await;
    let mut bridge = connect(&emulator, "bridge-1", "mqttbridge").await.unwrap();

    // mosquitto answers a denied v5 QoS 1 PUBLISH with PUBACK 0x87 and delivers nothing.
    assert_eq!(
        bridge.publish("command/x", "forged").await,
        Ok(PubAckReason::NotAuthorized)
    );
    assert_eq!(commander.message(QUIET).await, None);
    // Not a commander, so no telemetry subscription either. Event Grid answers SUBACK 0x87;
    // mosquitto (acl_file) grants the SUBSCRIBE but delivers nothing the ACL does not let
    // the client read.
    bridge
        .subscribe("factory/telemetry/#", QoS::AtLeastOnce)
        .await;
    assert_eq!(
        commander
            .publish("factory/telemetry/t", "not for the bridge")
            .await,
        Ok(PubAckReason::Success)
    );
    assert_eq!(bridge.message(QUIET).await, None);
    // With the CLI (3.1.1) the publish "succeeds" for the client, and is dropped.
    let (ok, stderr) = mosquitto_pub(
        &emulator,
        "mqttbridge",
        &[
            "-V",
            "mqttv311",
            "-i",
            "bridge-cli",
            "-q",
            "1",
            "-t",
            "command/x",
            "-m",
            "forged",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(commander.message(QUIET).await, None);
    emulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_foreign_and_disabled_clients_are_refused() {
    let (emulator, _arm) = seeded().await;
    // A certificate from the uploaded CA whose CN is no registered client: CONNACK 0x86.
    assert_eq!(
        refused(connect(&emulator, "intruder", "intruder").await),
        ConnectReturnCode::BadUserNamePassword
    );
    // A registered name whose certificate does not match it (username says mosquitto,
    // certificate says intruder): 0x86.
    let mut spoof = options(&emulator, "spoof", "intruder");
    spoof.set_credentials("mosquitto", "");
    assert_eq!(
        refused(connect_with(spoof).await),
        ConnectReturnCode::BadUserNamePassword
    );
    // A disabled client: 0x87.
    assert_eq!(
        refused(connect(&emulator, "sleeper", "sleeper").await),
        ConnectReturnCode::NotAuthorized
    );
    // A certificate from a CA that was never uploaded fails the TLS handshake.
    match connect(&emulator, "foreign", "foreign-mosquitto").await {
        Err(ConnectionError::ConnectionRefused(code)) => {
            panic!("TLS should fail, got CONNACK {code:?}")
        }
        Err(_) => {}
        Ok(_) => panic!("a foreign CA's certificate was accepted"),
    }
    // The 3.1.1 CLI sees return code 4.
    let (ok, stderr) = mosquitto_pub(
        &emulator,
        "intruder",
        &["-V", "mqttv311", "-t", "factory/telemetry/x", "-m", "x"],
    );
    assert!(!ok);
    assert!(stderr.contains("bad user name or password"), "{stderr}");
    emulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fourth_session_of_a_name_is_refused() {
    let (emulator, _arm) = seeded().await;
    let mut sessions = Vec::new();
    for i in 1..=3 {
        sessions.push(
            connect(&emulator, &format!("bridge-{i}"), "mqttbridge")
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        refused(connect(&emulator, "bridge-4", "mqttbridge").await),
        ConnectReturnCode::QuotaExceeded
    );
    // Other names are not affected.
    let _commander = connect(&emulator, "commander", "mosquitto").await.unwrap();
    // A session that ends frees its slot.
    drop(sessions.pop());
    let deadline = Instant::now() + ARRIVAL;
    loop {
        match connect(&emulator, "bridge-4", "mqttbridge").await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the slot was not freed: {e:?}"),
        }
    }
    emulator.shutdown().await.unwrap();
}
