//! `e4k eventgrid emulator`: a local Event Grid namespace (ARM, and MQTT with
//! `--mqtt-listen`) from the command line, until Ctrl-C.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::Args;
use e4k_emulator::PublishLimit;
use e4k_provisioning::eventgrid::credential;

use crate::{output::Output, signals};

#[derive(Debug, Args)]
pub(crate) struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8890")]
    listen: SocketAddr,
    /// Keep the state in this JSON file across restarts.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Added latency per call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// How long long-running operations take, in milliseconds.
    #[arg(long, default_value_t = 200)]
    lro_delay_ms: u64,
    /// Fraction of calls answered 429 (0..1).
    #[arg(long, default_value_t = 0.0)]
    fault_429: f64,
    /// Fraction of calls answered 5xx (0..1).
    #[arg(long, default_value_t = 0.0)]
    fault_5xx: f64,
    /// Seed for the fault injection.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Accept only this bearer token, read from the named environment variable.
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
    /// The MQTT hostname reported for namespaces ({namespace} and {region} are filled in);
    /// with --mqtt-listen it defaults to `localhost`.
    #[arg(long)]
    mqtt_hostname: Option<String>,
    /// Also serve the MQTT data plane (TLS, client certificates, topic authorization from the
    /// control-plane state) on this address, e.g. 127.0.0.1:8883. Needs mosquitto.
    #[arg(long, value_name = "ADDR")]
    mqtt_listen: Option<SocketAddr>,
    /// Write the data plane's CA certificate (PEM) here, for clients to trust (--cafile);
    /// default a temporary file, printed at start.
    #[arg(long, value_name = "FILE", requires = "mqtt_listen")]
    mqtt_ca_out: Option<PathBuf>,
    /// The mosquitto binary behind the data plane (default /usr/sbin/mosquitto or `mosquitto`
    /// on PATH).
    #[arg(long, value_name = "PATH", requires = "mqtt_listen")]
    mosquitto: Option<PathBuf>,
    /// Also serve MQTT over secure WebSockets (path /mqtt, subprotocol mqtt) on this address,
    /// as Event Grid does on port 443.
    #[arg(long, value_name = "ADDR", requires = "mqtt_listen")]
    mqtt_websocket_listen: Option<SocketAddr>,
    /// PUBLISH packets per second each MQTT session may send, as Event Grid's quota (faster
    /// sessions are slowed down); 0 lifts the limit.
    #[arg(long, value_name = "N", default_value_t = PublishLimit::EVENT_GRID.messages_per_second)]
    session_publish_rate: u32,
    /// Bytes of PUBLISH packets per second each MQTT session may send; 0 lifts the limit.
    #[arg(long, value_name = "BYTES", default_value_t = PublishLimit::EVENT_GRID.bytes_per_second)]
    session_publish_bytes: u32,
    /// The principal (object) id of the managed identity whose tokens the emulator's
    /// identity endpoint (`{endpoint}/msi/token`) issues: the `principalId` of the role
    /// assignments that authorize them.
    #[arg(long, value_name = "GUID")]
    identity_principal_id: Option<String>,
    /// How long the identity endpoint's tokens live, in seconds (default 3600, as Entra ID's;
    /// a few seconds show token refresh).
    #[arg(long, value_name = "SECS")]
    identity_token_lifetime_secs: Option<u64>,
    /// The secret clients must send in X-IDENTITY-HEADER (App Service's IDENTITY_HEADER), read
    /// from the named environment variable (default `e4k-emulator-identity`).
    #[arg(long, value_name = "VAR")]
    identity_header_env: Option<String>,
}

pub(super) async fn emulator_cmd(args: EmulatorArgs, out: &Output) -> anyhow::Result<ExitCode> {
    use e4k_emulator::{Emulator, EmulatorConfig, EmulatorOptions};
    let options = EmulatorOptions {
        listen: args.listen,
        state: args.state,
        latency_ms: args.latency_ms,
        lro_delay_ms: args.lro_delay_ms,
        fault_429: args.fault_429,
        fault_5xx: args.fault_5xx,
        seed: args.seed,
        token_env: args.token_env,
        mqtt_hostname: args.mqtt_hostname,
        mqtt_listen: args.mqtt_listen,
        mqtt_ca_out: args.mqtt_ca_out,
        mosquitto: args.mosquitto,
        mqtt_websocket_listen: args.mqtt_websocket_listen,
        session_publish_rate: args.session_publish_rate,
        session_publish_bytes: args.session_publish_bytes,
        identity_principal_id: args.identity_principal_id,
        identity_token_lifetime_secs: args.identity_token_lifetime_secs,
        identity_header_env: args.identity_header_env,
    };
    let config = EmulatorConfig::from_options(&options, &credential::process_env)?;
    let emulator = Emulator::bind(config).await?;
    let url = format!("http://{}", emulator.local_addr());
    let identity_endpoint = emulator.identity_endpoint();
    let mqtt_endpoint = emulator.mqtt_addr().map(|addr| addr.to_string());
    let mqtt_websocket = emulator
        .mqtt_websocket_addr()
        .map(|addr| format!("wss://{addr}/mqtt"));
    let mqtt_ca = emulator
        .mqtt_ca_pem_path()
        .map(|path| path.display().to_string());
    out.emit(
        &serde_json::json!({
            "endpoint": url,
            "mqtt_endpoint": mqtt_endpoint,
            "mqtt_websocket_url": mqtt_websocket,
            "mqtt_ca": mqtt_ca,
            "identity_endpoint": identity_endpoint,
        }),
        |w| {
            writeln!(w, "{url}")?;
            writeln!(w, "IDENTITY_ENDPOINT={identity_endpoint}")?;
            if let (Some(endpoint), Some(ca)) = (&mqtt_endpoint, &mqtt_ca) {
                writeln!(w, "mqtts://{endpoint} (CA: {ca})")?;
            }
            if let Some(websocket) = &mqtt_websocket {
                writeln!(w, "{websocket}")?;
            }
            Ok(())
        },
    )?;
    tracing::info!(%url, ?mqtt_endpoint, "Event Grid emulator listening; Ctrl-C stops it");
    emulator.run(signals::shutdown_token()).await?;
    Ok(ExitCode::SUCCESS)
}
