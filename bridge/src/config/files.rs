//! Kubernetes secrets and config maps as files, and checks of the PEM material in them.
//!
//! A secret `S` is a directory `<secrets_dir>/S` holding one file per key, as Kubernetes
//! mounts it: [`CLIENT_CERT_FILE`], [`CLIENT_KEY_FILE`] and, optionally,
//! [`CLIENT_INTERMEDIATES_FILE`]. A CA config map `C` is a directory `<configmaps_dir>/C`
//! whose files hold PEM certificates (hidden entries, such as the `..data` links of a
//! projected volume, are skipped). The resolved configuration holds only paths: the engine
//! reads the files when it connects, so that rotated certificates are picked up.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::{self, PemObject as _};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::report::Severity;

/// Secret key holding the client certificate.
pub const CLIENT_CERT_FILE: &str = "client_cert.pem";
/// Secret key holding the client private key.
pub const CLIENT_KEY_FILE: &str = "client_key.pem";
/// Optional secret key holding the intermediate CA certificates.
pub const CLIENT_INTERMEDIATES_FILE: &str = "client_intermediate_certs.pem";

/// The files of an X.509 client-certificate secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientCertFiles {
    /// Secret name.
    pub secret: String,
    /// `<secrets_dir>/<secret>`.
    pub dir: PathBuf,
    /// `<dir>/client_cert.pem`.
    pub cert: PathBuf,
    /// `<dir>/client_key.pem`.
    pub key: PathBuf,
    /// `<dir>/client_intermediate_certs.pem`; the file may be absent.
    pub intermediates: PathBuf,
}

impl ClientCertFiles {
    /// The files of secret `secret` under `secrets_dir`.
    pub fn new(secrets_dir: &Path, secret: &str) -> Self {
        let dir = secrets_dir.join(secret);
        ClientCertFiles {
            secret: secret.to_owned(),
            cert: dir.join(CLIENT_CERT_FILE),
            key: dir.join(CLIENT_KEY_FILE),
            intermediates: dir.join(CLIENT_INTERMEDIATES_FILE),
            dir,
        }
    }
}

/// A client certificate chain and its private key, read from a secret.
pub struct ClientIdentity {
    /// The client certificate followed by the intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("ClientIdentity")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// A problem with a secret or config map file. The `Display` text is the one-line message
/// used in validation reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The secret's directory does not exist.
    #[error(
        "secret `{secret}` not found: {} does not exist; create it with client_cert.pem and \
         client_key.pem{}",
        dir.display(),
        found_hint(found)
    )]
    SecretMissing {
        /// Secret name.
        secret: String,
        /// The directory that was expected.
        dir: PathBuf,
        /// Names of the secrets that do exist, as a hint.
        found: Vec<String>,
    },
    /// The config map's directory does not exist.
    #[error(
        "config map `{name}` not found: {} does not exist; create it with the CA certificate \
         as a PEM file{}",
        dir.display(),
        found_hint(found)
    )]
    ConfigMapMissing {
        /// Config map name.
        name: String,
        /// The directory that was expected.
        dir: PathBuf,
        /// Names of the config maps that do exist, as a hint.
        found: Vec<String>,
    },
    /// A required file is missing.
    #[error("{} not found; add key {} to secret `{secret}`", path.display(), file_name(path))]
    FileMissing {
        /// Secret name.
        secret: String,
        /// The missing file.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {}: {reason}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error text.
        reason: String,
    },
    /// A file is not well-formed PEM.
    #[error("{} is not valid PEM ({reason}); store the file PEM-encoded", path.display())]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser reported.
        reason: String,
    },
    /// A file that should hold certificates holds none.
    #[error("{} holds no PEM certificate; expected a `BEGIN CERTIFICATE` block", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A certificate does not parse as X.509.
    #[error(
        "{} holds a certificate that is not valid X.509 ({reason}); re-export it",
        path.display()
    )]
    InvalidCertificate {
        /// The file.
        path: PathBuf,
        /// What the X.509 parser reported.
        reason: String,
    },
    /// The key file holds an encrypted private key.
    #[error(
        "{} holds an encrypted private key, which the bridge cannot use; store it unencrypted \
         (e.g. `openssl pkey -in key.pem -out plain.pem`) and protect the secret instead",
        path.display()
    )]
    EncryptedKey {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key block.
    #[error(
        "{} holds no private key; expected a PEM `PRIVATE KEY`, `EC PRIVATE KEY` or \
         `RSA PRIVATE KEY` block",
        path.display()
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The private key block does not hold a usable key.
    #[error(
        "{} holds a private key that cannot be used ({reason}); use an EC P-256/P-384 or RSA key",
        path.display()
    )]
    UnusableKey {
        /// The file.
        path: PathBuf,
        /// What the key parser reported.
        reason: String,
    },
    /// The certificate's public key is not the private key's.
    #[error(
        "client_cert.pem and client_key.pem in secret `{secret}` do not match (different public \
         keys); put the key the certificate was issued for in the secret"
    )]
    KeyMismatch {
        /// Secret name.
        secret: String,
    },
    /// The client certificate has expired.
    #[error("client certificate {} expired on {not_after}; issue a new one", path.display())]
    Expired {
        /// The certificate file.
        path: PathBuf,
        /// The end of its validity, RFC 3339.
        not_after: String,
    },
    /// The client certificate is not valid yet.
    #[error(
        "client certificate {} is not valid before {not_before}; check the clock or reissue it",
        path.display()
    )]
    NotYetValid {
        /// The certificate file.
        path: PathBuf,
        /// The start of its validity, RFC 3339.
        not_before: String,
    },
    /// The client certificate expires soon (a warning).
    #[error(
        "client certificate {} expires on {not_after} (in {days} days); renew it",
        path.display()
    )]
    ExpiresSoon {
        /// The certificate file.
        path: PathBuf,
        /// The end of its validity, RFC 3339.
        not_after: String,
        /// Whole days left.
        days: i64,
    },
}

impl FileError {
    /// [`Severity::Warning`] for [`FileError::ExpiresSoon`], [`Severity::Error`] otherwise.
    pub fn severity(&self) -> Severity {
        match self {
            FileError::ExpiresSoon { .. } => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

fn found_hint(found: &[String]) -> String {
    if found.is_empty() {
        String::new()
    } else {
        format!(" (found: {})", found.join(", "))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// When a certificate is checked and how early expiry warnings start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryPolicy {
    /// The time to check against.
    pub now: OffsetDateTime,
    /// Warn when the certificate expires within this long.
    pub warn_within: time::Duration,
}

/// Reads a client identity, stopping at the first problem.
///
/// # Errors
///
/// The first [`FileError`] met: a missing secret or file, unreadable or non-PEM content, an
/// encrypted or unusable key. Key matching and expiry are checked by
/// [`check_client_cert`], not here.
pub fn load_client_identity(files: &ClientCertFiles) -> Result<ClientIdentity, FileError> {
    require_secret_dir(files)?;
    let mut chain = read_certificates(files, &files.cert)?;
    let key = read_private_key(files, &files.key)?;
    if files.intermediates.exists() {
        chain.extend(read_certificates(files, &files.intermediates)?);
    }
    Ok(ClientIdentity { chain, key })
}

/// Checks a client-certificate secret and returns every problem found: each file on its own,
/// then whether the certificate and key match and whether the certificate is in its validity
/// period.
pub fn check_client_cert(files: &ClientCertFiles, expiry: &ExpiryPolicy) -> Vec<FileError> {
    if let Err(missing) = require_secret_dir(files) {
        return vec![missing];
    }
    let mut problems = Vec::new();
    let chain = read_certificates(files, &files.cert).map_err(|e| problems.push(e));
    let key = read_private_key(files, &files.key).map_err(|e| problems.push(e));
    if files.intermediates.exists()
        && let Err(error) = read_certificates(files, &files.intermediates)
    {
        problems.push(error);
    }
    let Some(leaf) = chain.ok().and_then(|chain| chain.into_iter().next()) else {
        return problems;
    };
    let cert = match X509Certificate::from_der(&leaf) {
        Ok((_, cert)) => cert,
        Err(error) => {
            problems.push(FileError::InvalidCertificate {
                path: files.cert.clone(),
                reason: error.to_string(),
            });
            return problems;
        }
    };
    if let Ok(key) = key {
        match key_public_bytes(&key) {
            Ok(public) if public != cert.public_key().subject_public_key.data.as_ref() => {
                problems.push(FileError::KeyMismatch {
                    secret: files.secret.clone(),
                });
            }
            Ok(_) => {}
            Err(reason) => problems.push(FileError::UnusableKey {
                path: files.key.clone(),
                reason,
            }),
        }
    }
    problems.extend(check_validity(&files.cert, &cert, expiry));
    problems
}

/// Checks a CA config map directory: it must exist and hold at least one valid certificate.
pub fn check_ca_dir(name: &str, dir: &Path) -> Vec<FileError> {
    match load_ca_certificates(name, dir) {
        Ok(_) => Vec::new(),
        Err(errors) => errors,
    }
}

/// Reads every certificate of a CA config map directory.
///
/// # Errors
///
/// Every problem found: a missing directory, unreadable files, invalid PEM or X.509, or no
/// certificate at all.
pub fn load_ca_certificates(
    name: &str,
    dir: &Path,
) -> Result<Vec<CertificateDer<'static>>, Vec<FileError>> {
    require_dir(dir, |found| FileError::ConfigMapMissing {
        name: name.to_owned(),
        dir: dir.to_owned(),
        found,
    })
    .map_err(|error| vec![error])?;
    let mut errors = Vec::new();
    let mut certificates = Vec::new();
    for path in visible_files(dir) {
        match read_file(&path).and_then(|bytes| parse_certificates(&path, &bytes)) {
            Ok(found) => certificates.extend(found),
            // Other keys of the config map may hold non-certificate data.
            Err(FileError::NoCertificate { .. }) => {}
            Err(error) => errors.push(error),
        }
    }
    if certificates.is_empty() && errors.is_empty() {
        errors.push(FileError::NoCertificate {
            path: dir.to_owned(),
        });
    }
    if errors.is_empty() {
        Ok(certificates)
    } else {
        Err(errors)
    }
}

fn require_secret_dir(files: &ClientCertFiles) -> Result<(), FileError> {
    require_dir(&files.dir, |found| FileError::SecretMissing {
        secret: files.secret.clone(),
        dir: files.dir.clone(),
        found,
    })
}

fn require_dir(
    dir: &Path,
    missing: impl FnOnce(Vec<String>) -> FileError,
) -> Result<(), FileError> {
    if dir.is_dir() {
        return Ok(());
    }
    let found = dir
        .parent()
        .map(|parent| {
            let mut names: Vec<String> = visible_entries(parent)
                .filter(|path| path.is_dir())
                .filter_map(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
                .collect();
            names.sort();
            names
        })
        .unwrap_or_default();
    Err(missing(found))
}

/// Non-hidden directory entries; an unreadable directory yields none.
fn visible_entries(dir: &Path) -> impl Iterator<Item = PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
        .map(|entry| entry.path())
}

/// Non-hidden regular files (symbolic links followed), sorted by name.
fn visible_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = visible_entries(dir).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

fn read_file(path: &Path) -> Result<Vec<u8>, FileError> {
    std::fs::read(path).map_err(|error| FileError::Unreadable {
        path: path.to_owned(),
        reason: error.to_string(),
    })
}

fn read_secret_file(files: &ClientCertFiles, path: &Path) -> Result<Vec<u8>, FileError> {
    if !path.exists() {
        return Err(FileError::FileMissing {
            secret: files.secret.clone(),
            path: path.to_owned(),
        });
    }
    read_file(path)
}

fn read_certificates(
    files: &ClientCertFiles,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, FileError> {
    let bytes = read_secret_file(files, path)?;
    let certificates = parse_certificates(path, &bytes)?;
    for certificate in &certificates {
        if let Err(error) = X509Certificate::from_der(certificate) {
            return Err(FileError::InvalidCertificate {
                path: path.to_owned(),
                reason: error.to_string(),
            });
        }
    }
    Ok(certificates)
}

fn parse_certificates(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, FileError> {
    let certificates = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad_pem(path, &error))?;
    if certificates.is_empty() {
        return Err(FileError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

fn read_private_key(
    files: &ClientCertFiles,
    path: &Path,
) -> Result<PrivateKeyDer<'static>, FileError> {
    let bytes = read_secret_file(files, path)?;
    if is_encrypted_key(&bytes) {
        return Err(FileError::EncryptedKey {
            path: path.to_owned(),
        });
    }
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(FileError::NoPrivateKey {
            path: path.to_owned(),
        }),
        Err(error) => Err(bad_pem(path, &error)),
    }
}

/// PKCS#8 `ENCRYPTED PRIVATE KEY`, or a legacy OpenSSL key with `Proc-Type: 4,ENCRYPTED`.
fn is_encrypted_key(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
}

fn bad_pem(path: &Path, error: &pem::Error) -> FileError {
    let reason = match error {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line".to_owned(),
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".to_owned(),
        pem::Error::Base64Decode(_) => "the base64 content is corrupt".to_owned(),
        other => other.to_string(),
    };
    FileError::BadPem {
        path: path.to_owned(),
        reason,
    }
}

/// The public key of a private key, in the form of an SPKI `subjectPublicKey` bit string:
/// the uncompressed point for EC keys, the PKCS#1 `RSAPublicKey` for RSA keys.
fn key_public_bytes(key: &PrivateKeyDer<'_>) -> Result<Vec<u8>, String> {
    rcgen::KeyPair::try_from(key)
        .map(|pair| pair.public_key_raw().to_vec())
        .map_err(|error| error.to_string())
}

fn check_validity(
    path: &Path,
    cert: &X509Certificate<'_>,
    expiry: &ExpiryPolicy,
) -> Option<FileError> {
    let validity = cert.validity();
    let now = expiry.now.unix_timestamp();
    let not_before = validity.not_before.timestamp();
    let not_after = validity.not_after.timestamp();
    if now > not_after {
        Some(FileError::Expired {
            path: path.to_owned(),
            not_after: rfc3339(not_after),
        })
    } else if now < not_before {
        Some(FileError::NotYetValid {
            path: path.to_owned(),
            not_before: rfc3339(not_before),
        })
    } else if not_after - now < expiry.warn_within.whole_seconds() {
        Some(FileError::ExpiresSoon {
            path: path.to_owned(),
            not_after: rfc3339(not_after),
            days: (not_after - now) / 86_400,
        })
    } else {
        None
    }
}

fn rfc3339(timestamp: i64) -> String {
    OffsetDateTime::from_unix_timestamp(timestamp)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{timestamp}"))
}
