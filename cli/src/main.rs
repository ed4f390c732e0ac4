//! The `e4k` binary: glue only. It parses arguments, sets up logging, turns arguments into
//! validated library types, calls the libraries and prints their results.
//!
//! stdout carries data (text, or one JSON document with `--output json`); stderr carries logs,
//! progress and errors. Exit codes: 0 success, 1 failure, 2 usage or configuration error.

// The arguments' doc comments are `--help` text, where `<NAME>` is a placeholder, not HTML.
#![allow(rustdoc::invalid_html_tags)]

mod cmd;
mod output;
mod signals;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::{Format, Output};

/// Exit codes, shown in `--help` and documented in the README.
const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  failure: a check failed (verify, check), a file exists without --force, an operation failed
  2  usage or configuration error: bad flags, unreadable or invalid input files, wrong password

Logs and progress go to stderr (-v, -vv or RUST_LOG); results go to stdout.";

/// Connect an edge MQTT broker to Azure Event Grid's MQTT broker.
#[derive(Debug, Parser)]
#[command(name = "e4k", version, about, after_help = EXIT_CODES, propagate_version = true)]
struct Cli {
    /// Output format of results on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text, env = "E4K_OUTPUT")]
    output: Format,

    /// More logging on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Only errors on stderr; no progress bars.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Certificates: a root and intermediate CA, client and server certificates, checks.
    #[command(subcommand)]
    Certs(cmd::certs::CertsCommand),
    /// Event Grid MQTT provisioning as code: validate, plan, setup, destroy, show; a local emulator.
    #[command(subcommand)]
    Eventgrid(cmd::eventgrid::EventgridCommand),
    /// Kubernetes: the bridge's Secret and manifests.
    #[command(subcommand)]
    K8s(cmd::k8s::K8sCommand),
    /// The MQTT bridge: run it (local broker <-> Event Grid) or validate its configuration.
    #[command(subcommand)]
    Bridge(cmd::bridge::BridgeCommand),
    /// The seed flow end to end: certificates, Event Grid, bridge config, Secret and manifests,
    /// skipping what is already done.
    Up(cmd::up::UpArgs),
    /// Run the seed walkthrough on this machine with no Azure account: the Event Grid emulator,
    /// `e4k up`, a local broker, the bridge, and the seed's mosquitto sessions.
    Demo(cmd::demo::DemoArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; real usage errors exit 2.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(cli.verbose, cli.quiet);
    let out = Output::new(cli.output, cli.quiet);
    match run(cli.command, &out) {
        Ok(code) => code,
        Err(err) => out.error(&err),
    }
}

fn run(command: Command, out: &Output) -> anyhow::Result<ExitCode> {
    match command {
        Command::Certs(command) => cmd::certs::run(command, out),
        Command::Eventgrid(command) => cmd::eventgrid::run(command, out),
        Command::K8s(command) => cmd::k8s::run(command, out),
        Command::Up(args) => cmd::up::run(args, out),
        Command::Demo(args) => cmd::demo::run(args, out),
        Command::Bridge(command) => cmd::bridge::run(command, out),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "e4k", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The log target of the MQTT 5 client's protocol state (see [`init_logging`]).
const NO_TOKEN_LOGS: &str = "rumqttc_v5_next::state=info";

/// Logs go to stderr: `RUST_LOG` when set, else a level from `-v`/`-q`.
fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // The MQTT 5 client logs each AUTH packet it sends, token included, at debug level:
    // never let that line through, whatever RUST_LOG or -v asks for.
    if let Ok(directive) = NO_TOKEN_LOGS.parse() {
        filter = filter.add_directive(directive);
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(verbose >= 2)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_logging_directive_parses() {
        assert!(
            NO_TOKEN_LOGS
                .parse::<tracing_subscriber::filter::Directive>()
                .is_ok()
        );
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
