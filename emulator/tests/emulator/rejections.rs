//! Requests the real service refuses, with the ARM error code, status and target.

use e4k_emulator::{EmulatorConfig, Quotas};
use serde_json::{Value, json};

use crate::seed::{NS, namespace_body};
use crate::util::{Arm, PREVIEW, ROOT_CA, STABLE, child_path, fast, ns_path, one_line, start};

fn client_body(scheme: &str) -> Value {
    json!({ "properties": { "clientCertificateAuthentication": { "validationScheme": scheme } } })
}

/// An emulator with the seed namespace in place.
async fn with_namespace(config: EmulatorConfig) -> (e4k_emulator::RunningEmulator, Arm) {
    let emulator = start(config).await;
    let arm = Arm::new(&emulator, PREVIEW);
    arm.put_and_wait(&ns_path(NS), &namespace_body()).await;
    (emulator, arm)
}

#[track_caller]
fn assert_error(reply: &crate::util::Reply, status: u16, code: &str, target: &str) {
    assert_eq!(
        (reply.status, reply.code(), reply.target()),
        (status, code, target),
        "{reply:?}"
    );
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test]
async fn authentication_is_required() {
    let emulator = start(EmulatorConfig {
        token: Some("right".into()),
        ..fast()
    })
    .await;
    let mut arm = Arm::new(&emulator, STABLE);
    arm.token = None;
    let reply = arm.get(&ns_path(NS)).await;
    assert_error(&reply, 401, "AuthenticationFailed", "");
    assert!(reply.header("www-authenticate").is_some());
    arm.token = Some("wrong".into());
    assert_error(
        &arm.get(&ns_path(NS)).await,
        401,
        "InvalidAuthenticationToken",
        "",
    );
    arm.token = Some("right".into());
    assert_error(&arm.get(&ns_path(NS)).await, 404, "ResourceNotFound", "");
}

#[tokio::test]
async fn api_version_is_required_and_checked() {
    let emulator = start(fast()).await;
    let mut arm = Arm::new(&emulator, STABLE);
    let url = format!("{}{}", arm.base, ns_path(NS));
    assert_error(&arm.get(&url).await, 400, "MissingApiVersionParameter", "");
    arm.api_version = "2099-01-01".into();
    assert_error(
        &arm.get(&ns_path(NS)).await,
        400,
        "NoRegisteredProviderFound",
        "api-version",
    );
    arm.api_version = "latest".into();
    assert_error(
        &arm.get(&ns_path(NS)).await,
        400,
        "InvalidApiVersionParameter",
        "api-version",
    );
}

#[tokio::test]
async fn configured_api_versions_only() {
    let config = EmulatorConfig {
        api_versions: vec![PREVIEW.into()],
        ..fast()
    };
    let emulator = start(config).await;
    let arm = Arm::new(&emulator, STABLE);
    assert_error(
        &arm.get(&ns_path(NS)).await,
        400,
        "NoRegisteredProviderFound",
        "api-version",
    );
}

#[tokio::test]
async fn preview_properties_are_refused_on_stable() {
    let emulator = start(fast()).await;
    let arm = Arm::new(&emulator, STABLE);
    let reply = arm.put(&ns_path(NS), &namespace_body()).await;
    assert_error(
        &reply,
        400,
        "InvalidRequestContent",
        "properties.topicSpacesConfiguration.clientAuthentication",
    );
    assert_eq!(emulator.stats().writes(), 1);
    assert_eq!(
        arm.get(&ns_path(NS)).await.status,
        404,
        "nothing was created"
    );
}

#[tokio::test]
async fn bodies_must_be_json_matching_the_schema() {
    let (_emulator, arm) = with_namespace(fast()).await;
    let path = child_path(NS, "topicSpaces", "ts1");
    let raw = reqwest::Client::new()
        .put(format!("{}{path}?api-version={PREVIEW}", arm.base))
        .bearer_auth("t")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidRequestContent");

    let wrong_type = json!({ "properties": { "topicTemplates": "a/#" } });
    assert_error(
        &arm.put(&path, &wrong_type).await,
        400,
        "InvalidRequestContent",
        "properties.topicTemplates",
    );
    let wrong_enum = json!({ "properties": { "topicSpaceName": "t", "clientGroupName": "$all", "permission": "Admin" } });
    let binding = child_path(NS, "permissionBindings", "pb1");
    assert_error(
        &arm.put(&binding, &wrong_enum).await,
        400,
        "InvalidRequestContent",
        "properties.permission",
    );
    let unknown = json!({ "properties": { "topicTemplates": ["a/#"], "retain": true } });
    assert_error(
        &arm.put(&path, &unknown).await,
        400,
        "InvalidRequestContent",
        "properties.retain",
    );
}

#[tokio::test]
async fn read_only_properties_are_ignored() {
    let (_emulator, arm) = with_namespace(fast()).await;
    let path = child_path(NS, "topicSpaces", "ts1");
    let body = json!({ "id": "/bogus", "name": "bogus", "type": "x",
        "properties": { "topicTemplates": ["a/#"], "provisioningState": "Failed" } });
    let got = arm.put_and_wait(&path, &body).await;
    assert_eq!(got["id"], path);
    assert_eq!(got["name"], "ts1");
    assert_eq!(got["properties"]["provisioningState"], "Succeeded");
}

/// One expected rejection of a child PUT: collection, name, body, then status, code and target.
type Case<'a> = (&'a str, &'a str, Value, u16, &'a str, &'a str);

/// PUTs each case to the seed namespace and checks the ARM error.
async fn expect_rejections(arm: &Arm, cases: Vec<Case<'_>>) {
    for (segment, name, body, status, code, target) in cases {
        let reply = arm.put(&child_path(NS, segment, name), &body).await;
        assert_error(&reply, status, code, target);
    }
}

#[tokio::test]
async fn names_follow_the_spec_rules() {
    let (_emulator, arm) = with_namespace(fast()).await;
    let ts = json!({ "properties": { "topicTemplates": ["a/#"] } });
    let group = json!({ "properties": { "query": "attributes.a = 'b'" } });
    let client = client_body("SubjectMatchesAuthenticationName");
    expect_rejections(
        &arm,
        vec![
            (
                "topicSpaces",
                "ab",
                ts.clone(),
                400,
                "BadRequest",
                "topicSpaceName",
            ),
            (
                "topicSpaces",
                "a_b",
                ts,
                400,
                "BadRequest",
                "topicSpaceName",
            ),
            (
                "clientGroups",
                "%24all",
                group,
                400,
                "BadRequest",
                "clientGroupName",
            ),
            (
                "clients",
                "dev%2F1",
                client.clone(),
                400,
                "BadRequest",
                "clientName",
            ),
        ],
    )
    .await;
    let long = ns_path(&"n".repeat(51));
    assert_error(
        &arm.put(&long, &namespace_body()).await,
        400,
        "BadRequest",
        "namespaceName",
    );
    let odd_but_valid = arm
        .put(&child_path(NS, "clients", "dev:1.a_b-c"), &client)
        .await;
    assert_eq!(odd_but_valid.status, 201);
}

#[tokio::test]
async fn client_rules() {
    let (_emulator, arm) = with_namespace(fast()).await;
    let thumbprints = "properties.clientCertificateAuthentication.allowedThumbprints";
    let mut with_thumbprints = client_body("SubjectMatchesAuthenticationName");
    with_thumbprints["properties"]["clientCertificateAuthentication"]["allowedThumbprints"] =
        json!(["AB12"]);
    let no_scheme = json!({ "properties": { "state": "Enabled" } });
    let scheme = "properties.clientCertificateAuthentication.validationScheme";
    let mut first = client_body("SubjectMatchesAuthenticationName");
    first["properties"]["authenticationName"] = json!("device-1");
    let mut duplicate = first.clone();
    duplicate["properties"]["authenticationName"] = json!("DEVICE-1");
    let mut renamed = first.clone();
    renamed["properties"]["authenticationName"] = json!("device-2");
    let auth_name = "properties.authenticationName";

    expect_rejections(
        &arm,
        vec![
            (
                "clients",
                "c1",
                with_thumbprints,
                400,
                "BadRequest",
                thumbprints,
            ),
            (
                "clients",
                "c1",
                client_body("ThumbprintMatch"),
                400,
                "BadRequest",
                thumbprints,
            ),
            ("clients", "c1", no_scheme, 400, "BadRequest", scheme),
        ],
    )
    .await;
    arm.put_and_wait(&child_path(NS, "clients", "c1"), &first)
        .await;
    expect_rejections(
        &arm,
        vec![
            ("clients", "c2", duplicate, 409, "Conflict", auth_name),
            ("clients", "c1", renamed, 400, "BadRequest", auth_name),
        ],
    )
    .await;
    // The same body again is an update (names are case-insensitive), not a conflict with itself.
    assert_eq!(
        arm.put(&child_path(NS, "clients", "C1"), &first)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn topic_space_group_and_certificate_rules() {
    let (_emulator, arm) = with_namespace(fast()).await;
    let templates = |t: Value| json!({ "properties": { "topicTemplates": t } });
    let bad_query = json!({ "properties": { "query": "attributes.a == 'b'" } });
    let bad_cert = json!({ "properties": { "encodedCertificate": "base64EncodePemFormattedCertificateString" } });
    // Standard multi-line PEM is refused, as by the real service (azure-cli#30243).
    let multi_line_cert = json!({ "properties": { "encodedCertificate": ROOT_CA } });
    expect_rejections(
        &arm,
        vec![
            (
                "topicSpaces",
                "ts1",
                templates(json!(["a/#/b"])),
                400,
                "BadRequest",
                "properties.topicTemplates[0]",
            ),
            (
                "topicSpaces",
                "ts1",
                templates(json!(["a/${client.name}"])),
                400,
                "BadRequest",
                "properties.topicTemplates[0]",
            ),
            (
                "topicSpaces",
                "ts1",
                templates(json!([])),
                400,
                "BadRequest",
                "properties.topicTemplates",
            ),
            (
                "clientGroups",
                "group1",
                bad_query,
                400,
                "BadRequest",
                "properties.query",
            ),
            (
                "caCertificates",
                "ca1",
                bad_cert,
                400,
                "BadRequest",
                "properties.encodedCertificate",
            ),
            (
                "caCertificates",
                "ca1",
                multi_line_cert,
                400,
                "BadRequest",
                "properties.encodedCertificate",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn bindings_reference_existing_resources() {
    let (_emulator, arm) = with_namespace(fast()).await;
    let path = child_path(NS, "permissionBindings", "pb1");
    let binding = json!({ "properties": { "topicSpaceName": "telemetry", "clientGroupName": "$all", "permission": "Publisher" } });
    assert_error(
        &arm.put(&path, &binding).await,
        400,
        "BadRequest",
        "properties.topicSpaceName",
    );
    arm.put_and_wait(
        &child_path(NS, "topicSpaces", "telemetry"),
        &json!({ "properties": { "topicTemplates": ["t/#"] } }),
    )
    .await;
    let missing_group = json!({ "properties": { "topicSpaceName": "telemetry", "clientGroupName": "nobody", "permission": "Publisher" } });
    assert_error(
        &arm.put(&path, &missing_group).await,
        400,
        "BadRequest",
        "properties.clientGroupName",
    );
    arm.put_and_wait(&path, &binding).await;
    let in_use = arm
        .delete(&child_path(NS, "topicSpaces", "telemetry"))
        .await;
    assert_error(&in_use, 409, "Conflict", "");
}

#[tokio::test]
async fn quotas_are_enforced() {
    let quotas = Quotas {
        topic_spaces: 1,
        ca_certificates: 1,
        ..Quotas::default()
    };
    let (_emulator, arm) = with_namespace(EmulatorConfig { quotas, ..fast() }).await;
    let ts = json!({ "properties": { "topicTemplates": ["a/#"] } });
    arm.put_and_wait(&child_path(NS, "topicSpaces", "ts1"), &ts)
        .await;
    assert_error(
        &arm.put(&child_path(NS, "topicSpaces", "ts2"), &ts).await,
        400,
        "BadRequest",
        "",
    );
    // Updating an existing one is not a new resource.
    let update = arm.put(&child_path(NS, "topicSpaces", "ts1"), &ts).await;
    assert_eq!(update.status, 200);
    arm.wait(&update).await;
    let eleven: Vec<String> = (0..11).map(|i| format!("t/{i}")).collect();
    let too_many = json!({ "properties": { "topicTemplates": eleven } });
    assert_error(
        &arm.put(&child_path(NS, "topicSpaces", "ts1"), &too_many)
            .await,
        400,
        "BadRequest",
        "properties.topicTemplates",
    );
    let ca = json!({ "properties": { "encodedCertificate": one_line(ROOT_CA) } });
    arm.put_and_wait(&child_path(NS, "caCertificates", "ca1"), &ca)
        .await;
    assert_error(
        &arm.put(&child_path(NS, "caCertificates", "ca2"), &ca).await,
        400,
        "BadRequest",
        "",
    );
}

#[tokio::test]
async fn namespace_rules() {
    let emulator = start(fast()).await;
    let arm = Arm::new(&emulator, PREVIEW);
    let mut body = namespace_body();
    body["properties"]["topicSpacesConfiguration"]["maximumClientSessionsPerAuthenticationName"] =
        json!(101);
    assert_error(
        &arm.put(&ns_path(NS), &body).await,
        400,
        "BadRequest",
        "properties.topicSpacesConfiguration.maximumClientSessionsPerAuthenticationName",
    );
    assert_error(
        &arm.put(&ns_path(NS), &json!({ "properties": {} })).await,
        400,
        "InvalidRequestContent",
        "location",
    );
    arm.put_and_wait(&ns_path(NS), &namespace_body()).await;
    let mut moved = namespace_body();
    moved["location"] = json!("eastus");
    assert_error(
        &arm.put(&ns_path(NS), &moved).await,
        409,
        "InvalidResourceLocation",
        "location",
    );
    let other_rg = ns_path(NS).replace("rg-e4k", "rg-other");
    assert_error(
        &arm.put(&other_rg, &namespace_body()).await,
        409,
        "Conflict",
        "namespaceName",
    );
}

#[tokio::test]
async fn missing_resources_and_routes() {
    let emulator = start(fast()).await;
    let arm = Arm::new(&emulator, PREVIEW);
    assert_error(&arm.get(&ns_path(NS)).await, 404, "ResourceNotFound", "");
    assert_error(
        &arm.get(&child_path(NS, "clients", "c1")).await,
        404,
        "ParentResourceNotFound",
        "",
    );
    let client = client_body("SubjectMatchesAuthenticationName");
    assert_error(
        &arm.put(&child_path(NS, "clients", "c1"), &client).await,
        404,
        "ParentResourceNotFound",
        "",
    );
    assert_eq!(
        arm.delete(&child_path(NS, "clients", "c1")).await.status,
        204
    );
    assert_error(
        &arm.get(&format!("{}/topics/t1", ns_path(NS))).await,
        404,
        "NotFound",
        "",
    );
    assert_error(
        &arm.patch(&child_path(NS, "clients", "c1"), &client).await,
        405,
        "MethodNotAllowed",
        "",
    );
    assert_eq!(emulator.stats().unrouted, 1);
}
