//! `e4k certs verify`: path validation as a TLS peer does it, plus the Event Grid preflight.

use std::path::PathBuf;

use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{
    fingerprint,
    inspect::{common_name, extended_key_usage, key_info, sans},
    read_certificates, rfc3339,
};
use crate::{Error, Result};

pub use crate::eventgrid::spec::ValidationScheme;

/// What the certificate is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Purpose {
    /// An MQTT client connecting to Event Grid: clientAuth, plus the Event Grid preflight.
    #[default]
    Client,
    /// A broker's server certificate: serverAuth.
    Server,
}

/// Options of [`verify`].
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Trusted CAs: for a client certificate, the CA(s) that will be uploaded to Event Grid.
    pub roots: Vec<PathBuf>,
    /// Further CA certificates that may complete the path (the certificate file's own extra
    /// certificates are always used).
    pub intermediates: Vec<PathBuf>,
    /// Client or server.
    pub purpose: Purpose,
    /// Fail when the certificate expires within this period.
    pub within: Duration,
    /// The Event Grid authentication name; the subject common name when absent.
    pub auth_name: Option<String>,
    /// The Event Grid validation scheme.
    pub scheme: ValidationScheme,
    /// The time to validate at; now when absent.
    pub at: Option<OffsetDateTime>,
}

/// One named check and its outcome.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    /// `chain`, `client-auth`, `server-auth`, `key-type`, `auth-name`, `expiry`.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found; for a failure, why and what to do.
    pub message: String,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The certificate file.
    pub file: PathBuf,
    /// Its subject.
    pub subject: String,
    /// Whether every check passed.
    pub ok: bool,
    /// The checks, in order.
    pub checks: Vec<Check>,
}

/// Verifies the first certificate in `file` against `roots` (path validation with
/// rustls-webpki) and, for client certificates, the Event Grid preflight.
///
/// # Errors
/// Only for unreadable or invalid input files ([`Error::Read`], [`Error::BadFile`]); failed
/// checks are reported in the [`VerifyReport`].
pub fn verify(file: &std::path::Path, options: &VerifyOptions) -> Result<VerifyReport> {
    let mut chain = read_certificates(file)?;
    let leaf_der = chain.remove(0);
    let (_, leaf) = X509Certificate::from_der(&leaf_der)
        .map_err(|e| Error::bad_file(file, format!("not a valid X.509 certificate ({e})")))?;
    let mut roots = Vec::new();
    for path in &options.roots {
        roots.extend(read_certificates(path)?);
    }
    let mut intermediates = chain;
    for path in &options.intermediates {
        intermediates.extend(read_certificates(path)?);
    }
    let at = options.at.unwrap_or_else(OffsetDateTime::now_utc);

    let mut checks = vec![chain_check(
        &leaf,
        &leaf_der,
        &roots,
        &intermediates,
        at,
        options.purpose,
    )];
    let ekus = extended_key_usage(&leaf);
    let (eku_name, eku) = match options.purpose {
        Purpose::Client => ("client-auth", "clientAuth"),
        Purpose::Server => ("server-auth", "serverAuth"),
    };
    let has_eku = ekus.iter().any(|e| e == eku);
    checks.push(Check {
        name: eku_name,
        ok: has_eku,
        message: if has_eku {
            format!("extended key usage includes {eku}")
        } else {
            format!(
                "extended key usage lacks {eku} (has: {}); issue a new certificate with `e4k certs create`",
                if ekus.is_empty() { "none".to_owned() } else { ekus.join(", ") }
            )
        },
    });
    let key = key_info(&leaf);
    let key_name = match (&key.curve, key.bits) {
        (Some(curve), _) => format!("{} {curve}", key.algorithm),
        (None, Some(bits)) => format!("{} {bits}", key.algorithm),
        (None, None) => key.algorithm.clone(),
    };
    checks.push(Check {
        name: "key-type",
        ok: key.eventgrid_accepted,
        message: if key.eventgrid_accepted {
            format!("{key_name} key")
        } else {
            format!("{key_name} key is not known to work with Event Grid; use EC P-256, EC P-384 or RSA 2048 or larger")
        },
    });
    if options.purpose == Purpose::Client {
        checks.push(auth_name_check(&leaf, &leaf_der, options));
    }
    let not_after = leaf.validity().not_after.to_datetime();
    let left = not_after - at;
    checks.push(Check {
        name: "expiry",
        ok: left > options.within,
        message: if left <= Duration::ZERO {
            format!("expired on {}", rfc3339(not_after))
        } else if left <= options.within {
            format!(
                "expires on {} ({} days left), within the {}-day window; renew it",
                rfc3339(not_after),
                left.whole_days(),
                options.within.whole_days()
            )
        } else {
            format!(
                "valid until {} ({} days left)",
                rfc3339(not_after),
                left.whole_days()
            )
        },
    });
    Ok(VerifyReport {
        file: file.to_owned(),
        subject: leaf.subject().to_string(),
        ok: checks.iter().all(|c| c.ok),
        checks,
    })
}

fn chain_check(
    leaf: &X509Certificate<'_>,
    leaf_der: &CertificateDer<'_>,
    roots: &[CertificateDer<'static>],
    intermediates: &[CertificateDer<'static>],
    at: OffsetDateTime,
    purpose: Purpose,
) -> Check {
    let fail = |message: String| Check {
        name: "chain",
        ok: false,
        message,
    };
    let anchors: Vec<_> = match roots
        .iter()
        .map(webpki::anchor_from_trusted_cert)
        .collect::<std::result::Result<_, _>>()
    {
        Ok(anchors) => anchors,
        Err(e) => {
            return fail(format!(
                "a --roots certificate cannot be a trust anchor ({e})"
            ));
        }
    };
    let end_entity = match EndEntityCert::try_from(leaf_der) {
        Ok(ee) => ee,
        Err(e) => {
            return fail(format!(
                "the certificate cannot be parsed for validation ({e})"
            ));
        }
    };
    let seconds = u64::try_from(at.unix_timestamp()).unwrap_or_default();
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
    let usage = match purpose {
        Purpose::Client => KeyUsage::client_auth(),
        Purpose::Server => KeyUsage::server_auth(),
    };
    let result = end_entity.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        intermediates,
        time,
        usage,
        None,
        None,
    );
    match result {
        Ok(path) => {
            let depth = path.intermediate_certificates().count();
            Check {
                name: "chain",
                ok: true,
                message: if depth == 0 {
                    "issued directly by a trusted CA".to_owned()
                } else {
                    format!(
                        "valid path to a trusted CA through {depth} intermediate certificate(s)"
                    )
                },
            }
        }
        Err(e) => fail(explain(&e, leaf)),
    }
}

fn explain(error: &webpki::Error, leaf: &X509Certificate<'_>) -> String {
    use webpki::Error as E;
    match error {
        E::UnknownIssuer => format!(
            "not issued by any of the --roots certificates (its issuer is {}); give the CA you \
             upload to Event Grid with --roots, and any CA in between with --intermediates",
            leaf.issuer()
        ),
        E::CertExpired { .. } => format!(
            "the certificate (or a CA in its path) has expired; the certificate is valid until {}",
            rfc3339(leaf.validity().not_after.to_datetime())
        ),
        E::CertNotValidYet { .. } => format!(
            "the certificate (or a CA in its path) is not valid yet; the certificate starts on {}",
            rfc3339(leaf.validity().not_before.to_datetime())
        ),
        E::RequiredEkuNotFoundContext(_) => {
            "a certificate in the path lacks the required extended key usage".to_owned()
        }
        E::CaUsedAsEndEntity => {
            "this is a CA certificate, not a client or server certificate".to_owned()
        }
        E::InvalidSignatureForPublicKey => {
            "a signature in the path does not verify: the certificate was not signed by the CA \
             given (is it another CA with the same name?)"
                .to_owned()
        }
        E::PathLenConstraintViolated => {
            "too many CAs between the root and the certificate (path length constraint)".to_owned()
        }
        other => format!("path validation failed ({other})"),
    }
}

fn auth_name_check(leaf: &X509Certificate<'_>, leaf_der: &[u8], options: &VerifyOptions) -> Check {
    let cn = common_name(leaf);
    if options.scheme == ValidationScheme::ThumbprintMatch {
        return Check {
            name: "auth-name",
            ok: true,
            message: format!(
                "ThumbprintMatch: register thumbprint {} in the client's allowedThumbprints",
                fingerprint(leaf_der)
            ),
        };
    }
    let Some(name) = options.auth_name.clone().or(cn.clone()) else {
        return Check {
            name: "auth-name",
            ok: false,
            message: "the certificate has no subject common name; give the authentication name with --auth-name".to_owned(),
        };
    };
    let sans = sans(leaf);
    let (field, values): (&str, Vec<String>) = match options.scheme {
        ValidationScheme::SubjectMatchesAuthenticationName => {
            ("subject common name", cn.into_iter().collect())
        }
        ValidationScheme::DnsMatchesAuthenticationName => ("DNS SANs", sans.dns),
        ValidationScheme::UriMatchesAuthenticationName => ("URI SANs", sans.uri),
        ValidationScheme::IpMatchesAuthenticationName => ("IP SANs", sans.ip),
        ValidationScheme::EmailMatchesAuthenticationName => ("email SANs", sans.email),
        ValidationScheme::ThumbprintMatch => ("thumbprint", Vec::new()),
    };
    // Event Grid compares authentication names case-insensitively.
    let ok = values.iter().any(|v| v.eq_ignore_ascii_case(&name));
    Check {
        name: "auth-name",
        ok,
        message: if ok {
            format!(
                "authentication name {name:?} found in the {field} ({:?})",
                options.scheme
            )
        } else {
            format!(
                "authentication name {name:?} is not in the {field} ({}), which {:?} reads",
                if values.is_empty() {
                    "empty".to_owned()
                } else {
                    values.join(", ")
                },
                options.scheme
            )
        },
    }
}
