//! MQTT 5 re-authentication (AUTH 0x19) and token expiry, with tokens of a few seconds.
//! (`exp` has whole seconds, so a token "of 3 s" lasts between 2 and 3 s.)

use std::time::Duration;

use e4k_emulator::identity::EVENT_GRID_AUDIENCE;
use e4k_emulator::{DataRole, RunningEmulator, TokenRequest};
use tokio::time::{Instant, sleep_until};

use crate::raw::{AUTH, DISCONNECT, Raw, auth, reason};
use crate::{namespace, ns_id, synced};

const PRINCIPAL: &str = "0e0e0e0e-0000-4000-8000-00000000000e";

async fn with_role() -> RunningEmulator {
    let emulator = namespace(None).await;
    emulator
        .assign_role("pub", PRINCIPAL, DataRole::Publisher, &ns_id())
        .unwrap();
    synced(&emulator).await;
    emulator
}

fn token(emulator: &RunningEmulator, seconds: u64) -> String {
    let request =
        TokenRequest::entra(PRINCIPAL, EVENT_GRID_AUDIENCE).lifetime(Duration::from_secs(seconds));
    emulator.token_issuer().token(&request).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_authentication_keeps_the_session_past_the_first_token() {
    let emulator = with_role().await;
    let start = Instant::now();
    let (mut client, code) =
        Raw::connect(&emulator, "renewer", "OAUTH2-JWT", &token(&emulator, 3)).await;
    assert_eq!(code, 0x00);
    for round in 1..=2u32 {
        sleep_until(start + Duration::from_millis(1200) * round).await;
        client
            .send(&auth(0x19, "OAUTH2-JWT", &token(&emulator, 3)))
            .await;
        let answer = client.expect(AUTH).await;
        assert_eq!(reason(&answer), 0x00, "AUTH success, round {round}");
    }
    // The first token ended by start + 3 s; the session is still up at 3.8 s.
    sleep_until(start + Duration::from_millis(3800)).await;
    assert!(
        client.alive().await,
        "PINGREQ answered after the first token expired"
    );
    assert!(client.publish("factory/telemetry/still-here", 7).await < 0x80);
    let stats = emulator.mqtt_client_stats("renewer");
    assert_eq!(stats.connects, 1, "never reconnected");
    assert_eq!(stats.reauthentications, 2);
    assert_eq!(stats.expired, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_re_authentication_the_session_ends_when_the_token_expires() {
    let emulator = with_role().await;
    let (mut client, code) =
        Raw::connect(&emulator, "lapser", "OAUTH2-JWT", &token(&emulator, 2)).await;
    assert_eq!(code, 0x00);
    let disconnect = client.expect(DISCONNECT).await;
    assert_eq!(reason(&disconnect), 0x87);
    assert!(client.closed(Duration::from_secs(3)).await);
    assert_eq!(emulator.mqtt_client_stats("lapser").expired, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_re_authentication_disconnects_with_0x87() {
    let emulator = with_role().await;
    let (mut client, code) = Raw::connect(
        &emulator,
        "bad-renewal",
        "OAUTH2-JWT",
        &token(&emulator, 60),
    )
    .await;
    assert_eq!(code, 0x00);
    let wrong_audience = TokenRequest::entra(PRINCIPAL, "https://management.azure.com/");
    let wrong = emulator.token_issuer().token(&wrong_audience).unwrap();
    client.send(&auth(0x19, "OAUTH2-JWT", &wrong)).await;
    assert_eq!(reason(&client.expect(DISCONNECT).await), 0x87);
    assert!(client.closed(Duration::from_secs(3)).await);

    // Another method than the session's: 0x8C.
    let (mut client, _) = Raw::connect(
        &emulator,
        "other-method",
        "OAUTH2-JWT",
        &token(&emulator, 60),
    )
    .await;
    client
        .send(&auth(0x19, "CUSTOM-JWT", &token(&emulator, 60)))
        .await;
    assert_eq!(reason(&client.expect(DISCONNECT).await), 0x8C);
    let stats = emulator.mqtt_client_stats("bad-renewal");
    assert_eq!(
        (stats.reauthentications, stats.reauthentication_failures),
        (0, 1)
    );
}
