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

/// Asserts that `text` (a command's output) contains `needle`, showing `text` otherwise.
#[track_caller]
fn assert_has(text: &str, needle: &str) {
    assert!(text.contains(needle), "{text}");
}

/// `openssl x509 -in FILE -noout -text` in `d`.
fn x509_text(d: &Dir, file: &str) -> util::Run {
    d.run("openssl", &["x509", "-in", file, "-noout", "-text"])
}

/// Copies `file` of a new PKI (`e4k certs init` with `flags` in a directory of its own) to
/// `to`.
fn copy_from_new_pki(flags: &[&str], file: &str, to: &std::path::Path) {
    let other = Dir::new();
    other.init_pki(flags);
    std::fs::copy(other.path(file), to).unwrap();
}

fn chain_for(key_flags: &[&str]) {
    let d = Dir::new();
    d.init_pki(key_flags);
    d.create("mqttbridge", &["--not-after", "2400h"]).ok();
    openssl_verify(&d, "sslclient", "mqttbridge.pem");
    // Both CAs are CAs with the path lengths step uses.
    let root = x509_text(&d, "pki/certs/root_ca.crt");
    assert_has(&root.stdout, "CA:TRUE, pathlen:1");
    assert_has(&root.stdout, "Certificate Sign, CRL Sign");
    let inter = x509_text(&d, "pki/certs/intermediate_ca.crt");
    assert_has(&inter.stdout, "CA:TRUE, pathlen:0");
    let leaf = x509_text(&d, "mqttbridge.pem");
    assert_has(&leaf.stdout, "Subject: CN = mqttbridge\n");
    assert_has(&leaf.stdout, "TLS Web Client Authentication");
    assert_has(&leaf.stdout, "X509v3 Subject Key Identifier");
    assert_has(&leaf.stdout, "X509v3 Authority Key Identifier");
}

mod chain;
mod keys;
mod usage;
mod verify;
