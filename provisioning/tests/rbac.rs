//! `roleAssignments` against the in-process emulator: created from empty at the right scopes
//! with the right role definitions, a rerun writes nothing, removing one and pruning deletes
//! exactly that one (and never someone else's), `destroy` removes them, every body sent matches
//! Microsoft's `Microsoft.Authorization` schema; and the static validation rules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::Path, sync::Arc, time::Duration};

use e4k_emulator::{
    Emulator, EmulatorConfig, ResourceKind as EmuKind, RunningEmulator, Verb,
    spec::{
        AUTHORIZATION_API_VERSION, Direction, ROLE_ASSIGNMENT_CREATE_DEFINITION, Spec as OpenApi,
    },
};
use e4k_provisioning::eventgrid::{
    apply::{self, ApplyOptions},
    arm::{ArmClient, ArmConfig},
    credential::StaticToken,
    model::{self, Desired, ResourceKind},
    plan::{Action, Plan},
    rbac::{self, PUBLISHER_ROLE_ID, Role, SUBSCRIBER_ROLE_ID},
    spec::Spec,
    validate::{ValidateOptions, validate},
};
use e4k_tests::eventgrid;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const SUB: &str = "11111111-2222-3333-4444-555555555555";
const BRIDGE: &str = "6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90";
const OPERATOR: &str = "0d2a6b3c-1e4f-4a5b-8c9d-0e1f2a3b4c5d";
const STRANGER: &str = "99999999-8888-7777-6666-555555555555";
const NS_ID: &str = "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers/Microsoft.EventGrid/namespaces/rbac-ns";

const BASE: &str = "subscription: 11111111-2222-3333-4444-555555555555
resourceGroup: rg
namespace:
  name: rbac-ns
  create: { location: westeurope }
topicSpaces:
  - { name: telemetry, topicTemplates: ['factory/telemetry/#'] }
  - { name: command, topicTemplates: ['command/#'] }
";

const ASSIGNMENTS: &str = "roleAssignments:
  - { principalId: 6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90, role: publisher, topicSpace: telemetry }
  - { principalId: 6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90, role: subscriber, namespace: true }
  - { principalId: 0d2a6b3c-1e4f-4a5b-8c9d-0e1f2a3b4c5d, principalType: User, role: subscriber, topicSpace: command }
";

fn parse(text: &str) -> Spec {
    Spec::parse(text, Path::new("spec.yaml"), &|_| None).unwrap()
}

fn desired(text: &str) -> Desired {
    let spec = parse(text);
    assert_eq!(
        validate(&spec, Path::new("."), &ValidateOptions::default()),
        []
    );
    model::desired(&spec, Path::new("."), Path::new("spec.yaml")).unwrap()
}

async fn emulator() -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        lro_delay: Duration::from_millis(10),
        lro_retry_after_secs: 0,
        page_size: 2,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

fn arm_for(emulator: &RunningEmulator) -> Arc<ArmClient> {
    let config = ArmConfig {
        endpoint: emulator.base_url().parse().unwrap(),
        poll_interval: Duration::from_millis(5),
        min_poll_interval: Duration::from_millis(5),
        ..ArmConfig::default()
    };
    Arc::new(
        ArmClient::new(
            config,
            Arc::new(StaticToken::new("t")),
            CancellationToken::new(),
        )
        .unwrap(),
    )
}

async fn plan_for(arm: &ArmClient, desired: &Desired, prune: bool) -> Plan {
    eventgrid::plan_for(arm, desired, prune, Path::new("spec.yaml")).await
}

async fn setup(arm: &Arc<ArmClient>, desired: &Desired, prune: bool) -> Plan {
    eventgrid::setup(arm, desired, prune, Path::new("spec.yaml")).await
}

fn role_changes(plan: &Plan) -> Vec<(String, Action)> {
    let mut changes: Vec<(String, Action)> = plan
        .changes
        .iter()
        .filter(|c| c.kind == ResourceKind::RoleAssignment)
        .map(|c| (c.name.clone(), c.action))
        .collect();
    changes.sort_by(|a, b| a.0.cmp(&b.0));
    changes
}

/// Every role assignment at `scope` (atScope() keeps what is inherited too).
async fn listed(arm: &ArmClient, scope: &str) -> Vec<Value> {
    arm.list_with_query(
        &format!("{scope}/providers/Microsoft.Authorization/roleAssignments"),
        AUTHORIZATION_API_VERSION,
        &[("$filter", "atScope()")],
    )
    .await
    .unwrap()
    .into_iter()
    .filter(|a| {
        a["properties"]["scope"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(scope)
    })
    .collect()
}

fn definition(role: &str) -> String {
    format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}")
}

/// Every role assignment PUT matches `RoleAssignmentCreateParameters` of 2022-04-01, and every
/// Event Grid write its own definition.
fn assert_bodies_match_the_schema(emulator: &RunningEmulator) -> usize {
    let authorization = OpenApi::authorization().unwrap();
    let mut checked = 0;
    for request in emulator
        .captured_requests()
        .iter()
        .filter(|r| r.method == "PUT")
    {
        let body = request.json().unwrap();
        if request
            .path
            .contains("/providers/Microsoft.Authorization/roleAssignments/")
        {
            assert_eq!(
                request.api_version.as_deref(),
                Some(AUTHORIZATION_API_VERSION)
            );
            if let Err(violation) =
                authorization.validate(ROLE_ASSIGNMENT_CREATE_DEFINITION, &body, Direction::Request)
            {
                panic!("PUT {} does not match: {violation}\n{body:#}", request.path);
            }
            checked += 1;
        } else {
            let api = request.api_version.as_deref().unwrap();
            let collection = request.path.rsplit('/').nth(1).unwrap();
            let definition = EmuKind::child_from_segment(collection)
                .unwrap_or(EmuKind::Namespace)
                .definition();
            OpenApi::for_api_version(api)
                .unwrap()
                .validate(definition, &body, Direction::Request)
                .unwrap();
        }
    }
    checked
}

#[tokio::test]
async fn role_assignments_converge_and_prune_only_their_own() {
    let emulator = emulator().await;
    let arm = arm_for(&emulator);
    let wanted = desired(&format!("{BASE}{ASSIGNMENTS}"));
    let names: Vec<&str> = wanted
        .role_assignments
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| a.name.as_str())
        .collect();

    // From empty: three creates, at the right scopes, with the right role definitions.
    let first = setup(&arm, &wanted, false).await;
    let mut expected = vec![
        (
            format!("topicSpaces/telemetry/{}", names[0]),
            Action::Create,
        ),
        (format!("namespace/{}", names[1]), Action::Create),
        (format!("topicSpaces/command/{}", names[2]), Action::Create),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(role_changes(&first), expected);
    assert_eq!(
        emulator.stats().count(Verb::Put, EmuKind::RoleAssignment),
        3
    );
    let telemetry = listed(&arm, &format!("{NS_ID}/topicSpaces/telemetry")).await;
    assert_eq!(telemetry.len(), 1, "{telemetry:#?}");
    let t = &telemetry[0]["properties"];
    assert_eq!(telemetry[0]["name"], names[0]);
    assert_eq!(t["roleDefinitionId"], definition(PUBLISHER_ROLE_ID));
    assert_eq!(t["principalId"], BRIDGE);
    assert_eq!(t["principalType"], "ServicePrincipal");
    assert_eq!(t["description"], "managed by e4k");
    let at_namespace = listed(&arm, NS_ID).await;
    assert_eq!(at_namespace.len(), 1);
    assert_eq!(
        at_namespace[0]["properties"]["roleDefinitionId"],
        definition(SUBSCRIBER_ROLE_ID)
    );
    let command = listed(&arm, &format!("{NS_ID}/topicSpaces/command")).await;
    assert_eq!(command[0]["properties"]["principalType"], "User");
    assert_eq!(command[0]["properties"]["principalId"], OPERATOR);
    assert_eq!(assert_bodies_match_the_schema(&emulator), 3);

    // A rerun writes nothing.
    emulator.reset_stats();
    let rerun = setup(&arm, &wanted, true).await;
    assert_eq!(rerun.summary.changes(), 0, "{rerun:#?}");
    assert_eq!(emulator.stats().writes(), 0);
    assert_eq!(
        emulator.stats().count(Verb::List, EmuKind::RoleAssignment),
        3
    );

    // Someone else's assignments at these scopes: one that grants what the spec wants under
    // another name, and one for a stranger. Neither is planned, listed or pruned.
    let by_hand = |role: &str, principal: &str| {
        json!({ "properties": { "roleDefinitionId": definition(role), "principalId": principal,
                                "principalType": "ServicePrincipal" } })
    };
    let foreign = format!(
        "{NS_ID}/topicSpaces/command/providers/Microsoft.Authorization/roleAssignments/aaaaaaaa-0000-0000-0000-000000000001"
    );
    arm.put(
        &foreign,
        AUTHORIZATION_API_VERSION,
        &by_hand(PUBLISHER_ROLE_ID, STRANGER),
    )
    .await
    .unwrap();
    let twin_spec = format!(
        "{BASE}{ASSIGNMENTS}  - {{ principalId: {STRANGER}, role: subscriber, topicSpace: telemetry }}\n"
    );
    let twin = format!(
        "{NS_ID}/topicSpaces/telemetry/providers/Microsoft.Authorization/roleAssignments/aaaaaaaa-0000-0000-0000-000000000002"
    );
    arm.put(
        &twin,
        AUTHORIZATION_API_VERSION,
        &by_hand(SUBSCRIBER_ROLE_ID, STRANGER),
    )
    .await
    .unwrap();
    emulator.reset_stats();
    let with_twin = setup(&arm, &desired(&twin_spec), true).await;
    assert_eq!(with_twin.summary.changes(), 0, "{with_twin:#?}");
    assert!(with_twin.unmanaged.is_empty());
    assert_eq!(emulator.stats().writes(), 0);

    // Remove the namespace-wide one: without prune it is reported, with prune deleted, alone.
    let fewer = desired(&format!(
        "{BASE}roleAssignments:\n{}",
        ASSIGNMENTS
            .lines()
            .skip(1)
            .filter(|l| !l.contains("namespace: true"))
            .collect::<Vec<_>>()
            .join("\n")
    ));
    let kept = plan_for(&arm, &fewer, false).await;
    assert_eq!(
        kept.unmanaged,
        [(
            ResourceKind::RoleAssignment,
            format!("namespace/{}", names[1])
        )]
    );
    emulator.reset_stats();
    let pruned = setup(&arm, &fewer, true).await;
    assert_eq!(
        role_changes(&pruned)
            .into_iter()
            .filter(|(_, a)| *a != Action::NoOp)
            .collect::<Vec<_>>(),
        [(format!("namespace/{}", names[1]), Action::Delete)]
    );
    let deletion = pruned
        .changes
        .iter()
        .find(|c| c.action == Action::Delete)
        .unwrap();
    assert_eq!(deletion.fields[0].path, "properties.roleDefinitionId");
    let stats = emulator.stats();
    assert_eq!(stats.count(Verb::Delete, EmuKind::RoleAssignment), 1);
    assert_eq!(stats.writes(), 1);
    assert!(listed(&arm, NS_ID).await.is_empty());
    assert_eq!(
        listed(&arm, &format!("{NS_ID}/topicSpaces/command"))
            .await
            .len(),
        2
    );
    assert_eq!(
        listed(&arm, &format!("{NS_ID}/topicSpaces/telemetry"))
            .await
            .len(),
        2
    );

    // `roleAssignments: []` with prune removes e4k's own and nothing else.
    emulator.reset_stats();
    let none = setup(
        &arm,
        &desired(&format!("{BASE}roleAssignments: []\n")),
        true,
    )
    .await;
    assert_eq!(none.summary.delete, 2, "{none:#?}");
    let left: Vec<String> = [
        listed(&arm, &format!("{NS_ID}/topicSpaces/command")).await,
        listed(&arm, &format!("{NS_ID}/topicSpaces/telemetry")).await,
    ]
    .concat()
    .iter()
    .map(|a| a["name"].as_str().unwrap().to_owned())
    .collect();
    assert_eq!(
        left,
        [
            "aaaaaaaa-0000-0000-0000-000000000001",
            "aaaaaaaa-0000-0000-0000-000000000002"
        ]
    );

    // Without `roleAssignments`, e4k neither reads nor touches them.
    emulator.reset_stats();
    let untouched = setup(&arm, &desired(BASE), true).await;
    assert_eq!(untouched.summary.changes(), 0);
    assert_eq!(emulator.stats().for_kind(EmuKind::RoleAssignment), 0);
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_409_role_assignment_exists_counts_as_present_and_destroy_removes_them() {
    let emulator = emulator().await;
    let arm = arm_for(&emulator);
    let wanted = desired(&format!("{BASE}{ASSIGNMENTS}"));
    // Plan before someone makes the same assignment by hand, apply after.
    setup(&arm, &desired(BASE), false).await;
    let plan = plan_for(&arm, &wanted, false).await;
    let by_hand = format!(
        "{NS_ID}/providers/Microsoft.Authorization/roleAssignments/bbbbbbbb-0000-0000-0000-000000000001"
    );
    let body = json!({ "properties": { "roleDefinitionId": definition(SUBSCRIBER_ROLE_ID),
                                       "principalId": BRIDGE } });
    arm.put(&by_hand, AUTHORIZATION_API_VERSION, &body)
        .await
        .unwrap();
    apply::apply(&arm, &wanted, &plan, &ApplyOptions::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(
        listed(&arm, NS_ID).await.len(),
        1,
        "the hand-made one stands in"
    );

    let current = apply::read_current(&arm, &wanted).await.unwrap();
    let destroy = apply::destroy_plan(&wanted, &current);
    let deletions: Vec<_> = destroy
        .changes
        .iter()
        .filter(|c| c.kind == ResourceKind::RoleAssignment)
        .collect();
    assert_eq!(deletions.len(), 2, "{destroy:#?}");
    apply::apply(&arm, &wanted, &destroy, &ApplyOptions::default(), &|_| {})
        .await
        .unwrap();
    assert!(
        arm.get(NS_ID, "2026-06-15-preview")
            .await
            .unwrap()
            .is_none()
    );
    emulator.shutdown().await.unwrap();
}

#[test]
fn names_follow_the_spec_and_roles_are_the_built_in_ones() {
    let wanted = desired(&format!("{BASE}{ASSIGNMENTS}"));
    let list = wanted.role_assignments.unwrap();
    let scope = format!("{NS_ID}/topicSpaces/telemetry");
    assert_eq!(
        list[0].name,
        rbac::assignment_name(NS_ID, &scope, Role::Publisher, BRIDGE)
    );
    assert_eq!(
        list[0].id(),
        format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignments/{}",
            list[0].name
        )
    );
    assert_eq!(
        Role::Publisher.azure_name(),
        "EventGrid TopicSpaces Publisher"
    );
    assert_eq!(list[1].scope, NS_ID);
    assert!(desired(BASE).role_assignments.is_none());
}

fn problems(extra: &str) -> Vec<String> {
    validate(
        &parse(&format!("{BASE}{extra}")),
        Path::new("."),
        &ValidateOptions::default(),
    )
    .iter()
    .map(ToString::to_string)
    .collect()
}

#[test]
fn invalid_role_assignments_are_reported_before_any_arm_call() {
    assert_eq!(
        problems(
            "roleAssignments:
  - { principalId: not-a-guid, role: publisher, topicSpace: telemetry }
  - { principalId: 6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90, role: publisher, topicSpace: telemetri }
  - { principalId: 6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90, role: subscriber, namespace: true }
  - { principalId: 6F1C0A4E-0C7E-4A57-9D5F-3F1E2D7C8B90, role: subscriber, namespace: true }
  - { principalId: 6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90, role: subscriber }
  - { principalId: 6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90, role: subscriber, topicSpace: command, namespace: true }
  - { principalId: 6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90, principalType: User, role: publisher, namespace: true, bridgeClientId: x }
"
        ),
        [
            "error: roleAssignments[0].principalId: \"not-a-guid\" is not a GUID: use the object (principal) id of the user, group or managed identity, e.g. 6f1c0a4e-0c7e-4a57-9d5f-3f1e2d7c8b90",
            "error: roleAssignments[1].topicSpace: topic space \"telemetri\" is not defined in topicSpaces",
            "error: roleAssignments[3]: the same principal, role and scope as roleAssignments[2]; list each assignment once",
            "error: roleAssignments[4]: give the scope: topicSpace: NAME (one topic space) or namespace: true (all of them)",
            "error: roleAssignments[5]: give either topicSpace: NAME or namespace: true, not both",
            "error: roleAssignments[6].bridgeClientId: \"x\" is not a GUID: use the managed identity's client (application) id",
            "error: roleAssignments[6].bridgeClientId: the bridge runs as a managed identity (a ServicePrincipal), not a User",
        ]
    );
    let unknown = Spec::parse(
        &format!("{BASE}roleAssignments:\n  - {{ principalId: {BRIDGE}, role: owner, namespace: true }}\n"),
        Path::new("spec.yaml"),
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        unknown.starts_with("spec.yaml: roleAssignments[0].role: unknown variant `owner`"),
        "{unknown}"
    );
    let field = Spec::parse(
        &format!(
            "{BASE}roleAssignments:\n  - {{ principalId: {BRIDGE}, role: publisher, scope: ns }}\n"
        ),
        Path::new("spec.yaml"),
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        field.starts_with("spec.yaml: roleAssignments[0].scope: unknown field `scope`"),
        "{field}"
    );
}
