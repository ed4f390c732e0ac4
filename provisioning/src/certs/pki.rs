//! The CA hierarchy (`init`): a root CA and an intermediate CA, written in `step`'s layout.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa,
    KeyUsagePurpose, SerialNumber,
};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::{
    CertSummary,
    duration::NotAfter,
    files::{PlannedFile, write_all},
    key::{KeyFormat, KeyProtection, KeyType, encode_key},
};
use crate::{Error, Result};

/// How far `NotBefore` is set in the past, so that peers whose clocks run a little behind
/// accept a certificate straight away.
pub(super) const BACKDATE: Duration = Duration::minutes(5);

/// Where `e4k certs init` puts its files: `step`'s layout, so users and scripts find them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PkiLayout {
    /// `DIR/certs/root_ca.crt`
    pub root_cert: PathBuf,
    /// `DIR/certs/intermediate_ca.crt`
    pub intermediate_cert: PathBuf,
    /// `DIR/secrets/root_ca_key`
    pub root_key: PathBuf,
    /// `DIR/secrets/intermediate_ca_key`
    pub intermediate_key: PathBuf,
}

impl PkiLayout {
    /// The layout under `dir`.
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        Self {
            root_cert: dir.join("certs").join("root_ca.crt"),
            intermediate_cert: dir.join("certs").join("intermediate_ca.crt"),
            root_key: dir.join("secrets").join("root_ca_key"),
            intermediate_key: dir.join("secrets").join("intermediate_ca_key"),
        }
    }
}

/// What `e4k certs init` makes.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The directory to write [`PkiLayout`] under.
    pub dir: PathBuf,
    /// The PKI's name: subjects become `CN=<name> Root CA, O=<name>` and
    /// `CN=<name> Intermediate CA, O=<name>`, as `step ca init` names them.
    pub name: String,
    /// Key type of both CAs.
    pub key_type: KeyType,
    /// Root CA validity.
    pub root_not_after: NotAfter,
    /// Intermediate CA validity (never past the root's).
    pub intermediate_not_after: NotAfter,
    /// Whether the CA keys are encrypted.
    pub protection: KeyProtection,
    /// Overwrite existing files.
    pub force: bool,
}

/// The result of `e4k certs init`.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    /// The files written.
    pub files: PkiLayout,
    /// Whether the CA keys are encrypted.
    pub encrypted: bool,
    /// The root CA.
    pub root: CertSummary,
    /// The intermediate CA.
    pub intermediate: CertSummary,
}

/// Creates a root CA (path length 1) and an intermediate CA (path length 0) and writes them.
///
/// # Errors
/// [`Error::InvalidInput`] for a bad name or validity, [`Error::AlreadyExists`] when a file
/// exists and `force` is off (nothing is written then), [`Error::Write`], [`Error::Crypto`].
pub fn init(options: &InitOptions) -> Result<InitReport> {
    validate_common_name("--name", &options.name)?;
    let now = OffsetDateTime::now_utc();
    let root_end = options.root_not_after.resolve(now);
    let intermediate_end = options.intermediate_not_after.resolve(now);
    if root_end <= now {
        return Err(Error::invalid(
            "--root-not-after",
            &root_end.to_string(),
            "the root CA would already be expired",
        ));
    }
    if intermediate_end > root_end {
        return Err(Error::invalid(
            "--intermediate-not-after",
            &intermediate_end.to_string(),
            "the intermediate CA cannot outlive the root CA; shorten it or lengthen --root-not-after",
        ));
    }
    let name = &options.name;
    let ca_params = |cn: String, path_len: u8, not_after: OffsetDateTime| {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, name.as_str());
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - BACKDATE;
        params.not_after = not_after;
        params
    };
    let mut root_params = ca_params(format!("{name} Root CA"), 1, root_end);
    root_params.serial_number = Some(random_serial()?);
    let root_key = options.key_type.generate()?;
    let root_key_pem = encode_key(&root_key, KeyFormat::Pkcs8, &options.protection)?;
    let root = CertifiedIssuer::self_signed(root_params, root_key)
        .map_err(|e| Error::crypto("signing the root CA", e))?;

    let mut intermediate_params = ca_params(format!("{name} Intermediate CA"), 0, intermediate_end);
    intermediate_params.serial_number = Some(random_serial()?);
    intermediate_params.use_authority_key_identifier_extension = true;
    let intermediate_key = options.key_type.generate()?;
    let intermediate_key_pem =
        encode_key(&intermediate_key, KeyFormat::Pkcs8, &options.protection)?;
    let intermediate = CertifiedIssuer::signed_by(intermediate_params, intermediate_key, &root)
        .map_err(|e| Error::crypto("signing the intermediate CA", e))?;

    let layout = PkiLayout::new(&options.dir);
    write_all(
        &[
            PlannedFile::public(layout.root_cert.clone(), root.pem()),
            PlannedFile::public(layout.intermediate_cert.clone(), intermediate.pem()),
            PlannedFile::secret(layout.root_key.clone(), &root_key_pem),
            PlannedFile::secret(layout.intermediate_key.clone(), &intermediate_key_pem),
        ],
        options.force,
    )?;
    Ok(InitReport {
        files: layout,
        encrypted: matches!(options.protection, KeyProtection::Encrypted(_)),
        root: CertSummary::from_der(root.der())?,
        intermediate: CertSummary::from_der(intermediate.der())?,
    })
}

/// A random, positive 128-bit serial number (RFC 5280 allows up to 20 octets).
pub(super) fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::crypto("generating a serial number", e))?;
    // Positive, and 16 octets in minimal DER: top bit clear, next bit set.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Checks a certificate subject common name: 1 to 64 characters (RFC 5280's upper bound), no
/// control characters.
pub(super) fn validate_common_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(what, name, "must not be empty"));
    }
    if name.chars().count() > 64 {
        return Err(Error::invalid(
            what,
            name,
            "longer than 64 characters (the X.509 limit for a common name)",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(what, name, "contains control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_is_positive_16_octets() {
        let serial = random_serial().unwrap().to_bytes();
        assert_eq!(serial.len(), 16);
        assert_eq!(serial[0] & 0xc0, 0x40);
    }
}
