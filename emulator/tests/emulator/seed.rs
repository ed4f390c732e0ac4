//! The e4k seed scenario, created with PUTs, polled to Succeeded and read back.

use e4k_emulator::{ResourceKind, Verb};
use serde_json::{Value, json};

use crate::util::{
    Arm, INTERMEDIATE_CA, PREVIEW, ROOT_CA, child_path, fast, names, ns_path, one_line, start,
};

pub(crate) const NS: &str = "e4k-seed";

pub(crate) fn namespace_body() -> Value {
    json!({
        "location": "westeurope",
        "sku": { "name": "Standard", "capacity": 1 },
        "properties": { "topicSpacesConfiguration": {
            "state": "Enabled",
            "maximumClientSessionsPerAuthenticationName": 3,
            "clientAuthentication": {
                "alternativeAuthenticationNameSources": ["ClientCertificateSubject"]
            }
        } }
    })
}

fn client(attributes: Value) -> Value {
    json!({ "properties": {
        "state": "Enabled",
        "clientCertificateAuthentication": { "validationScheme": "SubjectMatchesAuthenticationName" },
        "attributes": attributes
    } })
}

/// The children of the seed namespace, in creation order: (collection, name, body).
pub(crate) fn children() -> Vec<(&'static str, &'static str, Value)> {
    let ca = |pem: &str| json!({ "properties": { "encodedCertificate": one_line(pem) } });
    let topic_space = |template: &str| json!({ "properties": { "topicTemplates": [template] } });
    let query = json!({ "properties": { "query": "attributes.commander = \"true\"" } });
    let mut children = vec![
        ("caCertificates", "root", ca(ROOT_CA)),
        ("caCertificates", "intermediate", ca(INTERMEDIATE_CA)),
        ("clients", "mqttbridge", client(json!({}))),
        (
            "clients",
            "mosquitto",
            client(json!({ "commander": "true" })),
        ),
        (
            "topicSpaces",
            "telemetry",
            topic_space("factory/telemetry/#"),
        ),
        ("topicSpaces", "command", topic_space("command/#")),
        ("clientGroups", "commanders", query),
    ];
    let bindings = [
        ("all-pub-telemetry", "telemetry", "$all", "Publisher"),
        ("all-sub-telemetry", "telemetry", "$all", "Subscriber"),
        (
            "commanders-pub-command",
            "command",
            "commanders",
            "Publisher",
        ),
        ("all-sub-command", "command", "$all", "Subscriber"),
    ];
    children.extend(bindings.map(|(name, topic_space, group, permission)| {
        let properties = json!({
            "topicSpaceName": topic_space, "clientGroupName": group, "permission": permission
        });
        (
            "permissionBindings",
            name,
            json!({ "properties": properties }),
        )
    }));
    children
}

/// Creates the whole seed and returns the GET of every child.
pub(crate) async fn provision(arm: &Arm) -> Vec<Value> {
    arm.put_and_wait(&ns_path(NS), &namespace_body()).await;
    let mut created = Vec::new();
    for (segment, name, body) in children() {
        created.push(
            arm.put_and_wait(&child_path(NS, segment, name), &body)
                .await,
        );
    }
    created
}

#[tokio::test]
async fn seed_is_created_and_read_back() {
    let emulator = start(fast()).await;
    let arm = Arm::new(&emulator, PREVIEW);
    let created = provision(&arm).await;

    let ns = arm.get(&ns_path(NS)).await.body;
    let tsc = &ns["properties"]["topicSpacesConfiguration"];
    assert_eq!(ns["type"], "Microsoft.EventGrid/namespaces");
    assert_eq!(ns["id"], ns_path(NS));
    assert_eq!(tsc["state"], "Enabled");
    assert_eq!(tsc["maximumClientSessionsPerAuthenticationName"], 3);
    assert_eq!(
        tsc["clientAuthentication"]["alternativeAuthenticationNameSources"],
        json!(["ClientCertificateSubject"])
    );
    assert_eq!(
        tsc["hostname"],
        "e4k-seed.westeurope-1.ts.eventgrid.azure.net"
    );

    for ((segment, name, body), got) in children().iter().zip(&created) {
        assert_eq!(got["name"], *name);
        assert_eq!(got["id"], child_path(NS, segment, name));
        assert_eq!(
            got["type"],
            format!("Microsoft.EventGrid/namespaces/{segment}")
        );
        for (key, value) in body["properties"].as_object().unwrap() {
            assert_eq!(&got["properties"][key], value, "{segment}/{name}.{key}");
        }
    }
    let bridge = &created[2]["properties"];
    assert_eq!(bridge["authenticationName"], "mqttbridge");
    let root = &created[0]["properties"];
    assert!(root["issueTimeInUtc"].as_str().unwrap().starts_with("20"));
    assert!(root["expiryTimeInUtc"].as_str().unwrap().starts_with("21"));

    let (clients, _) = arm.list_all(&format!("{}/clients", ns_path(NS))).await;
    assert_eq!(names(&clients), ["mosquitto", "mqttbridge"]);
    let (bindings, pages) = arm
        .list_all(&format!("{}/permissionBindings", ns_path(NS)))
        .await;
    assert_eq!(bindings.len(), 4);
    assert!(pages >= 1);
    let (groups, _) = arm.list_all(&format!("{}/clientGroups", ns_path(NS))).await;
    assert_eq!(names(&groups), ["commanders"]);
    let (namespaces, _) = arm
        .list_all(&format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.EventGrid/namespaces",
            crate::util::SUB,
            crate::util::RG
        ))
        .await;
    assert_eq!(names(&namespaces), [NS]);

    let stats = emulator.stats();
    assert_eq!(stats.count(Verb::Put, ResourceKind::Namespace), 1);
    assert_eq!(stats.count(Verb::Put, ResourceKind::PermissionBinding), 4);
    assert_eq!(stats.writes(), 12);
    emulator.shutdown().await.unwrap();
}

/// A rerun that finds everything in place reads and never writes; the counters prove it.
#[tokio::test]
async fn read_only_rerun_counts_no_writes() {
    let emulator = start(fast()).await;
    let arm = Arm::new(&emulator, PREVIEW);
    provision(&arm).await;
    emulator.reset_stats();

    for (segment, name, _) in children() {
        let got = arm.get(&child_path(NS, segment, name)).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.state(), "Succeeded");
    }
    let stats = emulator.stats();
    assert_eq!(stats.writes(), 0);
    assert_eq!(stats.gets(), 11);
    assert_eq!(stats.count(Verb::Get, ResourceKind::Client), 2);
    assert_eq!(emulator.captured_requests().len(), 11);
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn captured_requests_hold_bodies_and_api_versions() {
    let emulator = start(fast()).await;
    let arm = Arm::new(&emulator, PREVIEW);
    arm.put_and_wait(&ns_path(NS), &namespace_body()).await;
    let captured = emulator.captured_requests();
    let put = captured.iter().find(|r| r.method == "PUT").unwrap();
    assert_eq!(put.path, ns_path(NS));
    assert_eq!(put.api_version.as_deref(), Some(PREVIEW));
    assert_eq!(put.json().unwrap(), namespace_body());
    assert!(
        captured
            .iter()
            .any(|r| r.method == "GET" && r.body.is_none())
    );
    emulator.shutdown().await.unwrap();
}
