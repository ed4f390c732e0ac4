//! `e4k certs …` run as a user runs it, checked by openssl (an independent X.509 stack).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../util/mod.rs"]
mod util;

use util::{Dir, mode};

fn openssl_verify(d: &Dir, purpose: &str, leaf: &str) {
    let run = d.run(
        "openssl",
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            purpose,
            "-CAfile",
            "pki/certs/root_ca.crt",
            "-untrusted",
            "pki/certs/intermediate_ca.crt",
            leaf,
        ],
    );
    assert_eq!(run.stdout.trim(), format!("{leaf}: OK"), "{run:#?}");
}

fn chain_for(key_flags: &[&str]) {
    let d = Dir::new();
    d.init_pki(key_flags);
    d.create("mqttbridge", &["--not-after", "2400h"]).ok();
    openssl_verify(&d, "sslclient", "mqttbridge.pem");
    // Both CAs are CAs with the path lengths step uses.
    let root = d.run(
        "openssl",
        &["x509", "-in", "pki/certs/root_ca.crt", "-noout", "-text"],
    );
    assert!(
        root.stdout.contains("CA:TRUE, pathlen:1"),
        "{}",
        root.stdout
    );
    assert!(
        root.stdout.contains("Certificate Sign, CRL Sign"),
        "{}",
        root.stdout
    );
    let inter = d.run(
        "openssl",
        &[
            "x509",
            "-in",
            "pki/certs/intermediate_ca.crt",
            "-noout",
            "-text",
        ],
    );
    assert!(
        inter.stdout.contains("CA:TRUE, pathlen:0"),
        "{}",
        inter.stdout
    );
    let leaf = d.run(
        "openssl",
        &["x509", "-in", "mqttbridge.pem", "-noout", "-text"],
    );
    assert!(
        leaf.stdout.contains("Subject: CN = mqttbridge\n"),
        "{}",
        leaf.stdout
    );
    assert!(
        leaf.stdout.contains("TLS Web Client Authentication"),
        "{}",
        leaf.stdout
    );
    assert!(
        leaf.stdout.contains("X509v3 Subject Key Identifier"),
        "{}",
        leaf.stdout
    );
    assert!(
        leaf.stdout.contains("X509v3 Authority Key Identifier"),
        "{}",
        leaf.stdout
    );
}

mod chain;
mod keys;
mod usage;
mod verify;
