//! `CUSTOM-JWT`: tokens of an issuer the namespace names in `customJwtAuthentication`, checked
//! with its issuer certificate; the claims are client attributes for groups and bindings.

use std::time::Duration;

use e4k_emulator::{RunningEmulator, TokenIssuer, TokenRequest};
use serde_json::json;

use crate::raw::{AUTH, Raw, auth, reason};
use crate::{namespace, put, synced};

const IDP: &str = "https://idp.e4k.test/";

async fn with_issuer(idp: &TokenIssuer) -> RunningEmulator {
    let emulator = namespace(Some(json!({
        "tokenIssuer": idp.issuer(),
        "encodedIssuerCertificates": [
            { "kid": idp.kid(), "encodedCertificate": idp.certificate_pem() }
        ]
    })))
    .await;
    put(
        &emulator,
        "/clientGroups/sensors",
        json!({ "properties": { "query": "attributes.role = 'sensor'" } }),
    )
    .await;
    put(
        &emulator,
        "/permissionBindings/sensors-publish-telemetry",
        json!({ "properties": {
            "topicSpaceName": "telemetry", "clientGroupName": "sensors", "permission": "Publisher"
        } }),
    )
    .await;
    synced(&emulator).await;
    emulator
}

fn device(subject: &str, role: &str) -> TokenRequest {
    // The namespace hostname is `localhost` (EmulatorConfig::mqtt_hostname).
    TokenRequest::custom(subject, "https://localhost/")
        .lifetime(Duration::from_secs(60))
        .claim("role", json!(role))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_issuer_is_accepted_and_claims_decide_the_topics() {
    let idp = TokenIssuer::new(IDP).unwrap();
    let emulator = with_issuer(&idp).await;

    let sensor = idp.token(&device("d1", "sensor")).unwrap();
    let (mut client, code) = Raw::connect(&emulator, "d1", "CUSTOM-JWT", &sensor).await;
    assert_eq!(code, 0x00);
    assert!(client.publish("factory/telemetry/d1", 1).await < 0x80);
    assert_eq!(client.publish("command/x", 2).await, 0x87);

    let (mut other, code) = Raw::connect(
        &emulator,
        "d2",
        "CUSTOM-JWT",
        &idp.token(&device("d2", "lamp")).unwrap(),
    )
    .await;
    assert_eq!(code, 0x00, "authenticated; a lamp is just in no group");
    assert_eq!(other.publish("factory/telemetry/d2", 1).await, 0x87);

    // Re-authentication with a token that makes d2 a sensor gives it the rights.
    other
        .send(&auth(
            0x19,
            "CUSTOM-JWT",
            &idp.token(&device("d2", "sensor")).unwrap(),
        ))
        .await;
    assert_eq!(reason(&other.expect(AUTH).await), 0x00);
    assert!(other.publish("factory/telemetry/d2", 2).await < 0x80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_issuers_keys_and_audiences_are_refused() {
    let idp = TokenIssuer::new(IDP).unwrap();
    let emulator = with_issuer(&idp).await;
    let code = |token: String| {
        let emulator = &emulator;
        async move { Raw::connect(emulator, "x", "CUSTOM-JWT", &token).await.1 }
    };
    let other = TokenIssuer::new("https://other-idp.e4k.test/").unwrap();
    assert_eq!(
        code(other.token(&device("d1", "sensor")).unwrap()).await,
        0x86,
        "other issuer"
    );
    let impostor = TokenIssuer::new(IDP).unwrap();
    assert_eq!(
        code(impostor.token(&device("d1", "sensor")).unwrap()).await,
        0x86,
        "other key"
    );
    let elsewhere = TokenRequest::custom("d1", "https://elsewhere.example/");
    assert_eq!(
        code(idp.token(&elsewhere).unwrap()).await,
        0x86,
        "other audience"
    );
    // An Entra-style token of the emulator is no CUSTOM-JWT token.
    let entra = emulator
        .token_issuer()
        .token(&TokenRequest::entra("p", "https://localhost/"))
        .unwrap();
    assert_eq!(code(entra).await, 0x86, "the emulator's own issuer");
    assert_eq!(
        code(idp.token(&device("d1", "sensor")).unwrap()).await,
        0x00
    );
}
