//! Keys: encrypted CA keys that openssl decrypts, private modes, no overwriting without `--force`,
//! encrypted leaf keys, SEC1 and step's legacy encrypted keys.

use super::*;

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
