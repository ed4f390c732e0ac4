//! `e4k bridge run`: resolve the configuration, report its file problems, map the flags to
//! the engine's `RunOptions` (plus the Entra ID credential) and run the bridge until a signal.

use e4k_bridge::config::{self, Severity};
use e4k_bridge::engine::{BackoffPolicy, EntraCredential, RetainPolicy, RunOptions};
use e4k_bridge::spool::{SpoolOptions, WhenFull};
use e4k_bridge::{Bridge, BridgeError};
use e4k_provisioning::eventgrid::{credential, session};
use std::process::ExitCode;

use super::{RetainArg, RunArgs, WhenFullArg};
use crate::output::{Output, usage};

pub(super) fn run_bridge(args: RunArgs, out: &Output) -> anyhow::Result<ExitCode> {
    let worker_threads = args.worker_threads;
    let raw = args.config.load()?;
    // File problems (an expired certificate, a secret not mounted yet) are reported but do
    // not stop the bridge: it keeps retrying, and picks the files up once they are fixed.
    let resolved = config::resolve(&raw, &args.config.options(false)).map_err(|report| {
        usage(format!(
            "{}: invalid bridge configuration:\n{}",
            args.config.config.display(),
            report.to_string().trim_end()
        ))
    })?;
    let full = config::validate(&raw, &args.config.options(true));

    let level = e4k_bridge::run_options::log_filter(&resolved.bridges, !out.progress_allowed());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .finish();
    let dispatch = tracing::Dispatch::new(subscriber);

    let mut options = RunOptions::default();
    options.instance = args.instance_index;
    options.metrics_listen = Some(args.metrics_listen);
    options.retain = match args.retain {
        RetainArg::Keep => RetainPolicy::Keep,
        RetainArg::Drop => RetainPolicy::Drop,
    };
    options.hop_limit = args.hop_limit;
    options.receive_maximum = args.receive_maximum;
    options.drain_timeout = args.drain_timeout;
    options.backoff = BackoffPolicy::between(args.reconnect_initial, args.reconnect_max);
    options.spool = args.spool_dir.clone().map(|dir| {
        let mut spool = SpoolOptions::new(dir);
        spool.max_bytes = args.spool_max_bytes;
        spool.when_full = match args.spool_when_full {
            WhenFullArg::Block => WhenFull::Block,
            WhenFullArg::DropOldest => WhenFull::DropOldest,
        };
        spool.drain_rate = args.spool_drain_rate;
        spool
    });
    if e4k_bridge::run_options::needs_entra_credential(&resolved.bridges) {
        let choice = session::credential_choice(
            args.token_env.as_deref(),
            &args.credential,
            &credential::process_env,
        )?;
        // `E4K_ARM_TOKEN` is a token for ARM: `auto` must not send it to Event Grid's MQTT
        // broker (`--token-env` names a data-plane token explicitly).
        let env = |name: &str| {
            (name != credential::STATIC_TOKEN_VAR)
                .then(|| credential::process_env(name))
                .flatten()
        };
        options.entra_credential = Some(EntraCredential(credential::build(&choice, &env)?));
    }

    tracing::dispatcher::with_default(&dispatch, || {
        for problem in &full.problems {
            match problem.severity {
                Severity::Error => tracing::error!(
                    "{problem}; the bridge starts anyway and retries until it is fixed"
                ),
                Severity::Warning => tracing::warn!("{problem}"),
            }
        }
        let bridge = Bridge::new(&resolved.bridges, options).map_err(|e| match e {
            BridgeError::InstanceOutOfRange { .. } | BridgeError::SpoolLocked { .. } => {
                usage(e.to_string())
            }
            other => anyhow::Error::new(other),
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(worker_threads))
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let shutdown = crate::signals::shutdown_token();
            bridge.run(shutdown).await
        })?;
        Ok(ExitCode::SUCCESS)
    })
}
