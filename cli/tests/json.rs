//! Pins the documented `--output json` shapes (docs/cli.md): the tests deserialise real output
//! into structs that refuse unknown fields, so a renamed or added field fails here first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

mod util;

use serde::Deserialize;
use util::Dir;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertSummary {
    subject: String,
    serial: String,
    not_before: String,
    not_after: String,
    sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Init {
    files: InitFiles,
    encrypted: bool,
    root: CertSummary,
    intermediate: CertSummary,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InitFiles {
    root_cert: String,
    intermediate_cert: String,
    root_key: String,
    intermediate_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    ca: String,
    certificates: Vec<Created>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Created {
    files: CreatedFiles,
    encrypted: bool,
    certificate: CertSummary,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatedFiles {
    cert: String,
    key: String,
    bundle: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Inspect {
    file: String,
    certificates: Vec<CertInfo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertInfo {
    subject: String,
    common_name: Option<String>,
    issuer: String,
    serial: String,
    not_before: String,
    not_after: String,
    days_left: i64,
    is_ca: bool,
    path_len: Option<u32>,
    key: KeyInfo,
    key_usage: Vec<String>,
    extended_key_usage: Vec<String>,
    sans: Sans,
    subject_key_id: Option<String>,
    authority_key_id: Option<String>,
    sha256: String,
    eventgrid: EventGrid,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyInfo {
    algorithm: String,
    curve: Option<String>,
    bits: Option<usize>,
    eventgrid_accepted: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sans {
    dns: Vec<String>,
    ip: Vec<String>,
    uri: Vec<String>,
    email: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventGrid {
    subject: Option<String>,
    dns: Vec<String>,
    uri: Vec<String>,
    ip: Vec<String>,
    email: Vec<String>,
    thumbprint: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fingerprints {
    file: String,
    fingerprints: Vec<Fingerprint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fingerprint {
    subject: String,
    sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Verify {
    file: String,
    subject: String,
    ok: bool,
    checks: Vec<Check>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    name: String,
    ok: bool,
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expiry {
    within_days: i64,
    certificates: Vec<ExpiryEntry>,
    failing: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpiryEntry {
    path: String,
    index: usize,
    subject: String,
    not_after: String,
    days_left: i64,
    status: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorLine {
    error: String,
    exit_code: u8,
}

fn json<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

#[test]
fn every_certs_command_prints_its_documented_json() {
    let d = Dir::new();
    let init: Init = json(
        &d.e4k_env(
            &["--output", "json", "certs", "init"],
            &[("E4K_PASSWORD", "e4k")],
        )
        .ok()
        .stdout,
    );
    assert!(init.encrypted);
    assert_eq!(init.files.root_key, "pki/secrets/root_ca_key");
    assert_eq!(init.root.subject, "O=e4k, CN=e4k Root CA");

    let create: Create = json(
        &d.create(
            "dev",
            &[
                "--output",
                "json",
                "--profile",
                "server",
                "--san",
                "10.1.2.3",
                "--san",
                "a@b.c",
            ],
        )
        .ok()
        .stdout,
    );
    assert_eq!(create.certificates.len(), 1);
    assert_eq!(create.certificates[0].files.cert, "dev.pem");
    assert!(!create.certificates[0].encrypted);

    let inspect: Inspect = json(
        &d.e4k(&["certs", "inspect", "dev.pem", "--output", "json"])
            .ok()
            .stdout,
    );
    let info = &inspect.certificates[0];
    assert_eq!(info.common_name.as_deref(), Some("dev"));
    assert_eq!(info.key.curve.as_deref(), Some("P-256"));
    assert_eq!(info.extended_key_usage, ["serverAuth", "clientAuth"]);
    assert_eq!(info.eventgrid.ip, ["10.1.2.3"]);
    assert_eq!(info.eventgrid.email, ["a@b.c"]);
    assert_eq!(
        info.eventgrid.thumbprint,
        create.certificates[0].certificate.sha256
    );
    assert!(info.eventgrid.dns.is_empty());

    let fp: Fingerprints = json(
        &d.e4k(&["--output", "json", "certs", "fingerprint", "dev.pem"])
            .ok()
            .stdout,
    );
    assert_eq!(fp.fingerprints[0].sha256, info.sha256);

    let verify: Verify = json(
        &d.e4k(&[
            "--output",
            "json",
            "certs",
            "verify",
            "dev.pem",
            "--roots",
            "pki/certs/root_ca.crt",
            "--scheme",
            "ip",
            "--auth-name",
            "10.1.2.3",
        ])
        .stdout,
    );
    assert!(!verify.ok, "no intermediate given: the chain check fails");
    let names: Vec<&str> = verify.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["chain", "client-auth", "key-type", "auth-name", "expiry"]
    );
    assert!(verify.checks[3].ok, "{}", verify.checks[3].message);

    let expiry: Expiry = json(
        &d.e4k(&["--output", "json", "certs", "check", "--dir", "."])
            .ok()
            .stdout,
    );
    assert_eq!(expiry.failing, 0);
    assert_eq!(expiry.certificates.len(), 3);
    assert!(expiry.certificates.iter().all(|c| c.status == "ok"));

    let err = d.e4k(&["--output", "json", "certs", "inspect", "missing.pem"]);
    assert_eq!(err.code, 2);
    let line: ErrorLine = json(err.stderr.trim());
    assert_eq!(line.exit_code, 2);
    assert_eq!(
        line.error,
        "cannot read missing.pem: No such file or directory (os error 2)"
    );
    assert!(err.stdout.is_empty());
}
