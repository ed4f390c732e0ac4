//! Server-side apply sends the right requests: tested against a recording HTTP server (no
//! cluster runs here); a real-cluster test is ignored with its reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::IntoResponse,
};
use e4k_provisioning::k8s::{apply, secret::secret_yaml};

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    uri: String,
    content_type: String,
    body: serde_json::Value,
}

type Log = Arc<Mutex<Vec<Recorded>>>;

async fn record(
    State(log): State<Log>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    log.lock().unwrap().push(Recorded {
        method,
        uri: uri.to_string(),
        content_type,
        body: body.clone(),
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
}

async fn recording_cluster() -> (kube::Client, Log) {
    let log: Log = Arc::default();
    let app = Router::new().fallback(record).with_state(Arc::clone(&log));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    (kube::Client::try_from(config).unwrap(), log)
}

#[tokio::test]
async fn server_side_apply_patches_each_object_with_the_e4k_field_manager() {
    let (client, log) = recording_cluster().await;
    let secret = secret_yaml(
        "bridge-client-cert",
        Some("factory"),
        &[("client_cert.pem", b"cert".to_vec())],
    );
    let manifests = format!(
        "{secret}---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: e4k-bridge\nspec:\n  replicas: 3\n"
    );
    let applied = apply::apply_yaml(&client, &manifests, Some("edge"))
        .await
        .unwrap();
    assert_eq!(applied.len(), 2);
    assert_eq!(
        (applied[0].kind.as_str(), applied[0].namespace.as_str()),
        ("Secret", "factory")
    );
    assert_eq!(
        (applied[1].kind.as_str(), applied[1].namespace.as_str()),
        ("StatefulSet", "edge")
    );

    let requests = log.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let secret = &requests[0];
    assert_eq!(secret.method, Method::PATCH);
    assert_eq!(
        secret.uri,
        "/api/v1/namespaces/factory/secrets/bridge-client-cert?&force=true&fieldManager=e4k"
    );
    assert_eq!(secret.content_type, "application/apply-patch+yaml");
    assert_eq!(secret.body["kind"], "Secret");
    assert_eq!(secret.body["data"]["client_cert.pem"], "Y2VydA==");
    let statefulset = &requests[1];
    assert_eq!(
        statefulset.uri,
        "/apis/apps/v1/namespaces/edge/statefulsets/e4k-bridge?&force=true&fieldManager=e4k"
    );
    assert_eq!(statefulset.body["spec"]["replicas"], 3);
}

#[tokio::test]
async fn unsupported_kinds_and_refusals_are_clear_errors() {
    let (client, _log) = recording_cluster().await;
    let err = apply::apply_yaml(
        &client,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n",
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "Pod p: e4k does not apply v1/Pod objects");
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster in the current kubeconfig"]
async fn applies_to_a_real_cluster_twice() {
    let client = apply::connect().await.unwrap();
    let secret = secret_yaml("e4k-ssa-test", None, &[("k", b"v".to_vec())]);
    apply::apply_yaml(&client, &secret, None).await.unwrap();
    apply::apply_yaml(&client, &secret, None).await.unwrap();
}
