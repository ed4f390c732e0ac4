//! The chain `e4k certs` issues, checked by openssl: key types, the server profile, bundles,
//! fingerprints.

use super::*;

#[test]
fn chain_verifies_with_openssl_ec_p256() {
    chain_for(&[]);
}

#[test]
fn chain_verifies_with_openssl_ec_p384() {
    chain_for(&["--kty", "EC", "--crv", "P-384"]);
}

#[test]
fn chain_verifies_with_openssl_rsa_2048() {
    chain_for(&["--kty", "RSA", "--size", "2048"]);
}

#[test]
fn server_profile_is_a_server_certificate() {
    let d = Dir::new();
    d.init_pki(&[]);
    d.create_localhost_server("broker", &[]).ok();
    openssl_verify(&d, "sslserver", "broker.pem");
    let text = d.run(
        "openssl",
        &[
            "x509",
            "-in",
            "broker.pem",
            "-noout",
            "-ext",
            "subjectAltName",
        ],
    );
    assert_has(&text.stdout, "DNS:localhost, IP Address:127.0.0.1");
}

#[test]
fn bundle_holds_leaf_then_intermediate() {
    let d = Dir::new();
    d.init_pki(&[]);
    d.create("dev", &["--bundle"]).ok();
    let bundle = String::from_utf8(d.read("dev.pem")).unwrap();
    assert_eq!(bundle.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    let intermediate = String::from_utf8(d.read("pki/certs/intermediate_ca.crt")).unwrap();
    assert!(bundle.ends_with(&intermediate));
    let run = d
        .e4k(&[
            "certs",
            "verify",
            "dev.pem",
            "--roots",
            "pki/certs/root_ca.crt",
        ])
        .ok();
    assert_has(&run.stdout, "through 1 intermediate");
}

#[test]
fn fingerprint_matches_openssl() {
    let d = Dir::new();
    d.init_pki(&[]);
    d.create("dev", &[]).ok();
    let ours = d.e4k(&["certs", "fingerprint", "dev.pem"]).ok().stdout;
    let theirs = d.run(
        "openssl",
        &[
            "x509",
            "-in",
            "dev.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let theirs = theirs
        .stdout
        .trim()
        .split('=')
        .nth(1)
        .unwrap()
        .replace(':', "")
        .to_lowercase();
    assert_eq!(ours.trim(), theirs);
}
