//! `e4k demo`: the seed walkthrough on this machine, with no Azure account.
//!
//! It starts the Event Grid emulator (ARM and MQTT), runs `e4k up` against it, starts a local
//! mosquitto as the factory broker, runs the bridge in this process, and then replays the
//! seed's terminal sessions with the real `mosquitto_pub` / `mosquitto_sub`: a command
//! published in the cloud arrives at the factory, telemetry published at the factory arrives
//! in the cloud, and anomalies arrive as alerts through the shared subscription. Each
//! session's output is printed as the seed shows it; a check after each says whether it
//! worked.

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Args;
use e4k_bridge::{
    config::{ConfigOptions, RawConfig, resolve},
    engine::{Bridge, RunOptions},
};
use e4k_emulator::{Emulator, EmulatorConfig, MqttConfig};
use e4k_provisioning::{
    certs::{KeyProtection, NotAfter},
    eventgrid::{
        arm::{ArmClient, ArmConfig},
        credential::StaticToken,
    },
    k8s::manifests::{ManifestInput, SpoolVolume},
    up::{self, UpOptions},
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::output::Output;

/// How long one transcript step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Keep the demo's files here (default: a temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Messages each telemetry and anomaly publisher sends (the seed sends 5 and 500).
    #[arg(long, default_value_t = 5)]
    repeat: u32,
}

/// One replayed terminal session.
#[derive(Debug, Serialize)]
struct Session {
    title: String,
    commands: Vec<String>,
    output: Vec<String>,
    check: String,
    ok: bool,
}

/// The JSON shape of `e4k demo`.
#[derive(Debug, Serialize)]
struct DemoOutput {
    dir: PathBuf,
    arm_endpoint: String,
    mqtt_endpoint: String,
    local_broker: String,
    sessions: Vec<Session>,
    ok: bool,
}

pub(crate) fn run(args: DemoArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let temp;
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            temp.path().to_owned()
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let output = runtime.block_on(demo(&dir, args.repeat, out))?;
    let ok = output.ok;
    out.emit(&output, |w| {
        for session in &output.sessions {
            writeln!(w, "\n## {}\n", session.title)?;
            for command in &session.commands {
                writeln!(w, "$ {command}")?;
            }
            for line in &session.output {
                writeln!(w, "{line}")?;
            }
            writeln!(
                w,
                "\n{} {}",
                if session.ok { "✔" } else { "✘" },
                session.check
            )?;
        }
        writeln!(
            w,
            "\n{}",
            if output.ok {
                "The seed's walkthrough works end to end."
            } else {
                "Some steps failed (see above)."
            }
        )
    })?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn note(out: &Output, message: &str) {
    if out.progress_allowed() {
        eprintln!("demo: {message}");
    }
}

async fn demo(dir: &Path, repeat: u32, out: &Output) -> anyhow::Result<DemoOutput> {
    note(out, "starting the Event Grid emulator (ARM + MQTT)");
    let emulator = Emulator::start(EmulatorConfig {
        lro_delay: Duration::from_millis(20),
        lro_retry_after_secs: 0,
        mqtt_hostname: "localhost".into(),
        mqtt: Some(MqttConfig::default()),
        ..EmulatorConfig::default()
    })
    .await
    .context("cannot start the emulator (is mosquitto installed?)")?;
    let mqtt = emulator
        .mqtt_addr()
        .context("the emulator serves no MQTT")?;
    let mqtt_ca = emulator
        .mqtt_ca_pem_path()
        .context("the emulator has no MQTT CA")?
        .to_owned();

    note(
        out,
        "e4k up: certificates, Event Grid namespace, bridge configuration",
    );
    let spec = dir.join("eventgrid.yaml");
    let bridge_yaml = dir.join("bridge.yaml");
    std::fs::write(
        &spec,
        e4k_templates::EVENTGRID_YAML.replace(
            "${AZURE_SUBSCRIPTION_ID}",
            "00000000-0000-0000-0000-00000000e4ed",
        ),
    )?;
    std::fs::write(&bridge_yaml, e4k_templates::BRIDGE_YAML)?;
    let arm = std::sync::Arc::new(ArmClient::new(
        ArmConfig {
            endpoint: emulator.base_url().parse()?,
            min_poll_interval: Duration::from_millis(10),
            ..ArmConfig::default()
        },
        std::sync::Arc::new(StaticToken::new("demo")),
        CancellationToken::new(),
    )?);
    let out_dir = dir.join("e4k-out");
    let report = up::up(
        &UpOptions {
            spec: spec.clone(),
            bridge_config: bridge_yaml,
            bridge_secret: "bridge-client-cert".into(),
            bridge_client: "mqttbridge".into(),
            pki: dir.join("pki"),
            out: out_dir.clone(),
            // A demo PKI: the CA keys stay in the demo's directory, unencrypted.
            ca_protection: KeyProtection::Plaintext,
            ca_password: None,
            pki_name: "e4k demo".into(),
            client_validity: NotAfter::parse("2400h")?,
            manifests: ManifestInput {
                name: "e4k-my-mqtt-bridge".into(),
                namespace: None,
                image: "e4k:demo".into(),
                replicas: 3,
                bridge_yaml: String::new(),
                secrets: vec!["bridge-client-cert".into()],
                config_maps: Vec::new(),
                service_account_token: None,
                workload_identity_client_id: None,
                // As `e4k up` renders them by default.
                spool: Some(SpoolVolume {
                    size_bytes: SpoolVolume::DEFAULT_SIZE,
                    storage_class: None,
                }),
            },
            concurrency: 8,
            bridge_sessions: None,
        },
        &arm,
        &|_| {},
    )
    .await?;
    if !emulator.mqtt_synced(Duration::from_secs(10)).await {
        bail!("the emulator's broker did not pick up the namespace in time");
    }

    note(out, "starting the factory broker (mosquitto)");
    let local = LocalBroker::start(dir)?;

    note(
        out,
        "starting the bridge (3 instances, as bridgeInstances says)",
    );
    let raw = RawConfig::load(&report.bridge_config)?;
    let mut options = ConfigOptions::default();
    options.secrets_dir = report.secrets_dir.clone();
    options.remote_endpoint = Some(format!("localhost:{}", mqtt.port()));
    options.local_endpoint = Some(local.addr.to_string());
    options.remote_ca_file = Some(mqtt_ca.clone());
    let resolved = resolve(&raw, &options)
        .map_err(|report| anyhow::anyhow!("the bridge configuration is invalid:\n{report}"))?;
    let mut run_options = RunOptions::default();
    run_options.drain_timeout = Duration::from_secs(5);
    let bridge = Bridge::new(&resolved.bridges, run_options)?;
    let handle = bridge.handle();
    let stop = CancellationToken::new();
    let running = tokio::spawn(bridge.run(stop.clone()));
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !handle.readiness().ready {
        if Instant::now() > deadline {
            stop.cancel();
            bail!("the bridge did not become ready: {:?}", handle.readiness());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let cloud = Cloud {
        port: mqtt.port(),
        ca: mqtt_ca,
        cert: out_dir.join("certs/mosquitto.pem"),
        key: out_dir.join("certs/mosquitto.key"),
    };
    let sessions = tokio::task::spawn_blocking({
        let local = local.addr;
        move || transcripts(&cloud, local, repeat)
    })
    .await??;

    stop.cancel();
    running.await??;
    let local_broker = local.addr.to_string();
    drop(local);
    let arm_endpoint = emulator.base_url();
    emulator.shutdown().await?;
    let ok = sessions.iter().all(|s| s.ok);
    Ok(DemoOutput {
        dir: dir.to_owned(),
        arm_endpoint,
        mqtt_endpoint: format!("localhost:{}", mqtt.port()),
        local_broker,
        sessions,
        ok,
    })
}

/// How to reach the emulated Event Grid as the seed's `mosquitto` client (the commander).
struct Cloud {
    port: u16,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
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
fn transcripts(cloud: &Cloud, local: SocketAddr, repeat: u32) -> anyhow::Result<Vec<Session>> {
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
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
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
        .context("cannot run mosquitto_sub (install mosquitto-clients)")?;
    let stdout = child.stdout.take().context("no stdout")?;
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
                bail!("mosquitto_sub did not subscribe: {}", stderr.trim());
            }
        }
    }
    let mut published = Vec::new();
    for args in publishers {
        commands.push(format!("mosquitto_pub {}", shell_words(args)));
        let result = Command::new("mosquitto_pub")
            .args(args)
            .output()
            .context("cannot run mosquitto_pub")?;
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

/// The factory broker: a plain mosquitto on a free loopback port, stopped on drop.
struct LocalBroker {
    child: Child,
    addr: SocketAddr,
}

impl LocalBroker {
    fn start(dir: &Path) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let conf = dir.join("factory-mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n"
            ),
        )?;
        let binary = if Path::new("/usr/sbin/mosquitto").exists() {
            "/usr/sbin/mosquitto"
        } else {
            "mosquitto"
        };
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start mosquitto (install mosquitto)")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let broker = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                bail!("mosquitto did not listen on {addr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
