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
                | Self::Read { .. }
                | Self::BadFile { .. }
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

    pub(crate) fn crypto(context: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::Crypto {
            context: context.into(),
            reason: reason.to_string(),
        }
    }
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
