//! Shared-subscription members: through their instance's main session, or with remote sessions
//! of their own.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_members_publish_through_their_instance_main_session() {
    // 2 instances; a local-to-remote shared route (1 member per instance) next to a plain
    // route: each remote main session publishes for two origins, its instance's local main
    // session and its member.
    const ROUTES: &str = "    - direction: local-to-remote
      name: out
      source: e2e/out/#
    - direction: local-to-remote
      name: share
      source: e2e/share/#
      sharedSubscription:
        groupName: g
        groupMinimumShareNumber: 2
";
    let env = Env::new("");
    let configs = env.config(2, ROUTES);
    assert_eq!(configs[0].remote_session_count(), 2);
    assert_eq!(configs[0].local_session_count(), 4);
    let bridge = start_bridge(&configs, run_options());
    bridge.ready().await;
    let ids = |broker: &str| client_ids(&bridge, broker);
    assert_eq!(
        ids("remote"),
        BTreeSet::from(["e4k-0".into(), "e4k-1".into()])
    );
    assert_eq!(
        ids("local"),
        BTreeSet::from([
            "e4k-0".into(),
            "e4k-1".into(),
            "e4k-share-0".into(),
            "e4k-share-1".into()
        ])
    );

    let (mut remote, local) = clients(&env, "share", "e2e/#", QoS::AtLeastOnce).await;
    const N: usize = 300;
    for i in 0..N {
        local
            .publish("e2e/share/seq", QoS::AtLeastOnce, false, format!("{i}"))
            .await;
        local
            .publish("e2e/out/seq", QoS::AtLeastOnce, false, format!("{i}"))
            .await;
    }
    let mut shared = vec![0_u32; N];
    let mut plain = vec![0_u32; N];
    for _ in 0..2 * N {
        let got = remote.recv().await;
        let n: usize = String::from_utf8_lossy(&got.payload).parse().unwrap();
        match &got.topic[..] {
            b"e2e/share/seq" => shared[n] += 1,
            b"e2e/out/seq" => plain[n] += 1,
            other => panic!("unexpected topic {}", String::from_utf8_lossy(other)),
        }
    }
    assert!(shared.iter().all(|&c| c == 1), "shared route: {shared:?}");
    assert!(plain.iter().all(|&c| c == 1), "plain route: {plain:?}");
    assert!(remote.try_recv(Duration::from_millis(300)).await.is_none());
    for route in ["share", "out"] {
        bridge
            .wait_metric(&format!(
                "e4k_bridge_messages_forwarded_total{{bridge=\"test-bridge\",route=\"{route}\",direction=\"local-to-remote\"}} {N}"
            ))
            .await;
    }
    bridge.stop().await;

    // The sources were acknowledged: a restart with the same sessions gets nothing again.
    let bridge = start_bridge(&configs, run_options());
    bridge.ready().await;
    assert!(
        remote.try_recv(Duration::from_secs(1)).await.is_none(),
        "redelivered after a restart"
    );
    bridge.stop().await;

    // The remote broker only ever saw the two main sessions (and the test client).
    let log = env.remote.log();
    let clients: BTreeSet<&str> = log
        .lines()
        .filter(|line| line.contains("New client connected"))
        .filter_map(|line| line.split(" as ").nth(1))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    assert_eq!(
        clients,
        BTreeSet::from(["e4k-0", "e4k-1", "share-remote"]),
        "{log}"
    );
}
/// With `e4k.dev/shared-subscription-sessions: both`, each member of a local-to-remote shared
/// route publishes through a remote session of its own: the route spreads over as many remote
/// sessions as it has members (Event Grid's quota is per session), and every message still
/// arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_members_with_their_own_remote_sessions_spread_the_route() {
    const ROUTES: &str = "    - direction: local-to-remote
      name: share
      source: e2e/share/#
      sharedSubscription:
        groupName: g
        groupMinimumShareNumber: 3
";
    let env = Env::new("");
    let yaml = setup::yaml(1, ROUTES).replace(
        "  name: test-bridge\n",
        "  name: test-bridge\n  annotations:\n    e4k.dev/shared-subscription-sessions: both\n",
    );
    let configs = resolve_to(&env, &yaml, env.remote.port(), &env.pki.root_file);
    assert_eq!(configs[0].remote_session_counts(), (0, 3));
    let bridge = start_bridge(&configs, run_options());
    bridge.ready().await;
    let members: BTreeSet<String> = (0..3).map(|m| format!("e4k-share-{m}")).collect();
    for broker in ["local", "remote"] {
        let ids = client_ids(&bridge, broker);
        assert_eq!(ids, members, "{broker}");
    }
    let (mut remote, local) = clients(&env, "spread", "e2e/#", QoS::AtLeastOnce).await;
    const N: usize = 300;
    publish_numbers(&local, "e2e/share/seq", N).await;
    let mut seen = vec![0_u32; N];
    for _ in 0..N {
        let got = remote.recv().await;
        seen[String::from_utf8_lossy(&got.payload)
            .parse::<usize>()
            .unwrap()] += 1;
    }
    assert!(seen.iter().all(|&c| c == 1), "{seen:?}");
    bridge
        .wait_metric(&format!(
            "e4k_bridge_messages_forwarded_total{{bridge=\"test-bridge\",route=\"share\",direction=\"local-to-remote\"}} {N}"
        ))
        .await;
    // Every member's remote session carried part of the route.
    let text = bridge.handle.metrics();
    let mut total = 0.0;
    for member in &members {
        let published = metric(
            &text,
            &format!(
                "e4k_bridge_connection_published_total{{bridge=\"test-bridge\",broker=\"remote\",client_id=\"{member}\"}}"
            ),
        );
        assert!(published > 0.0, "{member} published nothing:\n{text}");
        total += published;
    }
    assert!((total - N as f64).abs() < f64::EPSILON, "{text}");
    bridge.stop().await;
}
