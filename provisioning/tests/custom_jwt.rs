//! `namespace.mqtt.customJwtAuthentication`: rendered into the namespace PUT (valid against the
//! preview schema), planned like the other namespace settings (a rerun writes nothing, a new
//! issuer is a namespace update), and refused before any ARM call on a stable api-version or
//! with a bad issuer or certificate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::Path, sync::Arc, time::Duration};

use e4k_emulator::{
    Emulator, EmulatorConfig, Verb,
    spec::{Direction, Spec as OpenApi},
};
use e4k_provisioning::eventgrid::{
    apply::{self, ApplyOptions},
    arm::{ArmClient, ArmConfig},
    credential::StaticToken,
    model::{self, Desired, ResourceKind},
    plan::{self, Action},
    spec::Spec,
    validate::{ValidateOptions, validate},
};
use e4k_tests::eventgrid::pki_dir;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const BASE: &str = "subscription: 11111111-2222-3333-4444-555555555555
resourceGroup: rg
namespace:
  name: jwt-ns
  create: { location: westeurope }
  mqtt:
";

/// The JWT settings with a file certificate and the root CA inline.
fn jwt(dir: &Path, issuer: &str) -> String {
    let root = std::fs::read_to_string(dir.join("pki/certs/root_ca.crt")).unwrap();
    let inline: String = root.lines().map(|l| format!("            {l}\n")).collect();
    format!(
        "    customJwtAuthentication:
      tokenIssuer: {issuer}
      issuerCertificates:
        - {{ kid: key-1, file: pki/certs/intermediate_ca.crt }}
        - kid: key-2
          pem: |
{inline}"
    )
}

fn problems(dir: &Path, text: &str) -> Vec<String> {
    let spec = Spec::parse(text, Path::new("spec.yaml"), &|_| None).unwrap();
    validate(&spec, dir, &ValidateOptions::default())
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn desired(dir: &Path, text: &str) -> Desired {
    assert_eq!(problems(dir, text), Vec::<String>::new());
    let spec = Spec::parse(text, Path::new("spec.yaml"), &|_| None).unwrap();
    model::desired(&spec, dir, Path::new("spec.yaml")).unwrap()
}

#[tokio::test]
async fn custom_jwt_settings_are_rendered_planned_and_applied() {
    let dir = pki_dir("jwt");
    let wanted = desired(
        dir.path(),
        &format!("{BASE}{}", jwt(dir.path(), "https://issuer.example.com/")),
    );
    let rendered = wanted
        .namespace
        .mqtt_properties
        .pointer("/topicSpacesConfiguration/clientAuthentication/customJwtAuthentication")
        .unwrap()
        .clone();
    assert_eq!(rendered["tokenIssuer"], "https://issuer.example.com/");
    let certificates = rendered["encodedIssuerCertificates"].as_array().unwrap();
    assert_eq!(certificates.len(), 2);
    assert_eq!(certificates[0]["kid"], "key-1");
    let pem = certificates[1]["encodedCertificate"].as_str().unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert!(
        !pem.contains('\n'),
        "one-line PEM, as Event Grid takes certificates"
    );

    let emulator = Emulator::start(EmulatorConfig {
        lro_delay: Duration::from_millis(10),
        lro_retry_after_secs: 0,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let config = ArmConfig {
        endpoint: emulator.base_url().parse().unwrap(),
        poll_interval: Duration::from_millis(5),
        min_poll_interval: Duration::from_millis(5),
        ..ArmConfig::default()
    };
    let arm = Arc::new(
        ArmClient::new(
            config,
            Arc::new(StaticToken::new("t")),
            CancellationToken::new(),
        )
        .unwrap(),
    );
    let run = |wanted: Desired| {
        let arm = Arc::clone(&arm);
        async move {
            let current = apply::read_current(&arm, &wanted).await.unwrap();
            let plan = plan::plan(&wanted, &current, false, Path::new("spec.yaml")).unwrap();
            apply::apply(&arm, &wanted, &plan, &ApplyOptions::default(), &|_| {})
                .await
                .unwrap();
            plan
        }
    };
    run(wanted.clone()).await;
    let put = emulator
        .captured_requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    let body = put.json().unwrap();
    assert_eq!(
        body.pointer(
            "/properties/topicSpacesConfiguration/clientAuthentication/customJwtAuthentication"
        ),
        Some(&rendered)
    );
    let api = put.api_version.as_deref().unwrap();
    assert_eq!(api, "2026-06-15-preview");
    OpenApi::for_api_version(api)
        .unwrap()
        .validate("Namespace", &body, Direction::Request)
        .unwrap();
    // The stable schema has no clientAuthentication: the reason for the validation rule.
    assert!(
        OpenApi::stable()
            .unwrap()
            .validate("Namespace", &body, Direction::Request)
            .is_err()
    );
    let namespace = arm.get(&wanted.namespace_id, api).await.unwrap().unwrap();
    assert_eq!(
        namespace.pointer(
            "/properties/topicSpacesConfiguration/clientAuthentication/customJwtAuthentication/tokenIssuer"
        ),
        Some(&Value::from("https://issuer.example.com/"))
    );

    // A rerun writes nothing.
    emulator.reset_stats();
    assert_eq!(run(wanted).await.summary.changes(), 0);
    assert_eq!(emulator.stats().writes(), 0);

    // Another issuer: a namespace update of that one field.
    let moved = desired(
        dir.path(),
        &format!(
            "{BASE}{}",
            jwt(dir.path(), "https://login.example.org/tenant")
        ),
    );
    emulator.reset_stats();
    let plan = run(moved).await;
    let namespace = &plan.changes[0];
    assert_eq!(
        (namespace.kind, namespace.action),
        (ResourceKind::Namespace, Action::Update)
    );
    let paths: Vec<&str> = namespace.fields.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "properties.topicSpacesConfiguration.clientAuthentication.customJwtAuthentication.tokenIssuer"
        ]
    );
    assert_eq!(
        emulator
            .stats()
            .count(Verb::Patch, e4k_emulator::ResourceKind::Namespace),
        1
    );
    emulator.shutdown().await.unwrap();
}

#[test]
fn custom_jwt_needs_a_preview_api_version_and_valid_settings() {
    let dir = pki_dir("jwt");
    let d = dir.path();
    let good = jwt(d, "https://issuer.example.com/");
    assert_eq!(
        problems(
            d,
            &format!("{BASE}{good}apiVersions: {{ namespace: 2025-02-15 }}\n")
        ),
        [
            "error: namespace.mqtt.customJwtAuthentication: needs a preview api-version (clientAuthentication is not in 2025-02-15); remove apiVersions.namespace to use the default"
        ]
    );
    assert_eq!(
        problems(
            d,
            &format!("{BASE}{}", jwt(d, "http://issuer.example.com/"))
        ),
        [
            "error: namespace.mqtt.customJwtAuthentication.tokenIssuer: \"http://issuer.example.com/\" is not an https URL: Event Grid compares it with the tokens' iss claim, e.g. https://issuer.example.com/"
        ]
    );
    assert_eq!(
        problems(d, &format!("{BASE}{}", jwt(d, "issuer"))),
        [
            "error: namespace.mqtt.customJwtAuthentication.tokenIssuer: \"issuer\" is not a URL (relative URL without a base): use https://…"
        ]
    );
    let broken = "    customJwtAuthentication:
      tokenIssuer: https://issuer.example.com/
      issuerCertificates:
        - { kid: a, file: pki/secrets/root_ca_key }
        - { kid: a, pem: 'not a certificate' }
        - { kid: '', file: pki/certs/root_ca.crt, pem: x }
        - { kid: c }
        - { kid: d, file: missing.pem }
";
    let found = problems(d, &format!("{BASE}{broken}"));
    let base = "error: namespace.mqtt.customJwtAuthentication.issuerCertificates";
    assert_eq!(
        found,
        [
            format!(
                "{base}[0].file: {}: holds no CERTIFICATE block (is it a key?)",
                d.join("pki/secrets/root_ca_key").display()
            ),
            format!("{base}[1].kid: \"a\" is already used by issuerCertificates[0]"),
            format!("{base}[1].pem: holds no PEM CERTIFICATE block"),
            format!("{base}[2].kid: the key id is empty"),
            format!("{base}[2]: give either file or pem, not both"),
            format!("{base}[3]: give the certificate: file (a PEM file) or pem (inline)"),
            format!(
                "{base}[4].file: cannot read {}",
                d.join("missing.pem").display()
            ),
        ]
    );
    assert_eq!(
        problems(
            d,
            &format!(
                "{BASE}    customJwtAuthentication: {{ tokenIssuer: 'https://i.example/', issuerCertificates: [] }}\n"
            )
        ),
        [
            "error: namespace.mqtt.customJwtAuthentication.issuerCertificates: give at least one certificate to verify the tokens with"
        ]
    );
    let unknown = Spec::parse(
        &format!("{BASE}    customJwtAuthentication: {{ tokenIssuer: 'https://i.example/', issuerCertificates: [], audience: x }}\n"),
        Path::new("spec.yaml"),
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(unknown.contains("unknown field `audience`"), "{unknown}");
}
