//! Messages queued for subscribers that fall behind or are offline.

use super::*;

/// Publishes `n` QoS 1 messages `0..n` on `factory/telemetry/lag` as `mqttbridge`, each
/// acknowledged before the next.
async fn publish_numbered(emulator: &RunningEmulator, n: usize) {
    let mut publisher = connect(emulator, "e4k-lag", "mqttbridge").await.unwrap();
    for i in 0..n {
        assert_eq!(
            publisher
                .publish("factory/telemetry/lag", &i.to_string())
                .await,
            Ok(PubAckReason::Success)
        );
    }
}

/// Acknowledges every message `subscriber` (manual acks) receives until `n` distinct payloads
/// arrived or none arrives for [`ARRIVAL`]; how many distinct ones arrived.
async fn ack_until(subscriber: &mut Client, n: usize) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < n {
        match subscriber
            .next(ARRIVAL, |p| matches!(p, Packet::Publish(_)))
            .await
        {
            Some(Ok(Packet::Publish(publish))) => {
                subscriber.client.ack(&publish).await.unwrap();
                seen.insert(publish.payload);
            }
            _ => break,
        }
    }
    seen.len()
}

/// A connected subscriber that falls behind (it acknowledges nothing while 400 messages are
/// published) still gets every QoS 1 message: the broker keeps up to 1,000 in flight to it
/// (Event Grid's in-flight limit) rather than queueing 100 and dropping the rest, as
/// mosquitto does with its defaults. The 100-message limit is for offline sessions only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_subscriber_that_falls_behind_loses_nothing() {
    const N: usize = 400;
    let (emulator, _arm) = seeded().await;
    let mut options = options(&emulator, "lagging", "mosquitto");
    options.set_manual_acks(true);
    let mut subscriber = connect_with(options).await.unwrap();
    subscriber
        .subscribe("factory/telemetry/lag", QoS::AtLeastOnce)
        .await;
    publish_numbered(&emulator, N).await;
    assert_eq!(ack_until(&mut subscriber, N).await, N);
    emulator.shutdown().await.unwrap();
}

/// An offline persistent session keeps Event Grid's 100 messages: the first 100 published
/// while it is away arrive when it comes back, the rest do not (Event Grid ends such a
/// session; the emulator's broker drops the excess, see emulator/README.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_session_keeps_100_messages() {
    let (emulator, _arm) = seeded().await;
    let persistent = || {
        let mut options = options(&emulator, "away", "mosquitto");
        options.set_clean_start(false);
        options.set_session_expiry_interval(Some(3600));
        options
    };
    let mut subscriber = connect_with(persistent()).await.unwrap();
    subscriber
        .subscribe("factory/telemetry/lag", QoS::AtLeastOnce)
        .await;
    subscriber.client.disconnect().await.unwrap();
    assert!(
        subscriber.next(ARRIVAL, |_| false).await.is_some(),
        "the subscriber's connection ends"
    );
    drop(subscriber);
    publish_numbered(&emulator, 150).await;
    let mut back = connect_with(persistent()).await.unwrap();
    assert!(back.connack.session_present);
    let mut got = Vec::new();
    while let Some(payload) = back.message(QUIET).await {
        got.push(payload.parse::<usize>().unwrap());
    }
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    emulator.shutdown().await.unwrap();
}
