//! TLS for the MQTT port: the emulator's own data-plane CA and server certificates, and the
//! client certificate check made during the handshake (a certificate that is presented must
//! check out; none at all is allowed, for JWT clients).
//!
//! The real service presents a certificate from a public CA; the emulator makes a CA at start
//! and hands its PEM to clients (`--cafile`). Its default server certificate names `localhost`,
//! `127.0.0.1`, `::1` and the configured hostnames; a client that sends another name in SNI
//! (e.g. a namespace hostname mapped to 127.0.0.1 in `/etc/hosts`) gets a certificate for that
//! name, issued on first use.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName as TlsName, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use time::{Duration, OffsetDateTime};

use super::ViewSource;
use super::auth::{PeerCert, chains_to};
use super::model::Scheme;

/// How long the data-plane CA and its certificates are valid.
const VALIDITY: Duration = Duration::days(365);
/// How far `NotBefore` lies in the past, for peers whose clocks run behind.
const BACKDATE: Duration = Duration::minutes(5);
/// Certificates issued for SNI names are cached; past this many the cache starts over.
const MAX_CACHED_NAMES: usize = 64;

/// The data-plane CA and the server certificates it issues.
pub(crate) struct ServerCerts {
    issuer: CertifiedIssuer<'static, KeyPair>,
    default: Arc<CertifiedKey>,
    default_names: Vec<String>,
    by_name: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl fmt::Debug for ServerCerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCerts")
            .field("default_names", &self.default_names)
            .finish_non_exhaustive()
    }
}

impl ServerCerts {
    /// Makes a CA and a default server certificate for `names` (DNS names or IP addresses).
    pub(crate) fn new(names: Vec<String>) -> Result<Self, String> {
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "e4k emulator");
        params
            .distinguished_name
            .push(DnType::CommonName, "e4k emulator MQTT data plane CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - BACKDATE;
        params.not_after = now + VALIDITY;
        let key = KeyPair::generate().map_err(|e| format!("generating the CA key: {e}"))?;
        let issuer = CertifiedIssuer::self_signed(params, key)
            .map_err(|e| format!("signing the CA certificate: {e}"))?;
        let default = issue(&issuer, &names)?;
        Ok(Self {
            issuer,
            default,
            default_names: names,
            by_name: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate, PEM.
    pub(crate) fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    fn for_name(&self, name: &str) -> Arc<CertifiedKey> {
        let name = name.to_ascii_lowercase();
        if self
            .default_names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&name))
        {
            return Arc::clone(&self.default);
        }
        let mut cache = self.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = cache.get(&name) {
            return Arc::clone(key);
        }
        match issue(&self.issuer, std::slice::from_ref(&name)) {
            Ok(key) => {
                if cache.len() >= MAX_CACHED_NAMES {
                    cache.clear();
                }
                cache.insert(name, Arc::clone(&key));
                key
            }
            Err(error) => {
                tracing::debug!(%name, %error, "no certificate for this SNI name; using the default");
                Arc::clone(&self.default)
            }
        }
    }
}

impl ResolvesServerCert for ServerCerts {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(match client_hello.server_name() {
            Some(name) => self.for_name(name),
            None => Arc::clone(&self.default),
        })
    }
}

/// A server certificate for `names`, with the CA in its chain.
fn issue(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: &[String],
) -> Result<Arc<CertifiedKey>, String> {
    let first = names.first().ok_or("no name for the server certificate")?;
    let now = OffsetDateTime::now_utc();
    let mut params =
        CertificateParams::new(names.to_vec()).map_err(|e| format!("server names: {e}"))?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, first.as_str());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = now + VALIDITY;
    let key = KeyPair::generate().map_err(|e| format!("generating a server key: {e}"))?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|e| format!("signing the server certificate: {e}"))?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&PrivateKeyDer::Pkcs8(
        key.serialize_der().into(),
    ))
    .map_err(|e| format!("loading the server key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone(), issuer.der().clone()],
        signing,
    )))
}

/// Accepts a client certificate that chains to a CA uploaded to an MQTT-enabled namespace, or
/// whose thumbprint a ThumbprintMatch client allows. Which client it stands for is decided
/// after CONNECT, per namespace ([`super::auth::authenticate`]).
struct ClientVerifier {
    source: Arc<ViewSource>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for ClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientVerifier").finish_non_exhaustive()
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[TlsName] {
        &[]
    }

    /// A certificate is asked for but not required: a JWT client has none (the front end
    /// refuses a CONNECT that has neither).
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let view = self.source.current();
        let mut chain = Vec::with_capacity(1 + intermediates.len());
        chain.push(end_entity.clone());
        chain.extend(intermediates.iter().cloned());
        let namespaces = || view.namespaces.iter().filter(|ns| ns.enabled);
        if namespaces().any(|ns| chains_to(&chain, &ns.cas)) {
            return Ok(ClientCertVerified::assertion());
        }
        if let Ok(peer) = PeerCert::parse(end_entity) {
            let allowed = namespaces()
                .flat_map(|ns| &ns.clients)
                .filter(|c| c.enabled && c.scheme == Scheme::Thumbprint)
                .any(|c| peer.has_thumbprint(&c.thumbprints));
            if allowed {
                return Ok(ClientCertVerified::assertion());
            }
        }
        Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The rustls server configuration of the MQTT port: TLS 1.2 and 1.3 (Event Grid's versions),
/// a client certificate asked for (optional: JWT clients have none), the data-plane server
/// certificates.
pub(crate) fn server_config(
    certs: Arc<ServerCerts>,
    source: Arc<ViewSource>,
) -> Result<ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = ClientVerifier {
        source,
        algorithms: provider.signature_verification_algorithms,
    };
    let config = ServerConfig::builder_with_provider(Arc::clone(&provider) as Arc<CryptoProvider>)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(certs);
    Ok(config)
}
