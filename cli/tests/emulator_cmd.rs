//! `e4k eventgrid emulator` as a user runs it: its JSON line, and the identity endpoint's
//! settings from the command line (the principal, the token lifetime, the header secret).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::process::{Command, Stdio};

use base64::Engine as _;
use e4k_tests::process::http_get_with;
use util::Dir;

const PRINCIPAL: &str = "7a7a7a7a-1111-4222-8333-444444444444";

/// GETs `url` (`http://127.0.0.1:PORT/…`) with the App Service managed-identity header.
fn get_with_header(url: &str, header: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://127.0.0.1:").unwrap();
    let (port, path) = rest.split_once('/').unwrap();
    http_get_with(
        port.parse().unwrap(),
        &format!("/{path}"),
        &[("X-IDENTITY-HEADER", header)],
    )
    .unwrap()
}

#[test]
fn the_identity_endpoint_takes_its_principal_lifetime_and_secret_from_the_command_line() {
    let d = Dir::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_e4k"))
        .args([
            "--output",
            "json",
            "eventgrid",
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--identity-principal-id",
            PRINCIPAL,
            "--identity-token-lifetime-secs",
            "7",
            "--identity-header-env",
            "MY_IDENTITY_HEADER",
        ])
        .env("MY_IDENTITY_HEADER", "sesame")
        .current_dir(d.path(""))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first JSON document on stdout, read as it arrives (the emulator keeps running).
    let printed: serde_json::Value =
        serde_json::Deserializer::from_reader(child.stdout.take().unwrap())
            .into_iter()
            .next()
            .unwrap()
            .unwrap();
    let endpoint = printed["identity_endpoint"].as_str().unwrap().to_owned();
    assert!(endpoint.ends_with("/msi/token"), "{printed}");

    let resource = "https://eventgrid.azure.net";
    let url = format!("{endpoint}?api-version=2019-08-01&resource={resource}");
    let (status, _) = get_with_header(&url, "wrong");
    assert_ne!(status, 200, "a wrong X-IDENTITY-HEADER is refused");
    let (status, body) = get_with_header(&url, "sesame");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = answer["access_token"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["oid"], PRINCIPAL, "{claims}");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 7, "{claims}");
}

#[test]
fn a_principal_that_is_not_a_guid_is_a_usage_error() {
    let d = Dir::new();
    let run = d.e4k(&[
        "eventgrid",
        "emulator",
        "--listen",
        "127.0.0.1:0",
        "--identity-principal-id",
        "bridge",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--identity-principal-id"),
        "{}",
        run.stderr
    );
}
