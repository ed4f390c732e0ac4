//! `e4k eventgrid` end to end against the emulator: the seed's spec applies from empty, a
//! rerun writes nothing, one changed template updates one topic space, prune and destroy clean
//! up, faults and interruptions still converge, and every body sent matches Microsoft's schema.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::Path, sync::Arc, time::Duration};

use e4k_emulator::{
    Emulator, EmulatorConfig, FaultConfig, ResourceKind as EmuKind, RunningEmulator,
    spec::{Direction, NAMESPACE_UPDATE_DEFINITION, Spec as OpenApi},
};
use e4k_provisioning::{
    Error,
    eventgrid::{
        apply::{self, ApplyOptions},
        arm::{ArmClient, ArmConfig},
        credential::StaticToken,
        model::{self, Desired, ResourceKind},
        plan::{Action, Plan},
        spec::Spec,
        validate::{ValidateOptions, validate},
    },
};
use e4k_tests::eventgrid;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "test-token";

/// A directory holding a PKI and the seed spec, edited by `edit`.
fn workspace(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = eventgrid::pki_dir("e4k");
    std::fs::write(
        dir.path().join("eventgrid.yaml"),
        edit(e4k_templates::EVENTGRID_YAML),
    )
    .unwrap();
    dir
}

fn env(name: &str) -> Option<String> {
    (name == "AZURE_SUBSCRIPTION_ID").then(|| "11111111-2222-3333-4444-555555555555".to_owned())
}

fn load(dir: &Path) -> Desired {
    let path = dir.join("eventgrid.yaml");
    let spec = Spec::load_with_env(&path, &env).unwrap();
    assert_eq!(validate(&spec, dir, &ValidateOptions::default()), []);
    model::desired(&spec, dir, &path).unwrap()
}

async fn emulator(faults: FaultConfig) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        lro_delay: Duration::from_millis(20),
        lro_retry_after_secs: 0,
        token: Some(TOKEN.into()),
        faults,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

fn arm_for(
    emulator: &RunningEmulator,
    max_attempts: u32,
    cancel: CancellationToken,
) -> Arc<ArmClient> {
    let config = ArmConfig {
        endpoint: emulator.base_url().parse().unwrap(),
        max_attempts,
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(50),
        max_retry_after: Duration::from_millis(50),
        poll_interval: Duration::from_millis(10),
        min_poll_interval: Duration::from_millis(5),
        ..ArmConfig::default()
    };
    Arc::new(ArmClient::new(config, Arc::new(StaticToken::new(TOKEN)), cancel).unwrap())
}

async fn plan_for(arm: &ArmClient, desired: &Desired, prune: bool) -> Plan {
    eventgrid::plan_for(arm, desired, prune, Path::new("eventgrid.yaml")).await
}

async fn setup(arm: &Arc<ArmClient>, desired: &Desired, prune: bool) -> Plan {
    eventgrid::setup(arm, desired, prune, Path::new("eventgrid.yaml")).await
}

fn names(list: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = list
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Every write e4k sent must match the OpenAPI schema of its api-version.
fn assert_bodies_match_the_schema(emulator: &RunningEmulator) {
    let requests = emulator.captured_requests();
    let mut checked = 0;
    for request in requests
        .iter()
        .filter(|r| r.method == "PUT" || r.method == "PATCH")
    {
        let api = request.api_version.as_deref().unwrap();
        let openapi = OpenApi::for_api_version(api).unwrap();
        let segments: Vec<&str> = request.path.trim_end_matches('/').split('/').collect();
        let collection = segments[segments.len() - 2];
        let definition = match (
            request.method.as_str(),
            EmuKind::child_from_segment(collection),
        ) {
            ("PATCH", _) => NAMESPACE_UPDATE_DEFINITION,
            (_, Some(kind)) => kind.definition(),
            (_, None) => EmuKind::Namespace.definition(),
        };
        let body = request.json().unwrap();
        if let Err(violation) = openapi.validate(definition, &body, Direction::Request) {
            panic!(
                "{} {} ({api}) does not match {definition}: {violation}\n{body:#}",
                request.method, request.path
            );
        }
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} bodies checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_applies_reruns_as_a_no_op_updates_prunes_and_destroys() {
    let emulator = emulator(FaultConfig::default()).await;
    let arm = arm_for(&emulator, 8, CancellationToken::new());
    let dir = workspace(str::to_owned);
    let desired = load(dir.path());

    // From empty: the namespace and its eleven children are created.
    let plan = setup(&arm, &desired, false).await;
    assert_eq!(plan.summary.create, 12, "{plan:#?}");
    let ns = arm
        .get(&desired.namespace_id, &desired.namespace_api_version)
        .await
        .unwrap()
        .unwrap();
    let tsc = &ns["properties"]["topicSpacesConfiguration"];
    assert_eq!(tsc["state"], "Enabled");
    assert_eq!(tsc["maximumClientSessionsPerAuthenticationName"], 3);
    assert_eq!(
        tsc["clientAuthentication"]["alternativeAuthenticationNameSources"],
        serde_json::json!(["ClientCertificateSubject"])
    );
    assert_eq!(
        tsc["hostname"],
        "e4k-mqtt.westeurope-1.ts.eventgrid.azure.net"
    );
    let list = |kind: ResourceKind| {
        let arm = Arc::clone(&arm);
        let id = desired.collection_id(kind);
        let api = desired.child_api_version.clone();
        async move { arm.list(&id, &api).await.unwrap() }
    };
    assert_eq!(
        names(&list(ResourceKind::CaCertificate).await),
        ["intermediate", "root"]
    );
    assert_eq!(
        names(&list(ResourceKind::TopicSpace).await),
        ["command", "telemetry"]
    );
    assert_eq!(
        names(&list(ResourceKind::ClientGroup).await),
        ["commanders"]
    );
    assert_eq!(
        names(&list(ResourceKind::Client).await),
        ["mosquitto", "mqttbridge"]
    );
    assert_eq!(
        names(&list(ResourceKind::PermissionBinding).await),
        [
            "all-publish-telemetry",
            "all-subscribe-command",
            "commanders-publish-command",
            "commanders-subscribe-telemetry"
        ]
    );
    let mosquitto = arm
        .get(
            &desired.child_id(ResourceKind::Client, "mosquitto"),
            &desired.child_api_version,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mosquitto["properties"]["attributes"]["commander"], "true");
    assert_eq!(mosquitto["properties"]["authenticationName"], "mosquitto");
    assert_bodies_match_the_schema(&emulator);

    // A rerun plans nothing and writes nothing: one GET and one list per resource type.
    emulator.reset_stats();
    let plan = setup(&arm, &desired, false).await;
    assert_eq!(plan.summary.changes(), 0, "{plan:#?}");
    assert_eq!(plan.summary.no_op, 12);
    let stats = emulator.stats();
    assert_eq!(stats.writes(), 0);
    assert_eq!(stats.lists(), 5);

    // One changed template updates exactly that topic space.
    let dir2 = workspace(|s| {
        s.replace(
            r#"["factory/telemetry/#"]"#,
            r#"["factory/telemetry/#", "factory/status/#"]"#,
        )
    });
    std::fs::copy(
        dir.path().join("pki/certs/root_ca.crt"),
        dir2.path().join("pki/certs/root_ca.crt"),
    )
    .unwrap();
    std::fs::copy(
        dir.path().join("pki/certs/intermediate_ca.crt"),
        dir2.path().join("pki/certs/intermediate_ca.crt"),
    )
    .unwrap();
    let changed = load(dir2.path());
    emulator.reset_stats();
    let plan = setup(&arm, &changed, false).await;
    let updates: Vec<(ResourceKind, &str, Action)> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .map(|c| (c.kind, c.name.as_str(), c.action))
        .collect();
    assert_eq!(
        updates,
        [(ResourceKind::TopicSpace, "telemetry", Action::Update)]
    );
    assert_eq!(
        plan.changes
            .iter()
            .find(|c| c.name == "telemetry")
            .unwrap()
            .fields[0]
            .path,
        "properties.topicTemplates"
    );
    assert_eq!(emulator.stats().writes(), 1);

    // An extra client is left alone without --prune and removed with it.
    let extra = changed.child_id(ResourceKind::Client, "intruder");
    arm.put(&extra, &changed.child_api_version, &serde_json::json!({"properties": {"clientCertificateAuthentication": {"validationScheme": "SubjectMatchesAuthenticationName"}}})).await.unwrap();
    let plan = plan_for(&arm, &changed, false).await;
    assert_eq!(
        plan.unmanaged,
        [(ResourceKind::Client, "intruder".to_owned())]
    );
    assert_eq!(plan.summary.changes(), 0);
    let plan = setup(&arm, &changed, true).await;
    assert_eq!(plan.summary.delete, 1);
    assert!(
        arm.get(&extra, &changed.child_api_version)
            .await
            .unwrap()
            .is_none()
    );

    // Destroy leaves nothing: the spec creates the namespace, so it goes too.
    let current = apply::read_current(&arm, &changed).await.unwrap();
    let plan = apply::destroy_plan(&changed, &current);
    assert_eq!(plan.summary.delete, 12);
    apply::apply(&arm, &changed, &plan, &ApplyOptions::default(), &|_| {})
        .await
        .unwrap();
    assert!(
        arm.get(&changed.namespace_id, &changed.namespace_api_version)
            .await
            .unwrap()
            .is_none()
    );
    emulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_converges_through_throttling_and_server_errors() {
    let emulator = emulator(FaultConfig {
        rate_429: 0.3,
        rate_5xx: 0.1,
        seed: 7,
        retry_after_secs: 0,
        ..FaultConfig::default()
    })
    .await;
    let max_attempts = 10;
    let arm = arm_for(&emulator, max_attempts, CancellationToken::new());
    let dir = workspace(str::to_owned);
    let desired = load(dir.path());
    setup(&arm, &desired, false).await;
    let stats = arm.stats();
    assert!(stats.throttled > 0, "{stats}");
    // The retry budget is per call: no call may have retried more than max_attempts - 1 times,
    // so in total retries < calls × (max_attempts - 1).
    assert!(
        stats.retries < (stats.requests - stats.retries) * u64::from(max_attempts - 1),
        "{stats}"
    );
    let plan = plan_for(&arm, &desired, false).await;
    assert_eq!(plan.summary.changes(), 0, "{plan:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_setup_converges_on_the_next_run() {
    let emulator = Emulator::start(EmulatorConfig {
        lro_delay: Duration::from_millis(150),
        lro_retry_after_secs: 0,
        token: Some(TOKEN.into()),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = workspace(str::to_owned);
    let desired = load(dir.path());
    // Cancel half-way: after the namespace, while children are being written.
    let cancel = CancellationToken::new();
    let arm = arm_for(&emulator, 8, cancel.clone());
    let plan = plan_for(&arm, &desired, false).await;
    let canceller = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            cancel.cancel();
        })
    };
    let slow = ApplyOptions { concurrency: 2 };
    let result = apply::apply(&arm, &desired, &plan, &slow, &|_| {}).await;
    canceller.await.unwrap();
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");

    let arm = arm_for(&emulator, 8, CancellationToken::new());
    let plan = plan_for(&arm, &desired, false).await;
    assert!(
        plan.summary.changes() > 0 && plan.summary.changes() < 12,
        "{:?}",
        plan.summary
    );
    setup(&arm, &desired, false).await;
    assert_eq!(plan_for(&arm, &desired, false).await.summary.changes(), 0);
}
