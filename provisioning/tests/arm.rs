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

#[tokio::test]
async fn seed_sequence_against_the_emulator() {
    let emulator = emulator(|_| {}).await;
    let arm = client(&emulator);
    let writes = seed_sequence(&arm).await;

    let stats = arm.stats();
    let seen = emulator.stats();
    assert_eq!(stats.writes, writes);
    assert_eq!(stats.writes, seen.writes());
    assert_eq!(stats.requests, seen.total());
    assert_eq!(stats.polls, seen.polls);
    assert!(stats.polls >= 8, "{stats:?}");
    assert_eq!((stats.retries, stats.throttled), (0, 0));
    // Lists ask for $top=100 (ARM's largest page), so each of the two lists is one page here;
    // nextLink paging is exercised by `next_links_are_followed_on_the_configured_endpoint`.
    assert_eq!(seen.lists(), 2);
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn seed_sequence_survives_throttling_and_server_errors() {
    let emulator = emulator(|c| {
        // Operations complete at the next request, so the request sequence (and with the seed,
        // which requests fail) is the same in every run: no flaky exhaustion of the 8 attempts.
        c.lro_delay = Duration::ZERO;
        c.faults = FaultConfig {
            rate_429: 0.3,
            rate_5xx: 0.1,
            seed: 4242,
            retry_after_secs: 1, // capped to 20 ms by max_retry_after
            ..FaultConfig::default()
        };
    })
    .await;
    let arm = client(&emulator);
    let started = Instant::now();
    seed_sequence(&arm).await;
    assert!(started.elapsed() < Duration::from_secs(20));

    let stats = arm.stats();
    let seen = emulator.stats();
    assert!(
        stats.throttled > 0 && seen.server_errors > 0,
        "{stats:?} {seen:?}"
    );
    assert_eq!(stats.throttled, seen.throttled);
    assert_eq!(stats.retries, seen.throttled + seen.server_errors);
    assert_eq!(stats.requests, seen.total());
    let calls = stats.requests - stats.retries;
    let max_attempts = u64::from(arm.config().max_attempts);
    assert!(stats.retries <= calls * (max_attempts - 1), "{stats:?}");
    emulator.shutdown().await.unwrap();
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

#[tokio::test]
async fn bad_requests_are_not_retried() {
    let emulator = emulator(|c| c.lro_delay = Duration::ZERO).await;
    let arm = client(&emulator);
    arm.put(NS, PREVIEW, &namespace_body()).await.unwrap();
    let before = arm.stats();

    let thumbprints_without_scheme = json!({ "properties": { "clientCertificateAuthentication": {
        "validationScheme": "SubjectMatchesAuthenticationName",
        "allowedThumbprints": ["3A5B9C0D1E2F3A5B9C0D1E2F3A5B9C0D1E2F3A5B"]
    } } });
    let error = arm
        .put(&child("clients", "c1"), STABLE, &thumbprints_without_scheme)
        .await
        .unwrap_err();
    let text = error.to_string();
    let (status, code, _) = arm_error(error);
    assert_eq!((status, code.as_deref()), (400, Some("BadRequest")));
    assert!(
        text.starts_with(&format!("PUT {NS}/clients/c1: HTTP 400 BadRequest: ")),
        "{text}"
    );

    let bad_name = arm
        .put(
            &child("clientGroups", "x"),
            STABLE,
            &json!({ "properties": { "query": "attributes.a = \"b\"" } }),
        )
        .await
        .unwrap_err();
    let (status, code, _) = arm_error(bad_name);
    assert_eq!((status, code.as_deref()), (400, Some("BadRequest")));

    let after = arm.stats();
    assert_eq!(after.retries, before.retries);
    assert_eq!(after.requests, before.requests + 2);
    assert_eq!(after.writes, before.writes + 2);
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn throttling_beyond_the_budget_fails_with_429() {
    let emulator = emulator(|c| {
        c.faults = FaultConfig {
            rate_429: 1.0,
            ..FaultConfig::default()
        };
    })
    .await;
    let mut config = config(&emulator.base_url());
    config.max_attempts = 1;
    let arm = client_with(config, "t", CancellationToken::new());
    let (status, code, _) = arm_error(arm.get(NS, PREVIEW).await.unwrap_err());
    assert_eq!((status, code.as_deref()), (429, Some("TooManyRequests")));
    assert_eq!(
        arm.stats(),
        ArmStats {
            requests: 1,
            throttled: 1,
            ..ArmStats::default()
        }
    );

    // With a budget, every attempt is used and the last answer is reported.
    let mut config = self::config(&emulator.base_url());
    config.max_attempts = 3;
    let arm = client_with(config, "t", CancellationToken::new());
    let (status, _, _) = arm_error(
        arm.list(&format!("{NS}/clients"), STABLE)
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 429);
    let stats = arm.stats();
    assert_eq!((stats.requests, stats.retries, stats.throttled), (3, 2, 3));
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn failed_operations_are_reported() {
    let emulator = emulator(|c| {
        c.faults = FaultConfig {
            rate_lro_failure: 1.0,
            ..FaultConfig::default()
        };
    })
    .await;
    let arm = client(&emulator);
    match arm.put(NS, PREVIEW, &namespace_body()).await.unwrap_err() {
        Error::Operation {
            resource,
            status,
            code,
            ..
        } => {
            assert_eq!((resource.as_str(), status.as_str()), (NS, "Failed"));
            assert_eq!(code.as_deref(), Some("InternalServerError"));
        }
        other => panic!("{other:?}"),
    }
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn cancellation_stops_a_polled_operation() {
    let emulator = emulator(|c| c.lro_delay = Duration::from_secs(60)).await;
    let cancel = CancellationToken::new();
    let mut config = config(&emulator.base_url());
    config.min_poll_interval = Duration::from_millis(50);
    let arm = client_with(config, "t", cancel.clone());
    let trigger = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
        Instant::now()
    });
    let error = arm.put(NS, PREVIEW, &namespace_body()).await.unwrap_err();
    let cancelled_at = trigger.await.unwrap();
    assert!(matches!(error, Error::Cancelled), "{error:?}");
    assert!(cancelled_at.elapsed() < Duration::from_millis(200));
    assert!(arm.stats().polls >= 2, "{:?}", arm.stats());

    // A cancelled token ends the next call before it is sent.
    let requests = arm.stats().requests;
    assert!(matches!(arm.get(NS, PREVIEW).await, Err(Error::Cancelled)));
    assert_eq!(arm.stats().requests, requests);
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn cancellation_interrupts_a_retry_wait() {
    let emulator = emulator(|c| {
        c.faults = FaultConfig {
            rate_429: 1.0,
            retry_after_secs: 30,
            ..FaultConfig::default()
        };
    })
    .await;
    let cancel = CancellationToken::new();
    let mut config = config(&emulator.base_url());
    config.max_retry_after = Duration::from_secs(60);
    let arm = client_with(config, "t", cancel.clone());
    let started = Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
    });
    assert!(matches!(arm.get(NS, PREVIEW).await, Err(Error::Cancelled)));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(arm.stats().throttled, 1);
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn operations_time_out() {
    let emulator = emulator(|c| c.lro_delay = Duration::from_secs(60)).await;
    let mut config = config(&emulator.base_url());
    config.operation_timeout = Duration::from_millis(100);
    let arm = client_with(config, "t", CancellationToken::new());
    match arm.put(NS, PREVIEW, &namespace_body()).await.unwrap_err() {
        Error::OperationTimeout { resource, timeout } => {
            assert_eq!(resource, NS);
            assert_eq!(timeout, Duration::from_millis(100));
        }
        other => panic!("{other:?}"),
    }
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn connection_refused_is_a_transport_error_after_retries() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut config = config(&format!("http://127.0.0.1:{port}"));
    config.max_attempts = 3;
    let arm = client_with(config, "t", CancellationToken::new());
    match arm.get(NS, PREVIEW).await.unwrap_err() {
        Error::Transport {
            method,
            resource,
            reason,
        } => {
            assert_eq!((method.as_str(), resource.as_str()), ("GET", NS));
            assert!(reason.ends_with("(attempt 3 of 3)"), "{reason}");
            assert!(reason.contains("Connection refused"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let stats = arm.stats();
    assert_eq!((stats.requests, stats.retries), (3, 2));
}

#[tokio::test]
async fn wrong_or_empty_tokens_are_refused() {
    let emulator = emulator(|c| c.token = Some("the-right-token".into())).await;
    let base = emulator.base_url();

    let arm = client_with(config(&base), "the-right-token", CancellationToken::new());
    assert_eq!(arm.get(NS, PREVIEW).await.unwrap(), None);

    let arm = client_with(config(&base), "a-wrong-token", CancellationToken::new());
    let error = arm.get(NS, PREVIEW).await.unwrap_err();
    assert!(!error.to_string().contains("a-wrong-token"));
    let (status, code, _) = arm_error(error);
    assert_eq!(
        (status, code.as_deref()),
        (401, Some("InvalidAuthenticationToken"))
    );
    assert_eq!((arm.stats().requests, arm.stats().retries), (1, 0));
    assert!(!format!("{arm:?}").contains("a-wrong-token"));

    // An empty token is refused before anything is sent.
    let arm = client_with(config(&base), "", CancellationToken::new());
    assert!(matches!(
        arm.get(NS, PREVIEW).await,
        Err(Error::Credential { .. })
    ));
    assert_eq!(arm.stats().requests, 0);
    emulator.shutdown().await.unwrap();
}

// ---- a scripted fake for what the emulator does not do ----

#[derive(Default)]
struct Fake {
    /// Requests per "METHOD path".
    hits: Mutex<HashMap<String, usize>>,
    /// Authorization headers seen.
    auth: Mutex<Vec<String>>,
}

impl Fake {
    fn hits(&self, key: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .get(key)
            .copied()
            .unwrap_or_default()
    }
}

fn json_reply(status: StatusCode, headers: &[(&'static str, String)], body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    for (name, value) in headers {
        response.headers_mut().insert(*name, value.parse().unwrap());
    }
    response
}

async fn fake_handler(
    axum::extract::State(fake): axum::extract::State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let key = format!("{method} {}", uri.path());
    let hit = {
        let mut hits = fake.hits.lock().unwrap();
        let n = hits.entry(key.clone()).or_default();
        *n += 1;
        *n
    };
    if let Some(auth) = headers.get("authorization") {
        fake.auth
            .lock()
            .unwrap()
            .push(auth.to_str().unwrap().to_owned());
    }
    let ok = |body: Value| json_reply(StatusCode::OK, &[], body);
    match (key.as_str(), hit) {
        // 429 with an HTTP-date Retry-After two seconds ahead, then success.
        ("GET /fake/date", 1) => {
            let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
            json_reply(
                StatusCode::TOO_MANY_REQUESTS,
                &[("retry-after", azure_core::time::to_rfc7231(&at))],
                json!({ "error": { "code": "TooManyRequests", "message": "slow down" } }),
            )
        }
        ("GET /fake/date", _) => ok(json!({ "name": "date" })),
        // A proxy's HTML error page.
        ("GET /fake/html", _) => (
            StatusCode::BAD_GATEWAY,
            [("content-type", "text/html")],
            "<html><head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>",
        )
            .into_response(),
        // Azure-AsyncOperation (on another host) that fails after one InProgress.
        ("PUT /fake/async-fail", _) => json_reply(
            StatusCode::CREATED,
            &[(
                "azure-asyncoperation",
                "https://management.azure.com/fake/ops/fail?api-version=x".into(),
            )],
            json!({ "properties": { "provisioningState": "Creating" } }),
        ),
        ("GET /fake/ops/fail", 1) => ok(json!({ "status": "InProgress" })),
        ("GET /fake/ops/fail", _) => ok(json!({
            "status": "Failed",
            "error": { "code": "QuotaExceeded", "message": "no more namespaces" }
        })),
        // Location polling: 202, 202, then 200.
        ("PUT /fake/location", _) => json_reply(
            StatusCode::ACCEPTED,
            &[
                ("location", "/fake/ops/loc?api-version=x".into()),
                ("retry-after", "0".into()),
            ],
            Value::Null,
        ),
        ("GET /fake/ops/loc", 1 | 2) => json_reply(StatusCode::ACCEPTED, &[], Value::Null),
        ("GET /fake/ops/loc", _) => StatusCode::NO_CONTENT.into_response(),
        ("GET /fake/location", _) => {
            ok(json!({ "name": "location", "properties": { "provisioningState": "Succeeded" } }))
        }
        // No monitor at all: provisioningState polled on the resource.
        ("PUT /fake/state", _) => json_reply(
            StatusCode::CREATED,
            &[],
            json!({ "name": "state", "properties": { "provisioningState": "Creating" } }),
        ),
        ("GET /fake/state", 1) => {
            ok(json!({ "name": "state", "properties": { "provisioningState": "Creating" } }))
        }
        ("GET /fake/state", _) => {
            ok(json!({ "name": "state", "properties": { "provisioningState": "Succeeded" } }))
        }
        // A nextLink on another host.
        ("GET /fake/pages", _) => ok(json!({
            "value": [1, 2],
            "nextLink": "https://elsewhere.invalid/fake/pages2?api-version=x&$skiptoken=2"
        })),
        ("GET /fake/pages2", _) => ok(json!({ "value": [3] })),
        // A synchronous delete.
        ("DELETE /fake/sync", _) => ok(Value::Null),
        _ => json_reply(
            StatusCode::NOT_FOUND,
            &[],
            json!({ "error": { "code": "NotFound", "message": key } }),
        ),
    }
}

async fn start_fake() -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let router = Router::new()
        .fallback(fake_handler)
        .with_state(Arc::clone(&fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), fake)
}

#[tokio::test]
async fn retry_after_http_date_is_honoured() {
    let (base, fake) = start_fake().await;
    let mut config = config(&base);
    config.max_retry_after = Duration::from_secs(5);
    let arm = client_with(config, "fake-token", CancellationToken::new());
    let started = Instant::now();
    let got = arm.get("/fake/date", "x").await.unwrap().unwrap();
    assert_eq!(got["name"], "date");
    // The date has whole seconds: the wait is between one and two seconds.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((arm.stats().retries, arm.stats().throttled), (1, 1));
    assert_eq!(fake.hits("GET /fake/date"), 2);
}

#[tokio::test]
async fn non_json_error_bodies_are_summarised() {
    let (base, fake) = start_fake().await;
    let mut config = config(&base);
    config.max_attempts = 3;
    let arm = client_with(config, "fake-token", CancellationToken::new());
    let (status, code, message) = arm_error(arm.get("/fake/html", "x").await.unwrap_err());
    assert_eq!((status, code), (502, None));
    assert!(message.contains("502 Bad Gateway"), "{message}");
    assert!(!message.contains('\n'));
    assert_eq!(fake.hits("GET /fake/html"), 3);
}

#[tokio::test]
async fn async_operation_failure_is_an_operation_error() {
    let (base, fake) = start_fake().await;
    let arm = client_with(config(&base), "fake-token", CancellationToken::new());
    let error = arm
        .put("/fake/async-fail", "x", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "/fake/async-fail: the operation ended Failed QuotaExceeded: no more namespaces"
    );
    // The monitor on management.azure.com was polled on the configured endpoint.
    assert_eq!(fake.hits("GET /fake/ops/fail"), 2);
    assert_eq!(arm.stats().polls, 2);
}

#[tokio::test]
async fn location_and_provisioning_state_are_polled() {
    let (base, fake) = start_fake().await;
    let arm = client_with(config(&base), "fake-token", CancellationToken::new());

    let got = arm.put("/fake/location", "x", &json!({})).await.unwrap();
    assert_eq!(got["name"], "location");
    assert_eq!(fake.hits("GET /fake/ops/loc"), 3);
    assert_eq!(fake.hits("GET /fake/location"), 1);

    let got = arm.put("/fake/state", "x", &json!({})).await.unwrap();
    assert_eq!(provisioning_state(&got), "Succeeded");
    assert_eq!(fake.hits("GET /fake/state"), 2);

    arm.delete("/fake/sync", "x").await.unwrap();
    assert_eq!(arm.stats().writes, 3);
    assert_eq!(arm.stats().polls, 5);
    let auth = fake.auth.lock().unwrap();
    assert!(auth.iter().all(|a| a == "Bearer fake-token"), "{auth:?}");
}

#[tokio::test]
async fn next_links_are_followed_on_the_configured_endpoint() {
    let (base, fake) = start_fake().await;
    let arm = client_with(config(&base), "fake-token", CancellationToken::new());
    let items = arm.list("/fake/pages", "x").await.unwrap();
    assert_eq!(items, [json!(1), json!(2), json!(3)]);
    assert_eq!(fake.hits("GET /fake/pages2"), 1);

    let (status, code, _) = arm_error(arm.list("/fake/missing", "x").await.unwrap_err());
    assert_eq!((status, code.as_deref()), (404, Some("NotFound")));
}
