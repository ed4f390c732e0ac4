//! Printing results (stdout) and errors (stderr), as text or JSON.
//!
//! With `--output json` every command prints exactly one JSON document on stdout; its shape is
//! documented in `docs/cli.md` and pinned by `cli/tests/json.rs`. Errors always go to stderr:
//! `e4k: error: <chain>` as text, or `{"error": "<chain>", "exit_code": N}` as JSON.

use std::{
    io::{self, Write},
    process::ExitCode,
};

use serde::Serialize;

/// The `--output` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Human-readable text.
    Text,
    /// One JSON document.
    Json,
}

/// Where results go, and how.
#[derive(Debug)]
pub(crate) struct Output {
    format: Format,
    quiet: bool,
}

/// An error in what the user asked for (exit code 2), raised by the CLI itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

impl Output {
    pub(crate) fn new(format: Format, quiet: bool) -> Self {
        Self { format, quiet }
    }

    /// Whether progress may be shown on stderr.
    pub(crate) fn progress_allowed(&self) -> bool {
        !self.quiet
    }

    /// Prints a result: `value` as JSON, or the text that `text` writes.
    pub(crate) fn emit<T: Serialize>(
        &self,
        value: &T,
        text: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> anyhow::Result<()> {
        let stdout = io::stdout();
        let mut lock = stdout.lock();
        let result = match self.format {
            Format::Json => serde_json::to_writer_pretty(&mut lock, value)
                .map_err(io::Error::from)
                .and_then(|()| writeln!(lock)),
            Format::Text => text(&mut lock),
        };
        result.and_then(|()| lock.flush()).map_err(Into::into)
    }

    /// Reports a failed command on stderr and returns its exit code.
    pub(crate) fn error(&self, err: &anyhow::Error) -> ExitCode {
        // A closed stdout (e4k ... | head) is not an error.
        if err
            .chain()
            .filter_map(|e| e.downcast_ref::<io::Error>())
            .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
        {
            return ExitCode::SUCCESS;
        }
        let code = exit_code(err);
        let message = format!("{err:#}");
        let mut stderr = io::stderr().lock();
        let _ = match self.format {
            Format::Json => writeln!(
                stderr,
                "{}",
                serde_json::json!({ "error": message, "exit_code": code })
            ),
            Format::Text => writeln!(stderr, "e4k: error: {message}"),
        };
        ExitCode::from(code)
    }
}

/// 2 for input and configuration errors, 1 for everything else.
fn exit_code(err: &anyhow::Error) -> u8 {
    let usage = err.chain().any(|e| {
        e.downcast_ref::<UsageError>().is_some()
            || e.downcast_ref::<e4k_provisioning::Error>()
                .is_some_and(e4k_provisioning::Error::is_usage)
            || e.downcast_ref::<e4k_bridge::BridgeError>()
                .is_some_and(e4k_bridge::BridgeError::is_usage)
            || e.downcast_ref::<e4k_emulator::EmulatorError>()
                .is_some_and(e4k_emulator::EmulatorError::is_usage)
    });
    if usage { 2 } else { 1 }
}

/// Shorthand for a usage error.
pub(crate) fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}
