//! Ctrl-C and SIGTERM → a cancellation token: the first signal asks the work to drain and stop,
//! the second ends the process at once (exit code 130).

use tokio_util::sync::CancellationToken;

/// Returns a token cancelled by the first Ctrl-C or SIGTERM. Must be called inside a Tokio
/// runtime.
pub(crate) fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::warn!("stopping: finishing the work in flight (press Ctrl-C again to exit now)");
        trigger.cancel();
        wait_for_signal().await;
        tracing::warn!("exiting now");
        std::process::exit(130);
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
