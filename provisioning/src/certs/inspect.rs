//! `e4k certs inspect`: what a certificate says, and what Event Grid reads from it.

use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::{
    extensions::{GeneralName, ParsedExtension},
    oid_registry::{
        OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    },
    prelude::{FromDer, X509Certificate},
    public_key::PublicKey,
};

use super::{fingerprint, hex, read_certificates, rfc3339};
use crate::{Error, Result};

/// Everything `inspect` shows about one certificate. Field names are part of the documented
/// `--output json` shape.
#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    /// Subject DN, e.g. `CN=mqttbridge`.
    pub subject: String,
    /// The subject's common name, if any.
    pub common_name: Option<String>,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Whole days until `not_after` (negative once expired).
    pub days_left: i64,
    /// Whether the certificate is a CA.
    pub is_ca: bool,
    /// The CA's path length constraint.
    pub path_len: Option<u32>,
    /// The public key.
    pub key: KeyInfo,
    /// Key usages, e.g. `digitalSignature`, `keyCertSign`.
    pub key_usage: Vec<String>,
    /// Extended key usages, e.g. `clientAuth`, `serverAuth`.
    pub extended_key_usage: Vec<String>,
    /// Subject alternative names.
    pub sans: SanList,
    /// Subject key identifier, lowercase hex.
    pub subject_key_id: Option<String>,
    /// Authority key identifier, lowercase hex.
    pub authority_key_id: Option<String>,
    /// SHA-256 fingerprint of the DER, lowercase hex.
    pub sha256: String,
    /// What Event Grid's validation schemes read from this certificate.
    pub eventgrid: EventGridView,
}

/// A public key's type and size.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyInfo {
    /// `EC`, `RSA`, `Ed25519` or the algorithm OID.
    pub algorithm: String,
    /// The EC curve (`P-256`, `P-384`, or its OID).
    pub curve: Option<String>,
    /// Key size in bits.
    pub bits: Option<usize>,
    /// Whether Event Grid is known to accept it (EC P-256, EC P-384, RSA ≥ 2048).
    pub eventgrid_accepted: bool,
}

/// Subject alternative names by type.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SanList {
    /// DNS names.
    pub dns: Vec<String>,
    /// IP addresses.
    pub ip: Vec<String>,
    /// URIs.
    pub uri: Vec<String>,
    /// Email addresses.
    pub email: Vec<String>,
}

/// The value each Event Grid client `validationScheme` compares with the client's
/// authentication name.
#[derive(Debug, Clone, Serialize)]
pub struct EventGridView {
    /// `SubjectMatchesAuthenticationName`: the subject. e4k certificates carry only `CN=<name>`,
    /// so the common name and the full DN agree (the docs do not say which one is compared).
    pub subject: Option<String>,
    /// `DnsMatchesAuthenticationName`: DNS SANs.
    pub dns: Vec<String>,
    /// `UriMatchesAuthenticationName`: URI SANs.
    pub uri: Vec<String>,
    /// `IpMatchesAuthenticationName`: IP SANs.
    pub ip: Vec<String>,
    /// `EmailMatchesAuthenticationName`: email SANs.
    pub email: Vec<String>,
    /// `ThumbprintMatch`: the SHA-256 thumbprint to list in `allowedThumbprints`.
    pub thumbprint: String,
}

impl CertInfo {
    /// Describes one DER certificate.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the DER is not an X.509 certificate.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| Error::invalid("certificate", "DER", format!("not X.509 ({e})")))?;
        Ok(describe(&cert, der))
    }
}

/// Inspects every certificate in a file (a bundle gives several).
///
/// # Errors
/// [`Error::Read`], [`Error::BadFile`].
pub fn inspect(path: &Path) -> Result<Vec<CertInfo>> {
    read_certificates(path)?
        .iter()
        .map(|der| {
            let (_, cert) = X509Certificate::from_der(der).map_err(|e| {
                Error::bad_file(path, format!("not a valid X.509 certificate ({e})"))
            })?;
            Ok(describe(&cert, der))
        })
        .collect()
}

/// Describes a parsed certificate.
pub(crate) fn describe(cert: &X509Certificate<'_>, der: &[u8]) -> CertInfo {
    let not_after = cert.validity().not_after.to_datetime();
    let common_name = common_name(cert);
    let sans = sans(cert);
    let mut subject_key_id = None;
    let mut authority_key_id = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => subject_key_id = Some(hex(id.0)),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority_key_id = aki.key_identifier.as_ref().map(|id| hex(id.0));
            }
            _ => {}
        }
    }
    let sha256 = fingerprint(der);
    CertInfo {
        subject: cert.subject().to_string(),
        common_name: common_name.clone(),
        issuer: cert.issuer().to_string(),
        serial: hex(cert.raw_serial()),
        not_before: rfc3339(cert.validity().not_before.to_datetime()),
        not_after: rfc3339(not_after),
        days_left: (not_after - OffsetDateTime::now_utc()).whole_days(),
        is_ca: cert.is_ca(),
        path_len: cert
            .basic_constraints()
            .ok()
            .flatten()
            .and_then(|bc| bc.value.path_len_constraint),
        key: key_info(cert),
        key_usage: key_usage(cert),
        extended_key_usage: extended_key_usage(cert),
        eventgrid: EventGridView {
            subject: common_name,
            dns: sans.dns.clone(),
            uri: sans.uri.clone(),
            ip: sans.ip.clone(),
            email: sans.email.clone(),
            thumbprint: sha256.clone(),
        },
        sans,
        subject_key_id,
        authority_key_id,
        sha256,
    }
}

pub(crate) fn common_name(cert: &X509Certificate<'_>) -> Option<String> {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

pub(crate) fn sans(cert: &X509Certificate<'_>) -> SanList {
    let mut list = SanList::default();
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return list;
    };
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(s) => list.dns.push((*s).to_owned()),
            GeneralName::URI(s) => list.uri.push((*s).to_owned()),
            GeneralName::RFC822Name(s) => list.email.push((*s).to_owned()),
            GeneralName::IPAddress(bytes) => {
                let ip = match bytes.len() {
                    4 => <[u8; 4]>::try_from(*bytes).ok().map(std::net::IpAddr::from),
                    16 => <[u8; 16]>::try_from(*bytes)
                        .ok()
                        .map(std::net::IpAddr::from),
                    _ => None,
                };
                list.ip
                    .push(ip.map_or_else(|| hex(bytes), |ip| ip.to_string()));
            }
            _ => {}
        }
    }
    list
}

pub(crate) fn key_info(cert: &X509Certificate<'_>) -> KeyInfo {
    let spki = cert.public_key();
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve_oid = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        let (curve, bits) = match curve_oid {
            Some(oid) if oid == OID_EC_P256 => ("P-256".to_owned(), Some(256)),
            Some(oid) if oid == OID_NIST_EC_P384 => ("P-384".to_owned(), Some(384)),
            Some(oid) => (oid.to_id_string(), None),
            None => ("unknown".to_owned(), None),
        };
        return KeyInfo {
            algorithm: "EC".into(),
            eventgrid_accepted: bits.is_some(),
            curve: Some(curve),
            bits,
        };
    }
    if *alg == OID_PKCS1_RSAENCRYPTION {
        let bits = match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => Some(rsa.key_size()),
            _ => None,
        };
        return KeyInfo {
            algorithm: "RSA".into(),
            curve: None,
            eventgrid_accepted: bits.is_some_and(|b| b >= 2048),
            bits,
        };
    }
    let name = if alg.to_id_string() == "1.3.101.112" {
        "Ed25519".to_owned()
    } else {
        alg.to_id_string()
    };
    KeyInfo {
        algorithm: name,
        curve: None,
        bits: None,
        eventgrid_accepted: false,
    }
}

fn key_usage(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(ku)) = cert.key_usage() else {
        return Vec::new();
    };
    let ku = ku.value;
    [
        (ku.digital_signature(), "digitalSignature"),
        (ku.non_repudiation(), "nonRepudiation"),
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.data_encipherment(), "dataEncipherment"),
        (ku.key_agreement(), "keyAgreement"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
        (ku.encipher_only(), "encipherOnly"),
        (ku.decipher_only(), "decipherOnly"),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| name.to_owned())
    .collect()
}

pub(crate) fn extended_key_usage(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(eku)) = cert.extended_key_usage() else {
        return Vec::new();
    };
    let eku = eku.value;
    let mut names: Vec<String> = [
        (eku.any, "any"),
        (eku.server_auth, "serverAuth"),
        (eku.client_auth, "clientAuth"),
        (eku.code_signing, "codeSigning"),
        (eku.email_protection, "emailProtection"),
        (eku.time_stamping, "timeStamping"),
        (eku.ocsp_signing, "OCSPSigning"),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| name.to_owned())
    .collect();
    names.extend(eku.other.iter().map(|oid| oid.to_id_string()));
    names
}
