//! `e4k certs verify` and `e4k certs check`: each failed check explained, certificates inside
//! the renewal window flagged.

use super::*;

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
