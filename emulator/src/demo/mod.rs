//! `e4k demo`: the seed walkthrough on this machine, with no Azure account.
//!
//! [`run`] starts the Event Grid emulator (ARM and MQTT), runs `e4k up` against it
//! ([`e4k_provisioning::up`]), starts a local mosquitto as the factory broker
//! ([`crate::mosquitto`]), runs the bridge ([`e4k_bridge::engine`]) in this process, and then
//! replays the seed's terminal sessions with the real `mosquitto_pub` / `mosquitto_sub`
//! (`transcripts`): a command published in the cloud arrives at the factory, telemetry
//! published at the factory arrives in the cloud, and anomalies arrive as alerts through the
//! shared subscription. Each session's output is kept as the seed shows it; a check after each
//! says whether it worked. The `e4k` CLI prints the [`DemoReport`].

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use e4k_bridge::{
    config::{BridgeConfig, ConfigOptions, RawConfig, load_shape, resolve},
    engine::{Bridge, RunOptions},
};
use e4k_provisioning::{
    certs::{KeyProtection, NotAfter},
    eventgrid::{
        arm::{ArmClient, ArmConfig},
        credential::StaticToken,
    },
    k8s::manifests::{DEFAULT_SAT_AUDIENCE, ManifestInput, ProjectedToken, SpoolVolume},
    up::{self, UpOptions},
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::mosquitto::{self, Mosquitto};
use crate::{Emulator, EmulatorConfig, EmulatorError, MqttConfig};

mod transcripts;

/// How long one transcript step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// One replayed terminal session.
#[derive(Debug, Serialize)]
pub struct Session {
    /// The session's title, as the seed names it.
    pub title: String,
    /// The command lines run.
    pub commands: Vec<String>,
    /// Their combined output, subscriber first.
    pub output: Vec<String>,
    /// What was checked.
    pub check: String,
    /// Whether the check held.
    pub ok: bool,
}

/// What `e4k demo` did (its `--output json` shape).
#[derive(Debug, Serialize)]
pub struct DemoReport {
    /// The demo's directory.
    pub dir: PathBuf,
    /// The emulator's ARM endpoint.
    pub arm_endpoint: String,
    /// The emulator's MQTT endpoint.
    pub mqtt_endpoint: String,
    /// The factory broker's address.
    pub local_broker: String,
    /// The replayed sessions.
    pub sessions: Vec<Session>,
    /// Whether every session's check held.
    pub ok: bool,
}

/// Runs the whole walkthrough in `dir` (which must exist); each publisher sends `repeat`
/// messages. `progress` is told each stage as it starts.
///
/// # Errors
/// [`EmulatorError::Demo`] naming the step that could not run (a failed check is not an
/// error: it is a session with `ok: false`), or the emulator's or mosquitto's own error.
pub async fn run(
    dir: &Path,
    repeat: u32,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<DemoReport, EmulatorError> {
    progress("starting the Event Grid emulator (ARM + MQTT)");
    let emulator = Emulator::start(EmulatorConfig {
        lro_delay: Duration::from_millis(20),
        lro_retry_after_secs: 0,
        mqtt_hostname: "localhost".into(),
        mqtt: Some(MqttConfig::default()),
        ..EmulatorConfig::default()
    })
    .await
    .map_err(step("cannot start the emulator (is mosquitto installed?)"))?;
    let mqtt = emulator
        .mqtt_addr()
        .ok_or_else(|| failed("the emulator serves no MQTT"))?;
    let mqtt_ca = emulator
        .mqtt_ca_pem_path()
        .ok_or_else(|| failed("the emulator has no MQTT CA"))?
        .to_owned();

    progress("e4k up: certificates, Event Grid namespace, bridge configuration");
    let spec = dir.join("eventgrid.yaml");
    let bridge_yaml = dir.join("bridge.yaml");
    std::fs::write(
        &spec,
        e4k_templates::eventgrid_yaml(e4k_templates::EMULATOR_SUBSCRIPTION_ID),
    )
    .map_err(step(format!("cannot write {}", spec.display())))?;
    std::fs::write(&bridge_yaml, e4k_templates::BRIDGE_YAML)
        .map_err(step(format!("cannot write {}", bridge_yaml.display())))?;
    let arm = std::sync::Arc::new(
        ArmClient::new(
            ArmConfig {
                endpoint: emulator
                    .base_url()
                    .parse()
                    .map_err(step("the emulator's address is not a URL"))?,
                min_poll_interval: Duration::from_millis(10),
                ..ArmConfig::default()
            },
            std::sync::Arc::new(StaticToken::new("demo")),
            CancellationToken::new(),
        )
        .map_err(step("cannot make the ARM client"))?,
    );
    // What the pods mount, as `e4k up` renders it from the configuration.
    let mounts = load_shape(&bridge_yaml)
        .map_err(step("cannot read the seed's bridge configuration"))?
        .bridges
        .first()
        .map(BridgeConfig::mounts)
        .unwrap_or_default();
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
            client_validity: NotAfter::parse("2400h").map_err(step("bad client validity"))?,
            manifests: ManifestInput {
                name: "e4k-my-mqtt-bridge".into(),
                namespace: None,
                image: "e4k:demo".into(),
                replicas: 3,
                bridge_yaml: String::new(),
                secrets: mounts.secrets,
                config_maps: mounts.config_maps,
                service_account_token: mounts.service_account_token.map(|path| ProjectedToken {
                    path,
                    audience: DEFAULT_SAT_AUDIENCE.into(),
                }),
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
    .await
    .map_err(step("e4k up failed"))?;
    if !emulator.mqtt_synced(Duration::from_secs(10)).await {
        return Err(failed(
            "the emulator's broker did not pick up the namespace in time",
        ));
    }

    progress("starting the factory broker (mosquitto)");
    let local = factory_broker(dir).await?;

    progress("starting the bridge (3 instances, as bridgeInstances says)");
    let raw = RawConfig::load(&report.bridge_config)
        .map_err(step("cannot read the bridge configuration"))?;
    let mut options = ConfigOptions::default();
    options.secrets_dir = report.secrets_dir.clone();
    options.remote_endpoint = Some(format!("localhost:{}", mqtt.port()));
    options.local_endpoint = Some(local.addr().to_string());
    options.remote_ca_file = Some(mqtt_ca.clone());
    let resolved = resolve(&raw, &options)
        .map_err(|report| failed(format!("the bridge configuration is invalid:\n{report}")))?;
    let mut run_options = RunOptions::default();
    run_options.drain_timeout = Duration::from_secs(5);
    let bridge =
        Bridge::new(&resolved.bridges, run_options).map_err(step("cannot start the bridge"))?;
    let handle = bridge.handle();
    let stop = CancellationToken::new();
    let running = tokio::spawn(bridge.run(stop.clone()));
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !handle.readiness().ready {
        if Instant::now() > deadline {
            stop.cancel();
            return Err(failed(format!(
                "the bridge did not become ready: {:?}",
                handle.readiness()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let cloud = transcripts::Cloud {
        port: mqtt.port(),
        ca: mqtt_ca,
        cert: out_dir.join("certs/mosquitto.pem"),
        key: out_dir.join("certs/mosquitto.key"),
    };
    let sessions = tokio::task::spawn_blocking({
        let local = local.addr();
        move || transcripts::transcripts(&cloud, local, repeat)
    })
    .await
    .map_err(step("the transcripts failed"))??;

    stop.cancel();
    running
        .await
        .map_err(step("the bridge task failed"))?
        .map_err(step("the bridge failed"))?;
    let local_broker = local.addr().to_string();
    local.stop()?;
    let arm_endpoint = emulator.base_url();
    emulator.shutdown().await?;
    let ok = sessions.iter().all(|s| s.ok);
    Ok(DemoReport {
        dir: dir.to_owned(),
        arm_endpoint,
        mqtt_endpoint: format!("localhost:{}", mqtt.port()),
        local_broker,
        sessions,
        ok,
    })
}

/// The factory broker: a plain mosquitto on a free loopback port.
async fn factory_broker(dir: &Path) -> Result<Mosquitto, EmulatorError> {
    let port = mosquitto::free_loopback_port().map_err(step("no free loopback port"))?;
    let conf = dir.join("factory-mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n"),
    )
    .map_err(step(format!("cannot write {}", conf.display())))?;
    Mosquitto::start(&mosquitto::default_binary(), &conf, port, None).await
}

/// An error of the demo's `what` step, caused by the error it is applied to.
fn step<E>(what: impl Into<String>) -> impl FnOnce(E) -> EmulatorError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let step = what.into();
    move |source| EmulatorError::Demo {
        step,
        source: Some(Box::new(source)),
    }
}

/// An error of the demo with no underlying error.
fn failed(what: impl Into<String>) -> EmulatorError {
    EmulatorError::Demo {
        step: what.into(),
        source: None,
    }
}
