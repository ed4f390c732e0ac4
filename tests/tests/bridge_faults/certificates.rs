//! The bridge's certificate files replaced while it runs: the next reconnect uses them.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_certificate_files_are_used_at_the_next_reconnect() {
    let env = Env::new();
    let (proxy, bridge, subscriber) = behind_proxy(&env, "rotate-sub").await;
    let publisher = publish_sequence(env.local.port(), "rotate-pub").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // cert-manager renews the secret: a new key and certificate, here with another name so
    // that the remote's log tells which one the bridge presented.
    env.pki.rotate_bridge_cert("mqttbridge-rotated").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !env.remote.log().contains("u'mqttbridge-rotated'"),
        "reconnected without a cause"
    );
    // The connection drops (a cut with RST/FIN this time): the next handshake uses the files.
    proxy.cut();
    let deadline = Instant::now() + WAIT;
    while !env.remote.log().contains("u'mqttbridge-rotated'") {
        assert!(
            Instant::now() < deadline,
            "the bridge did not reconnect with the new certificate:\n{}",
            env.remote.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let published = publisher.await.unwrap();
    bridge.ready().await;
    check_delivery(
        "certificate rotation",
        &subscriber,
        &published,
        u64::from(WINDOW),
        "reconnected with the new certificate",
    )
    .await;
    bridge.stop().await;
}
