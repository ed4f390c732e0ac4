//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong in e4k provisioning.
///
/// Every variant names the place (a file, a flag, a resource) and what to do about it. Messages
/// are lowercase and do not repeat their `source`: print the chain (`{:#}` with anyhow) to see it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value given on the command line or in a spec is not valid.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput {
        /// What was being parsed, e.g. `duration` or `--kty`.
        what: String,
        /// The offending value as given.
        value: String,
        /// Why it is refused and what is expected.
        reason: String,
    },

    /// A command-line option is not valid (an unknown name, a malformed URL).
    #[error("{option}: {reason}")]
    InvalidOption {
        /// The flag and its value as given, e.g. `--credential "x"`.
        option: String,
        /// Why it is refused and what is expected.
        reason: String,
    },

    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A file could not be written (or its directory created).
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A file exists and `--force` was not given; nothing was written.
    #[error("{} already exists (use --force to overwrite it)", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },

    /// A file does not hold what it should (PEM, a certificate, a key).
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A private key could not be decrypted with the password given.
    #[error("{}: wrong password, or the key is damaged", path.display())]
    WrongPassword {
        /// The encrypted key file.
        path: PathBuf,
    },

    /// An encrypted key was found, but no password was given.
    #[error("{} is encrypted: give its password with {hint}", path.display())]
    PasswordNeeded {
        /// The encrypted key file.
        path: PathBuf,
        /// Where the password can come from.
        hint: String,
    },

    /// A certificate given as a CA cannot sign (not a CA, key mismatch, expired).
    #[error("{}: {reason}", path.display())]
    NotUsableCa {
        /// The CA certificate file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },

    /// A spec file cannot be used: a variable is missing, the YAML is malformed, a field is
    /// unknown or has the wrong type, or the spec breaks an Event Grid rule.
    #[error("{}: {message}", path.display())]
    Spec {
        /// The spec file.
        path: PathBuf,
        /// What is wrong, with the path inside the spec (and its line when known); several
        /// problems are listed one per line.
        message: String,
    },

    /// A spec breaks Event Grid rules: every error static validation found, one per line.
    #[error("{} has {} error(s):\n{}", path.display(), errors.len(), problem_lines(errors))]
    SpecErrors {
        /// The spec file.
        path: PathBuf,
        /// The errors, in the order the validator found them.
        errors: Vec<crate::eventgrid::validate::Problem>,
    },

    /// An ARM request was answered with an error (after retries, for retryable statuses).
    #[error("{method} {resource}: HTTP {status}{}: {message}", code_suffix(code))]
    Arm {
        /// HTTP method.
        method: String,
        /// The ARM resource id (path) the request was for.
        resource: String,
        /// HTTP status.
        status: u16,
        /// ARM `error.code`, when the body had one.
        code: Option<String>,
        /// ARM `error.message`, or a summary of the body.
        message: String,
    },

    /// An ARM request could not be sent, or its answer could not be read.
    #[error("{method} {resource}: {reason}")]
    Transport {
        /// HTTP method.
        method: String,
        /// The ARM resource id (path) the request was for.
        resource: String,
        /// What went wrong (connection refused, timeout, malformed JSON...).
        reason: String,
    },

    /// A long-running ARM operation finished without success.
    #[error(
        "{resource}: the operation ended {status}{}: {message}",
        code_suffix(code)
    )]
    Operation {
        /// The ARM resource id.
        resource: String,
        /// The final status (`Failed`, `Canceled`).
        status: String,
        /// ARM `error.code` of the operation, when given.
        code: Option<String>,
        /// ARM `error.message` of the operation, when given.
        message: String,
    },

    /// A Kubernetes API call failed (connection, authorization, or the object was refused).
    #[error("{object}: {message}")]
    Kubernetes {
        /// The object, e.g. `Secret factory/bridge-client-cert`, or the cluster.
        object: String,
        /// The HTTP status, when the API server answered.
        status: Option<u16>,
        /// The API server's message, or the connection problem.
        message: String,
    },

    /// No Azure access token could be obtained.
    #[error("cannot get an Azure access token: {reason}")]
    Credential {
        /// Why, with what to do (e.g. run `az login`).
        reason: String,
    },

    /// A long-running ARM operation did not finish within the configured time; it may still be
    /// running in Azure.
    #[error(
        "{resource}: the operation did not finish within {}s (it may still be running: check the resource, then rerun)",
        timeout.as_secs()
    )]
    OperationTimeout {
        /// The ARM resource id.
        resource: String,
        /// How long e4k waited.
        timeout: std::time::Duration,
    },

    /// The work was cancelled (Ctrl-C, SIGTERM) before it finished.
    #[error("cancelled")]
    Cancelled,

    /// The cryptographic library refused an operation (key generation, signing, encryption).
    #[error("{context}: {reason}")]
    Crypto {
        /// What e4k was doing.
        context: String,
        /// The library's description.
        reason: String,
    },
}

impl Error {
    /// Whether the error is the caller's input or configuration (exit code 2): a bad value, an
    /// input file that cannot be read or does not hold what it should, a wrong password. Other
    /// errors (a file in the way, a failed write, a crypto failure) are failures (exit code 1).
    #[must_use]
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::InvalidInput { .. }
                | Self::InvalidOption { .. }
                | Self::Read { .. }
                | Self::BadFile { .. }
                | Self::Spec { .. }
                | Self::SpecErrors { .. }
                | Self::WrongPassword { .. }
                | Self::PasswordNeeded { .. }
                | Self::NotUsableCa { .. }
        )
    }

    pub(crate) fn invalid(what: &str, value: &str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            what: what.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn bad_file(path: &std::path::Path, reason: impl Into<String>) -> Self {
        Self::BadFile {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn spec(path: &std::path::Path, message: impl Into<String>) -> Self {
        Self::Spec {
            path: path.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn crypto(context: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::Crypto {
            context: context.into(),
            reason: reason.to_string(),
        }
    }
}

fn problem_lines(problems: &[crate::eventgrid::validate::Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {}: {}", p.path, p.message))
        .collect::<Vec<_>>()
        .join("\n")
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_deref().map(|c| format!(" {c}")).unwrap_or_default()
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
