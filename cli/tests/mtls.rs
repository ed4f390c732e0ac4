//! A real mutual-TLS handshake: mosquitto with `require_certificate` and
//! `use_identity_as_username`, a server certificate and client certificates from `e4k certs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use e4k_tests::Mosquitto;
use util::Dir;

fn wait_for_log(broker: &Mosquitto, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !broker.log().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the broker log:\n{}",
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn mosquitto_accepts_e4k_client_as_its_cn_and_refuses_a_foreign_ca() {
    let d = Dir::new();
    d.init_pki(&[]);
    d.create_localhost_server("broker", &["--bundle"]).ok();
    d.create("mqttbridge", &["--bundle"]).ok();
    let foreign = Dir::new();
    foreign.init_pki(&["--name", "intruder"]);
    foreign.create("mqttbridge", &["--bundle"]).ok();

    let dir = d.dir.path().display().to_string();
    std::fs::write(
        d.path("acl"),
        "user mqttbridge\ntopic readwrite factory/#\n",
    )
    .unwrap();
    let broker = Mosquitto::start(&format!(
        "cafile {dir}/pki/certs/root_ca.crt\n\
         certfile {dir}/broker.pem\n\
         keyfile {dir}/broker.key\n\
         require_certificate true\n\
         use_identity_as_username true\n\
         tls_version tlsv1.2\n\
         allow_anonymous false\n\
         acl_file {dir}/acl\n"
    ))
    .unwrap();
    let port = broker.port().to_string();
    let tls = |cert: &str, key: &str| -> Vec<String> {
        [
            "-h",
            "localhost",
            "-p",
            &port,
            "-V",
            "mqttv5",
            "--cafile",
            "pki/certs/root_ca.crt",
            "--cert",
            cert,
            "--key",
            key,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };

    let sub = Command::new("mosquitto_sub")
        .args(tls("mqttbridge.pem", "mqttbridge.key"))
        .args([
            "-i",
            "sub1",
            "-t",
            "factory/telemetry/#",
            "-q",
            "1",
            "-C",
            "1",
            "-W",
            "20",
            "-v",
        ])
        .current_dir(d.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_log(&broker, "sub1 1 factory/telemetry/#");
    let publish = Command::new("mosquitto_pub")
        .args(tls("mqttbridge.pem", "mqttbridge.key"))
        .args([
            "-i",
            "pub1",
            "-t",
            "factory/telemetry/temperature",
            "-q",
            "1",
            "-m",
            "21.5",
        ])
        .current_dir(d.dir.path())
        .output()
        .unwrap();
    assert!(publish.status.success(), "{publish:?}\n{}", broker.log());
    let received = sub.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&received.stdout),
        "factory/telemetry/temperature 21.5\n",
        "{received:?}\n{}",
        broker.log()
    );
    // The broker took the certificate's CN as the username (the ACL above depends on it).
    assert!(
        broker
            .log()
            .contains("as sub1 (p5, c1, k60, u'mqttbridge')"),
        "{}",
        broker.log()
    );

    // The same CN from another CA is refused during the handshake.
    std::fs::copy(foreign.path("mqttbridge.pem"), d.path("intruder.pem")).unwrap();
    std::fs::copy(foreign.path("mqttbridge.key"), d.path("intruder.key")).unwrap();
    let refused = Command::new("mosquitto_pub")
        .args(tls("intruder.pem", "intruder.key"))
        .args(["-i", "pub2", "-t", "factory/telemetry/x", "-m", "x"])
        .current_dir(d.dir.path())
        .output()
        .unwrap();
    assert!(!refused.status.success(), "{refused:?}");
    assert!(!broker.log().contains("as pub2"), "{}", broker.log());

    // And so is a client without a certificate.
    let anonymous = Command::new("mosquitto_pub")
        .args([
            "-h",
            "localhost",
            "-p",
            &port,
            "--cafile",
            "pki/certs/root_ca.crt",
        ])
        .args(["-i", "pub3", "-t", "factory/telemetry/x", "-m", "x"])
        .current_dir(d.dir.path())
        .output()
        .unwrap();
    assert!(!anonymous.status.success(), "{anonymous:?}");
}
