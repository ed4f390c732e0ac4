//! Service principal certificate credentials without OpenSSL.
//!
//! Entra ID accepts a client assertion: a JWT signed RS256 with the certificate's RSA key,
//! whose header names the certificate by its SHA-1 thumbprint (`x5t`), with `aud` = the token
//! endpoint, `iss` = `sub` = the client id, a fresh `jti` and a short lifetime. azure_identity
//! builds it with OpenSSL in its `client_certificate` feature; e4k builds it with the crypto it
//! already has (rcgen over aws-lc) and hands it to `ClientAssertionCredential`.

use std::{fmt, path::Path, sync::Arc};

use azure_core::credentials::TokenCredential;
use azure_identity::{ClientAssertion, ClientAssertionCredential};
use base64::Engine as _;
use rcgen::{KeyPair, PKCS_RSA_SHA256, SigningKey as _};
use sha1::Digest as _;
use time::OffsetDateTime;

use crate::{Error, Result, certs::read_certificates};

/// How long an assertion is valid (azure_identity uses the same).
const ASSERTION_LIFETIME_SECS: i64 = 600;
/// Entra ID's default authority (`AZURE_AUTHORITY_HOST` overrides it).
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// Signs client assertions with a certificate's key.
pub struct CertificateAssertion {
    client_id: String,
    audience: String,
    header: String,
    key: KeyPair,
}

impl fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("client_id", &self.client_id)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl CertificateAssertion {
    /// Reads a PEM file holding the certificate and its unencrypted RSA private key (as
    /// `AZURE_CLIENT_CERTIFICATE_PATH` points to; a PKCS#12 file must be converted first).
    ///
    /// # Errors
    /// [`Error::Read`], [`Error::BadFile`] (no certificate, no key, not RSA, not matching),
    /// [`Error::PasswordNeeded`] for an encrypted key.
    pub fn from_pem_file(
        path: &Path,
        tenant_id: &str,
        client_id: &str,
        authority: &str,
    ) -> Result<Self> {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("pfx") || e.eq_ignore_ascii_case("p12"))
        {
            return Err(Error::bad_file(
                path,
                "PKCS#12 is not read; convert it: openssl pkcs12 -in cert.pfx -out cert.pem -nodes",
            ));
        }
        let der = read_certificates(path)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::bad_file(path, "no certificate found"))?;
        let key = crate::certs::load_key(
            path,
            None,
            "an unencrypted key (openssl pkey -in KEY -out PLAIN)",
        )?;
        if key.algorithm() != &PKCS_RSA_SHA256 {
            return Err(Error::bad_file(
                path,
                "Entra ID client assertions need an RSA certificate and key",
            ));
        }
        let thumbprint =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&der));
        let header = format!(r#"{{"alg":"RS256","typ":"JWT","x5t":"{thumbprint}"}}"#);
        Ok(Self {
            client_id: client_id.to_owned(),
            audience: format!(
                "{}/{tenant_id}/oauth2/v2.0/token",
                authority.trim_end_matches('/')
            ),
            header: b64(header.as_bytes()),
            key,
        })
    }

    /// A signed assertion, valid from now for ten minutes.
    ///
    /// # Errors
    /// [`Error::Crypto`] when signing fails.
    pub fn assertion(&self) -> Result<String> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = serde_json::json!({
            "aud": self.audience,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let signed = format!("{}.{}", self.header, b64(claims.to_string().as_bytes()));
        let signature = self
            .key
            .sign(signed.as_bytes())
            .map_err(|e| Error::crypto("signing the client assertion", e))?;
        Ok(format!("{signed}.{}", b64(&signature)))
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[async_trait::async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(
        &self,
        _options: Option<azure_core::http::ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        self.assertion().map_err(|e| {
            azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, e.to_string())
        })
    }
}

/// The credential of a service principal with a certificate.
///
/// # Errors
/// As [`CertificateAssertion::from_pem_file`], and [`Error::Credential`] when azure_identity
/// refuses the tenant or client id.
pub fn certificate_credential(
    path: &Path,
    tenant_id: &str,
    client_id: &str,
    authority: &str,
) -> Result<Arc<dyn TokenCredential>> {
    let assertion = CertificateAssertion::from_pem_file(path, tenant_id, client_id, authority)?;
    let credential =
        ClientAssertionCredential::new(tenant_id.to_owned(), client_id.to_owned(), assertion, None)
            .map_err(|e| Error::Credential {
                reason: format!("service principal certificate: {e}"),
            })?;
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, RsaKeySize};

    #[test]
    fn the_assertion_is_an_rs256_jwt_signed_by_the_certificate_key() {
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap();
        let cert = CertificateParams::new(vec!["sp".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sp.pem");
        std::fs::write(&path, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
        let assertion =
            CertificateAssertion::from_pem_file(&path, "tenant", "client", DEFAULT_AUTHORITY)
                .unwrap();
        assert!(!format!("{assertion:?}").contains("PRIVATE"));
        let jwt = assertion.assertion().unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap()
        };
        let header: serde_json::Value = serde_json::from_slice(&decode(parts[0])).unwrap();
        assert_eq!(header["alg"], "RS256");
        let thumbprint = b64(&sha1::Sha1::digest(cert.der()));
        assert_eq!(header["x5t"], thumbprint);
        let claims: serde_json::Value = serde_json::from_slice(&decode(parts[1])).unwrap();
        assert_eq!(
            claims["aud"],
            "https://login.microsoftonline.com/tenant/oauth2/v2.0/token"
        );
        assert_eq!(
            (claims["iss"].as_str(), claims["sub"].as_str()),
            (Some("client"), Some("client"))
        );
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["nbf"].as_i64().unwrap(),
            600
        );
        // The signature verifies with the certificate's public key (RSA PKCS#1 v1.5 SHA-256).
        let end_entity = webpki::EndEntityCert::try_from(cert.der()).unwrap();
        end_entity
            .verify_signature(
                webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &decode(parts[2]),
            )
            .unwrap();
    }

    #[test]
    fn ec_keys_and_pkcs12_are_refused() {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["sp".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sp.pem");
        std::fs::write(&path, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
        let err =
            CertificateAssertion::from_pem_file(&path, "t", "c", DEFAULT_AUTHORITY).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("Entra ID client assertions need an RSA certificate and key"),
            "{err}"
        );
        let err =
            CertificateAssertion::from_pem_file(Path::new("x.pfx"), "t", "c", DEFAULT_AUTHORITY)
                .unwrap_err();
        assert!(err.to_string().contains("openssl pkcs12"), "{err}");
    }
}
