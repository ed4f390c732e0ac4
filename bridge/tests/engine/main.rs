//! The engine against real brokers: a plain local mosquitto and a TLS mosquitto standing in
//! for Event Grid (client certificates, `use_identity_as_username`, an ACL).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use e4k_bridge::config::BridgeConfig;
use e4k_bridge::engine::{HOPS_PROPERTY, Readiness, RetainPolicy};
use e4k_tests::Mosquitto;
use e4k_tests::bridge::{Running, metric};
use e4k_tests::client::TestClient;
use e4k_tests::env::{self as setup, Env, run_options, start_bridge};
use e4k_tests::pki::{Pki, Validity};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::PublishProperties;

const BOTH_WAYS: &str = "    - direction: local-to-remote
      name: out
      source: e2e/out/#
    - direction: remote-to-local
      name: in
      source: e2e/in/#
";

/// A test client `NAME-remote` on the remote broker, subscribed to `filter` at `qos`, and a
/// test client `NAME-local` on the local broker.
async fn clients(env: &Env, name: &str, filter: &str, qos: QoS) -> (TestClient, TestClient) {
    let mut remote = env.remote_client(&format!("{name}-remote")).await;
    remote.subscribe(filter, qos).await;
    let local = env.local_client(&format!("{name}-local")).await;
    (remote, local)
}

/// `yaml` resolved against `env`'s local broker and secrets, the remote at `remote_port`
/// trusted through `ca`.
fn resolve_to(env: &Env, yaml: &str, remote_port: u16, ca: &Path) -> Vec<BridgeConfig> {
    setup::resolve(yaml, &env.secrets(), remote_port, env.local.port(), ca)
}

/// Waits until a connection's last error contains `needle`; panics with the report otherwise.
async fn wait_for_error(bridge: &Running, needle: &str) -> Readiness {
    bridge
        .wait_for(|r| {
            r.connections
                .iter()
                .any(|c| c.last_error.as_deref().is_some_and(|e| e.contains(needle)))
        })
        .await
        .unwrap_or_else(|r| panic!("{r:#?}"))
}

/// Publishes `0`, `1`, … `n - 1` on `topic` at QoS 1 through `client`.
async fn publish_numbers(client: &TestClient, topic: &str, n: usize) {
    for i in 0..n {
        client
            .publish(topic, QoS::AtLeastOnce, false, format!("{i}"))
            .await;
    }
}

/// The client IDs of the bridge's sessions on `broker` (`local` or `remote`).
fn client_ids(bridge: &Running, broker: &str) -> BTreeSet<String> {
    bridge
        .handle
        .readiness()
        .connections
        .iter()
        .filter(|c| c.broker == broker)
        .map(|c| c.client_id.clone())
        .collect()
}

fn user(props: &PublishProperties, key: &str) -> Vec<String> {
    props
        .user_properties
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

mod messages;
mod sessions;
mod shares;
mod tls;
