//! Outages on the path of the forwards: a silent network cut, the remote broker down and back, the
//! local broker restarted; every sequence number arrives.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_network_cut_is_detected_by_keep_alive_and_nothing_is_lost() {
    let env = Env::new();
    let (proxy, bridge, subscriber) = behind_proxy(&env, "cut-sub").await;
    let publisher = publish_sequence(env.local.port(), "cut-pub").await;

    // Mid-stream, the path to the remote goes silent: no FIN, no RST, bytes vanish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.set_mode(Mode::Blackhole);
    let cut = Instant::now();
    let detected = bridge
        .wait_for_within(2 * KEEP_ALIVE + Duration::from_secs(3), |r| {
            r.connections
                .iter()
                .any(|c| c.broker == "remote" && !c.connected)
        })
        .await
        .unwrap_or_else(|r| panic!("the cut was not detected:\n{r:#?}"));
    let detection = cut.elapsed();
    // The network heals; connections opened into the blackhole are closed.
    proxy.set_mode(Mode::Pass);
    proxy.cut();

    let published = publisher.await.unwrap();
    bridge.ready().await;
    check_delivery(
        "network cut",
        &subscriber,
        &published,
        u64::from(WINDOW),
        &format!(
            "cut detected after {:.1} s (keep-alive {} s): {}",
            detection.as_secs_f64(),
            KEEP_ALIVE.as_secs(),
            remote_status(&detected)
        ),
    )
    .await;
    assert!(detection <= 2 * KEEP_ALIVE + Duration::from_secs(1));
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_broker_down_then_back_with_its_persistence_loses_nothing() {
    // The 15 s: longer than the 10-s stream, so the end of it queues in the local broker.
    const OUTAGE: Duration = Duration::from_secs(15);
    let mut env = Env::new();
    let port = env.remote.port();
    let bridge = start(&env.config("e4k", OUT_ROUTE, port), run_options());
    bridge.ready().await;
    let subscriber = Subscriber::start(env.remote_options("down-sub", port), TOPIC, WAIT).await;
    let publisher = publish_sequence(env.local.port(), "down-pub").await;

    tokio::time::sleep(Duration::from_secs(2)).await;
    faults::terminate(&mut env.remote).unwrap();
    let down = Instant::now();
    let me = std::process::id();
    let rss_start = e4k_tests::measure::vm_rss_kib(me).unwrap_or(0);
    let mut rss_max = rss_start;
    while down.elapsed() < OUTAGE {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rss_max = rss_max.max(e4k_tests::measure::vm_rss_kib(me).unwrap_or(0));
    }
    let listener = env.pki.remote_listener(Some(&env.remote_store()));
    env.remote = Mosquitto::start_on(port, &listener).unwrap();

    let published = publisher.await.unwrap();
    bridge.ready().await;
    // The remote may also redeliver to the subscriber what was in flight to it when it
    // stopped (mosquitto's max_inflight_messages, 20).
    check_delivery(
        "remote down",
        &subscriber,
        &published,
        u64::from(WINDOW) + 20,
        &format!(
            "outage {} s; test-process RSS {} KiB at the stop, at most {} KiB during the outage",
            OUTAGE.as_secs(),
            rss_start,
            rss_max
        ),
    )
    .await;
    // The messages queued meanwhile stay in the local broker, not in the bridge.
    assert!(
        rss_max.saturating_sub(rss_start) < 32 * 1024,
        "memory grew by {} KiB during the outage",
        rss_max - rss_start
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_broker_restart_with_persistence_loses_nothing() {
    // The local broker keeps its sessions on disk: the bridge's session, with what it has not
    // acknowledged yet, outlives the restart.
    let mut env = Env::new();
    let store = env.dir.path().join("local-store");
    std::fs::create_dir_all(&store).unwrap();
    let local_port = env.local.port();
    faults::terminate(&mut env.local).unwrap();
    env.local = Mosquitto::start_on(local_port, &faults::local_listener(Some(&store))).unwrap();
    // The remote is behind a proxy, so that the bridge can be made to hold messages it has
    // not forwarded yet when the local broker restarts.
    let (proxy, bridge, subscriber) = behind_proxy(&env, "restart-sub").await;

    // 6 s of stream, every message acknowledged by the local broker. From its 3rd second the
    // path to the remote is silent: the bridge's window fills with forwards the remote never
    // acknowledges (so the bridge acknowledges none of them to the local broker), and the
    // rest of the stream piles up in the bridge's session on the local broker.
    let half = Duration::from_secs(6);
    let first = publish_range(local_port, "restart-pub-1", 0, half).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.set_mode(Mode::Blackhole);
    let first = first.await.unwrap();
    let held = metric(&bridge.handle.metrics(), "e4k_bridge_messages_inflight");
    // The restart: the broker writes its sessions (with the unacknowledged and queued
    // messages) to disk and reads them back. Then the path to the remote heals.
    faults::terminate(&mut env.local).unwrap();
    env.local = Mosquitto::start_on(local_port, &faults::local_listener(Some(&store))).unwrap();
    proxy.set_mode(Mode::Pass);
    proxy.cut();
    bridge.ready().await;
    let second = publish_range(local_port, "restart-pub-2", first.sent, half)
        .await
        .await
        .unwrap();
    let published = Published {
        sent: second.sent,
        rate: first.rate.min(second.rate),
    };
    assert!(
        held > 0.0,
        "the bridge held nothing when the local broker restarted"
    );
    check_delivery(
        "local restart",
        &subscriber,
        &published,
        // Each forward the bridge held when its local session went away is published once
        // from the bridge's own resend list (it keeps them in case the broker lost the
        // session) and once more when the restarted broker delivers it again: up to twice
        // the window.
        2 * u64::from(WINDOW),
        &format!(
            "the local broker restarted with persistence after 6 s of stream, while the bridge \
             held {held} unacknowledged forwards (remote cut off for the last 3 s)"
        ),
    )
    .await;
    bridge.stop().await;
}
