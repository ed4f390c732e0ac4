//! The Event Grid spec: parsing and every static validation rule, with the exact messages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use e4k_provisioning::{
    certs::{self, KeyProtection, KeyType, NotAfter},
    eventgrid::{
        spec::Spec,
        validate::{BridgeSessions, Severity, ValidateOptions, validate},
    },
};
use e4k_tests::eventgrid::pki_dir;

const SEED: &str = include_str!("../../templates/eventgrid.yaml");

fn env(name: &str) -> Option<String> {
    (name == "AZURE_SUBSCRIPTION_ID").then(|| "00000000-0000-0000-0000-000000000000".to_owned())
}

fn parse(text: &str) -> Spec {
    Spec::parse(text, Path::new("spec.yaml"), &env).unwrap()
}

/// The problems of a spec (relative files resolved in `dir`), as display lines.
fn problems_in(dir: &Path, text: &str, options: &ValidateOptions) -> Vec<String> {
    validate(&parse(text), dir, options)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The seed spec with `edit` applied to its text.
fn seed_with(edit: impl Fn(&str) -> String) -> Vec<String> {
    let dir = pki_dir("e4k");
    problems_in(dir.path(), &edit(SEED), &ValidateOptions::default())
}

const BASE: &str = "subscription: s\nresourceGroup: rg\nnamespace:\n  name: ns1\n";

fn problems(extra: &str) -> Vec<String> {
    problems_in(
        Path::new("."),
        &format!("{BASE}{extra}"),
        &ValidateOptions::default(),
    )
}

#[test]
fn the_seed_spec_is_valid() {
    assert_eq!(seed_with(str::to_owned), Vec::<String>::new());
    let spec = parse(SEED);
    assert_eq!(spec.resource_group, "e4k");
    assert_eq!(spec.namespace.name, "e4k-mqtt");
    assert_eq!(spec.clients.len(), 2);
    assert_eq!(spec.permission_bindings.len(), 4);
    assert_eq!(
        spec.namespace
            .mqtt
            .max_client_sessions_per_authentication_name,
        Some(3)
    );
}

#[test]
fn a_missing_environment_variable_is_named() {
    let err = Spec::parse(SEED, Path::new("eventgrid.yaml"), &|_| None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "eventgrid.yaml: line 6: environment variable AZURE_SUBSCRIPTION_ID is not set \
         (use ${AZURE_SUBSCRIPTION_ID:-default} for an optional value)"
    );
}

#[test]
fn names_follow_event_grid_rules() {
    let found = problems(
        "topicSpaces:\n  - {name: a_b, topicTemplates: [x]}\nclients:\n  - {name: 'x y'}\n",
    );
    assert_eq!(
        found,
        [
            "error: clients[0].name: \"x y\" is not a valid name: use 1 to 128 characters, letters, digits, '-', ':', '.' and '_'",
            "error: topicSpaces[0].name: \"a_b\" is not a valid name: use 3 to 50 characters, letters, digits and '-'",
        ]
    );
    let found = problems_in(
        Path::new("."),
        "subscription: s\nresourceGroup: rg\nnamespace:\n  name: ns\n",
        &ValidateOptions::default(),
    );
    assert_eq!(
        found,
        [
            "error: namespace.name: \"ns\" is not a valid name: use 3 to 50 characters, letters, digits and '-'"
        ]
    );
}

#[test]
fn thumbprints_only_with_thumbprint_match() {
    let found = problems("clients:\n  - {name: a, allowedThumbprints: [abc]}\n");
    assert_eq!(
        found,
        [
            "error: clients[0].allowedThumbprints: thumbprints are only allowed with validationScheme ThumbprintMatch (this client uses SubjectMatchesAuthenticationName)"
        ]
    );
    let found = problems("clients:\n  - {name: a, validationScheme: ThumbprintMatch}\n");
    assert_eq!(
        found,
        [
            "error: clients[0].allowedThumbprints: ThumbprintMatch needs 1 or 2 thumbprints (primary and secondary); get them with `e4k certs fingerprint`"
        ]
    );
    let found = problems(
        "clients:\n  - {name: a, validationScheme: ThumbprintMatch, allowedThumbprints: [xyz]}\n",
    );
    assert_eq!(
        found,
        [
            "error: clients[0].allowedThumbprints[0]: \"xyz\" is not a thumbprint: expected 64 hex digits (SHA-256, `e4k certs fingerprint`)"
        ]
    );
    let ok = format!(
        "clients:\n  - {{name: a, validationScheme: ThumbprintMatch, allowedThumbprints: [{}]}}\n",
        "ab".repeat(32)
    );
    assert_eq!(problems(&ok), Vec::<String>::new());
}

#[test]
fn duplicate_names_and_authentication_names() {
    let found =
        problems("clients:\n  - {name: a}\n  - {name: b, authenticationName: A}\n  - {name: a}\n");
    assert_eq!(
        found,
        [
            "error: clients[2].name: \"a\" is already used by clients[0]; names must be unique",
            "error: clients[1].authenticationName: \"A\" is already used by clients[0]; names must be unique",
            "error: clients[2].authenticationName: \"a\" is already used by clients[0]; names must be unique",
        ]
    );
}

#[test]
fn topic_templates() {
    let found = problems(
        "topicSpaces:\n  - name: ts1\n    topicTemplates: ['a/#/b', 'a/${client.name}', 'a/b/c/d/e/f/g/h/i', 'ok/${client.authenticationName}/#', 'ok/${client.authenticationName}/#']\n  - {name: ts2, topicTemplates: []}\n",
    );
    assert_eq!(
        found[..3],
        [
            "error: topicSpaces[0].topicTemplates[0]: \"a/#/b\": '#' must be a whole segment and the last one",
            "error: topicSpaces[0].topicTemplates[1]: \"a/${client.name}\": unknown variable ${client.name}; use ${client.authenticationName} or ${client.attributes.<key>}",
            "error: topicSpaces[0].topicTemplates[2]: \"a/b/c/d/e/f/g/h/i\": a topic template has at most 8 segments",
        ]
    );
    assert_eq!(
        found[3],
        "error: topicSpaces[0].topicTemplates[4]: \"ok/${client.authenticationName}/#\" is listed twice"
    );
    assert_eq!(
        found[4],
        "error: topicSpaces[1].topicTemplates: a topic space needs at least one topic template"
    );
}

#[test]
fn client_group_queries() {
    let found = problems(
        "clientGroups:\n  - {name: grp1, query: 'attributes.a == \"b\"'}\n  - {name: $all, query: 'attributes.a = 1'}\n",
    );
    assert_eq!(
        found[0],
        "error: clientGroups[0].query: \"attributes.a == \\\"b\\\"\": `==` is not an operator; compare with a single `=`"
    );
    assert_eq!(
        found[1],
        "error: clientGroups[1].name: $all is built in and cannot be defined; bind to it directly"
    );
    assert_eq!(
        problems(
            "clientGroups:\n  - {name: grp1, query: 'attributes.floor <= 5 and (authenticationName IN [\"a\", \"b\"] or attributes.x = \"y\")'}\n"
        ),
        Vec::<String>::new()
    );
}

#[test]
fn bindings_reference_defined_groups_and_spaces() {
    let found = problems(
        "topicSpaces:\n  - {name: ts1, topicTemplates: [a/#]}\npermissionBindings:\n  - {name: bind1, clientGroup: $all, topicSpace: ts1, permission: Publisher}\n  - {name: bind2, clientGroup: nobody, topicSpace: nothing, permission: Subscriber}\n",
    );
    assert_eq!(
        found,
        [
            "error: permissionBindings[1].clientGroup: client group \"nobody\" is not defined in clientGroups (the built-in group of all clients is $all)",
            "error: permissionBindings[1].topicSpace: topic space \"nothing\" is not defined in topicSpaces",
        ]
    );
}

#[test]
fn quotas() {
    let spaces: String = (0..11)
        .map(|i| format!("  - {{name: ts{i:02}, topicTemplates: [t{i}/#]}}\n"))
        .collect();
    assert_eq!(
        problems(&format!("topicSpaces:\n{spaces}")),
        ["error: topicSpaces: 11 topic spaces: Event Grid allows at most 10 per namespace"]
    );
    let templates: Vec<String> = (0..11).map(|i| format!("t{i}/#")).collect();
    assert_eq!(
        problems(&format!(
            "topicSpaces:\n  - {{name: ts1, topicTemplates: [{}]}}\n",
            templates.join(", ")
        )),
        [
            "error: topicSpaces[0].topicTemplates: 11 templates: Event Grid allows at most 10 per topic space"
        ]
    );
    let groups: String = (0..11)
        .map(|i| format!("  - {{name: g{i:02}, query: 'attributes.a = {i}'}}\n"))
        .collect();
    assert_eq!(
        problems(&format!("clientGroups:\n{groups}")),
        ["error: clientGroups: 11 client groups: Event Grid allows at most 10 per namespace"]
    );
    let bindings: String = (0..101)
        .map(|i| {
            format!(
                "  - {{name: b{i:03}, clientGroup: $all, topicSpace: ts1, permission: Publisher}}\n"
            )
        })
        .collect();
    assert_eq!(
        problems(&format!(
            "topicSpaces:\n  - {{name: ts1, topicTemplates: [a/#]}}\npermissionBindings:\n{bindings}"
        )),
        [
            "error: permissionBindings: 101 permission bindings: Event Grid allows at most 100 per namespace"
        ]
    );
    let cas: String = (0..11)
        .map(|i| format!("  - {{name: ca{i:02}, file: pki/certs/root_ca.crt}}\n"))
        .collect();
    let dir = pki_dir("e4k");
    let found = problems_in(
        dir.path(),
        &format!("{BASE}caCertificates:\n{cas}"),
        &ValidateOptions::default(),
    );
    assert_eq!(
        found,
        ["error: caCertificates: 11 CA certificates: Event Grid allows at most 10 per namespace"]
    );
}

#[test]
fn certificate_files_must_be_ca_certificates() {
    let dir = pki_dir("e4k");
    // A leaf, signed by the intermediate.
    let ca = certs::CertificateAuthority::load(
        &dir.path().join("pki/certs/intermediate_ca.crt"),
        &dir.path().join("pki/secrets/intermediate_ca_key"),
        None,
        "",
    )
    .unwrap();
    ca.issue_to_files(
        &[(
            certs::LeafSpec {
                name: "leaf".into(),
                sans: vec![],
                profile: certs::Profile::Client,
                key_type: KeyType::EcP256,
                not_after: NotAfter::parse("10d").unwrap(),
                key_format: certs::KeyFormat::Pkcs8,
                protection: KeyProtection::Plaintext,
            },
            certs::LeafOutput {
                cert: dir.path().join("leaf.pem"),
                key: dir.path().join("leaf.key"),
                bundle: false,
            },
        )],
        false,
        &|| {},
    )
    .unwrap();
    std::fs::write(dir.path().join("junk.pem"), "junk").unwrap();
    let found = problems_in(
        dir.path(),
        &format!(
            "{BASE}caCertificates:\n  - {{name: leaf, file: leaf.pem}}\n  - {{name: missing, file: nope.pem}}\n  - {{name: junk, file: junk.pem}}\n  - {{name: key, file: pki/secrets/root_ca_key}}\n"
        ),
        &ValidateOptions::default(),
    );
    let d = dir.path().display();
    assert_eq!(
        found,
        [
            format!(
                "error: caCertificates[0].file: {d}/leaf.pem is not a CA certificate (CN=leaf); upload the CA that signed the client certificates"
            ),
            format!(
                "warning: caCertificates[0].file: {d}/leaf.pem expires on {} (9 days left)",
                certs::inspect(&dir.path().join("leaf.pem")).unwrap()[0].not_after
            ),
            format!("error: caCertificates[1].file: cannot read {d}/nope.pem"),
            format!("error: caCertificates[2].file: {d}/junk.pem: not a PEM or DER certificate"),
            format!(
                "error: caCertificates[3].file: {d}/pki/secrets/root_ca_key: holds no CERTIFICATE block (is it a key?)"
            ),
        ]
    );
    let severities: Vec<Severity> = validate(
        &parse(&format!(
            "{BASE}caCertificates:\n  - {{name: leaf, file: leaf.pem}}\n"
        )),
        dir.path(),
        &ValidateOptions::default(),
    )
    .iter()
    .map(|p| p.severity)
    .collect();
    assert_eq!(severities, [Severity::Error, Severity::Warning]);
}

#[test]
fn mqtt_settings_and_api_versions() {
    let found = problems(
        "  mqtt:\n    maxClientSessionsPerAuthenticationName: 101\n    maxSessionExpiryInHours: 9\n    alternativeAuthenticationNameSources: [ClientCertificateSubject, ClientCertificateSubject]\napiVersions:\n  namespace: 2025-02-15\n",
    );
    assert_eq!(
        found,
        [
            "error: namespace.mqtt.maxClientSessionsPerAuthenticationName: 101: use 1 to 100",
            "error: namespace.mqtt.maxSessionExpiryInHours: 9: use 1 to 8",
            "error: namespace.mqtt.alternativeAuthenticationNameSources: needs a preview api-version (clientAuthentication is not in 2025-02-15); remove apiVersions.namespace to use the default",
            "error: namespace.mqtt.alternativeAuthenticationNameSources[1]: ClientCertificateSubject is listed twice",
        ]
    );
}

#[test]
fn the_bridge_needs_enough_sessions_per_authentication_name() {
    let dir = pki_dir("e4k");
    let options = ValidateOptions {
        bridge: Some(BridgeSessions {
            source: "bridge.yaml".into(),
            authentication_name: Some("mqttbridge".into()),
            sessions: 6,
        }),
    };
    assert_eq!(
        problems_in(dir.path(), SEED, &options),
        [
            "error: namespace.mqtt.maxClientSessionsPerAuthenticationName: 3 session(s) allowed, but bridge.yaml opens 6 sessions as \"mqttbridge\"; set it to at least 6"
        ]
    );
}

#[test]
fn attributes() {
    assert_eq!(
        problems("clients:\n  - name: a\n    attributes: {'bad-key': x}\n"),
        [
            "error: clients[0].attributes.bad-key: attribute names may hold only letters, digits and '_'"
        ]
    );
}
