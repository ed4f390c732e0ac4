#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The ARM client against the in-process Event Grid emulator (LROs, paging, errors, faults,
//! cancellation, authentication) and a small axum fake for what the emulator does not do
//! (`Retry-After` dates, non-JSON bodies, `Location` and `provisioningState` polling, links on
//! other hosts).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use e4k_emulator::{Emulator, EmulatorConfig, FaultConfig, RunningEmulator};
use e4k_provisioning::Error;
use e4k_provisioning::eventgrid::arm::{ArmClient, ArmConfig, ArmStats};
use e4k_provisioning::eventgrid::credential::StaticToken;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const PREVIEW: &str = "2026-06-15-preview";
const STABLE: &str = "2025-02-15";
const NS: &str = "/subscriptions/00000000-0000-0000-0000-00000000e4k0/resourceGroups/rg-e4k/providers/Microsoft.EventGrid/namespaces/e4k-test";

fn child(collection: &str, name: &str) -> String {
    format!("{NS}/{collection}/{name}")
}

/// Fast retries and polls; every test overrides what it exercises.
fn config(endpoint: &str) -> ArmConfig {
    ArmConfig {
        endpoint: endpoint.parse().unwrap(),
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(10),
        max_retry_after: Duration::from_millis(20),
        poll_interval: Duration::from_millis(5),
        min_poll_interval: Duration::from_millis(5),
        operation_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(10),
        ..ArmConfig::default()
    }
}

fn client_with(config: ArmConfig, token: &str, cancel: CancellationToken) -> ArmClient {
    ArmClient::new(config, Arc::new(StaticToken::new(token)), cancel).unwrap()
}

fn client(emulator: &RunningEmulator) -> ArmClient {
    client_with(
        config(&emulator.base_url()),
        "test-token",
        CancellationToken::new(),
    )
}

async fn emulator(tweak: impl FnOnce(&mut EmulatorConfig)) -> RunningEmulator {
    let mut config = EmulatorConfig {
        lro_delay: Duration::from_millis(50),
        page_size: 2,
        ..EmulatorConfig::default()
    };
    tweak(&mut config);
    Emulator::start(config).await.unwrap()
}

fn namespace_body() -> Value {
    json!({
        "location": "westeurope",
        "properties": { "topicSpacesConfiguration": { "state": "Enabled" } }
    })
}

fn client_body() -> Value {
    json!({ "properties": {
        "clientCertificateAuthentication": { "validationScheme": "SubjectMatchesAuthenticationName" }
    } })
}

fn children() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "topicSpaces",
            "telemetry",
            json!({ "properties": { "topicTemplates": ["factory/telemetry/#"] } }),
        ),
        ("clients", "c1", client_body()),
        ("clients", "c2", client_body()),
        ("clients", "c3", client_body()),
        (
            "clientGroups",
            "commanders",
            json!({ "properties": { "query": "attributes.commander = \"true\"" } }),
        ),
        (
            "permissionBindings",
            "commanders-pub",
            json!({ "properties": {
                "topicSpaceName": "telemetry", "clientGroupName": "commanders", "permission": "Publisher"
            } }),
        ),
    ]
}

fn provisioning_state(resource: &Value) -> &str {
    resource["properties"]["provisioningState"]
        .as_str()
        .unwrap_or_default()
}

/// The seed sequence: create, read, list, patch, delete. Returns the number of writes sent.
async fn seed_sequence(arm: &ArmClient) -> u64 {
    let ns = arm.put(NS, PREVIEW, &namespace_body()).await.unwrap();
    assert_eq!(provisioning_state(&ns), "Succeeded");
    assert_eq!(
        ns["properties"]["topicSpacesConfiguration"]["hostname"],
        "e4k-test.westeurope-1.ts.eventgrid.azure.net"
    );
    let mut writes = 1;
    for (collection, name, body) in children() {
        let created = arm
            .put(&child(collection, name), STABLE, &body)
            .await
            .unwrap();
        assert_eq!(created["name"], name);
        assert_eq!(provisioning_state(&created), "Succeeded", "{created}");
        writes += 1;
    }

    let c1 = arm.get(&child("clients", "c1"), STABLE).await.unwrap();
    let c1 = c1.expect("c1 exists");
    assert_eq!(c1["properties"]["authenticationName"], "c1");
    assert_eq!(
        arm.get(&child("clients", "nobody"), STABLE).await.unwrap(),
        None
    );
    // page_size 2: three clients take two pages.
    let clients = arm.list(&format!("{NS}/clients"), STABLE).await.unwrap();
    let names: Vec<&str> = clients.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["c1", "c2", "c3"]);
    let bindings = arm
        .list(&format!("{NS}/permissionBindings"), STABLE)
        .await
        .unwrap();
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0]["properties"]["topicSpaceName"], "telemetry");

    let patch = json!({ "properties": { "topicSpacesConfiguration": {
        "maximumClientSessionsPerAuthenticationName": 3
    } } });
    let patched = arm.patch(NS, PREVIEW, &patch).await.unwrap();
    writes += 1;
    let sessions =
        "/properties/topicSpacesConfiguration/maximumClientSessionsPerAuthenticationName";
    assert_eq!(patched.pointer(sessions), Some(&json!(3)));
    assert_eq!(provisioning_state(&patched), "Succeeded");
    let read = arm.get(NS, PREVIEW).await.unwrap().unwrap();
    assert_eq!(read.pointer(sessions), Some(&json!(3)));

    let binding = child("permissionBindings", "commanders-pub");
    arm.delete(&binding, STABLE).await.unwrap();
    assert_eq!(arm.get(&binding, STABLE).await.unwrap(), None);
    arm.delete(&binding, STABLE).await.unwrap();
    writes += 2;
    writes
}

fn arm_error(error: Error) -> (u16, Option<String>, String) {
    match error {
        Error::Arm {
            status,
            code,
            message,
            ..
        } => (status, code, message),
        other => panic!("expected Error::Arm, got {other:?}"),
    }
}

mod cancellation;
mod errors;
mod fake;
mod seed;
