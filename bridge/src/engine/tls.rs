//! TLS for broker connections: a rustls [`ClientConfig`] whose client certificate is re-read
//! from the secret files when they change, so that a rotated certificate is used at the next
//! connection without a restart. The trusted CA is re-read too when its files change
//! ([`trust_stamp`]): the next connection is verified against the new one.
//!
//! The server is always verified (chain to the trusted roots and host name); only TLS 1.2 and
//! 1.3 are offered; the crypto provider is `aws-lc-rs`, as in the rest of the workspace.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::config::files::{self, ClientCertFiles, FileError};
use crate::config::{Tls, TrustRoots};

/// The crypto provider of every bridge TLS connection.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// What the trusted CA's files look like now: each file's path, length and modification time
/// (a mounted config map swaps its files, which changes them); empty for the public roots.
/// A connection compares it before each attempt and reloads the CA when it changed.
pub(crate) fn trust_stamp(tls: &Tls) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let paths = match &tls.trust {
        TrustRoots::Public => Vec::new(),
        TrustRoots::File { path } => vec![path.clone()],
        TrustRoots::ConfigMap { dir, .. } => {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
                .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            paths.sort();
            paths
        }
    };
    paths
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
            let modified = meta.and_then(|m| m.modified().ok());
            (path, len, modified)
        })
        .collect()
}

/// Reads the trusted CA certificates of a connection.
///
/// # Errors
///
/// A one-line description of what is missing or invalid.
pub(crate) fn load_roots(tls: &Tls) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certificates = match &tls.trust {
        TrustRoots::Public => {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            return Ok(roots);
        }
        TrustRoots::ConfigMap { name, dir } => {
            files::load_ca_certificates(name, dir).map_err(|errors| join_errors(&errors))?
        }
        TrustRoots::File { path } => read_ca_file(path)?,
    };
    let (added, ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(format!(
            "no usable CA certificate in the trusted CA ({ignored} could not be used)"
        ));
    }
    Ok(roots)
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("CA file {} is not valid PEM: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "CA file {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certificates)
}

fn join_errors(errors: &[FileError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A TLS configuration that trusts no CA, for a client that needs one before the real one
/// is built (it is replaced before any connection attempt).
pub(crate) fn placeholder_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    client_config(RootCertStore::empty(), None)
}

/// Builds the client configuration: `roots` verify the server, `identity` (when given)
/// answers client-certificate requests.
///
/// # Errors
///
/// When the provider cannot do TLS 1.2/1.3 (not expected with aws-lc-rs).
pub(crate) fn client_config(
    roots: RootCertStore,
    identity: Option<Arc<ReloadingIdentity>>,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(identity) => builder.with_client_cert_resolver(identity),
        None => builder.with_no_client_auth(),
    };
    // No session resumption: a resumed handshake sends no client certificate, so the broker
    // would keep the identity of the old session and a rotated (renewed, or replaced after a
    // revocation) certificate would not be presented until the ticket expired. A bridge
    // reconnects rarely; a full handshake each time costs little.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// What the files looked like when they were last read: a change in any of them triggers a
/// reload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<Option<(SystemTime, u64)>>);

impl Stamp {
    fn of(files: &ClientCertFiles) -> Self {
        Stamp(
            [&files.cert, &files.key, &files.intermediates]
                .iter()
                .map(|path| {
                    let meta = std::fs::metadata(path).ok()?;
                    Some((meta.modified().ok()?, meta.len()))
                })
                .collect(),
        )
    }
}

/// A loaded client certificate.
struct Loaded {
    stamp: Stamp,
    key: Arc<CertifiedKey>,
    /// The leaf's `notAfter`, for the "expired" hint.
    not_after: Option<i64>,
}

/// A client certificate chain and key read from a secret, re-read when the files change.
///
/// [`ReloadingIdentity::refresh`] is called before each connection attempt (so that file
/// problems are reported as the cause of a failed attempt); the rustls resolver checks the
/// files' modification time and length again at each handshake.
pub(crate) struct ReloadingIdentity {
    files: ClientCertFiles,
    loaded: Mutex<Option<Loaded>>,
}

impl fmt::Debug for ReloadingIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("ReloadingIdentity")
            .field("secret", &self.files.secret)
            .finish_non_exhaustive()
    }
}

/// Facts about the certificate in use, for log messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdentityInfo {
    /// Whether the leaf certificate is past its `notAfter`.
    pub(crate) expired: bool,
}

impl ReloadingIdentity {
    /// An identity for the files of `files`; nothing is read yet.
    pub(crate) fn new(files: ClientCertFiles) -> Self {
        ReloadingIdentity {
            files,
            loaded: Mutex::new(None),
        }
    }

    /// The secret's directory, for messages.
    pub(crate) fn dir(&self) -> &PathBuf {
        &self.files.dir
    }

    /// Reads the files again if they changed since the last read.
    ///
    /// # Errors
    ///
    /// The first problem with the files; the previously loaded certificate stays in use.
    pub(crate) fn refresh(&self) -> Result<IdentityInfo, FileError> {
        let stamp = Stamp::of(&self.files);
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(current) = loaded.as_ref()
            && current.stamp == stamp
        {
            return Ok(info(current.not_after));
        }
        let identity = files::load_client_identity(&self.files)?;
        let not_after = identity
            .chain
            .first()
            .and_then(|leaf| X509Certificate::from_der(leaf).ok())
            .map(|(_, cert)| cert.validity().not_after.timestamp());
        let key =
            CertifiedKey::from_der(identity.chain, identity.key, &provider()).map_err(|error| {
                FileError::UnusableKey {
                    path: self.files.key.clone(),
                    reason: error.to_string(),
                }
            })?;
        if loaded.is_some() {
            tracing::info!(
                secret = %self.files.secret,
                "client certificate files changed; the next connection uses the new certificate"
            );
        }
        *loaded = Some(Loaded {
            stamp,
            key: Arc::new(key),
            not_after,
        });
        Ok(info(not_after))
    }

    fn current(&self) -> Option<Arc<CertifiedKey>> {
        let loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loaded.as_ref().map(|loaded| Arc::clone(&loaded.key))
    }
}

fn info(not_after: Option<i64>) -> IdentityInfo {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    IdentityInfo {
        expired: not_after.is_some_and(|end| end < now),
    }
}

impl ResolvesClientCert for ReloadingIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        // A failed reload keeps the previous certificate; the connection task reports the
        // file problem before its next attempt.
        if let Err(error) = self.refresh() {
            tracing::debug!(%error, "client certificate reload failed at handshake");
        }
        self.current()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_roots_are_not_empty() {
        let roots = load_roots(&Tls {
            trust: TrustRoots::Public,
        })
        .unwrap();
        assert!(!roots.is_empty());
    }

    #[test]
    fn missing_ca_file_is_reported() {
        let error = load_roots(&Tls {
            trust: TrustRoots::File {
                path: PathBuf::from("/nonexistent/ca.pem"),
            },
        })
        .unwrap_err();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}
