//! The local broker as the destination: restarted while commands flow from the remote, and
//! a backlog drained toward a consumer that reads slower than the broker takes messages.

use std::time::{Duration, Instant};

use e4k_tests::Mosquitto;
use e4k_tests::bridge::metric;
use e4k_tests::faults;
use e4k_tests::process::{SeqSubscriber, readyz, signal, wait_until};
use e4k_tests::proxy::{Mode, TcpProxy};

use super::{LOCAL_DEFAULTS, Rig, WAIT, assert_none_lost, remote_lines, remote_pub};

/// Publishes a probe on the remote's `commands/probe` until `probes` counts one at the
/// local end.
fn probe_commands(rig: &Rig, probes: impl Fn() -> u64) {
    let deadline = Instant::now() + WAIT;
    while probes() == 0 {
        assert!(
            Instant::now() < deadline,
            "no probe arrived:\n{}",
            rig.log(1)
        );
        let status = remote_pub(rig)
            .args(["-q", "1", "-t", "commands/probe", "-m", "probe"])
            .status()
            .unwrap();
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Commands flow from the remote (200 msg/s, a remote queue of 100 like Event Grid's offline
/// queue) while the local broker (its defaults plus persistence, as Debian installs it) is
/// down for 8 s. Returns what the local subscriber missed and the bridge's metrics.
///
/// The subscriber is back on the restarted broker before the bridge (which reaches it through
/// a proxy that refuses it until then): whatever a broker receives for a persistent session
/// that is not connected waits in that session's offline queue, which mosquitto caps at 1,000
/// messages by default, whoever sends them. With the subscriber connected, the spool's drain
/// pace (`auto`: at least 1,000 msg/s, four times the arrival rate) keeps the backlog from
/// overflowing the same cap on the subscriber's online queue, with the bridge's batched
/// writes.
fn local_restart(name: &str, spool: bool) -> (Vec<u64>, u64, String, String) {
    let store = tempfile::tempdir().unwrap();
    let local_conf = format!(
        "{LOCAL_DEFAULTS}persistence true\npersistence_location {}/\n",
        store.path().display()
    );
    let mut rig = Rig::with(
        name,
        "    - direction: remote-to-local\n      name: commands\n      source: commands/#\n",
        &local_conf,
        "max_queued_messages 100\n",
    );
    let port = rig.local.port();
    rig.local_proxy = Some(TcpProxy::start(([127, 0, 0, 1], port).into()).unwrap());
    let spool_dir = rig.spool_dir();
    let mut args = vec!["--reconnect-initial", "500ms", "--reconnect-max", "1s"];
    if spool {
        args.extend(["--spool-dir", spool_dir.to_str().unwrap()]);
    }
    let bridge = rig.bridge(1, &args);
    wait_until("/readyz", WAIT, || readyz(rig.metrics_port) == Some(200));
    let sub_id = format!("{name}-cmd-sub");
    let local_sub = SeqSubscriber::plain(port, &sub_id, &["commands/seq", "commands/probe"]);
    probe_commands(&rig, || local_sub.probes());
    let n = 4_000;
    let publisher = remote_lines(&rig, &format!("{name}-cmd-pub"), "commands/seq", (n, 2), 0);
    std::thread::sleep(Duration::from_secs(5));
    faults::terminate(&mut rig.local).unwrap();
    if let Some(proxy) = &rig.local_proxy {
        proxy.set_mode(Mode::Refuse);
    }
    std::thread::sleep(Duration::from_secs(8));
    rig.local = Mosquitto::start_on(port, &local_conf).unwrap();
    // mosquitto_sub retries every second; the broker logs its CONNECT.
    let connected = format!(" as {sub_id} ");
    wait_until("the subscriber back on the restarted broker", WAIT, || {
        rig.local.log().contains(&connected)
    });
    if let Some(proxy) = &rig.local_proxy {
        proxy.set_mode(Mode::Pass);
    }
    let (missing, duplicates) = local_sub.settle(n, Duration::from_secs(60));
    let metrics = rig.metrics();
    let log = rig.log(1);
    drop(publisher);
    drop(bridge);
    (missing, duplicates, metrics, log)
}

#[test]
fn a_local_broker_restart_while_commands_flow_loses_nothing_and_keeps_the_remote_session() {
    let without = std::thread::spawn(|| local_restart("cmdnospool", false));
    let (missing, duplicates, metrics, log) = local_restart("cmdspool", true);
    let (lost_without, _, _, _) = without.join().unwrap();
    eprintln!(
        "local broker down 8 s while 200 commands/s flow: without a spool {} of 4000 lost; \
         with one {} lost, {duplicates} duplicates",
        lost_without.len(),
        missing.len()
    );
    assert_none_lost(&missing, &log);
    // The remote session never went: the bridge kept acknowledging Event Grid.
    let remote_failures = metric(
        &metrics,
        "e4k_bridge_connection_attempts_failed_total{bridge=\"spool\",broker=\"remote\"",
    );
    assert!(remote_failures < 1.0, "{metrics}");
    assert!(
        !lost_without.is_empty(),
        "without a spool the remote's queue of 100 should have overflowed"
    );
}

/// 300 commands/s from the remote while the local broker (its defaults) is stopped for 10 s
/// (SIGSTOP: the bridge spools about 3,000); then the backlog drains toward a consumer that
/// reads 2,000 msg/s. Returns what the consumer missed, its duplicates and the bridge's log.
fn backlog_to_slow_consumer(name: &str, drain_rate: &str) -> (Vec<u64>, u64, String) {
    let rig = Rig::with(
        name,
        "    - direction: remote-to-local\n      name: commands\n      source: commands/#\n",
        LOCAL_DEFAULTS,
        "",
    );
    let spool_dir = rig.spool_dir();
    let bridge = rig.bridge(
        1,
        &[
            "--spool-dir",
            spool_dir.to_str().unwrap(),
            "--spool-drain-rate",
            drain_rate,
        ],
    );
    wait_until("/readyz", WAIT, || readyz(rig.metrics_port) == Some(200));
    let consumer = SeqSubscriber::plain_paced(
        rig.local.port(),
        &format!("{name}-slow"),
        &["commands/#"],
        2_000.0,
    );
    probe_commands(&rig, || consumer.probes());
    let n: u64 = 300 * 16;
    let publisher = remote_lines(&rig, &format!("{name}-pub"), "commands/seq", (n, 3), 1024);
    std::thread::sleep(Duration::from_secs(3));
    signal(rig.local.pid(), "STOP");
    std::thread::sleep(Duration::from_secs(10));
    signal(rig.local.pid(), "CONT");
    let (missing, duplicates) = consumer.settle(n, Duration::from_secs(60));
    let log = rig.log(1);
    drop(publisher);
    drop(bridge);
    (missing, duplicates, log)
}

#[test]
fn a_backlog_drains_at_a_pace_a_slower_consumer_keeps_up_with() {
    let unpaced = std::thread::spawn(|| backlog_to_slow_consumer("unpaced", "unlimited"));
    let (missing, duplicates, log) = backlog_to_slow_consumer("paced", "auto");
    let (lost_unpaced, _, _) = unpaced.join().unwrap();
    eprintln!(
        "a 3,000-message backlog toward a 2,000 msg/s consumer: --spool-drain-rate unlimited \
         lost {} of 4800; auto lost {}, {duplicates} duplicates",
        lost_unpaced.len(),
        missing.len()
    );
    assert_none_lost(&missing, &log);
    // The pace is what saves them: drained as fast as the broker takes it, the backlog
    // overflows the consumer's queue of 1,000.
    assert!(
        !lost_unpaced.is_empty(),
        "an unpaced drain should have overflowed the slow consumer's queue"
    );
}
