//! JWT clients of the MQTT data plane against a real mosquitto: the managed-identity endpoint
//! (and `azure_identity` using it), `OAUTH2-JWT` with role assignments, `CUSTOM-JWT` with the
//! namespace's issuer certificate, AUTH re-authentication and token expiry. Clients are the raw
//! MQTT 5 client of `raw` (TLS without a client certificate).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod custom;
mod entra;
mod identity;
mod raw;
mod reauth;

use std::time::Duration;

use e4k_emulator::{Emulator, EmulatorConfig, MqttConfig, RunningEmulator};
use serde_json::{Value, json};

/// The subscription of the namespace.
pub(crate) const SUB: &str = "11111111-2222-3333-4444-555555555555";
/// Its resource group.
pub(crate) const RG: &str = "rg-jwt";
/// Its name.
pub(crate) const NS: &str = "jwt-ns";
const API: &str = "2026-06-15-preview";

/// The namespace's ARM id (the scope of a namespace-wide role assignment).
pub(crate) fn ns_id() -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.EventGrid/namespaces/{NS}"
    )
}

/// A topic space's ARM id.
pub(crate) fn topic_space_id(name: &str) -> String {
    format!("{}/topicSpaces/{name}", ns_id())
}

/// PUTs `body` at `path` under the namespace (`""` = the namespace) and fails unless accepted.
pub(crate) async fn put(emulator: &RunningEmulator, path: &str, body: Value) {
    let url = format!("{}{}{path}?api-version={API}", emulator.base_url(), ns_id());
    let response = reqwest::Client::new()
        .put(url)
        .bearer_auth("test")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(matches!(status, 200 | 201), "PUT {path}: {status} {text}");
}

/// An emulator with the data plane, a namespace whose MQTT hostname is `localhost` (with
/// `customJwtAuthentication` when given), topic spaces `telemetry` (`factory/telemetry/#`)
/// and `command` (`command/#`), and the ACL in place.
pub(crate) async fn namespace(custom_jwt: Option<Value>) -> RunningEmulator {
    let emulator = Emulator::start(EmulatorConfig {
        lro_delay: Duration::ZERO,
        mqtt_hostname: "localhost".into(),
        mqtt: Some(MqttConfig::default()),
        ..EmulatorConfig::default()
    })
    .await
    .expect("the emulator starts with mosquitto");
    let mut mqtt = json!({ "state": "Enabled", "maximumClientSessionsPerAuthenticationName": 5 });
    if let Some(custom) = custom_jwt {
        mqtt["clientAuthentication"] = json!({ "customJwtAuthentication": custom });
    }
    put(
        &emulator,
        "",
        json!({ "location": "westeurope", "properties": { "topicSpacesConfiguration": mqtt } }),
    )
    .await;
    for (name, template) in [
        ("telemetry", "factory/telemetry/#"),
        ("command", "command/#"),
    ] {
        put(
            &emulator,
            &format!("/topicSpaces/{name}"),
            json!({ "properties": { "topicTemplates": [template] } }),
        )
        .await;
    }
    synced(&emulator).await;
    emulator
}

/// Waits until the broker ACL follows the state.
pub(crate) async fn synced(emulator: &RunningEmulator) {
    assert!(
        emulator.mqtt_synced(Duration::from_secs(5)).await,
        "the ACL follows the state"
    );
}
