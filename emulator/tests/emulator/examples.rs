//! Replays every x-ms-example of both embedded specs against the emulator.
//!
//! Each request is sent as the example shows it (the CA certificate placeholder
//! `base64EncodePemFormattedCertificateString` is swapped for a real PEM). The status must be one
//! the example lists, every key of the example's response body must be in the emulator's answer
//! (values differ: the examples' are made up), and the answer must validate against the spec's
//! response schema, so the emulator adds no key the spec does not know.

use std::path::PathBuf;

use e4k_emulator::ResourceKind;
use e4k_emulator::spec::{Direction, Spec};
use serde_json::Value;

use crate::util::{Arm, PREVIEW, ROOT_CA, Reply, STABLE, fast, one_line, start};

/// The examples in the order a client would run them: create, read, list, then delete.
const OPERATIONS: [&str; 4] = ["CreateOrUpdate", "Get", "ListByNamespace", "Delete"];
/// The namespace every example lives in (the list examples say `namespace123`).
const EXAMPLE_NAMESPACE: &str = "exampleNamespaceName1";

struct Example {
    file: String,
    kind: ResourceKind,
    operation: String,
    doc: Value,
}

fn load(api_version: &str) -> Vec<Example> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("specs")
        .join(api_version)
        .join("examples");
    let mut examples: Vec<Example> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|path| {
            let file = path.file_stem().unwrap().to_string_lossy().into_owned();
            let (collection, operation) = file.split_once('_').unwrap();
            let operation = operation.to_owned();
            let segment = format!("{}{}", collection[..1].to_lowercase(), &collection[1..]);
            let kind =
                ResourceKind::child_from_segment(&segment).unwrap_or(ResourceKind::Namespace);
            let doc = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            Example {
                file,
                kind,
                operation,
                doc,
            }
        })
        .collect();
    assert_eq!(examples.len(), 23, "{}", dir.display());
    // Namespaces first, then children in dependency order; deletes in reverse dependency order.
    let rank = |e: &Example| {
        let op = OPERATIONS
            .iter()
            .position(|o| e.operation.starts_with(o))
            .unwrap_or(0);
        let kind = ResourceKind::ALL
            .iter()
            .position(|k| *k == e.kind)
            .unwrap_or(0);
        let kind = if e.operation == "Delete" {
            ResourceKind::ALL.len() - kind
        } else {
            kind
        };
        (op == 3, kind, op, e.file.clone())
    };
    examples.sort_by_key(rank);
    examples
}

fn path(example: &Example) -> String {
    let p = &example.doc["parameters"];
    let text = |key: &str| p[key].as_str().unwrap().to_owned();
    let ns = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.EventGrid/namespaces/{EXAMPLE_NAMESPACE}",
        text("subscriptionId"),
        text("resourceGroupName")
    );
    match (example.kind, example.operation.as_str()) {
        (ResourceKind::Namespace, _) => ns,
        (kind, "ListByNamespace") => format!("{ns}/{}", kind.segment()),
        (kind, _) => format!("{ns}/{}/{}", kind.segment(), text(kind.name_parameter())),
    }
}

/// The request body: the one object-valued parameter.
fn body(example: &Example) -> Option<Value> {
    let params = example.doc["parameters"].as_object().unwrap();
    let mut body = params.values().find(|v| v.is_object()).cloned()?;
    if let Some(cert) = body.pointer_mut("/properties/encodedCertificate") {
        *cert = Value::String(one_line(ROOT_CA));
    }
    Some(body)
}

/// Every key of `expected` is in `actual`, recursively (first array items compared; the keys of
/// user maps are not compared).
fn assert_same_keys(expected: &Value, actual: &Value, at: &str) {
    match (expected, actual) {
        // Tags and client attributes are user maps whose keys the examples make up.
        (Value::Object(_), Value::Object(_))
            if at.ends_with(".tags") || at.ends_with(".attributes") => {}
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                let got = a
                    .get(key)
                    .unwrap_or_else(|| panic!("{at}.{key} is missing in {actual}"));
                assert_same_keys(value, got, &format!("{at}.{key}"));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let (Some(e), Some(a)) = (e.first(), a.first()) {
                assert_same_keys(e, a, &format!("{at}[0]"));
            }
        }
        (Value::Object(_) | Value::Array(_), other) => {
            panic!("{at}: expected a structure, got {other}")
        }
        _ => {}
    }
}

async fn replay(api_version: &str) {
    let emulator = start(fast()).await;
    let arm = Arm::new(&emulator, api_version);
    let spec = Spec::for_api_version(api_version).unwrap();
    // The last PUT path and body per kind, to make a second list page.
    let mut created = std::collections::HashMap::new();
    for example in load(api_version) {
        let path = path(&example);
        let expected = example.doc["responses"].as_object().unwrap();
        let reply = match example.operation.as_str() {
            "CreateOrUpdate" => {
                let body = body(&example).unwrap();
                created.insert(example.kind, (path.clone(), body.clone()));
                arm.put(&path, &body).await
            }
            "Update" => arm.patch(&path, &body(&example).unwrap()).await,
            "Delete" => arm.delete(&path).await,
            "ListByNamespace" => list_two_pages(&arm, &path, &created[&example.kind]).await,
            _ => arm.get(&path).await,
        };
        let name = &example.file;
        assert!(
            expected.contains_key(&reply.status.to_string()),
            "{name}: status {} not in example: {reply:?}",
            reply.status
        );
        if reply.header("azure-asyncoperation").is_some() {
            assert_eq!(arm.wait(&reply).await["status"], "Succeeded", "{name}");
        }
        let Some(example_body) = expected
            .get(&reply.status.to_string())
            .and_then(|r| r.get("body"))
        else {
            continue;
        };
        assert_same_keys(example_body, &reply.body, name);
        let resources = match reply.body.get("value") {
            Some(Value::Array(items)) => items.clone(),
            _ => vec![reply.body.clone()],
        };
        for resource in &resources {
            if let Err(violation) =
                spec.validate(example.kind.definition(), resource, Direction::Response)
            {
                panic!("{name}: the answer does not match the spec: {violation}\n{resource}");
            }
        }
    }
    emulator.shutdown().await.unwrap();
}

/// Lists with `$top=1` while a second resource exists, so the answer carries a `nextLink` like
/// the example; the second resource is removed again.
async fn list_two_pages(arm: &Arm, collection: &str, (first, body): &(String, Value)) -> Reply {
    let second = format!("{first}2");
    arm.put_and_wait(&second, body).await;
    let reply = arm.get(&format!("{collection}?$top=1")).await;
    arm.wait(&arm.delete(&second).await).await;
    reply
}

#[tokio::test]
async fn stable_examples_replay() {
    replay(STABLE).await;
}

#[tokio::test]
async fn preview_examples_replay() {
    replay(PREVIEW).await;
}
