//! The managed-identity endpoint: App Service's protocol by hand, and `azure_identity`'s
//! `ManagedIdentityCredential` (built by e4k-provisioning's credential module) fetching a
//! token that the MQTT front end then accepts.

use std::process::Command;
use std::time::Duration;

use e4k_emulator::identity::{DEFAULT_IDENTITY_HEADER, DEFAULT_PRINCIPAL_ID, EVENT_GRID_AUDIENCE};
use e4k_emulator::{DataRole, Emulator, EmulatorConfig};
use e4k_provisioning::eventgrid::credential::{self, CredentialChoice};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::raw::Raw;
use crate::{namespace, synced, topic_space_id};

/// The variable naming the file the child process writes the token into.
const TOKEN_OUT: &str = "E4K_TEST_IDENTITY_TOKEN_OUT";

async fn get(url: &str, header: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url).header("Metadata", "true");
    if let Some(secret) = header {
        request = request.header("X-IDENTITY-HEADER", secret);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_answers_app_service_token_requests() {
    let emulator = Emulator::start(EmulatorConfig {
        identity: e4k_emulator::IdentityConfig {
            token_lifetime: Duration::from_secs(20),
            ..Default::default()
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let base = emulator.identity_endpoint();
    let url =
        format!("{base}?api-version=2019-08-01&resource=https%3A%2F%2Feventgrid.azure.net%2F");
    let (status, body) = get(&url, Some(DEFAULT_IDENTITY_HEADER)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["resource"], EVENT_GRID_AUDIENCE);
    let expires_on: u64 = body["expires_on"].as_str().unwrap().parse().unwrap();

    // The token: RS256 by the issuer's key, for the configured principal, 20 s.
    let issuer = emulator.token_issuer();
    let (_, pem) = x509_parser::pem::parse_x509_pem(issuer.certificate_pem().as_bytes()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents).unwrap();
    let key = DecodingKey::from_rsa_der(&cert.public_key().subject_public_key.data);
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[EVENT_GRID_AUDIENCE]);
    validation.set_issuer(&[issuer.issuer()]);
    let token = body["access_token"].as_str().unwrap();
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["oid"], DEFAULT_PRINCIPAL_ID);
    assert_eq!(claims["sub"], DEFAULT_PRINCIPAL_ID);
    assert_eq!(claims["exp"].as_u64(), Some(expires_on));
    assert_eq!(expires_on - claims["iat"].as_u64().unwrap(), 20);
    assert!(issuer.issuer().starts_with(&emulator.base_url()));

    // Refusals: no secret, a wrong one, another identity, no resource.
    assert_eq!(get(&url, None).await.0, 401);
    assert_eq!(get(&url, Some("guess")).await.0, 401);
    assert_eq!(
        get(
            &format!("{url}&client_id=someone-else"),
            Some(DEFAULT_IDENTITY_HEADER)
        )
        .await
        .0,
        400
    );
    assert_eq!(
        get(
            &format!("{base}?api-version=2019-08-01"),
            Some(DEFAULT_IDENTITY_HEADER)
        )
        .await
        .0,
        400
    );
    assert_eq!(emulator.stats().identity_tokens, 1);
}

/// Run by [`managed_identity_credential_gets_a_token_the_broker_accepts`] in a child process
/// whose environment has `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` (azure_identity reads the
/// process environment, and this crate forbids the `unsafe` `set_var`); does nothing otherwise.
#[tokio::test]
#[ignore = "run as a child process by managed_identity_credential_gets_a_token_the_broker_accepts"]
async fn child_fetches_a_managed_identity_token() {
    let Ok(out) = std::env::var(TOKEN_OUT) else {
        return;
    };
    let choice = CredentialChoice::ManagedIdentity { client_id: None };
    let credential = credential::build(&choice, &credential::process_env).unwrap();
    let token = credential
        .get_token(&["https://eventgrid.azure.net/.default"], None)
        .await
        .expect("ManagedIdentityCredential gets a token from the emulator");
    std::fs::write(out, token.token.secret()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_identity_credential_gets_a_token_the_broker_accepts() {
    let emulator = namespace(None).await;
    emulator
        .assign_role(
            "mi-pub",
            DEFAULT_PRINCIPAL_ID,
            DataRole::Publisher,
            &topic_space_id("telemetry"),
        )
        .unwrap();
    synced(&emulator).await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("token");
    let mut child = Command::new(std::env::current_exe().unwrap());
    child.args([
        "--exact",
        "identity::child_fetches_a_managed_identity_token",
        "--ignored",
        "--test-threads=1",
    ]);
    for (name, value) in emulator.identity_env() {
        child.env(name, value);
    }
    let output = child.env(TOKEN_OUT, &out).output().unwrap();
    assert!(
        output.status.success(),
        "child: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let token = std::fs::read_to_string(&out).unwrap();
    assert_eq!(emulator.stats().identity_tokens, 1);

    // The resource azure_identity asked for is the scope without /.default, no trailing
    // slash; the broker accepts that audience as Event Grid's.
    let (mut client, code) = Raw::connect(&emulator, "mi-1", "OAUTH2-JWT", &token).await;
    assert_eq!(code, 0x00);
    assert!(client.publish("factory/telemetry/mi", 1).await < 0x80);
    assert_eq!(
        client.publish("command/x", 2).await,
        0x87,
        "no role on command"
    );
}
