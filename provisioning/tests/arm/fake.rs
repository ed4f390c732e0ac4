//! A scripted axum fake for what the emulator does not do: `Retry-After` dates, non-JSON bodies,
//! `Location` and `provisioningState` polling, next links.

use super::*;

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
