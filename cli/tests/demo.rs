//! `e4k demo`: the seed walkthrough runs on this machine and prints the seed's transcripts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod util;

use util::Dir;

#[test]
fn the_demo_replays_the_seed_walkthrough() {
    let d = Dir::new();
    let run = d.e4k(&["demo", "--repeat", "3", "--dir", "demo"]);
    assert_eq!(run.code, 0, "{run:#?}");
    let out = &run.stdout;
    // The seed's three sessions, with the real mosquitto clients' output.
    assert!(
        out.contains("## Subscribe to commands from the cloud via the bridge"),
        "{out}"
    );
    assert!(
        out.contains("Client sub_1 received PUBLISH (d0, q0, r0, m0, 'command', ... (33 bytes))"),
        "{out}"
    );
    assert!(
        out.contains("\nthis is a command from the cloud!\n"),
        "{out}"
    );
    assert!(
        out.contains("✔ the command published in the cloud arrived on the factory broker"),
        "{out}"
    );
    assert!(
        out.contains("✔ 3 temperature and 3 humidity measurements of 3 each arrived in the cloud"),
        "{out}"
    );
    assert!(
        out.contains("✔ 6 of 6 anomalies arrived in the cloud on factory/telemetry/alert"),
        "{out}"
    );
    assert!(
        out.ends_with("The seed's walkthrough works end to end.\n"),
        "{out}"
    );
    // Everything it made is in its directory: the PKI, the spec, the bridge config, manifests.
    for file in [
        "demo/pki/certs/root_ca.crt",
        "demo/eventgrid.yaml",
        "demo/e4k-out/bridge.yaml",
        "demo/e4k-out/k8s/bridge.yaml",
    ] {
        assert!(d.path(file).exists(), "{file}");
    }
}
