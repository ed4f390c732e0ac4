//! Custom JWT authentication of MQTT clients (`namespace.mqtt.customJwtAuthentication`): the
//! spec fields, their validation and their rendering into the namespace's
//! `topicSpacesConfiguration.clientAuthentication.customJwtAuthentication`.
//!
//! ```yaml
//! namespace:
//!   mqtt:
//!     customJwtAuthentication:
//!       tokenIssuer: https://issuer.example.com/       # the tokens' `iss` claim
//!       issuerCertificates:                            # verify the tokens' signatures
//!         - { kid: key-1, file: pki/jwt-issuer.pem }   # a PEM file, relative to the spec
//!         - kid: key-2                                 # or the PEM inline
//!           pem: |
//!             -----BEGIN CERTIFICATE-----
//!             …
//! ```
//!
//! Only the preview api-versions have `clientAuthentication` (Event Grid `2026-06-15-preview`,
//! `CustomJwtAuthenticationSettings`): a stable `apiVersions.namespace` is a validation error.
//! The certificates are sent as `encodedIssuerCertificates` (`{kid, encodedCertificate}`), in the
//! one-line PEM form Event Grid takes for CA certificates; Key Vault certificates
//! (`issuerCertificates` with `certificateUrl`) are not supported by e4k.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{
    model::one_line_pem,
    spec::Spec,
    validate::{Problem, Severity},
};
use crate::{Error, Result, certs::read_certificates};

/// The custom JWT settings of a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CustomJwtAuthentication {
    /// The issuer the tokens must name (`iss`): an `https://` URL.
    pub token_issuer: String,
    /// The certificates whose public keys verify the tokens (at least one).
    pub issuer_certificates: Vec<IssuerCertificate>,
}

/// One certificate that verifies tokens: a PEM file or inline PEM, and its key id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IssuerCertificate {
    /// The key id, as the tokens' `kid` header names this certificate.
    pub kid: String,
    /// A PEM (or DER) file holding one certificate, relative to the spec file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The certificate as PEM text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
}

/// The one certificate an entry holds, as DER; the error is a message for its spec path.
fn certificate(entry: &IssuerCertificate, spec_dir: &Path) -> Result<Vec<u8>, String> {
    let ders = match (&entry.file, &entry.pem) {
        (Some(_), Some(_)) => return Err("give either file or pem, not both".into()),
        (None, None) => {
            return Err("give the certificate: file (a PEM file) or pem (inline)".into());
        }
        (Some(file), None) => {
            let path = spec_dir.join(file);
            read_certificates(&path)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|der| der.to_vec())
                .collect::<Vec<_>>()
        }
        (None, Some(text)) => crate::certs::pem_certificates(text.as_bytes())
            .into_iter()
            .map(|der| der.to_vec())
            .collect(),
    };
    match ders.as_slice() {
        [] => Err("holds no PEM CERTIFICATE block".into()),
        [der] => match X509Certificate::from_der(der) {
            Ok(_) => Ok(der.clone()),
            Err(e) => Err(format!("is not a valid X.509 certificate: {e}")),
        },
        many => Err(format!(
            "holds {} certificates; give each its own entry and kid",
            many.len()
        )),
    }
}

/// Appends the problems of `namespace.mqtt.customJwtAuthentication` to `problems`.
pub(crate) fn validate(spec: &Spec, spec_dir: &Path, problems: &mut Vec<Problem>) {
    let Some(jwt) = &spec.namespace.mqtt.custom_jwt_authentication else {
        return;
    };
    let base = "namespace.mqtt.customJwtAuthentication";
    let mut push = |severity, path: String, message: String| {
        problems.push(Problem {
            severity,
            path,
            message,
        });
    };
    if !spec.api_versions.namespace.ends_with("-preview") {
        push(
            Severity::Error,
            base.to_owned(),
            format!(
                "needs a preview api-version (clientAuthentication is not in {}); remove apiVersions.namespace to use the default",
                spec.api_versions.namespace
            ),
        );
    }
    match url::Url::parse(&jwt.token_issuer) {
        Ok(url) if url.scheme() == "https" && url.host_str().is_some() => {}
        Ok(_) => push(
            Severity::Error,
            format!("{base}.tokenIssuer"),
            format!(
                "{:?} is not an https URL: Event Grid compares it with the tokens' iss claim, e.g. https://issuer.example.com/",
                jwt.token_issuer
            ),
        ),
        Err(e) => push(
            Severity::Error,
            format!("{base}.tokenIssuer"),
            format!("{:?} is not a URL ({e}): use https://…", jwt.token_issuer),
        ),
    }
    if jwt.issuer_certificates.is_empty() {
        push(
            Severity::Error,
            format!("{base}.issuerCertificates"),
            "give at least one certificate to verify the tokens with".into(),
        );
    }
    let now = OffsetDateTime::now_utc();
    let mut kids: Vec<String> = Vec::new();
    for (i, entry) in jwt.issuer_certificates.iter().enumerate() {
        let path = format!("{base}.issuerCertificates[{i}]");
        if entry.kid.trim().is_empty() {
            push(
                Severity::Error,
                format!("{path}.kid"),
                "the key id is empty".into(),
            );
        } else if let Some(first) = kids.iter().position(|k| *k == entry.kid) {
            push(
                Severity::Error,
                format!("{path}.kid"),
                format!(
                    "{:?} is already used by issuerCertificates[{first}]",
                    entry.kid
                ),
            );
        }
        kids.push(entry.kid.clone());
        let field = if entry.file.is_some() && entry.pem.is_none() {
            "file"
        } else {
            "pem"
        };
        match certificate(entry, spec_dir) {
            Ok(der) => {
                if let Ok((_, cert)) = X509Certificate::from_der(&der) {
                    let not_after = cert.validity().not_after.to_datetime();
                    if not_after <= now {
                        push(
                            Severity::Warning,
                            format!("{path}.{field}"),
                            format!("expired on {}", crate::certs::rfc3339(not_after)),
                        );
                    }
                }
            }
            Err(message) if entry.file.is_some() != entry.pem.is_some() => {
                push(Severity::Error, format!("{path}.{field}"), message);
            }
            Err(message) => push(Severity::Error, path, message),
        }
    }
}

/// The `customJwtAuthentication` object of the namespace, when the spec has one.
///
/// # Errors
/// [`Error::Spec`] when a certificate cannot be read (validation reports it first).
pub(crate) fn render(spec: &Spec, spec_dir: &Path, spec_path: &Path) -> Result<Option<Value>> {
    let Some(jwt) = &spec.namespace.mqtt.custom_jwt_authentication else {
        return Ok(None);
    };
    let mut certificates = Vec::new();
    for (i, entry) in jwt.issuer_certificates.iter().enumerate() {
        let der = certificate(entry, spec_dir).map_err(|message| {
            Error::spec(
                spec_path,
                format!(
                    "namespace.mqtt.customJwtAuthentication.issuerCertificates[{i}]: {message}"
                ),
            )
        })?;
        certificates.push(json!({ "kid": entry.kid, "encodedCertificate": one_line_pem(&der) }));
    }
    Ok(Some(json!({
        "tokenIssuer": jwt.token_issuer,
        "encodedIssuerCertificates": certificates,
    })))
}
