//! rumqtt#1025: bursty acknowledgements under load must not freeze the bridge; over MQTT 5 and
//! 3.1.1.

use super::*;

/// What [`sample`] saw while the load ran.
#[derive(Debug, Default)]
struct Samples {
    /// Samples in which the bridge was not ready.
    not_ready: u64,
    /// The first of them.
    first_not_ready: Option<Readiness>,
    /// The most forwards the bridge held unsettled (`e4k_bridge_messages_inflight`).
    max_unsettled: f64,
}

/// Samples the bridge's readiness and unsettled forwards every 10 ms until `stop` is cancelled.
fn sample(handle: BridgeHandle, stop: CancellationToken) -> tokio::task::JoinHandle<Samples> {
    tokio::spawn(async move {
        let mut samples = Samples::default();
        while !stop.is_cancelled() {
            let unsettled = metric(&handle.metrics(), "e4k_bridge_messages_inflight");
            samples.max_unsettled = samples.max_unsettled.max(unsettled);
            let readiness = handle.readiness();
            if !readiness.ready {
                samples.not_ready += 1;
                samples.first_not_ready.get_or_insert(readiness);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        samples
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursty_acknowledgements_under_load_do_not_freeze_the_bridge() {
    bursty_acknowledgements_under_load(MqttVersion::V5).await;
}

/// The same load over MQTT 3.1.1 (`protocol: v3`): rumqttc's 3.1.1 client has the same event
/// loop and request channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursty_acknowledgements_under_load_do_not_freeze_an_mqtt_3_1_1_bridge() {
    bursty_acknowledgements_under_load(MqttVersion::V3).await;
}

async fn bursty_acknowledgements_under_load(version: MqttVersion) {
    const N: u64 = 20_000;
    /// The remote's Receive Maximum, half the bridge's window: the bridge takes messages in
    /// faster than it may publish them, so its publishes queue in rumqttc's request channel.
    /// (MQTT 3.1.1 has none: there the bridge's window is what rumqttc may have in flight.)
    const RECEIVE_MAXIMUM: u16 = WINDOW / 2;
    let inflight = match version {
        MqttVersion::V5 => RECEIVE_MAXIMUM,
        MqttVersion::V3 => WINDOW,
    };
    /// The remote holds its acknowledgements this long, then sends them all: the in-flight
    /// window fills and then drains at once, 2,500 messages per second at most.
    const BURST: Duration = Duration::from_millis(20);
    /// The bound for "not frozen": about 8 s of bursts are needed, the rest is slack.
    const DELIVERY: Duration = Duration::from_secs(60);

    let local = Mosquitto::start(&faults::local_listener(None)).unwrap();
    let mut remote = ScriptedBroker::start(Script {
        receive_maximum: RECEIVE_MAXIMUM,
        connections: Vec::new(),
        then: ConnScript {
            session_present: false,
            behaviour: Behaviour::AckInBursts(BURST),
        },
    })
    .await
    .unwrap();
    let bridge = start(&config_with(local.port(), remote.port(), version));
    bridge.ready().await;
    let stop_sampling = CancellationToken::new();
    let sampler = sample(bridge.handle.clone(), stop_sampling.clone());

    let started = Instant::now();
    let publisher = Publisher::connect(local.port(), "load-pub", 1_000, WAIT).await;
    publisher.publish(TOPIC, 0..N).await;
    let published = started.elapsed();
    let mut arrivals = Arrivals::default();
    let all = arrivals
        .wait(&mut remote, started + DELIVERY, |a| a.missing(N).is_empty())
        .await;
    let delivered = started.elapsed();
    if !all {
        panic!(
            "frozen: {} of {N} messages missing after {:.1} s: {}\nscripted connections:\n{}\n\
             bridge: {:#?}",
            arrivals.missing(N).len(),
            delivered.as_secs_f64(),
            ranges(&arrivals.missing(N)),
            describe(&remote.connections()),
            bridge.handle.readiness(),
        );
    }
    publisher.wait_acked(N, WAIT).await;
    // Let late duplicates land, then count.
    tokio::time::sleep(Duration::from_millis(200)).await;
    arrivals.drain(&mut remote);
    stop_sampling.cancel();
    let samples = sampler.await.unwrap();

    let connections = remote.connections();
    assert_eq!(
        connections.len(),
        1,
        "the bridge reconnected under load:\n{}",
        describe(&connections)
    );
    assert!(
        samples.first_not_ready.is_none(),
        "the bridge was not ready in {} samples; the first: {:#?}",
        samples.not_ready,
        samples.first_not_ready
    );
    assert!(
        arrivals.unexpected.is_empty(),
        "unexpected publishes: {:?}",
        &arrivals.unexpected[..arrivals.unexpected.len().min(5)]
    );
    assert_eq!(arrivals.beyond(N), 0, "numbers never published arrived");
    assert_eq!(arrivals.duplicates(), 0, "duplicates without a reconnect");
    assert_eq!(
        connections[0].acked.len(),
        usize::try_from(N).unwrap(),
        "the remote did not acknowledge every message"
    );
    assert_eq!(connections[0].version, Some(version));
    // The condition under test: more forwards pending than rumqttc may have in flight, i.e.
    // publishes waiting in its request channel.
    assert!(
        samples.max_unsettled > f64::from(inflight),
        "the load never queued publishes behind the in-flight window: at most {} unsettled",
        samples.max_unsettled
    );
    // Beyond the in-flight window, the channel (capacity = the bridge's window) and the one
    // forward the publisher holds, forwards wait in the engine's queue: the channel was full.
    let channel_full = samples.max_unsettled > f64::from(inflight) + f64::from(WINDOW) + 1.0;
    eprintln!(
        "load ({version:?}): {N} messages published in {} ms, all delivered after {} ms \
         through a remote acknowledging every {} ms (in flight at most {inflight}, bridge \
         window {WINDOW}); at most {} forwards unsettled (rumqttc's request channel full: \
         {channel_full}); one connection, ready throughout",
        published.as_millis(),
        delivered.as_millis(),
        BURST.as_millis(),
        samples.max_unsettled
    );
    bridge.stop().await;
}
