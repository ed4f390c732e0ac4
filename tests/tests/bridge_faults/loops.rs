//! Two bridges routing one topic both ways between the same brokers: the hop limit ends the loop.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bridges_routing_one_topic_both_ways_do_not_loop() {
    const ROUTES: &str = "    - direction: local-to-remote
      name: out
      source: e2e/loop/#
    - direction: remote-to-local
      name: in
      source: e2e/loop/#
";
    const N: u64 = 100;
    let env = Env::new();
    let port = env.remote.port();
    // One bridge both ways first: No Local alone keeps every message from coming back.
    let x = start(&env.config("x", ROUTES, port), run_options());
    x.ready().await;
    let remote =
        Subscriber::start(env.remote_options("loop-remote", port), "e2e/loop/#", WAIT).await;
    let local_options = MqttOptions::new("loop-local", "127.0.0.1", env.local.port());
    let local = Subscriber::start(local_options, "e2e/loop/#", WAIT).await;
    let publisher = Publisher::connect(env.local.port(), "loop-pub", 1_000, WAIT).await;
    publisher.publish("e2e/loop/a", 0..N).await;
    let quiet = |remote: &Subscriber, local: &Subscriber| {
        let r = remote.tally(N);
        let l = local.tally(N);
        (r.received, l.received)
    };
    // Wait until the counts stop changing for 1 s.
    let settle = async |remote: &Subscriber, local: &Subscriber| {
        let deadline = Instant::now() + WAIT;
        let mut last = quiet(remote, local);
        let mut since = Instant::now();
        while since.elapsed() < Duration::from_secs(1) {
            assert!(Instant::now() < deadline, "still growing: {last:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = quiet(remote, local);
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
        last
    };
    let one = settle(&remote, &local).await;
    assert_eq!(one, (N, N), "one bridge: each message once on each broker");

    // A second bridge over the same brokers and topics: each one receives what the other
    // published (No Local cannot help across sessions); the hop limit ends the loop.
    let y = start(&env.config("y", ROUTES, port), run_options());
    y.ready().await;
    publisher.publish("e2e/loop/a", 0..N).await;
    let two = settle(&remote, &local).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = quiet(&remote, &local);
    let hop_limit = u64::from(e4k_bridge::engine::DEFAULT_HOP_LIMIT);
    let drops = metric(&x.handle.metrics(), "e4k_bridge_messages_dropped_total")
        + metric(&y.handle.metrics(), "e4k_bridge_messages_dropped_total");
    eprintln!(
        "loops: one bridge {one:?} (remote, local); two bridges {two:?} then {later:?} \
         after 2 s more; drops {drops} (hop limit {hop_limit})"
    );
    assert_eq!(two, later, "the counts keep growing: a loop");
    // Each bridge forwards what the other published, so every hop doubles back once per
    // bridge until the hop limit: per message, the remote sees hops 1, 3, .., 7 twice each
    // (8 copies) and the local broker the original plus hops 2, 4, .., 8 twice each (9);
    // both bridges drop the copies with 8 hops.
    assert_eq!(
        two,
        (N + N * hop_limit, N + N * (hop_limit + 1)),
        "copies beyond what the hop limit allows"
    );
    #[allow(clippy::cast_precision_loss)]
    let expected_drops = (2 * N) as f64;
    assert_eq!(drops, expected_drops, "hop-limit drops");
    x.stop().await;
    y.stop().await;
}
