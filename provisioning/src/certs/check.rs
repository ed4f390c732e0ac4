//! `e4k certs check`: every certificate under a directory and the days it has left.

use std::path::{Path, PathBuf};

use serde::Serialize;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{pem_certificates, rfc3339};
use crate::{Error, Result};

/// Files larger than this are not certificates and are not read.
const MAX_FILE: u64 = 1024 * 1024;

/// Whether a certificate is fine, inside the window, or expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpiryStatus {
    /// Valid beyond the window.
    Ok,
    /// Expires within the window.
    Expiring,
    /// Already expired.
    Expired,
}

/// One certificate found.
#[derive(Debug, Clone, Serialize)]
pub struct ExpiryEntry {
    /// The file.
    pub path: PathBuf,
    /// Its position in the file (0 for the first; bundles hold several).
    pub index: usize,
    /// Subject DN.
    pub subject: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Whole days left (negative once expired).
    pub days_left: i64,
    /// The verdict.
    pub status: ExpiryStatus,
}

/// The result of [`check_expiry`].
#[derive(Debug, Clone, Serialize)]
pub struct ExpiryReport {
    /// The window, in days.
    pub within_days: i64,
    /// Every certificate, sorted by path.
    pub certificates: Vec<ExpiryEntry>,
    /// How many are expiring or expired.
    pub failing: usize,
}

/// Lists every certificate in PEM files under `dir` (recursively), flagging those that expire
/// within `within`.
///
/// # Errors
/// [`Error::Read`] when `dir` cannot be listed. Unreadable files inside it are skipped with a
/// warning.
pub fn check_expiry(dir: &Path, within: Duration) -> Result<ExpiryReport> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.sort();
    let now = OffsetDateTime::now_utc();
    let mut certificates = Vec::new();
    for path in files {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "skipping unreadable file");
                continue;
            }
        };
        for (index, der) in pem_certificates(&bytes).iter().enumerate() {
            let Ok((_, cert)) = X509Certificate::from_der(der) else {
                tracing::warn!(path = %path.display(), index, "skipping a malformed certificate");
                continue;
            };
            let not_after = cert.validity().not_after.to_datetime();
            let left = not_after - now;
            let status = if left <= Duration::ZERO {
                ExpiryStatus::Expired
            } else if left <= within {
                ExpiryStatus::Expiring
            } else {
                ExpiryStatus::Ok
            };
            certificates.push(ExpiryEntry {
                path: path.clone(),
                index,
                subject: cert.subject().to_string(),
                not_after: rfc3339(not_after),
                days_left: left.whole_days(),
                status,
            });
        }
    }
    let failing = certificates
        .iter()
        .filter(|c| c.status != ExpiryStatus::Ok)
        .count();
    Ok(ExpiryReport {
        within_days: within.whole_days(),
        certificates,
        failing,
    })
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        // Symbolic links to files count; links to directories are not followed (no loops).
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if meta.is_dir() && !is_link {
            if let Err(e) = collect_files(&path, out) {
                tracing::warn!(error = %e, "skipping a directory");
            }
        } else if meta.is_file() && meta.len() <= MAX_FILE {
            out.push(path);
        }
    }
    Ok(())
}
