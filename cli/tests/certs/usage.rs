//! Bad input and usage: one line naming the place, bulk issue all or nothing, exit codes.

use super::*;

#[test]
fn bad_input_is_one_line_naming_the_place() {
    let d = Dir::new();
    d.init_pki(&[]);
    d.create("leaf", &[]).ok();
    copy_from_new_pki(&[], "pki/secrets/intermediate_ca_key", &d.path("other.key"));
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

/// `e4k certs create ARGS --no-password --insecure` (keys in the clear) with the CA key's
/// password in `E4K_PASSWORD`.
fn create_unprotected(d: &Dir, args: &[&str]) -> util::Run {
    let mut all = vec!["certs", "create"];
    all.extend_from_slice(args);
    all.extend(["--no-password", "--insecure"]);
    d.e4k_env(&all, &[("E4K_PASSWORD", "e4k")])
}

#[test]
fn bulk_issue_all_or_nothing() {
    let d = Dir::new();
    d.init_pki(&[]);
    create_unprotected(
        &d,
        &[
            "--count",
            "25",
            "--name-template",
            "device-{n}",
            "--out-dir",
            "devices",
        ],
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
    let line =
        create_unprotected(&d, &["--names-file", "names.txt", "--out-dir", "devices"]).fails(1);
    assert_eq!(
        line,
        "e4k: error: devices/device-3.pem already exists (use --force to overwrite it)"
    );
    assert!(!d.path("devices/alpha.pem").exists());
    std::fs::write(d.path("names.txt"), "alpha\nbeta\nalpha\n").unwrap();
    let line = create_unprotected(&d, &["--names-file", "names.txt"]).fails(2);
    assert_eq!(
        line,
        "e4k: error: names.txt: line 3: \"alpha\" is listed twice"
    );
}

#[test]
fn help_documents_exit_codes_and_usage_errors_exit_2() {
    let d = Dir::new();
    let help = d.e4k(&["--help"]).ok();
    assert_has(&help.stdout, "Exit status:");
    assert!(help.stdout.contains("2  usage or configuration error"));
    assert_eq!(d.e4k(&["certs", "bogus"]).code, 2);
    assert_eq!(d.e4k(&["--output", "yaml", "certs", "check"]).code, 2);
    let completions = d.e4k(&["completions", "bash"]).ok();
    assert_has(&completions.stdout, "_e4k");
}
