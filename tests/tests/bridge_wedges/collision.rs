//! rumqtt#1056 / #1014: a packet-id collision, then the connection lost; over MQTT 5 and 3.1.1.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collision_then_connection_loss_does_not_wedge_the_remote_session() {
    collision_then_connection_loss(MqttVersion::V5).await;
}

/// The same wedge in rumqttc's MQTT 3.1.1 client (`protocol: v3`), which has the same
/// stash (`state.collision`) and the same workaround. MQTT 3.1.1 has no Receive Maximum: the
/// client's own in-flight limit (the bridge's window, here 4) makes it cycle 1..=4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collision_then_connection_loss_does_not_wedge_an_mqtt_3_1_1_session() {
    collision_then_connection_loss(MqttVersion::V3).await;
}

async fn collision_then_connection_loss(version: MqttVersion) {
    /// The remote's Receive Maximum (MQTT 5) or the bridge's window (MQTT 3.1.1): rumqttc
    /// cycles packet identifiers 1..=4.
    const RECEIVE_MAXIMUM: u16 = 4;
    /// Published before the cut, while the first connection is collided.
    const BEFORE: u64 = 20;
    /// Published right after the cut.
    const AFTER: u64 = 20;
    const N: u64 = BEFORE + AFTER;
    /// How long the collided connection must stay silent to count as collided (a bridge
    /// that is not collided writes the next message within milliseconds).
    const QUIET: Duration = Duration::from_secs(1);
    /// How long the bridge may take, after the cut, to deliver everything on the next
    /// connection: a reconnect (backoff ≤ 400 ms) and 40 small messages. rumqttc's own way
    /// out of a collision, `CollisionTimeout`, comes after two keep-alives (10 s) and does not
    /// help after a connection loss: the next connection is wedged again.
    const RECOVERY: Duration = Duration::from_secs(4);
    const _: () = assert!(RECOVERY.as_secs() < 2 * KEEP_ALIVE.as_secs());

    let local = Mosquitto::start(&faults::local_listener(None)).unwrap();
    let mut remote = ScriptedBroker::start(Script {
        receive_maximum: RECEIVE_MAXIMUM,
        connections: vec![ConnScript {
            session_present: false,
            behaviour: Behaviour::WithholdFirst,
        }],
        then: ConnScript::behave(true),
    })
    .await
    .unwrap();
    // MQTT 5 takes the limit from the remote's CONNACK; MQTT 3.1.1 from the bridge's window.
    let window = match version {
        MqttVersion::V5 => WINDOW,
        MqttVersion::V3 => RECEIVE_MAXIMUM,
    };
    let bridge = start_with(&config_with(local.port(), remote.port(), version), window);
    bridge.ready().await;
    let publisher = Publisher::connect(local.port(), "wedge-pub", 1_000, WAIT).await;
    publisher.publish(TOPIC, 0..BEFORE).await;
    publisher.wait_acked(BEFORE, WAIT).await;

    // rumqttc 0.25 (MQTT 3.1.1) cycles identifiers 1..=4 and collides; rumqttc-v5-next
    // (MQTT 5) takes the next free identifier, so the withheld one only holds its own message.
    let collides = version == MqttVersion::V3;
    let (first, expected_held) = if collides {
        // The first connection: packets 1..=4 written, 2..=4 acknowledged, 1 withheld.
        remote
            .wait_for(WAIT, |c| {
                c.first()
                    .is_some_and(|c| c.publishes.len() >= 4 && c.acked.len() >= 3)
            })
            .await
            .unwrap_or_else(|c| panic!("the window never filled:\n{}", describe(&c)));
        // The collision: rumqttc gave the fifth message packet id 1 again, found it in
        // flight, stashed the message and stopped reading requests. Three identifiers are
        // free and the bridge holds 17 more messages, yet nothing more is written.
        tokio::time::sleep(QUIET).await;
        let first = remote.connections().swap_remove(0);
        assert_eq!(
            first.publishes,
            [1, 2, 3, 4],
            "not the collision: with packet 1 withheld and 2..=4 acknowledged, the bridge \
             should have written nothing after the window filled"
        );
        assert_eq!(first.acked, [2, 3, 4]);
        (first, BEFORE - 3)
    } else {
        // Every message is written: the first on packet 1 (withheld), the others on 2..=4,
        // reused as their PUBACKs come; packet 1 is never reused while in flight.
        #[allow(clippy::cast_possible_truncation)]
        let all = BEFORE as usize;
        remote
            .wait_for(WAIT, |c| {
                c.first()
                    .is_some_and(|c| c.publishes.len() >= all && c.acked.len() >= all - 1)
            })
            .await
            .unwrap_or_else(|c| panic!("a withheld PUBACK held up the others:\n{}", describe(&c)));
        tokio::time::sleep(QUIET).await;
        let first = remote.connections().swap_remove(0);
        assert_eq!(first.publishes.len(), all, "{first:?}");
        assert_eq!(first.publishes.iter().filter(|&&id| id == 1).count(), 1);
        assert!(first.publishes.iter().all(|id| (1..=4).contains(id)));
        (first, 1)
    };
    let mut arrivals = Arrivals::default();
    arrivals.drain(&mut remote);
    assert!(first.open, "the first connection ended: {:?}", first.ended);
    assert_eq!(first.withheld, Some(1));
    assert_eq!(arrivals.seqs_with(0, &[1]), [0]);
    assert_eq!(first.version, Some(version));
    let held = metric(&bridge.handle.metrics(), "e4k_bridge_messages_inflight");
    // Over MQTT 3.1.1 too: the bridge reads on up to twice its window plus 64 (the local
    // broker has no Receive Maximum to honour there).
    #[allow(clippy::cast_precision_loss)]
    let expected_held = expected_held as f64;
    assert_eq!(
        held, expected_held,
        "the bridge should hold every message the remote has not acknowledged"
    );
    // Connected, so ready: readiness cannot see a collision.
    assert!(bridge.handle.readiness().ready);

    // The remote connection breaks while collided: no DISCONNECT, the socket closes.
    assert!(remote.disconnect(0));
    let cut = Instant::now();
    publisher.publish(TOPIC, BEFORE..N).await;

    // Everything the first connection did not acknowledge must arrive on a later one.
    let settled = arrivals.seqs_with(0, &first.acked);
    let resumed = arrivals
        .wait(&mut remote, cut + RECOVERY, |a| {
            a.missing_after(0, N, &settled).is_empty()
        })
        .await;
    let recovered = cut.elapsed();
    if !resumed {
        let missing = arrivals.missing_after(0, N, &settled);
        panic!(
            "wedged: {} of {N} messages not delivered {:.1} s after the cut: {} (is rumqttc's \
             stashed collision still cleared when a connection is lost?)\nscripted \
             connections:\n{}\nbridge: {:#?}",
            missing.len(),
            recovered.as_secs_f64(),
            ranges(&missing),
            describe(&remote.connections()),
            bridge.handle.readiness(),
        );
    }
    bridge
        .wait_for_within(RECOVERY, |r| r.ready)
        .await
        .unwrap_or_else(|r| panic!("the bridge is not ready again:\n{r:#?}"));
    publisher.wait_acked(N, WAIT).await;

    // Let late duplicates land, then count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    arrivals.drain(&mut remote);
    let connections = remote.connections();
    assert_eq!(
        connections.len(),
        2,
        "the second connection should have carried everything:\n{}",
        describe(&connections)
    );
    assert!(
        arrivals.unexpected.is_empty(),
        "unexpected publishes: {:?}",
        arrivals.unexpected
    );
    assert!(arrivals.missing(N).is_empty());
    assert_eq!(arrivals.beyond(N), 0, "numbers never published arrived");
    let duplicates = arrivals.duplicates();
    assert!(
        duplicates <= u64::from(RECEIVE_MAXIMUM),
        "{duplicates} duplicates, more than the remote's window of {RECEIVE_MAXIMUM}"
    );
    let retried = metric(
        &bridge.handle.metrics(),
        "e4k_bridge_messages_retried_total",
    );
    if collides {
        // Only the withheld message had been written and not acknowledged: the ones rumqttc
        // held back (the collided one, the queued ones) were published for the first time.
        assert!(
            (retried - 1.0).abs() < f64::EPSILON,
            "{retried} forwards counted as retried; only the withheld one was"
        );
    } else {
        // The withheld one, and what was written to the closing socket before the loss was
        // seen: at most a window.
        assert!(
            (1.0..=f64::from(RECEIVE_MAXIMUM)).contains(&retried),
            "{retried} forwards counted as retried; expected the withheld one and at most \
             a window written as the connection closed"
        );
    }
    eprintln!(
        "collision then cut: the first connection wrote packet ids {:?}, withheld {:?}, then \
         nothing for {} ms with {held} messages held; after the cut all {N} arrived within {} \
         ms, on connection #1 ({duplicates} duplicates, {retried} forwards re-published)",
        first.publishes,
        first.withheld,
        QUIET.as_millis(),
        recovered.as_millis(),
    );
    bridge.stop().await;
}
