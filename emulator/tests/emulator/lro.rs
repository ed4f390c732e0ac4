//! Long-running operations: status codes, monitor headers, provisioning states and hostnames.

use std::time::Duration;

use e4k_emulator::{EmulatorConfig, FaultConfig};
use serde_json::json;

use crate::seed::{NS, namespace_body};
use crate::util::{Arm, PREVIEW, STABLE, child_path, fast, ns_path, start};

fn slow() -> EmulatorConfig {
    EmulatorConfig {
        lro_delay: Duration::from_millis(300),
        lro_retry_after_secs: 2,
        ..EmulatorConfig::default()
    }
}

#[tokio::test]
async fn namespace_create_is_polled_to_success() {
    let emulator = start(slow()).await;
    let arm = Arm::new(&emulator, PREVIEW);
    let created = arm.put(&ns_path(NS), &namespace_body()).await;
    assert_eq!(created.status, 201);
    assert_eq!(created.state(), "Creating");
    assert!(created.body["properties"]["topicSpacesConfiguration"]["hostname"].is_null());
    assert_eq!(created.header("retry-after"), Some("2"));
    let monitor = created.header("azure-asyncoperation").unwrap().to_owned();
    assert!(monitor.starts_with(&emulator.base_url()), "{monitor}");
    assert!(monitor.contains("/locations/westeurope/"), "{monitor}");
    assert!(
        monitor.ends_with(&format!("api-version={PREVIEW}")),
        "{monitor}"
    );

    let status = arm.get(&monitor).await;
    assert_eq!(status.body["status"], "InProgress");
    assert!(status.body["startTime"].is_string());
    assert!(status.body.get("endTime").is_none());
    assert_eq!(arm.get(&ns_path(NS)).await.state(), "Creating");
    let child = json!({ "properties": { "topicTemplates": ["a/#"] } });
    let early = arm.put(&child_path(NS, "topicSpaces", "ts1"), &child).await;
    assert_eq!((early.status, early.code()), (409, "Conflict"));
    let again = arm.put(&ns_path(NS), &namespace_body()).await;
    assert_eq!(
        (again.status, again.code()),
        (409, "AnotherOperationInProgress")
    );

    let done = arm.wait(&created).await;
    assert_eq!(done["status"], "Succeeded");
    assert!(done["endTime"].is_string());
    let got = arm.get(&ns_path(NS)).await;
    assert_eq!(got.state(), "Succeeded");
    assert_eq!(
        got.body["properties"]["topicSpacesConfiguration"]["hostname"],
        "e4k-seed.westeurope-1.ts.eventgrid.azure.net"
    );
    assert!(emulator.stats().polls >= 2);
}

#[tokio::test]
async fn update_patch_and_delete() {
    let emulator = start(fast()).await;
    let arm = Arm::new(&emulator, PREVIEW);
    let mut body = namespace_body();
    body["tags"] = json!({ "a": "1", "b": "2" });
    arm.put_and_wait(&ns_path(NS), &body).await;

    let updated = arm.put(&ns_path(NS), &body).await;
    assert_eq!((updated.status, updated.state()), (200, "Updating"));
    assert!(updated.header("location").is_none());
    arm.wait(&updated).await;

    let patched = arm
        .patch(
            &ns_path(NS),
            &json!({ "tags": { "c": "3" },
        "properties": { "topicSpacesConfiguration": { "maximumSessionExpiryInHours": 8 } } }),
        )
        .await;
    assert_eq!(patched.status, 202);
    assert!(patched.header("location").is_some());
    arm.wait(&patched).await;
    let got = arm.get(&ns_path(NS)).await.body;
    assert_eq!(got["tags"], json!({ "c": "3" }), "PATCH replaces tags");
    let tsc = &got["properties"]["topicSpacesConfiguration"];
    assert_eq!(tsc["maximumSessionExpiryInHours"], 8);
    assert_eq!(
        tsc["maximumClientSessionsPerAuthenticationName"], 3,
        "PATCH keeps the rest"
    );

    let ts = child_path(NS, "topicSpaces", "ts1");
    arm.put_and_wait(&ts, &json!({ "properties": { "topicTemplates": ["a/#"] } }))
        .await;
    let deleted = arm.delete(&ts).await;
    assert_eq!(deleted.status, 202);
    let location = deleted.header("location").unwrap().to_owned();
    assert_eq!(arm.wait(&deleted).await["status"], "Succeeded");
    assert_eq!(arm.get(&location).await.status, 204);
    assert_eq!(arm.get(&ts).await.status, 404);
    assert_eq!(
        arm.delete(&ts).await.status,
        204,
        "deleting again is a no-op"
    );

    let gone = arm.delete(&ns_path(NS)).await;
    assert_eq!(gone.status, 202);
    arm.wait(&gone).await;
    assert_eq!(arm.get(&ns_path(NS)).await.status, 404);
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn location_monitor_answers_202_until_done() {
    let emulator = start(slow()).await;
    let arm = Arm::new(&emulator, STABLE);
    let body = json!({ "location": "westus" });
    arm.put_and_wait(&ns_path(NS), &body).await;
    let deleted = arm.delete(&ns_path(NS)).await;
    assert_eq!(arm.get(&ns_path(NS)).await.state(), "Deleting");
    let location = deleted.header("location").unwrap().to_owned();
    let pending = arm.get(&location).await;
    assert_eq!(pending.status, 202);
    assert!(pending.header("location").is_some());
    arm.wait(&deleted).await;
    assert_eq!(arm.get(&location).await.status, 204);
}

#[tokio::test]
async fn hostname_can_be_overridden() {
    let config = EmulatorConfig {
        mqtt_hostname: "localhost".into(),
        lro_delay: Duration::ZERO,
        ..EmulatorConfig::default()
    };
    let emulator = start(config).await;
    let arm = Arm::new(&emulator, STABLE);
    let created = arm
        .put(&ns_path(NS), &json!({ "location": "West Europe" }))
        .await;
    assert_eq!(
        (created.status, created.state()),
        (201, "Succeeded"),
        "no delay completes at once"
    );
    assert_eq!(
        created.body["properties"]["topicSpacesConfiguration"]["hostname"],
        "localhost"
    );
    assert_eq!(
        created.body["properties"]["topicSpacesConfiguration"]["state"],
        "Disabled"
    );
    assert_eq!(
        created.body["sku"],
        json!({ "name": "Standard", "capacity": 1 })
    );
}

#[tokio::test]
async fn injected_operation_failures() {
    let faults = FaultConfig {
        rate_lro_failure: 1.0,
        ..FaultConfig::default()
    };
    let emulator = start(EmulatorConfig { faults, ..fast() }).await;
    let arm = Arm::new(&emulator, STABLE);
    let created = arm
        .put(&ns_path(NS), &json!({ "location": "westus" }))
        .await;
    let done = arm.wait(&created).await;
    assert_eq!(done["status"], "Failed");
    assert_eq!(done["error"]["code"], "InternalServerError");
    assert_eq!(arm.get(&ns_path(NS)).await.state(), "Failed");
}
