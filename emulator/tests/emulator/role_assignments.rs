//! `Microsoft.Authorization/roleAssignments` at a namespace and at a topic space: PUT (201 new,
//! 200 same, 409 duplicate or changed, 400 invalid), GET, DELETE (200 / 204), lists with
//! `$filter=atScope()`, the api-version, the statistics, and every answer checked against
//! Microsoft's `RoleAssignment` schema.

use e4k_emulator::{
    EmulatorConfig, ResourceKind, Verb,
    spec::{AUTHORIZATION_API_VERSION, Direction, Spec},
};
use serde_json::{Value, json};

use crate::util::{Arm, PREVIEW, SUB, child_path, fast, ns_path, start};

const NS: &str = "rbac-ns";
const PUBLISHER: &str = "a12b0b94-b317-4dcd-84a8-502ce99884c6";
const SUBSCRIBER: &str = "4b0f2fd7-60b4-4eca-896f-4435034f8bf5";
const ALICE: &str = "6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90";
const N1: &str = "11111111-0000-0000-0000-000000000001";
const N2: &str = "11111111-0000-0000-0000-000000000002";
const N3: &str = "11111111-0000-0000-0000-000000000003";

fn assignments(scope: &str) -> String {
    format!("{scope}/providers/Microsoft.Authorization/roleAssignments")
}

fn assignment(scope: &str, name: &str) -> String {
    format!("{}/{name}", assignments(scope))
}

fn body(role: &str, principal: &str) -> Value {
    json!({ "properties": {
        "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}"),
        "principalId": principal,
        "principalType": "ServicePrincipal",
        "description": "managed by e4k",
    } })
}

/// An emulator with a namespace and its topic space `telemetry`.
async fn namespace() -> (e4k_emulator::RunningEmulator, Arm) {
    let emulator = start(EmulatorConfig {
        page_size: 2,
        ..fast()
    })
    .await;
    let eventgrid = Arm::new(&emulator, PREVIEW);
    eventgrid
        .put_and_wait(
            &ns_path(NS),
            &json!({ "location": "westeurope", "properties": { "topicSpacesConfiguration": { "state": "Enabled" } } }),
        )
        .await;
    eventgrid
        .put_and_wait(
            &child_path(NS, "topicSpaces", "telemetry"),
            &json!({ "properties": { "topicTemplates": ["t/#"] } }),
        )
        .await;
    let rbac = Arm::new(&emulator, AUTHORIZATION_API_VERSION);
    (emulator, rbac)
}

fn check_resource(doc: &Value) {
    let spec = Spec::authorization().unwrap();
    spec.validate("RoleAssignment", doc, Direction::Response)
        .unwrap_or_else(|v| panic!("{v}: {doc:#}"));
}

#[tokio::test]
async fn role_assignments_at_the_namespace_and_a_topic_space() {
    let (emulator, arm) = namespace().await;
    let ns = ns_path(NS);
    let ts = child_path(NS, "topicSpaces", "telemetry");
    emulator.reset_stats();

    let created = arm
        .put(&assignment(&ns, N1), &body(SUBSCRIBER, ALICE))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert!(created.header("azure-asyncoperation").is_none());
    check_resource(&created.body);
    assert_eq!(created.body["name"], N1);
    assert_eq!(
        created.body["type"],
        "Microsoft.Authorization/roleAssignments"
    );
    assert_eq!(created.body["id"], assignment(&ns, N1));
    assert_eq!(created.body["properties"]["scope"], ns);
    assert!(
        created.body["properties"]
            .get("provisioningState")
            .is_none()
    );

    let again = arm
        .put(&assignment(&ns, N1), &body(SUBSCRIBER, ALICE))
        .await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(
        again.body["properties"]["createdOn"],
        created.body["properties"]["createdOn"]
    );

    let at_topic_space = arm.put(&assignment(&ts, N2), &body(PUBLISHER, ALICE)).await;
    assert_eq!(at_topic_space.status, 201, "{at_topic_space:?}");
    assert_eq!(at_topic_space.body["properties"]["scope"], ts);
    let got = arm.get(&assignment(&ts, N2)).await;
    assert_eq!(got.status, 200);
    check_resource(&got.body);
    // Not at the other scope.
    assert_eq!(
        arm.get(&assignment(&ns, N2)).await.code(),
        "RoleAssignmentNotFound"
    );

    // The same principal, role and scope under another name.
    let duplicate = arm.put(&assignment(&ts, N3), &body(PUBLISHER, ALICE)).await;
    assert_eq!(
        (duplicate.status, duplicate.code()),
        (409, "RoleAssignmentExists")
    );
    // The same name with another role.
    let changed = arm
        .put(&assignment(&ts, N2), &body(SUBSCRIBER, ALICE))
        .await;
    assert_eq!(
        (changed.status, changed.code()),
        (409, "RoleAssignmentUpdateNotPermitted")
    );

    // atScope(): at the scope and above it; no filter: below too.
    let filter = "?$filter=atScope()";
    let (at_ns, _) = arm.list_all(&format!("{}{filter}", assignments(&ns))).await;
    assert_eq!(names(&at_ns), [N1]);
    let (at_ts, _) = arm.list_all(&format!("{}{filter}", assignments(&ts))).await;
    assert_eq!(names(&at_ts), [N1, N2]);
    let (all, _) = arm.list_all(&assignments(&ns)).await;
    assert_eq!(names(&all), [N1, N2]);
    at_ts.iter().for_each(check_resource);
    let bad = arm
        .get(&format!(
            "{}?$filter=principalId eq '{ALICE}'",
            assignments(&ns)
        ))
        .await;
    assert_eq!((bad.status, bad.target()), (400, "$filter"));

    let deleted = arm.delete(&assignment(&ts, N2)).await;
    assert_eq!(deleted.status, 200);
    check_resource(&deleted.body);
    assert_eq!(arm.delete(&assignment(&ts, N2)).await.status, 204);

    let stats = emulator.stats();
    assert_eq!(stats.count(Verb::Put, ResourceKind::RoleAssignment), 5);
    assert_eq!(stats.count(Verb::Delete, ResourceKind::RoleAssignment), 2);
    assert_eq!(stats.count(Verb::List, ResourceKind::RoleAssignment), 4);
    assert_eq!(stats.writes(), 7);
    emulator.shutdown().await.unwrap();
}

fn names(items: &[Value]) -> Vec<&str> {
    let mut names: Vec<&str> = items.iter().filter_map(|i| i["name"].as_str()).collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn invalid_role_assignments_are_refused() {
    let (emulator, arm) = namespace().await;
    let ns = ns_path(NS);
    let put = |name: &'static str, body: Value| {
        let arm = &arm;
        let path = assignment(&ns, name);
        async move { arm.put(&path, &body).await }
    };
    let reply = put("not-a-guid", body(PUBLISHER, ALICE)).await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, "InvalidRoleAssignmentId")
    );
    let reply = put(N1, body(PUBLISHER, "alice")).await;
    assert_eq!((reply.status, reply.code()), (400, "InvalidPrincipalId"));
    let mut wrong_role = body(PUBLISHER, ALICE);
    wrong_role["properties"]["roleDefinitionId"] = json!("EventGrid TopicSpaces Publisher");
    let reply = put(N1, wrong_role).await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, "InvalidRoleDefinitionId")
    );
    let reply = put(N1, json!({ "properties": { "principalId": ALICE } })).await;
    assert_eq!(
        (reply.status, reply.code(), reply.target()),
        (400, "InvalidRequestContent", "properties.roleDefinitionId")
    );
    let mut unknown = body(PUBLISHER, ALICE);
    unknown["properties"]["colour"] = json!("red");
    let reply = put(N1, unknown).await;
    assert_eq!((reply.status, reply.code()), (400, "InvalidRequestContent"));

    // Only 2022-04-01.
    let mut other = Arm::new(&emulator, "2020-04-01-preview");
    let reply = other
        .put(&assignment(&ns, N1), &body(PUBLISHER, ALICE))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, "NoRegisteredProviderFound")
    );
    other.api_version = PREVIEW.into();
    assert_eq!(other.get(&assignments(&ns)).await.status, 400);

    // Missing scopes.
    let missing_ts = child_path(NS, "topicSpaces", "nope");
    let reply = arm
        .put(&assignment(&missing_ts, N1), &body(PUBLISHER, ALICE))
        .await;
    assert_eq!((reply.status, reply.code()), (404, "ResourceNotFound"));
    assert_eq!(arm.delete(&assignment(&missing_ts, N1)).await.status, 204);
    let (none, _) = arm.list_all(&assignments(&ns)).await;
    assert!(none.is_empty(), "{none:?}");
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn deleting_a_topic_space_deletes_its_assignments() {
    let (emulator, arm) = namespace().await;
    let ns = ns_path(NS);
    let ts = child_path(NS, "topicSpaces", "telemetry");
    assert_eq!(
        arm.put(&assignment(&ts, N1), &body(PUBLISHER, ALICE))
            .await
            .status,
        201
    );
    assert_eq!(
        arm.put(&assignment(&ns, N2), &body(PUBLISHER, ALICE))
            .await
            .status,
        201
    );
    let eventgrid = Arm::new(&emulator, PREVIEW);
    let deleted = eventgrid.delete(&ts).await;
    assert_eq!(deleted.status, 202);
    eventgrid.wait(&deleted).await;
    let (left, _) = arm.list_all(&assignments(&ns)).await;
    assert_eq!(names(&left), [N2]);
    emulator.shutdown().await.unwrap();
}
