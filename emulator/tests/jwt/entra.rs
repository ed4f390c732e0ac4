//! `OAUTH2-JWT`: Microsoft Entra ID tokens (from the emulator's issuer) and role assignments.

use std::time::{Duration, SystemTime};

use e4k_emulator::identity::EVENT_GRID_AUDIENCE;
use e4k_emulator::{DataRole, RunningEmulator, TokenIssuer, TokenRequest};

use crate::raw::{PUBLISH, Raw, SUBACK, reason, subscribe};
use crate::{namespace, ns_id, synced, topic_space_id};

const PUBLISHER: &str = "0b0b0b0b-0000-4000-8000-00000000000b";
const SUBSCRIBER: &str = "0c0c0c0c-0000-4000-8000-00000000000c";
const NOBODY: &str = "0d0d0d0d-0000-4000-8000-00000000000d";

fn token(emulator: &RunningEmulator, request: &TokenRequest) -> String {
    emulator.token_issuer().token(request).unwrap()
}

fn entra(principal: &str) -> TokenRequest {
    TokenRequest::entra(principal, EVENT_GRID_AUDIENCE).lifetime(Duration::from_secs(60))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_connects_and_its_roles_decide_the_topics() {
    let emulator = namespace(None).await;
    let telemetry = topic_space_id("telemetry");
    emulator
        .assign_role("pub", PUBLISHER, DataRole::Publisher, &telemetry)
        .unwrap();
    emulator
        .assign_role("sub", SUBSCRIBER, DataRole::Subscriber, &ns_id())
        .unwrap();
    synced(&emulator).await;

    let (mut subscriber, code) = Raw::connect(
        &emulator,
        "sub-1",
        "OAUTH2-JWT",
        &token(&emulator, &entra(SUBSCRIBER)),
    )
    .await;
    assert_eq!(code, 0x00);
    subscriber.send(&subscribe(1, "factory/telemetry/#")).await;
    assert!(reason(&subscriber.expect(SUBACK).await) < 0x80);

    let (mut publisher, code) = Raw::connect(
        &emulator,
        "pub-1",
        "OAUTH2-JWT",
        &token(&emulator, &entra(PUBLISHER)),
    )
    .await;
    assert_eq!(code, 0x00);
    assert!(publisher.publish("factory/telemetry/t1", 1).await < 0x80);
    let message = subscriber.expect(PUBLISH).await;
    assert!(String::from_utf8_lossy(&message).contains("factory/telemetry/t1"));
    // Publisher on the telemetry topic space only; the subscriber may not publish at all.
    assert_eq!(publisher.publish("command/c1", 2).await, 0x87);
    assert_eq!(subscriber.publish("factory/telemetry/t2", 3).await, 0x87);
    let stats = emulator.mqtt_client_stats("pub-1");
    assert_eq!((stats.connects, stats.accepted), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_principals_without_a_role_are_refused() {
    let emulator = namespace(None).await;
    emulator
        .assign_role("pub", PUBLISHER, DataRole::Publisher, &ns_id())
        .unwrap();
    synced(&emulator).await;
    let code = |token: String| {
        let emulator = &emulator;
        async move { Raw::connect(emulator, "c1", "OAUTH2-JWT", &token).await.1 }
    };
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let expired = entra(PUBLISHER).issued_at(an_hour_ago);
    assert_eq!(code(token(&emulator, &expired)).await, 0x86, "expired");
    let management = TokenRequest::entra(PUBLISHER, "https://management.azure.com/");
    assert_eq!(
        code(token(&emulator, &management)).await,
        0x86,
        "wrong audience"
    );
    let other_iss = entra(PUBLISHER).issuer("https://sts.windows.net/other/");
    assert_eq!(
        code(token(&emulator, &other_iss)).await,
        0x86,
        "unknown issuer"
    );
    let stranger = TokenIssuer::new(emulator.token_issuer().issuer()).unwrap();
    let forged = stranger.token(&entra(PUBLISHER)).unwrap();
    assert_eq!(code(forged).await, 0x86, "another key");
    assert_eq!(code("not.a.jwt".into()).await, 0x86, "garbage");
    assert_eq!(
        code(token(&emulator, &entra(NOBODY))).await,
        0x87,
        "no role"
    );

    let valid = token(&emulator, &entra(PUBLISHER));
    let other_method = Raw::connect(&emulator, "c2", "SCRAM-SHA-1", &valid).await.1;
    assert_eq!(other_method, 0x8C, "unknown authentication method");
    let neither = Raw::connect(&emulator, "c3", "", "").await.1;
    assert_eq!(neither, 0x86, "no certificate and no token");
    assert_eq!(emulator.mqtt_client_stats("c1").connects, 6);
    assert_eq!(emulator.mqtt_client_stats("c1").accepted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_assigned_later_admits_the_next_connect() {
    let emulator = namespace(None).await;
    let token = token(&emulator, &entra(NOBODY));
    let (_, code) = Raw::connect(&emulator, "late", "OAUTH2-JWT", &token).await;
    assert_eq!(code, 0x87);

    emulator
        .assign_role(
            "late-pub",
            NOBODY,
            DataRole::Publisher,
            &topic_space_id("command"),
        )
        .unwrap();
    synced(&emulator).await;
    let (mut client, code) = Raw::connect(&emulator, "late", "OAUTH2-JWT", &token).await;
    assert_eq!(code, 0x00, "the same token, now with a role");
    assert!(client.publish("command/go", 1).await < 0x80);

    // Removing it takes the rights away from the live connection too.
    assert!(
        emulator
            .remove_role_assignment(&ns_id(), "late-pub")
            .unwrap()
    );
    synced(&emulator).await;
    assert_eq!(client.publish("command/go", 2).await, 0x87);
    let stats = emulator.mqtt_client_stats("late");
    assert_eq!((stats.connects, stats.accepted), (2, 1));
}
