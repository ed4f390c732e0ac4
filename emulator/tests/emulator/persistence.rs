//! The state file survives restarts; shutdown is graceful.

use std::time::Duration;

use e4k_emulator::{Emulator, EmulatorConfig, EmulatorError};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::seed::{self, NS};
use crate::util::{Arm, PREVIEW, child_path, fast, ns_path, start};

#[tokio::test]
async fn state_file_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("eventgrid.json");
    let config = || EmulatorConfig {
        state_file: Some(file.clone()),
        ..fast()
    };

    let emulator = start(config()).await;
    let arm = Arm::new(&emulator, PREVIEW);
    let created = seed::provision(&arm).await;
    emulator.shutdown().await.unwrap();

    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["version"], 1);
    assert!(!dir.path().join("eventgrid.json.tmp").exists());

    let emulator = start(config()).await;
    let arm = Arm::new(&emulator, PREVIEW);
    assert_eq!(arm.get(&ns_path(NS)).await.state(), "Succeeded");
    for ((segment, name, _), before) in seed::children().iter().zip(&created) {
        let after = arm.get(&child_path(NS, segment, name)).await;
        assert_eq!(&after.body, before, "{segment}/{name}");
    }
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn open_operations_complete_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json");
    let config = EmulatorConfig {
        state_file: Some(file.clone()),
        lro_delay: Duration::from_secs(600),
        ..EmulatorConfig::default()
    };
    let emulator = start(config.clone()).await;
    let arm = Arm::new(&emulator, PREVIEW);
    assert_eq!(
        arm.put(&ns_path(NS), &seed::namespace_body()).await.state(),
        "Creating"
    );
    emulator.shutdown().await.unwrap();

    let emulator = start(config).await;
    let arm = Arm::new(&emulator, PREVIEW);
    let got = arm.get(&ns_path(NS)).await;
    assert_eq!(got.state(), "Succeeded");
    assert!(got.body["properties"]["topicSpacesConfiguration"]["hostname"].is_string());
}

#[tokio::test]
async fn corrupt_state_file_is_a_start_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json");
    std::fs::write(&file, "{").unwrap();
    let config = EmulatorConfig {
        state_file: Some(file.clone()),
        ..EmulatorConfig::default()
    };
    match Emulator::start(config).await {
        Err(EmulatorError::ParseState { path, .. }) => assert_eq!(path, file),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a corrupt state file must not start"),
    }
}

#[tokio::test]
async fn invalid_config_is_refused() {
    let config = EmulatorConfig {
        page_size: 0,
        ..EmulatorConfig::default()
    };
    assert!(matches!(
        Emulator::start(config).await,
        Err(EmulatorError::Config { .. })
    ));
}

#[tokio::test]
async fn run_stops_on_cancellation() {
    let emulator = Emulator::bind(fast()).await.unwrap();
    let addr = emulator.local_addr();
    let token = CancellationToken::new();
    let server = tokio::spawn(emulator.run(token.clone()));
    let url = format!("http://{addr}{}?api-version={PREVIEW}", ns_path(NS));
    let client = reqwest::Client::new();
    let reply = client
        .put(&url)
        .bearer_auth("t")
        .json(&json!({ "location": "westus" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);
    token.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        reqwest::Client::new().get(&url).send().await.is_err(),
        "nothing listens any more"
    );
}
