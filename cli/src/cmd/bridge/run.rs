//! `e4k bridge run`: resolve the configuration, report its file problems, build the run
//! options (spool, Entra ID credential, backoff) and run the bridge until a signal.

use e4k_bridge::config::{self, LogLevel, Severity};
use e4k_bridge::engine::{BackoffPolicy, RetainPolicy};
use e4k_bridge::spool::{SpoolOptions, WhenFull};
use e4k_bridge::{Bridge, BridgeError, RunOptions};
use e4k_provisioning::eventgrid::credential;
use std::process::ExitCode;

use super::{RetainArg, RunArgs, WhenFullArg};
use crate::output::{Output, usage};

pub(super) fn run_bridge(args: RunArgs, out: &Output) -> anyhow::Result<ExitCode> {
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

    let level = if !out.progress_allowed() {
        "error"
    } else if resolved
        .bridges
        .iter()
        .any(|b| b.log_level == LogLevel::Debug)
    {
        "debug"
    } else {
        "info"
    };
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
    let entra = resolved.bridges.iter().any(|b| {
        matches!(
            b.remote.authentication,
            config::Authentication::EntraToken { .. }
        )
    });
    if entra {
        let choice =
            crate::cmd::eventgrid::credential_choice(args.token_env.as_deref(), &args.credential)?;
        // `E4K_ARM_TOKEN` is a token for ARM: `auto` must not send it to Event Grid's MQTT
        // broker (`--token-env` names a data-plane token explicitly).
        let env = |name: &str| {
            (name != credential::STATIC_TOKEN_VAR)
                .then(|| credential::process_env(name))
                .flatten()
        };
        let credential = credential::build(&choice, &env)?;
        options.entra_credential = Some(e4k_bridge::engine::EntraCredential(credential));
    }
    options.backoff = BackoffPolicy {
        initial: args.reconnect_initial,
        max: args.reconnect_max.max(args.reconnect_initial),
        ..BackoffPolicy::default()
    };

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
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let shutdown = crate::signals::shutdown_token();
            bridge.run(shutdown).await
        })?;
        Ok(ExitCode::SUCCESS)
    })
}
