//! Lists come in pages linked by `nextLink`; `$top` sets the page size.

use e4k_emulator::{EmulatorConfig, ResourceKind, Verb};
use serde_json::json;

use crate::seed::{NS, namespace_body};
use crate::util::{Arm, PREVIEW, RG, SUB, child_path, fast, names, ns_path, start};

#[tokio::test]
async fn lists_are_paged() {
    let emulator = start(EmulatorConfig {
        page_size: 2,
        ..fast()
    })
    .await;
    let arm = Arm::new(&emulator, PREVIEW);
    arm.put_and_wait(&ns_path(NS), &namespace_body()).await;
    for name in ["ts-e", "ts-a", "ts-c", "ts-b", "ts-d"] {
        let body = json!({ "properties": { "topicTemplates": [format!("{name}/#")] } });
        arm.put_and_wait(&child_path(NS, "topicSpaces", name), &body)
            .await;
    }
    let collection = format!("{}/topicSpaces", ns_path(NS));
    emulator.reset_stats();

    let first = arm.get(&collection).await;
    assert_eq!(
        names(first.body["value"].as_array().unwrap()),
        ["ts-a", "ts-b"]
    );
    let next = first.body["nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{}{collection}?api-version={PREVIEW}", arm.base)),
        "{next}"
    );
    assert!(next.contains("$skiptoken="), "{next}");

    let (all, pages) = arm.list_all(&collection).await;
    assert_eq!(names(&all), ["ts-a", "ts-b", "ts-c", "ts-d", "ts-e"]);
    assert_eq!(pages, 3);
    assert_eq!(
        emulator.stats().count(Verb::List, ResourceKind::TopicSpace),
        4
    );

    let (all, pages) = arm.list_all(&format!("{collection}?$top=4")).await;
    assert_eq!((all.len(), pages), (5, 2));
    let last = arm.get(&format!("{collection}?$top=5")).await;
    assert!(last.body.get("nextLink").is_none());

    for bad in ["0", "101", "x"] {
        let reply = arm.get(&format!("{collection}?$top={bad}")).await;
        assert_eq!(
            (reply.status, reply.code(), reply.target()),
            (400, "BadRequest", "$top")
        );
    }
    let reply = arm.get(&format!("{collection}?$skiptoken=zz")).await;
    assert_eq!((reply.status, reply.target()), (400, "$skiptoken"));
}

#[tokio::test]
async fn namespaces_are_listed_per_resource_group_and_subscription() {
    let emulator = start(EmulatorConfig {
        page_size: 1,
        ..fast()
    })
    .await;
    let arm = Arm::new(&emulator, PREVIEW);
    for ns in ["ns-one", "ns-two"] {
        arm.put_and_wait(&ns_path(ns), &namespace_body()).await;
    }
    let other = ns_path("ns-three").replace(RG, "rg-other");
    arm.put_and_wait(&other, &namespace_body()).await;

    let by_group = format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.EventGrid/namespaces"
    );
    let (items, pages) = arm.list_all(&by_group).await;
    assert_eq!((names(&items), pages), (vec!["ns-one", "ns-two"], 2));
    // Fixed segments match case-insensitively, like ARM.
    let (items, _) = arm
        .list_all(&by_group.to_lowercase().replace(&SUB.to_lowercase(), SUB))
        .await;
    assert_eq!(items.len(), 2);
    let by_subscription = format!("/subscriptions/{SUB}/providers/Microsoft.EventGrid/namespaces");
    let (items, pages) = arm.list_all(&by_subscription).await;
    assert_eq!((items.len(), pages), (3, 3));
}
