//! Certificates and trust: a wrong CA, an expired then rotated client certificate, a name the
//! ACL refuses, a replaced trusted CA.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_is_reported_and_retried() {
    let env = Env::new("");
    let other = Pki::new(&env.dir.path().join("other-pki"), "other");
    let configs = resolve_to(
        &env,
        &setup::yaml(1, BOTH_WAYS),
        env.remote.port(),
        &other.root_file,
    );
    let bridge = start_bridge(&configs, run_options());
    let readiness = wait_for_error(&bridge, "not signed by a trusted CA").await;
    assert!(!readiness.ready);
    bridge
        .wait_for(|_| {
            metric(
                &bridge.handle.metrics(),
                "e4k_bridge_connection_attempts_failed_total{bridge=\"test-bridge\",broker=\"remote\"",
            ) >= 3.0
        })
        .await
        .unwrap_or_else(|r| panic!("not retrying: {r:#?}"));
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_client_certificate_is_reported_then_a_rotated_one_is_used() {
    let env = Env::new("");
    let secrets = env.secrets();
    env.pki.client_secret(
        &secrets,
        "bridge-client-cert",
        "mqttbridge",
        Validity::Expired,
    );
    let bridge = start_bridge(&env.config(1, BOTH_WAYS), run_options());
    let readiness = bridge
        .wait_for(|r| {
            r.connections.iter().any(|c| {
                c.broker == "remote"
                    && c.last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("expired"))
            })
        })
        .await
        .unwrap_or_else(|r| panic!("{r:#?}"));
    assert!(!readiness.ready, "{readiness:#?}");
    // Rotate the certificate in place: the next attempt uses it, no restart.
    env.pki
        .client_secret(&secrets, "bridge-client-cert", "mqttbridge", Validity::Good);
    bridge.ready().await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_for_another_name_is_refused_by_the_acl() {
    let env = Env::new("");
    env.pki.client_secret(
        &env.secrets(),
        "bridge-client-cert",
        "intruder",
        Validity::Good,
    );
    let bridge = start_bridge(&env.config(1, BOTH_WAYS), run_options());
    // mosquitto accepts the TLS handshake (same CA) and, in 2.0, grants the subscription;
    // its ACL refuses the bridge's publishes (Event Grid refuses the CONNECT instead).
    bridge
        .wait_for(|r| r.connections.iter().all(|c| c.connected))
        .await
        .unwrap_or_else(|r| panic!("{r:#?}"));
    let local = env.local_client("acl-local").await;
    local
        .publish("e2e/out/denied", QoS::AtLeastOnce, false, "nope")
        .await;
    let readiness = bridge
        .wait_for(|r| {
            r.connections.iter().any(|c| {
                c.broker == "remote"
                    && (c
                        .last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("refused")))
            })
        })
        .await
        .unwrap_or_else(|r| panic!("{r:#?}"));
    assert!(!readiness.ready, "{readiness:#?}");
    bridge.wait_metric("reason=\"rejected\"} 1").await;
    bridge.stop().await;
}

/// The remote broker moves to a server certificate from another CA: the bridge refuses it
/// (unknown issuer) until the trusted CA file is replaced, and then connects with the new CA
/// at its next attempt, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_trusted_ca_is_used_at_the_next_connection() {
    let mut env = Env::new("");
    let ca = env.dir.path().join("bridge-ca.pem");
    std::fs::copy(&env.pki.root_file, &ca).unwrap();
    let configs = setup::resolve(
        &setup::yaml(1, BOTH_WAYS),
        &env.secrets(),
        env.remote.port(),
        env.local.port(),
        &ca,
    );
    let bridge = start_bridge(&configs, run_options());
    bridge.ready().await;

    // The remote comes back with a server certificate from another CA (it still verifies
    // the bridge's client certificate against the old root).
    let other = Pki::new(&env.dir.path().join("pki-b"), "rotated");
    let other_root = std::fs::read(&other.root_file).unwrap();
    std::fs::copy(&env.pki.root_file, &other.root_file).unwrap();
    let port = env.remote.port();
    e4k_tests::faults::terminate(&mut env.remote).unwrap();
    env.remote = Mosquitto::start_on(port, &setup::remote_config(&other, "")).unwrap();
    bridge
        .wait_for(|r| {
            r.connections.iter().any(|c| {
                c.broker == "remote"
                    && c.last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("unknown issuer"))
            })
        })
        .await
        .unwrap_or_else(|r| panic!("the new server certificate was not refused:\n{r:#?}"));

    // The operator rotates the trusted CA: the next attempt uses it.
    std::fs::write(&ca, other_root).unwrap();
    bridge.ready().await;
    bridge.stop().await;
}
