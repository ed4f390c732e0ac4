//! A remote stalled with SIGSTOP while 1,000 msg/s flow toward it: without a spool, with one,
//! with `kill -9` of the bridge in the middle, and with a spool too small for the stall.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use e4k_tests::bridge::metric;
use e4k_tests::process::{http_get, ranges, signal, wait_until};

use super::{Rig, WAIT, WINDOW, assert_none_lost};

/// What one stall run delivered.
struct Outcome {
    sent: u64,
    missing: Vec<u64>,
    duplicates: u64,
}

/// 45 s of 1,000 msg/s with the remote stopped from 5 s to 35 s; with `spool`, the bridge
/// spools, and with `kill` it is killed with SIGKILL 15 s into the stall and restarted.
fn stall_run(rig: &Rig, spool: bool, kill: bool) -> Outcome {
    let spool_dir = rig.spool_dir();
    let spool_args: Vec<&str> = if spool {
        vec!["--spool-dir", spool_dir.to_str().unwrap()]
    } else {
        Vec::new()
    };
    let mut bridge = rig.bridge(1, &spool_args);
    rig.wait_path(1);
    let publisher = rig.publish("stall-pub", 45);
    std::thread::sleep(Duration::from_secs(5));
    signal(rig.remote.pid(), "STOP");
    if kill {
        std::thread::sleep(Duration::from_secs(15));
        bridge.0.kill().unwrap();
        bridge.0.wait().unwrap();
        // The local broker queues 1,000 messages for the bridge's session while no bridge
        // runs (its default): restart at once, as a supervisor would, and inspect a copy of
        // the killed bridge's spool meanwhile (the new bridge holds the lock of the original).
        let copy = rig.dir.path().join("spool-at-kill");
        let copied = Command::new("cp")
            .arg("-a")
            .arg(&spool_dir)
            .arg(&copy)
            .status()
            .unwrap();
        bridge = rig.bridge(2, &spool_args);
        assert!(copied.success());
        inspect_holds_messages(&copy);
        std::thread::sleep(Duration::from_secs(2));
        second_bridge_is_refused(rig, &spool_dir);
        std::thread::sleep(Duration::from_secs(13));
    } else {
        std::thread::sleep(Duration::from_secs(15));
        if spool {
            // Spooling is the bridge's job while the remote is away: it stays ready.
            let (status, body) = http_get(rig.metrics_port, "/readyz").unwrap();
            assert_eq!(status, 200, "{body}");
            assert!(body.contains("\"state\": \"ok\""), "{body}");
        }
        std::thread::sleep(Duration::from_secs(15));
    }
    signal(rig.remote.pid(), "CONT");
    let published = publisher.join().unwrap();
    assert!(published.rate >= 950.0, "{published:?}");
    let (missing, duplicates) = rig.sub.settle(published.sent, Duration::from_secs(90));
    drop(bridge);
    Outcome {
        sent: published.sent,
        missing,
        duplicates,
    }
}

/// `e4k bridge spool inspect --output json` on the spool of a killed bridge shows the
/// messages it holds.
fn inspect_holds_messages(spool_dir: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_e4k"))
        .args([
            "bridge",
            "spool",
            "inspect",
            "--output",
            "json",
            "--spool-dir",
        ])
        .arg(spool_dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let queue = report["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "spool~remote~killspool-0")
        .unwrap_or_else(|| panic!("no remote queue: {report}"));
    assert!(report["messages"].as_u64().unwrap() > 1_000, "{report}");
    assert_eq!(queue["routes"][0]["route"], "out", "{report}");
    assert!(queue["oldest_age_secs"].as_u64().is_some(), "{report}");
}

/// A second bridge on a spool directory in use exits 2, naming the directory.
fn second_bridge_is_refused(rig: &Rig, spool_dir: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_e4k"))
        .args(["bridge", "run", "--config"])
        .arg(&rig.config)
        .arg("--spool-dir")
        .arg(spool_dir)
        .args(["--metrics-listen", "127.0.0.1:0", "--secrets-dir"])
        .arg(rig.pki.secrets())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("in use by another running bridge"),
        "{stderr}"
    );
}

#[test]
fn a_30s_remote_stall_at_1000_msgs_loses_nothing_with_a_spool_and_much_without() {
    let without = std::thread::spawn(|| {
        let rig = Rig::new("nospool");
        let outcome = stall_run(&rig, false, false);
        (outcome, rig.local.log())
    });
    let rig = Rig::new("spool");
    let with = stall_run(&rig, true, false);
    let (without, local_log) = without.join().unwrap();
    eprintln!(
        "remote stalled 30 s at 1,000 msg/s, local mosquitto at its defaults: without a spool \
         {} of {} lost; with a spool {} of {} lost ({} duplicates)",
        without.missing.len(),
        without.sent,
        with.missing.len(),
        with.sent,
        with.duplicates
    );
    assert!(
        with.missing.is_empty(),
        "{} of {} lost with a spool: {}\n{}",
        with.missing.len(),
        with.sent,
        ranges(&with.missing),
        rig.log(1)
    );
    assert!(with.duplicates <= WINDOW, "{} duplicates", with.duplicates);
    // Without the spool the local broker's queue (1,000) overflows: most of the stall is lost.
    assert!(
        without.missing.len() > 10_000,
        "expected the local broker to drop messages without a spool, lost only {}",
        without.missing.len()
    );
    assert!(
        local_log.contains("Outgoing messages are being dropped"),
        "{local_log}"
    );
    // What the spool went through shows on /metrics of a fresh run? The counters of this run
    // are gone with its process; the log says the spool was open.
    assert!(rig.log(1).contains("spool open"), "{}", rig.log(1));
}

#[test]
fn kill_9_in_the_middle_of_a_remote_stall_with_a_spool_loses_nothing() {
    let rig = Rig::new("killspool");
    let outcome = stall_run(&rig, true, true);
    eprintln!(
        "kill -9 mid-stall with a spool: {} of {} lost, {} duplicates",
        outcome.missing.len(),
        outcome.sent,
        outcome.duplicates
    );
    assert!(
        outcome.missing.is_empty(),
        "{} of {} lost: {}\nfirst bridge:\n{}\nsecond bridge:\n{}",
        outcome.missing.len(),
        outcome.sent,
        ranges(&outcome.missing),
        rig.log(1),
        rig.log(2)
    );
    // The in-flight window and one group-commit batch (at most 1,024 messages).
    assert!(
        outcome.duplicates <= WINDOW + 1_024,
        "{} duplicates",
        outcome.duplicates
    );
    assert!(
        rig.log(2).contains("waiting from the last run"),
        "{}",
        rig.log(2)
    );
}

/// With `--spool-max-bytes 128KiB` (about 1,400 messages) and `when_full`, stops the remote,
/// publishes 1,000 msg/s for `secs`, and lets the remote go 5 s later. Returns the rig, the
/// outcome, the metrics text after the drain and the `received` counter's two samples taken
/// 2 s apart while the spool was full.
fn small_spool(name: &str, when_full: &str, secs: u64) -> (Rig, Outcome, String, (f64, f64)) {
    let rig = Rig::new(name);
    let spool_dir = rig.spool_dir();
    let bridge = rig.bridge(
        1,
        &[
            "--spool-dir",
            spool_dir.to_str().unwrap(),
            "--spool-max-bytes",
            "128KiB",
            "--spool-when-full",
            when_full,
        ],
    );
    rig.wait_path(1);
    signal(rig.remote.pid(), "STOP");
    let publisher = rig.publish(&format!("{name}-pub"), secs);
    let full = |rig: &Rig| metric(&rig.metrics(), "e4k_bridge_spool_full{") >= 1.0;
    wait_until("the spool to fill", WAIT, || full(&rig));
    let received = |rig: &Rig| metric(&rig.metrics(), "e4k_bridge_messages_received_total{");
    std::thread::sleep(Duration::from_millis(500));
    let first = received(&rig);
    std::thread::sleep(Duration::from_secs(2));
    let second = received(&rig);
    let (status, body) = http_get(rig.metrics_port, "/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"state\": \"full\""), "{body}");
    let disk: u64 = walk(&spool_dir);
    assert!(
        disk <= 128 * 1024 + 64 * 1024 + 4096,
        "the spool takes {disk} bytes"
    );
    let published = publisher.join().unwrap();
    std::thread::sleep(Duration::from_secs(5));
    signal(rig.remote.pid(), "CONT");
    let (missing, duplicates) = rig.sub.settle(published.sent, Duration::from_secs(60));
    let metrics = rig.metrics();
    drop(bridge);
    (
        rig,
        Outcome {
            sent: published.sent,
            missing,
            duplicates,
        },
        metrics,
        (first, second),
    )
}

fn walk(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            total += walk(&path);
        } else {
            total += entry.metadata().map_or(0, |m| m.len());
        }
    }
    total
}

#[test]
fn a_full_spool_blocks_without_loss_or_drops_exactly_what_it_counts() {
    // 2,000 messages: the spool holds about 1,400, the local broker's queue the rest.
    let block = std::thread::spawn(|| {
        let (rig, outcome, metrics, samples) = small_spool("blockfull", "block", 2);
        (outcome, metrics, samples, rig.log(1))
    });
    let (rig, dropped, metrics, _) = small_spool("dropfull", "drop-oldest", 10);
    let counted = metric(&metrics, "e4k_bridge_messages_dropped_total{") as u64;
    let spool_full = metric(
        &metrics,
        "e4k_bridge_messages_dropped_total{bridge=\"spool\",route=\"out\",\
         direction=\"local-to-remote\",reason=\"spool_full\"}",
    ) as u64;
    eprintln!(
        "drop-oldest: {} of {} not delivered, {spool_full} counted as spool_full, {} duplicates",
        dropped.missing.len(),
        dropped.sent,
        dropped.duplicates
    );
    assert!(spool_full > 0, "{metrics}");
    assert_eq!(counted, spool_full, "{metrics}");
    assert_eq!(
        dropped.missing.len() as u64,
        spool_full,
        "missing {}\n{}",
        ranges(&dropped.missing),
        rig.log(1)
    );
    assert!(rig.log(1).contains("spool full"), "{}", rig.log(1));
    assert!(rig.log(1).contains("no longer full"), "{}", rig.log(1));

    let (blocked, metrics, (first, second), log) = block.join().unwrap();
    eprintln!(
        "block: {} of {} lost, {} duplicates; received {first} then {second} while full",
        blocked.missing.len(),
        blocked.sent,
        blocked.duplicates
    );
    assert!(log.contains("spool full"), "{log}");
    // Full and blocking: the bridge takes no more messages from the local broker.
    assert!((second - first).abs() < 1.0, "{first} -> {second}");
    assert_eq!(
        metric(&metrics, "e4k_bridge_messages_dropped_total{") as u64,
        0,
        "{metrics}"
    );
    assert_none_lost(&blocked.missing, &log);
}
