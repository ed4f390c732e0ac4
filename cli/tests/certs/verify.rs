//! `e4k certs verify` and `e4k certs check`: each failed check explained, certificates inside
//! the renewal window flagged.

use super::*;

#[test]
fn verify_explains_each_failed_check() {
    let d = Dir::new();
    d.init_pki(&[]);
    d.create("mqttbridge", &["--not-after", "10d"]).ok();
    copy_from_new_pki(
        &["--name", "foreign"],
        "pki/certs/intermediate_ca.crt",
        &d.path("foreign.crt"),
    );
    // Another PKI of the same name: found by name, refused by signature.
    copy_from_new_pki(&[], "pki/certs/intermediate_ca.crt", &d.path("twin.crt"));
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
    assert_has(
        &run.stdout,
        "FAIL chain        a signature in the path does not verify",
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
    assert_has(&run.stdout, "ok   chain");
    assert_has(&run.stdout, "FAIL expiry");
    assert_has(&run.stdout, "within the 30-day window; renew it");
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
    assert_has(&run.stdout, "this is a CA certificate");
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
    assert_has(&run.stdout, "EXPIRING  pki/soon.pem  CN=soon");
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
