//! The crate's hard-failure error type.
//!
//! Problems with an otherwise readable configuration (a wildcard target, a missing secret, ...)
//! are not errors: they are collected in a [`Report`](crate::config::Report) so that every one
//! of them can be shown at once. [`ConfigError`] is only for input that cannot be read or parsed
//! at all.

use std::fmt;
use std::path::PathBuf;

/// A bridge configuration that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read bridge config {}", path.display())]
    Read {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The input is larger than [`MAX_INPUT_BYTES`](crate::config::MAX_INPUT_BYTES).
    #[error("bridge config {source_name} is larger than the {limit}-byte limit")]
    TooLarge {
        /// The file name, or `<input>` for in-memory text.
        source_name: String,
        /// The limit that was exceeded, in bytes.
        limit: u64,
    },
    /// The input is not UTF-8 text.
    #[error("bridge config {source_name} is not UTF-8 text")]
    NotUtf8 {
        /// The file name, or `<input>` for in-memory text.
        source_name: String,
    },
    /// The YAML is malformed, exceeds a parser budget, or a value has the wrong type.
    #[error("{}", YamlErrorDisplay(self))]
    Yaml {
        /// The file name, or `<input>` for in-memory text.
        source_name: String,
        /// Where in the document stream the error was found, e.g.
        /// `documents[1].spec.routes[2].qos`; empty when it is not known.
        path: String,
        /// 1-based line of the error, when the parser knows it.
        line: Option<u64>,
        /// 1-based column of the error, when the parser knows it.
        column: Option<u64>,
        /// What is wrong, from the YAML parser.
        message: String,
    },
}

/// Renders [`ConfigError::Yaml`] as `file:line:column: path: message`, leaving out the parts
/// that are unknown.
struct YamlErrorDisplay<'a>(&'a ConfigError);

impl fmt::Display for YamlErrorDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ConfigError::Yaml {
            source_name,
            path,
            line,
            column,
            message,
        } = self.0
        else {
            return Ok(());
        };
        write!(f, "invalid bridge config {source_name}")?;
        if let Some(line) = line {
            write!(f, ":{line}")?;
            if let Some(column) = column {
                write!(f, ":{column}")?;
            }
        }
        if !path.is_empty() {
            write!(f, ": {path}")?;
        }
        write!(f, ": {message}")
    }
}
