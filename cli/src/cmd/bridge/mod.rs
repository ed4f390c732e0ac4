//! `e4k bridge …`: arguments and printing around `e4k_bridge`.
//!
//! This module holds the arguments and `validate`; [`mod@run`] runs the bridge,
//! [`spool_inspect`] inspects a spool directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use e4k_bridge::config::resolve::{DEFAULT_CONFIGMAPS_DIR, DEFAULT_SECRETS_DIR};
use e4k_bridge::config::{self, ConfigOptions, RawConfig, Report};
use e4k_bridge::engine::{DEFAULT_HOP_LIMIT, DEFAULT_METRICS_LISTEN};
use e4k_bridge::spool::{self, DrainRate};
use e4k_bridge::units::parse_duration;
use serde::Serialize;

use crate::output::{Output, usage};

mod run;
mod spool_inspect;

#[derive(Debug, Subcommand)]
pub(crate) enum BridgeCommand {
    /// Run the bridge: connect the local broker and the remote (Event Grid) broker and forward
    /// messages along the routes until SIGTERM or Ctrl-C.
    ///
    /// Logs go to stderr at the configuration's logLevel (RUST_LOG overrides it). Metrics,
    /// /healthz and /readyz are served on --metrics-listen. The first SIGTERM/Ctrl-C stops
    /// taking messages, finishes those in flight and disconnects (exit 0); a second one exits
    /// at once. Broker problems are retried with backoff and never end the process.
    #[command(after_help = "\
Examples:
  e4k bridge run --config bridge.yaml
  e4k bridge run --config bridge.yaml --remote-endpoint localhost:8883 \\
      --secrets-dir ./secrets --remote-ca-file pki/certs/root_ca.crt --metrics-listen 127.0.0.1:9102

Exit status: 0 after a clean shutdown, 1 when the bridge cannot start (metrics address in use),
2 for an invalid configuration or bad flags.")]
    Run(RunArgs),
    /// Check a bridge configuration and its secret and config map files: print every problem
    /// (`--output json` prints the report); exit 1 when there is an error.
    #[command(
        after_help = "Example:\n  e4k bridge validate --config bridge.yaml --secrets-dir ./secrets"
    )]
    Validate(ConfigArgs),
    /// The durable spool of `e4k bridge run --spool-dir`.
    #[command(subcommand)]
    Spool(SpoolCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum SpoolCommand {
    /// Print what a spool holds, per queue (destination session) and route: messages, bytes,
    /// age of the oldest. Reads without starting the bridge and without taking its lock, so
    /// it works beside a running bridge.
    #[command(after_help = "\
Example:
  e4k bridge spool inspect --spool-dir /var/lib/e4k/spool --output json

Exit status: 0, 1 when the spool cannot be read or a segment is corrupt (the error names the
file and offset).")]
    Inspect {
        /// The spool directory.
        #[arg(long, value_name = "DIR", env = "E4K_SPOOL_DIR")]
        spool_dir: PathBuf,
    },
}

/// Where the configuration and its files are, and what overrides it.
#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// The bridge configuration: MqttBridgeConnector and MqttBridgeTopicMap YAML documents.
    #[arg(long, short = 'c', value_name = "FILE", env = "E4K_BRIDGE_CONFIG")]
    config: PathBuf,
    /// Connect to this remote broker instead of the configured endpoint.
    #[arg(long, value_name = "HOST:PORT")]
    remote_endpoint: Option<String>,
    /// Connect to this local broker instead of the configured endpoint.
    #[arg(long, value_name = "HOST:PORT")]
    local_endpoint: Option<String>,
    /// Directory with one sub-directory per Kubernetes secret (client_cert.pem, ...).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_SECRETS_DIR, env = "E4K_SECRETS_DIR")]
    secrets_dir: PathBuf,
    /// Directory with one sub-directory per Kubernetes config map (trusted CA certificates).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_CONFIGMAPS_DIR, env = "E4K_CONFIGMAPS_DIR")]
    configmaps_dir: PathBuf,
    /// Trust these PEM CA certificates for the remote broker instead of the configured ones
    /// (public roots or trustedCaCertificateConfigMap), e.g. for a test broker.
    #[arg(long, value_name = "FILE", env = "E4K_REMOTE_CA_FILE")]
    remote_ca_file: Option<PathBuf>,
}

impl ConfigArgs {
    fn options(&self, check_files: bool) -> ConfigOptions {
        let mut options = ConfigOptions::default();
        options.secrets_dir = self.secrets_dir.clone();
        options.configmaps_dir = self.configmaps_dir.clone();
        options.remote_endpoint = self.remote_endpoint.clone();
        options.local_endpoint = self.local_endpoint.clone();
        options.remote_ca_file = self.remote_ca_file.clone();
        options.check_files = check_files;
        options
    }

    fn load(&self) -> anyhow::Result<RawConfig> {
        RawConfig::load(&self.config).map_err(|e| usage(format!("{:#}", anyhow::Error::new(e))))
    }
}

/// `--spool-when-full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum WhenFullArg {
    /// Stop acknowledging the sources until the destination takes messages.
    Block,
    /// Drop the oldest spooled messages (counted per route, reason="spool_full").
    DropOldest,
}

/// `--retain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RetainArg {
    /// Forward the retain flag as received.
    Keep,
    /// Forward every message without the retain flag.
    #[value(alias = "never")]
    Drop,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Run only this bridge instance (0-based; a StatefulSet pod's ordinal). Default: every
    /// instance in this process.
    #[arg(long, value_name = "K", env = "E4K_INSTANCE_INDEX")]
    instance_index: Option<u32>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_METRICS_LISTEN, env = "E4K_METRICS_LISTEN")]
    metrics_listen: SocketAddr,
    /// The retain flag of forwarded messages.
    #[arg(long, value_enum, default_value_t = RetainArg::Keep)]
    retain: RetainArg,
    /// Drop messages that already crossed this many bridges (the e4k-hops user property).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_HOP_LIMIT)]
    hop_limit: u32,
    /// Receive Maximum announced to both brokers: unacknowledged messages per session
    /// (default: 100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    receive_maximum: Option<u16>,
    /// How long shutdown waits for messages in flight, e.g. 10s.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// First reconnect delay; it doubles after each failure up to --reconnect-max (±25 %).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    reconnect_initial: Duration,
    /// Longest reconnect delay.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    reconnect_max: Duration,
    /// Store-and-forward on disk: acknowledge each QoS 1 message to its source once it is
    /// durable (fsync) here, and remove it after the destination acknowledged it, so that an
    /// outage of either broker fills this directory, not the other broker's queue. One
    /// directory per bridge process (a lock file refuses a second one).
    #[arg(long, value_name = "DIR", env = "E4K_SPOOL_DIR")]
    spool_dir: Option<PathBuf>,
    /// The most disk the spool uses (plus one segment, a sixteenth of it), e.g. 1GiB, 500MB.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = spool::parse_size, requires = "spool_dir")]
    spool_max_bytes: u64,
    /// What a full spool does.
    #[arg(long, value_enum, default_value_t = WhenFullArg::Block, requires = "spool_dir")]
    spool_when_full: WhenFullArg,
    /// The most messages per second sent from the spool to one destination, so that a
    /// backlog does not overflow the queues of the consumers behind it: `auto` (4x the rate
    /// messages arrive, at least 1000/s), a number, or `unlimited`.
    #[arg(long, value_name = "RATE", default_value = "auto", value_parser = DrainRate::parse, requires = "spool_dir")]
    spool_drain_rate: DrainRate,
    /// Where Microsoft Entra ID tokens come from for `systemAssignedManagedIdentity`: auto
    /// (workload identity on AKS from AZURE_FEDERATED_TOKEN_FILE, a service principal, then
    /// developer tools), azure-cli, developer-tools, service-principal, workload-identity,
    /// managed-identity (IMDS, or IDENTITY_ENDPOINT/IDENTITY_HEADER).
    #[arg(long, default_value = "auto", env = "E4K_CREDENTIAL")]
    credential: String,
    /// Use the token in this environment variable as the Microsoft Entra token (tests).
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
    /// Threads that run the bridge's sessions. One keeps a forward's work on one core, with
    /// the fewest wake-ups and syscalls per message, and forwards tens of thousands of
    /// messages per second (docs/BENCHMARKS.md); fsync runs on threads of its own either way.
    #[arg(long, value_name = "N", default_value_t = 1, env = "E4K_WORKER_THREADS",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) worker_threads: u16,
}

pub(crate) fn run(command: BridgeCommand, out: &Output) -> anyhow::Result<ExitCode> {
    match command {
        BridgeCommand::Run(args) => run::run_bridge(args, out),
        BridgeCommand::Validate(args) => validate(&args, out),
        BridgeCommand::Spool(SpoolCommand::Inspect { spool_dir }) => {
            spool_inspect::inspect(&spool_dir, out)
        }
    }
}

/// The JSON shape of `e4k bridge validate`.
#[derive(Debug, Serialize)]
struct ValidateOutput<'a> {
    config: &'a Path,
    valid: bool,
    errors: usize,
    warnings: usize,
    problems: &'a Report,
}

fn validate(args: &ConfigArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let raw = args.load()?;
    let report = config::validate(&raw, &args.options(true));
    let errors = report.errors().count();
    let warnings = report.warnings().count();
    let output = ValidateOutput {
        config: &args.config,
        valid: errors == 0,
        errors,
        warnings,
        problems: &report,
    };
    out.emit(&output, |w| {
        write!(w, "{report}")?;
        if errors == 0 {
            writeln!(
                w,
                "{}: valid ({warnings} warning(s))",
                args.config.display()
            )
        } else {
            writeln!(
                w,
                "{}: {errors} error(s), {warnings} warning(s)",
                args.config.display()
            )
        }
    })?;
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
