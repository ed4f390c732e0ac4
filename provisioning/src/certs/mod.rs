//! The PKI behind e4k: what `step ca init` and `step certificate create` do, non-interactive
//! and checked against what Azure Event Grid needs.
//!
//! - [`init`] makes a root CA (path length 1) and an intermediate CA (path length 0) in
//!   `step`'s layout ([`PkiLayout`]), with keys encrypted as PKCS#8 PBES2.
//! - [`CertificateAuthority`] loads a CA (its key possibly encrypted, also in `step`'s legacy
//!   format) and issues client or server leaves, one or thousands at a time, in parallel;
//!   [`LeafTemplate`] builds the list of leaves (`e4k certs create`'s jobs).
//! - [`inspect`](inspect::inspect) shows a certificate and what each Event Grid validation
//!   scheme reads from it; [`verify`](verify::verify) validates the path as a TLS peer would
//!   (rustls-webpki) and runs the Event Grid preflight; [`check_expiry`]
//!   lists certificates under a directory with the days they have left.
//!
//! Every file is written all-or-nothing, private keys with mode `0600`, and nothing is
//! overwritten without `force`.

mod check;
mod duration;
pub(crate) mod files;
mod inspect;
mod jobs;
mod key;
mod leaf;
mod names;
mod pki;
mod verify;

pub use check::{ExpiryEntry, ExpiryReport, ExpiryStatus, check_expiry};
pub use duration::{NotAfter, parse_duration};
pub use inspect::{CertInfo, EventGridView, KeyInfo, SanList, inspect};
pub use jobs::LeafTemplate;
pub use key::{KeyFormat, KeyProtection, KeyType, PBKDF2_ROUNDS, Password, load_key};
pub use leaf::{CertificateAuthority, LeafOutput, LeafReport, LeafSpec, Profile, San};
pub use names::{check_file_name, names_from_file, names_from_template};
pub use pki::{InitOptions, InitReport, PkiLayout, init};
pub use verify::{Check, Purpose, ValidationScheme, VerifyOptions, VerifyReport, verify};

use std::path::Path;

use rustls_pki_types::CertificateDer;
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{Error, Result};

/// The essentials of a certificate, as commands report what they made.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertSummary {
    /// Subject distinguished name, e.g. `CN=mqttbridge`.
    pub subject: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// SHA-256 of the DER, lowercase hex: `step certificate fingerprint`, and the thumbprint
    /// Event Grid's `ThumbprintMatch` compares.
    pub sha256: String,
}

impl CertSummary {
    /// Summarises a DER certificate.
    ///
    /// # Errors
    /// [`Error::Crypto`] when the DER does not parse (only for certificates e4k just made).
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| Error::crypto("reading back a certificate", e))?;
        Ok(Self {
            subject: cert.subject().to_string(),
            serial: hex(cert.raw_serial()),
            not_before: rfc3339(cert.validity().not_before.to_datetime()),
            not_after: rfc3339(cert.validity().not_after.to_datetime()),
            sha256: fingerprint(der),
        })
    }
}

/// SHA-256 of a DER certificate, lowercase hex without separators (as `step certificate
/// fingerprint` prints it).
#[must_use]
pub fn fingerprint(der: &[u8]) -> String {
    hex(&Sha256::digest(der))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// An instant as RFC 3339 UTC, to the second (certificates carry no finer time).
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// The `CERTIFICATE` blocks of a PEM buffer, in order.
pub(crate) fn pem_certificates(bytes: &[u8]) -> Vec<CertificateDer<'static>> {
    pem::parse_many(bytes)
        .unwrap_or_default()
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(|block| CertificateDer::from(block.into_contents()))
        .collect()
}

/// Reads every certificate in a file: PEM (one or more blocks, e.g. a bundle) or one DER
/// certificate.
///
/// # Errors
/// [`Error::Read`], or [`Error::BadFile`] when the file holds no certificate.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let certs = pem_certificates(&bytes);
    if !certs.is_empty() {
        return Ok(certs);
    }
    if X509Certificate::from_der(&bytes).is_ok() {
        return Ok(vec![CertificateDer::from(bytes)]);
    }
    let reason = if bytes.starts_with(b"-----BEGIN") {
        "holds no CERTIFICATE block (is it a key?)"
    } else {
        "not a PEM or DER certificate"
    };
    Err(Error::bad_file(path, reason))
}
