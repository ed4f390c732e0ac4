//! The engine against real brokers: a plain local mosquitto and a TLS mosquitto standing in
//! for Event Grid (client certificates, `use_identity_as_username`, an ACL).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use e4k_bridge::engine::{HOPS_PROPERTY, RetainPolicy};
use e4k_tests::Mosquitto;
use e4k_tests::bridge::metric;
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
