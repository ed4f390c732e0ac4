//! The seed's three terminal sessions, replayed with the real `mosquitto_pub` /
//! `mosquitto_sub`: a command from the cloud reaches the factory, telemetry reaches the cloud,
//! anomalies arrive as alerts through the shared subscription.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use super::{STEP_TIMEOUT, Session, failed, step};
use crate::EmulatorError;

/// How to reach the emulated Event Grid as the seed's `mosquitto` client (the commander).
pub(super) struct Cloud {
    pub(super) port: u16,
    pub(super) ca: PathBuf,
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
}

impl Cloud {
    fn args(&self, client_id: &str) -> Vec<String> {
        [
            "-h",
            "localhost",
            "-p",
            &self.port.to_string(),
            "-i",
            client_id,
            "--cert",
            &self.cert.display().to_string(),
            "--key",
            &self.key.display().to_string(),
            "--cafile",
            &self.ca.display().to_string(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }
}

fn local_args(local: SocketAddr) -> Vec<String> {
    vec![
        "-h".into(),
        local.ip().to_string(),
        "-p".into(),
        local.port().to_string(),
    ]
}

/// The seed's three terminal sessions.
pub(super) fn transcripts(
    cloud: &Cloud,
    local: SocketAddr,
    repeat: u32,
) -> Result<Vec<Session>, EmulatorError> {
    let mut sessions = Vec::new();

    // 1. A command from the cloud reaches the factory's `command` topic.
    let mut sub_args = vec![
        "-t", "command", "-i", "sub_1", "-d", "-V", "mqttv5", "-C", "1", "-W", "30",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    sub_args.extend(local_args(local));
    let mut pub_args = [
        "-q",
        "1",
        "-t",
        "command",
        "-d",
        "-V",
        "mqttv5",
        "-m",
        "this is a command from the cloud!",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect::<Vec<_>>();
    pub_args.extend(cloud.args("mosquitto"));
    let (commands, output) = subscribe_then_publish(&sub_args, &[pub_args])?;
    let ok = output
        .iter()
        .any(|l| l == "this is a command from the cloud!");
    sessions.push(Session {
        title: "Subscribe to commands from the cloud via the bridge".into(),
        commands,
        output,
        check: "the command published in the cloud arrived on the factory broker".into(),
        ok,
    });

    // 2. Telemetry from the factory reaches the cloud.
    let total = 2 * repeat;
    let sub_args = cloud_subscriber(cloud, "factory/telemetry/#", total, "mosquitto_sub");
    let publisher = |topic: &str, message: &str| {
        let mut args = [
            "-q",
            "1",
            "-t",
            topic,
            "-d",
            "-V",
            "mqttv5",
            "-m",
            message,
            "--repeat",
            &repeat.to_string(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect::<Vec<_>>();
        args.extend(local_args(local));
        args
    };
    let (commands, output) = subscribe_then_publish(
        &sub_args,
        &[
            publisher(
                "factory/telemetry/temperature",
                "this is a temperature measurement!",
            ),
            publisher(
                "factory/telemetry/humidity",
                "this is a humidity measurement!",
            ),
        ],
    )?;
    let temperature = output
        .iter()
        .filter(|l| *l == "this is a temperature measurement!")
        .count();
    let humidity = output
        .iter()
        .filter(|l| *l == "this is a humidity measurement!")
        .count();
    sessions.push(Session {
        title: "Publish telemetry to the cloud via the bridge".into(),
        commands,
        output,
        check: format!("{temperature} temperature and {humidity} humidity measurements of {repeat} each arrived in the cloud"),
        ok: temperature == repeat as usize && humidity == repeat as usize,
    });

    // 3. Anomalies become alerts through the shared subscription.
    let sub_args = cloud_subscriber(cloud, "factory/telemetry/alert", total, "mosquitto_alerts");
    let (commands, output) = subscribe_then_publish(
        &sub_args,
        &[
            publisher(
                "factory/telemetry/anomaly/high-temperature",
                "this is a temperature alert!",
            ),
            publisher(
                "factory/telemetry/anomaly/high-humidity",
                "this is a humidity alert!",
            ),
        ],
    )?;
    let alerts = output
        .iter()
        .filter(|l| l.contains("received PUBLISH") && l.contains("'factory/telemetry/alert'"))
        .count();
    sessions.push(Session {
        title: "Use shared subscriptions".into(),
        commands,
        output,
        check: format!(
            "{alerts} of {total} anomalies arrived in the cloud on factory/telemetry/alert"
        ),
        ok: alerts == total as usize,
    });
    Ok(sessions)
}

/// `mosquitto_sub` arguments for a QoS 1 subscriber in the cloud that exits after `count`
/// messages (or 30 s).
fn cloud_subscriber(cloud: &Cloud, topic: &str, count: u32, client_id: &str) -> Vec<String> {
    let count = count.to_string();
    let mut args: Vec<String> = [
        "-q", "1", "-t", topic, "-d", "-V", "mqttv5", "-C", &count, "-W", "30",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(cloud.args(client_id));
    args
}

/// Starts `mosquitto_sub`, waits until it is subscribed, runs each `mosquitto_pub`, then waits
/// for the subscriber to exit. Returns the command lines and the combined output, subscriber
/// first as the seed shows it.
fn subscribe_then_publish(
    sub_args: &[String],
    publishers: &[Vec<String>],
) -> Result<(Vec<String>, Vec<String>), EmulatorError> {
    let mut commands = vec![format!("mosquitto_sub {}", shell_words(sub_args))];
    // Piped, mosquitto_sub's output is block-buffered: "Subscribed" would only show when it
    // exits. stdbuf (coreutils) makes it line-buffered, so the publishers start on time.
    let mut command = if Path::new("/usr/bin/stdbuf").exists() {
        let mut c = Command::new("/usr/bin/stdbuf");
        c.args(["-oL", "mosquitto_sub"]);
        c
    } else {
        Command::new("mosquitto_sub")
    };
    let mut child = command
        .args(sub_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(step("cannot run mosquitto_sub (install mosquitto-clients)"))?;
    let stdout = child.stdout.take().ok_or_else(|| failed("no stdout"))?;
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut output = Vec::new();
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !output.iter().any(|l: &String| l.starts_with("Subscribed")) {
        match lines_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => output.push(line),
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(_) => {
                let _ = child.kill();
                let stderr = child
                    .wait_with_output()
                    .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                    .unwrap_or_default();
                return Err(failed(format!(
                    "mosquitto_sub did not subscribe: {}",
                    stderr.trim()
                )));
            }
        }
    }
    let mut published = Vec::new();
    for args in publishers {
        commands.push(format!("mosquitto_pub {}", shell_words(args)));
        let result = Command::new("mosquitto_pub")
            .args(args)
            .output()
            .map_err(step("cannot run mosquitto_pub"))?;
        published.extend(
            String::from_utf8_lossy(&result.stdout)
                .lines()
                .map(str::to_owned),
        );
        published.extend(
            String::from_utf8_lossy(&result.stderr)
                .lines()
                .map(str::to_owned),
        );
    }
    let _ = child.wait();
    let _ = reader.join();
    output.extend(lines_rx.try_iter());
    output.push(String::new());
    output.extend(published);
    Ok((commands, output))
}

/// Arguments as a shell would need them: quoted when they hold spaces or wildcards.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.contains([' ', '#', '*', '$']) {
                format!("\"{a}\"")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
