//! Leaf certificates (`create`): profiles, subject alternative names, and the CA that issues
//! them, one at a time or many in parallel.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use rayon::prelude::*;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, string::Ia5String,
};
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{
    CertSummary,
    duration::NotAfter,
    files::{PlannedFile, write_all},
    key::{KeyFormat, KeyProtection, KeyType, Password, encode_key, load_key},
};
use crate::{Error, Result};

use super::pki::{BACKDATE, random_serial, validate_common_name};

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// An MQTT client (the bridge, a device, a commander): EKU clientAuth.
    #[default]
    Client,
    /// A broker: EKU serverAuth and clientAuth, SANs naming the host.
    Server,
}

/// A subject alternative name, classified as `step` does: an IP address if it parses as one,
/// a URI if it has a scheme, an email address if it has an `@`, a DNS name otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum San {
    /// `dNSName`
    Dns(String),
    /// `iPAddress`
    Ip(IpAddr),
    /// `uniformResourceIdentifier`
    Uri(String),
    /// `rfc822Name`
    Email(String),
}

impl San {
    /// Parses one `--san` value.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the value is empty, not ASCII, or not a valid DNS name.
    pub fn parse(value: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::invalid("--san", value, reason);
        if value.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if let Ok(ip) = value.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        if !value.is_ascii() || value.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return Err(invalid("must be ASCII without spaces"));
        }
        if value.contains("://") {
            return Ok(Self::Uri(value.to_owned()));
        }
        if value.contains('@') {
            return Ok(Self::Email(value.to_owned()));
        }
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        let host = value.strip_prefix("*.").unwrap_or(value);
        if value.len() > 253 || !host.split('.').all(label_ok) {
            return Err(invalid(
                "not a DNS name, IP address, URI (scheme://...) or email address",
            ));
        }
        Ok(Self::Dns(value.to_owned()))
    }

    fn to_rcgen(&self) -> Result<SanType> {
        let ia5 = |s: &str| {
            Ia5String::try_from(s).map_err(|_| Error::invalid("--san", s, "must be ASCII"))
        };
        Ok(match self {
            Self::Dns(s) => SanType::DnsName(ia5(s)?),
            Self::Ip(ip) => SanType::IpAddress(*ip),
            Self::Uri(s) => SanType::URI(ia5(s)?),
            Self::Email(s) => SanType::Rfc822Name(ia5(s)?),
        })
    }
}

/// One leaf certificate to issue.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// The subject common name, which is also the Event Grid authentication name.
    pub name: String,
    /// Subject alternative names. A server certificate without any gets `name` as its SAN.
    pub sans: Vec<San>,
    /// Client or server.
    pub profile: Profile,
    /// The new key's type.
    pub key_type: KeyType,
    /// Validity.
    pub not_after: NotAfter,
    /// How an unencrypted key is written.
    pub key_format: KeyFormat,
    /// Whether the key is encrypted.
    pub protection: KeyProtection,
}

/// Where one issued leaf goes.
#[derive(Debug, Clone, Serialize)]
pub struct LeafOutput {
    /// The certificate file.
    pub cert: PathBuf,
    /// The private key file.
    pub key: PathBuf,
    /// Whether the certificate file also holds the issuing CA's certificate (leaf first), as
    /// mosquitto and the bridge present it.
    pub bundle: bool,
}

/// The result for one issued leaf.
#[derive(Debug, Clone, Serialize)]
pub struct LeafReport {
    /// The files written.
    pub files: LeafOutput,
    /// Whether the key is encrypted.
    pub encrypted: bool,
    /// The certificate.
    pub certificate: CertSummary,
}

/// A CA that signs leaf certificates: its certificate and private key, checked to belong
/// together and to be able to sign.
pub struct CertificateAuthority {
    path: PathBuf,
    pem: String,
    not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("path", &self.path)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Loads a CA from its certificate and key files.
    ///
    /// The key may be encrypted (PKCS#8, or `step`'s legacy PEM); `password_hint` names where
    /// a password can come from for the error when one is needed.
    ///
    /// # Errors
    /// [`Error::Read`], [`Error::BadFile`] (not PEM, no certificate), [`Error::NotUsableCa`]
    /// (not a CA, cannot sign certificates, expired, key does not match),
    /// [`Error::PasswordNeeded`], [`Error::WrongPassword`].
    pub fn load(
        cert: &Path,
        key: &Path,
        password: Option<&Password>,
        password_hint: &str,
    ) -> Result<Self> {
        let der = super::read_certificates(cert)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::bad_file(cert, "no certificate found"))?;
        let not_usable = |reason: String| Error::NotUsableCa {
            path: cert.to_owned(),
            reason,
        };
        let (_, x509) = X509Certificate::from_der(&der)
            .map_err(|e| Error::bad_file(cert, format!("not a valid X.509 certificate ({e})")))?;
        if !x509.is_ca() {
            return Err(not_usable(
                "not a CA certificate (basicConstraints CA:TRUE is missing); give a CA such as \
                 DIR/certs/intermediate_ca.crt with --ca"
                    .into(),
            ));
        }
        if let Ok(Some(ku)) = x509.key_usage()
            && !ku.value.key_cert_sign()
        {
            return Err(not_usable(
                "its key usage does not allow signing certificates (keyCertSign)".into(),
            ));
        }
        let not_after = x509.validity().not_after.to_datetime();
        if not_after <= OffsetDateTime::now_utc() {
            return Err(not_usable(format!(
                "the CA expired on {}; create a new one with `e4k certs init`",
                super::rfc3339(not_after)
            )));
        }
        let key_pair = load_key(key, password, password_hint)?;
        if key_pair.public_key_raw() != x509.public_key().subject_public_key.data.as_ref() {
            return Err(not_usable(format!(
                "the key in {} does not belong to this certificate",
                key.display()
            )));
        }
        let issuer = Issuer::from_ca_cert_der(&der, key_pair).map_err(|e| {
            Error::bad_file(
                cert,
                format!("cannot use this certificate as an issuer ({e})"),
            )
        })?;
        let pem = pem::encode_config(
            &pem::Pem::new("CERTIFICATE", der.to_vec()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        Ok(Self {
            path: cert.to_owned(),
            pem,
            not_after,
            issuer,
        })
    }

    /// The CA certificate, PEM-encoded.
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// Issues one leaf: returns its certificate (PEM) and its encoded key (PEM).
    fn issue(&self, spec: &LeafSpec, now: OffsetDateTime) -> Result<(String, String, bool)> {
        validate_common_name("NAME", &spec.name)?;
        if spec.key_format == KeyFormat::Sec1 && !spec.key_type.is_ec() {
            return Err(Error::invalid(
                "--key-format",
                "sec1",
                "SEC1 applies to EC keys; RSA keys are written as PKCS#8",
            ));
        }
        if spec.key_format == KeyFormat::Sec1
            && matches!(spec.protection, KeyProtection::Encrypted(_))
        {
            return Err(Error::invalid(
                "--key-format",
                "sec1",
                "an encrypted key is always PKCS#8; use --key-format pkcs8, or --no-password --insecure",
            ));
        }
        let not_after = spec.not_after.resolve(now);
        if not_after <= now {
            return Err(Error::invalid(
                "--not-after",
                &super::rfc3339(not_after),
                "the certificate would already be expired",
            ));
        }
        if not_after > self.not_after {
            return Err(Error::invalid(
                "--not-after",
                &super::rfc3339(not_after),
                format!(
                    "the certificate would outlive its CA {} (valid until {}); choose a shorter validity",
                    self.path.display(),
                    super::rfc3339(self.not_after)
                ),
            ));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, spec.name.as_str());
        let mut sans = spec.sans.clone();
        if sans.is_empty() && spec.profile == Profile::Server {
            sans.push(San::parse(&spec.name)?);
        }
        params.subject_alt_names = sans.iter().map(San::to_rcgen).collect::<Result<_>>()?;
        // ExplicitNoCa writes `CA:FALSE` and, with it, a subject key identifier.
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if !spec.key_type.is_ec() {
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        params.extended_key_usages = match spec.profile {
            Profile::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Profile::Server => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        params.not_before = now - BACKDATE;
        params.not_after = not_after;
        let key = spec.key_type.generate()?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| Error::crypto(format!("signing the certificate for {}", spec.name), e))?;
        let key_pem = encode_key(&key, spec.key_format, &spec.protection)?;
        Ok((
            cert.pem(),
            key_pem.to_string(),
            matches!(spec.protection, KeyProtection::Encrypted(_)),
        ))
    }

    /// Issues leaves in parallel and writes them all, or none of them.
    ///
    /// `progress` is called once per certificate signed (from several threads).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (a bad name, SAN or validity; duplicate output paths),
    /// [`Error::AlreadyExists`] without `force`, [`Error::Write`], [`Error::Crypto`].
    pub fn issue_to_files(
        &self,
        jobs: &[(LeafSpec, LeafOutput)],
        force: bool,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Vec<LeafReport>> {
        let mut seen = std::collections::HashSet::new();
        for (_, out) in jobs {
            for path in [&out.cert, &out.key] {
                if !seen.insert(path) {
                    return Err(Error::invalid(
                        "output file",
                        &path.display().to_string(),
                        "named twice; give each certificate its own files",
                    ));
                }
            }
        }
        let now = OffsetDateTime::now_utc();
        let issued: Vec<(String, String, bool)> = jobs
            .par_iter()
            .map(|(spec, _)| {
                let result = self.issue(spec, now);
                progress();
                result
            })
            .collect::<Result<_>>()?;
        let mut files = Vec::with_capacity(jobs.len() * 2);
        let mut reports = Vec::with_capacity(jobs.len());
        for ((_, out), (cert_pem, key_pem, encrypted)) in jobs.iter().zip(issued) {
            let der = super::pem_certificates(cert_pem.as_bytes())
                .into_iter()
                .next()
                .ok_or_else(|| Error::crypto("encoding the certificate", "no PEM output"))?;
            let summary = CertSummary::from_der(&der)?;
            let cert_file = if out.bundle {
                format!("{cert_pem}{}", self.pem)
            } else {
                cert_pem
            };
            files.push(PlannedFile::public(out.cert.clone(), cert_file));
            files.push(PlannedFile::secret(out.key.clone(), &key_pem));
            reports.push(LeafReport {
                files: out.clone(),
                encrypted,
                certificate: summary,
            });
        }
        write_all(&files, force)?;
        Ok(reports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_classification() {
        assert_eq!(
            San::parse("10.0.0.1").unwrap(),
            San::Ip("10.0.0.1".parse().unwrap())
        );
        assert_eq!(San::parse("::1").unwrap(), San::Ip("::1".parse().unwrap()));
        assert_eq!(
            San::parse("spiffe://x/y").unwrap(),
            San::Uri("spiffe://x/y".into())
        );
        assert_eq!(San::parse("a@b.c").unwrap(), San::Email("a@b.c".into()));
        assert_eq!(
            San::parse("broker.local").unwrap(),
            San::Dns("broker.local".into())
        );
        assert_eq!(
            San::parse("*.example.com").unwrap(),
            San::Dns("*.example.com".into())
        );
        assert!(San::parse("bad name").is_err());
        assert!(San::parse("-bad").is_err());
        assert!(San::parse("").is_err());
    }
}
