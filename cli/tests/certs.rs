//! `e4k certs …` run as a user runs it, checked by openssl (an independent X.509 stack).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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
    assert!(
        text.stdout.contains("DNS:localhost, IP Address:127.0.0.1"),
        "{}",
        text.stdout
    );
}

#[test]
fn ca_keys_decrypt_with_openssl_and_a_wrong_password_is_one_clear_error() {
    let d = Dir::new();
    d.init_pki(&[]);
    for key in ["pki/secrets/root_ca_key", "pki/secrets/intermediate_ca_key"] {
        let pem = String::from_utf8(d.read(key)).unwrap();
        assert!(
            pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{pem}"
        );
        d.run(
            "openssl",
            &["pkey", "-in", key, "-passin", "pass:e4k", "-noout"],
        )
        .ok();
        let wrong = d.run(
            "openssl",
            &["pkey", "-in", key, "-passin", "pass:nope", "-noout"],
        );
        assert_ne!(wrong.code, 0);
    }
    let line = d
        .e4k_env(
            &["certs", "create", "x", "--no-password", "--insecure"],
            &[("E4K_PASSWORD", "wrong")],
        )
        .fails(2);
    assert_eq!(
        line,
        "e4k: error: cannot use the CA pki/certs/intermediate_ca.crt: \
         pki/secrets/intermediate_ca_key: wrong password, or the key is damaged"
    );
    let line = d
        .e4k(&["certs", "create", "x", "--no-password", "--insecure"])
        .fails(2);
    assert_eq!(
        line,
        "e4k: error: cannot use the CA pki/certs/intermediate_ca.crt: \
         pki/secrets/intermediate_ca_key is encrypted: give its password with \
         --ca-password-file FILE or E4K_PASSWORD"
    );
    // The password file works as the variable does.
    std::fs::write(d.path("pw"), "e4k\n").unwrap();
    d.e4k(&[
        "certs",
        "create",
        "x",
        "--no-password",
        "--insecure",
        "--ca-password-file",
        "pw",
    ])
    .ok();
}

#[test]
fn keys_are_private_and_nothing_is_overwritten_without_force() {
    let d = Dir::new();
    d.init_pki(&[]);
    assert_eq!(mode(&d.path("pki/secrets")), 0o700);
    for key in ["pki/secrets/root_ca_key", "pki/secrets/intermediate_ca_key"] {
        assert_eq!(mode(&d.path(key)), 0o600, "{key}");
    }
    assert_eq!(mode(&d.path("pki/certs/root_ca.crt")), 0o644);
    let before: Vec<Vec<u8>> = ["certs/root_ca.crt", "secrets/root_ca_key"]
        .iter()
        .map(|f| d.read(&format!("pki/{f}")))
        .collect();
    let line = d
        .e4k_env(&["certs", "init"], &[("E4K_PASSWORD", "e4k")])
        .fails(1);
    assert!(
        line.contains("already exists (use --force to overwrite it)"),
        "{line}"
    );
    let after: Vec<Vec<u8>> = ["certs/root_ca.crt", "secrets/root_ca_key"]
        .iter()
        .map(|f| d.read(&format!("pki/{f}")))
        .collect();
    assert_eq!(before, after);
    d.e4k_env(&["certs", "init", "--force"], &[("E4K_PASSWORD", "e4k")])
        .ok();
    assert_ne!(before[0], d.read("pki/certs/root_ca.crt"));

    d.create("dev", &[]).ok();
    assert_eq!(mode(&d.path("dev.key")), 0o600);
    let line = d.create("dev", &[]).fails(1);
    assert_eq!(
        line,
        "e4k: error: dev.pem already exists (use --force to overwrite it)"
    );
    d.create("dev", &["--force"]).ok();
}

#[test]
fn encrypted_leaf_keys_by_default() {
    let d = Dir::new();
    d.init_pki(&[]);
    let line = d
        .e4k_env(&["certs", "create", "dev"], &[("E4K_PASSWORD", "e4k")])
        .fails(2);
    assert!(line.contains("--no-password --insecure"), "{line}");
    d.e4k_env(
        &["certs", "create", "dev"],
        &[("E4K_PASSWORD", "e4k"), ("E4K_KEY_PASSWORD", "leaf")],
    )
    .ok();
    assert!(
        String::from_utf8(d.read("dev.key"))
            .unwrap()
            .contains("ENCRYPTED PRIVATE KEY")
    );
    d.run(
        "openssl",
        &["pkey", "-in", "dev.key", "-passin", "pass:leaf", "-noout"],
    )
    .ok();
}

#[test]
fn bad_input_is_one_line_naming_the_place() {
    let d = Dir::new();
    d.init_pki(&[]);
    d.create("leaf", &[]).ok();
    let other = Dir::new();
    other.init_pki(&[]);
    std::fs::copy(
        other.path("pki/secrets/intermediate_ca_key"),
        d.path("other.key"),
    )
    .unwrap();
    std::fs::write(d.path("junk.crt"), "hello\n").unwrap();

    let line = d
        .e4k(&[
            "certs",
            "init",
            "--kty",
            "OKP",
            "--no-password",
            "--insecure",
        ])
        .fails(2);
    assert_eq!(
        line,
        "e4k: error: invalid --kty \"OKP\": expected EC or RSA (Event Grid does not document Ed25519/OKP keys)"
    );
    let create = |extra: &[&str]| {
        let mut args = vec!["certs", "create", "x", "--no-password", "--insecure"];
        args.extend_from_slice(extra);
        d.e4k_env(&args, &[("E4K_PASSWORD", "e4k")])
    };
    let run = create(&["--not-after", "10x"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with(
            "error: invalid value '10x' for '--not-after <NOT_AFTER>': invalid duration \"10x\": unknown unit \"x\""
        ),
        "{}",
        run.stderr
    );
    assert_eq!(
        create(&["--ca", "missing.crt", "--ca-key", "other.key"]).fails(2),
        "e4k: error: cannot use the CA missing.crt: cannot read missing.crt: No such file or directory (os error 2)"
    );
    assert_eq!(
        create(&["--ca", "junk.crt", "--ca-key", "other.key"]).fails(2),
        "e4k: error: cannot use the CA junk.crt: junk.crt: not a PEM or DER certificate"
    );
    assert_eq!(
        create(&[
            "--ca",
            "pki/certs/intermediate_ca.crt",
            "--ca-key",
            "other.key"
        ])
        .fails(2),
        "e4k: error: cannot use the CA pki/certs/intermediate_ca.crt: \
         pki/certs/intermediate_ca.crt: the key in other.key does not belong to this certificate"
    );
    assert_eq!(
        create(&["--ca", "leaf.pem", "--ca-key", "leaf.key"]).fails(2),
        "e4k: error: cannot use the CA leaf.pem: leaf.pem: not a CA certificate \
         (basicConstraints CA:TRUE is missing); give a CA such as DIR/certs/intermediate_ca.crt with --ca"
    );
    assert_eq!(
        create(&[
            "--ca",
            "pki/certs/intermediate_ca.crt",
            "--ca-key",
            "junk.crt"
        ])
        .fails(2),
        "e4k: error: cannot use the CA pki/certs/intermediate_ca.crt: junk.crt: no private key found \
         (expected a PEM block such as -----BEGIN PRIVATE KEY-----)"
    );
    let fresh = Dir::new();
    assert_eq!(
        fresh
            .e4k(&["certs", "create", "x", "--no-password", "--insecure"])
            .fails(2),
        "e4k: error: no CA at pki/certs/intermediate_ca.crt: create one with `e4k certs init \
         --dir pki`, or give --ca and --ca-key"
    );
    let run = d.e4k(&["certs", "init", "--no-password"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--insecure"), "{}", run.stderr);
    let line = create(&["--not-after", "20y"]).fails(2);
    assert!(
        line.starts_with("e4k: error: invalid --not-after \"2046-"),
        "{line}"
    );
    assert!(
        line.contains(
            "the certificate would outlive its CA pki/certs/intermediate_ca.crt (valid until 2036-"
        ),
        "{line}"
    );
}

#[test]
fn sec1_keys_and_step_legacy_encrypted_ca_keys() {
    let d = Dir::new();
    d.init_pki(&[]);
    d.create("dev", &["--key-format", "sec1"]).ok();
    let key = String::from_utf8(d.read("dev.key")).unwrap();
    assert!(key.starts_with("-----BEGIN EC PRIVATE KEY-----\n"), "{key}");
    d.run("openssl", &["ec", "-in", "dev.key", "-check", "-noout"])
        .ok();
    let from_cert = d
        .run("openssl", &["x509", "-in", "dev.pem", "-noout", "-pubkey"])
        .ok();
    let from_key = d
        .run("openssl", &["pkey", "-in", "dev.key", "-pubout"])
        .ok();
    assert_eq!(from_cert.stdout, from_key.stdout);

    // `step ca init` encrypts CA keys in OpenSSL's legacy PEM format; e4k signs with them.
    d.run(
        "openssl",
        &[
            "pkey",
            "-in",
            "pki/secrets/intermediate_ca_key",
            "-passin",
            "pass:e4k",
            "-out",
            "plain.key",
        ],
    )
    .ok();
    d.run(
        "openssl",
        &[
            "ec",
            "-in",
            "plain.key",
            "-aes256",
            "-passout",
            "pass:step",
            "-out",
            "legacy.key",
        ],
    )
    .ok();
    let legacy = String::from_utf8(d.read("legacy.key")).unwrap();
    assert!(legacy.contains("Proc-Type: 4,ENCRYPTED"), "{legacy}");
    let args = [
        "certs",
        "create",
        "viastep",
        "--no-password",
        "--insecure",
        "--ca",
        "pki/certs/intermediate_ca.crt",
        "--ca-key",
        "legacy.key",
    ];
    d.e4k_env(&args, &[("E4K_PASSWORD", "step")]).ok();
    openssl_verify(&d, "sslclient", "viastep.pem");
    let line = d.e4k_env(&args, &[("E4K_PASSWORD", "wrong")]).fails(2);
    assert!(
        line.ends_with("legacy.key: wrong password, or the key is damaged"),
        "{line}"
    );
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
    assert!(
        run.stdout.contains("through 1 intermediate"),
        "{}",
        run.stdout
    );
}

#[test]
fn bulk_issue_all_or_nothing() {
    let d = Dir::new();
    d.init_pki(&[]);
    d.e4k_env(
        &[
            "certs",
            "create",
            "--count",
            "25",
            "--name-template",
            "device-{n}",
            "--out-dir",
            "devices",
            "--no-password",
            "--insecure",
        ],
        &[("E4K_PASSWORD", "e4k")],
    )
    .ok();
    let files = std::fs::read_dir(d.path("devices")).unwrap().count();
    assert_eq!(files, 50);
    openssl_verify(&d, "sslclient", "devices/device-25.pem");
    assert_eq!(mode(&d.path("devices/device-7.key")), 0o600);
    let subject = d.run(
        "openssl",
        &["x509", "-in", "devices/device-7.pem", "-noout", "-subject"],
    );
    assert_eq!(subject.stdout.trim(), "subject=CN = device-7");

    // A names file with one name that already has files: nothing new is written.
    std::fs::write(d.path("names.txt"), "# fleet\nalpha\n\nbeta\ndevice-3\n").unwrap();
    let line = d
        .e4k_env(
            &[
                "certs",
                "create",
                "--names-file",
                "names.txt",
                "--out-dir",
                "devices",
                "--no-password",
                "--insecure",
            ],
            &[("E4K_PASSWORD", "e4k")],
        )
        .fails(1);
    assert_eq!(
        line,
        "e4k: error: devices/device-3.pem already exists (use --force to overwrite it)"
    );
    assert!(!d.path("devices/alpha.pem").exists());
    std::fs::write(d.path("names.txt"), "alpha\nbeta\nalpha\n").unwrap();
    let line = d
        .e4k_env(
            &[
                "certs",
                "create",
                "--names-file",
                "names.txt",
                "--no-password",
                "--insecure",
            ],
            &[("E4K_PASSWORD", "e4k")],
        )
        .fails(2);
    assert_eq!(
        line,
        "e4k: error: names.txt: line 3: \"alpha\" is listed twice"
    );
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

#[test]
fn verify_explains_each_failed_check() {
    let d = Dir::new();
    d.init_pki(&[]);
    d.create("mqttbridge", &["--not-after", "10d"]).ok();
    let foreign = Dir::new();
    foreign.init_pki(&["--name", "foreign"]);
    std::fs::copy(
        foreign.path("pki/certs/intermediate_ca.crt"),
        d.path("foreign.crt"),
    )
    .unwrap();
    // Another PKI of the same name: found by name, refused by signature.
    let twin = Dir::new();
    twin.init_pki(&[]);
    std::fs::copy(
        twin.path("pki/certs/intermediate_ca.crt"),
        d.path("twin.crt"),
    )
    .unwrap();
    let run = d.e4k(&[
        "certs",
        "verify",
        "mqttbridge.pem",
        "--roots",
        "twin.crt",
        "--within",
        "1d",
    ]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .contains("FAIL chain        a signature in the path does not verify"),
        "{}",
        run.stdout
    );

    // The intermediate alone as trust anchor, as Event Grid holds it: passes but the expiry.
    let run = d.e4k(&[
        "certs",
        "verify",
        "mqttbridge.pem",
        "--roots",
        "pki/certs/intermediate_ca.crt",
    ]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stdout.contains("ok   chain"), "{}", run.stdout);
    assert!(run.stdout.contains("FAIL expiry"), "{}", run.stdout);
    assert!(
        run.stdout.contains("within the 30-day window; renew it"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.ends_with("1 of 5 checks failed\n"),
        "{}",
        run.stdout
    );

    let run = d.e4k(&[
        "certs",
        "verify",
        "mqttbridge.pem",
        "--roots",
        "foreign.crt",
        "--within",
        "1d",
        "--auth-name",
        "someone-else",
    ]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains(
            "FAIL chain        not issued by any of the --roots certificates (its issuer is O=e4k, CN=e4k Intermediate CA)"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "FAIL auth-name    authentication name \"someone-else\" is not in the subject common name (mqttbridge)"
        ),
        "{}",
        run.stdout
    );
    let ok = d.e4k(&[
        "certs",
        "verify",
        "mqttbridge.pem",
        "--roots",
        "pki/certs/root_ca.crt",
        "--intermediates",
        "pki/certs/intermediate_ca.crt",
        "--within",
        "1d",
    ]);
    assert_eq!(ok.code, 0, "{ok:#?}");
    // A CA is not a client certificate.
    let run = d.e4k(&[
        "certs",
        "verify",
        "pki/certs/intermediate_ca.crt",
        "--roots",
        "pki/certs/root_ca.crt",
    ]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("this is a CA certificate"),
        "{}",
        run.stdout
    );
}

#[test]
fn check_flags_certificates_inside_the_window() {
    let d = Dir::new();
    d.init_pki(&[]);
    d.e4k(&["certs", "check"]).ok();
    d.e4k_env(
        &[
            "certs",
            "create",
            "soon",
            "pki/soon.pem",
            "pki/soon.key",
            "--not-after",
            "10d",
            "--no-password",
            "--insecure",
        ],
        &[("E4K_PASSWORD", "e4k")],
    )
    .ok();
    let run = d.e4k(&["certs", "check", "--dir", "pki", "--within", "30d"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout.contains("EXPIRING  pki/soon.pem  CN=soon"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .ends_with("3 certificate(s), 1 expiring within 30 days or expired\n")
    );
    d.e4k(&["certs", "check", "--within", "5d"]).ok();
    assert_eq!(
        d.e4k(&["certs", "check", "--dir", "nowhere"]).fails(2),
        "e4k: error: cannot read nowhere: No such file or directory (os error 2)"
    );
}

#[test]
fn help_documents_exit_codes_and_usage_errors_exit_2() {
    let d = Dir::new();
    let help = d.e4k(&["--help"]).ok();
    assert!(help.stdout.contains("Exit status:"), "{}", help.stdout);
    assert!(help.stdout.contains("2  usage or configuration error"));
    assert_eq!(d.e4k(&["certs", "bogus"]).code, 2);
    assert_eq!(d.e4k(&["--output", "yaml", "certs", "check"]).code, 2);
    let completions = d.e4k(&["completions", "bash"]).ok();
    assert!(
        completions.stdout.contains("_e4k"),
        "{}",
        completions.stdout
    );
}
