//! The emulator's own token issuer: a local stand-in for Microsoft Entra ID (and for any
//! OpenID Connect provider a namespace's `customJwtAuthentication` names).
//!
//! - [`TokenIssuer`] holds an RSA-2048 key made at start, a self-signed certificate over it
//!   (the PEM a namespace's `encodedIssuerCertificates` would hold) and the issuer URL, and
//!   signs RS256 JWTs for a [`TokenRequest`]. Tests make tokens with it directly (expired ones,
//!   other audiences, unknown principals) and make other issuers with [`TokenIssuer::new`].
//! - `endpoint` answers App Service's managed-identity protocol (`IDENTITY_ENDPOINT` +
//!   `IDENTITY_HEADER`, api-version 2019-08-01) on the ARM server's `/msi/token`, which is
//!   what `azure_identity::ManagedIdentityCredential` speaks when those variables are set.
//! - [`DataRole`] names the built-in Event Grid data roles a role assignment grants; `roles`
//!   stores and reads the role assignments of the state.
//!
//! RS256 because CUSTOM-JWT accepts only RS256 ("`alg` must always be `RS256`",
//! authenticate-with-namespaces-using-json-web-tokens.md) and Entra ID signs with it too.

pub(crate) mod endpoint;
pub(crate) mod roles;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rcgen::{CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose};
use serde_json::{Map, Value, json};

use crate::{EmulatorError, IdentityConfig};

/// The audience Event Grid's MQTT broker requires of a Microsoft Entra ID token (`OAUTH2-JWT`).
pub const EVENT_GRID_AUDIENCE: &str = "https://eventgrid.azure.net/";
/// The principal id the identity endpoint issues tokens for unless configured otherwise.
pub const DEFAULT_PRINCIPAL_ID: &str = "e4e4e4e4-0000-4000-8000-000000000001";
/// The client (application) id of the emulator's managed identity by default.
pub const DEFAULT_CLIENT_ID: &str = "e4e4e4e4-0000-4000-8000-000000000002";
/// The tenant id of the emulator's tokens by default.
pub const DEFAULT_TENANT_ID: &str = "e4e4e4e4-0000-4000-8000-00000000000a";
/// The `X-IDENTITY-HEADER` value the identity endpoint expects by default (`IDENTITY_HEADER`).
pub const DEFAULT_IDENTITY_HEADER: &str = "e4k-emulator-identity";

/// How far `NotBefore` of the issuer certificate lies in the past.
const BACKDATE: time::Duration = time::Duration::minutes(5);
/// How long the issuer certificate is valid.
const CERT_VALIDITY: time::Duration = time::Duration::days(365);

/// The built-in Azure roles that give a Microsoft Entra principal MQTT data access to topic
/// spaces (mqtt-client-microsoft-entra-token-and-rbac.md; ids from the built-in roles list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataRole {
    /// "EventGrid TopicSpaces Publisher": publish to the topic spaces in scope.
    Publisher,
    /// "EventGrid TopicSpaces Subscriber": subscribe to and receive from them.
    Subscriber,
}

impl DataRole {
    /// The role definition's GUID.
    pub const fn guid(self) -> &'static str {
        match self {
            Self::Publisher => "a12b0b94-b317-4dcd-84a8-502ce99884c6",
            Self::Subscriber => "4b0f2fd7-60b4-4eca-896f-4435034f8bf5",
        }
    }

    /// The role's display name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Publisher => "EventGrid TopicSpaces Publisher",
            Self::Subscriber => "EventGrid TopicSpaces Subscriber",
        }
    }

    /// The `roleDefinitionId` of a role assignment in `subscription`, as ARM writes it.
    pub fn definition_id(self, subscription: &str) -> String {
        format!(
            "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{}",
            self.guid()
        )
    }

    /// The role a `roleDefinitionId` (a full id or the bare GUID) names, if it is one of the two.
    pub fn from_definition_id(id: &str) -> Option<Self> {
        let guid = id.rsplit('/').next().unwrap_or(id);
        [Self::Publisher, Self::Subscriber]
            .into_iter()
            .find(|role| role.guid().eq_ignore_ascii_case(guid))
    }
}

/// What a token says; build one with [`TokenRequest::entra`] or [`TokenRequest::custom`].
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use e4k_emulator::identity::{TokenRequest, EVENT_GRID_AUDIENCE};
///
/// // A token that expired a minute ago, for a principal no role names.
/// let expired = TokenRequest::entra("00000000-0000-0000-0000-00000000dead", EVENT_GRID_AUDIENCE)
///     .issued_at(SystemTime::now() - Duration::from_secs(120))
///     .lifetime(Duration::from_secs(60));
/// # let _ = expired;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TokenRequest {
    /// `sub` (and for Entra tokens `oid`).
    pub subject: String,
    /// `aud`.
    pub audience: String,
    /// `exp` - `iat` (default 1 hour).
    pub lifetime: Duration,
    /// `iat` and `nbf` (default now).
    pub issued_at: SystemTime,
    /// `iss` instead of the issuer's own URL (to make a token a namespace does not trust).
    pub issuer: Option<String>,
    /// Whether to add Entra's `oid`, `tid`, `appid` and `ver` claims.
    pub entra: bool,
    /// More claims (CUSTOM-JWT maps int32, string and string-array claims to client
    /// attributes); they override the standard ones of the same name.
    pub claims: Map<String, Value>,
}

impl TokenRequest {
    /// A Microsoft Entra ID style token for the principal (object) id `principal`.
    pub fn entra(principal: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            entra: true,
            ..Self::custom(principal, audience)
        }
    }

    /// A CUSTOM-JWT token whose `sub` (the authentication name) is `subject`.
    pub fn custom(subject: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            audience: audience.into(),
            lifetime: Duration::from_secs(3600),
            issued_at: SystemTime::now(),
            issuer: None,
            entra: false,
            claims: Map::new(),
        }
    }

    /// Sets the lifetime.
    #[must_use]
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Sets `iat`/`nbf` (a time in the past makes an expired token, one in the future a token
    /// not valid yet).
    #[must_use]
    pub fn issued_at(mut self, at: SystemTime) -> Self {
        self.issued_at = at;
        self
    }

    /// Sets `iss` to another issuer than the signing one.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Adds a claim.
    #[must_use]
    pub fn claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.claims.insert(name.into(), value);
        self
    }
}

/// An RSA signing key, its self-signed certificate and an issuer URL.
pub struct TokenIssuer {
    issuer: String,
    kid: String,
    certificate_pem: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    tenant_id: String,
    client_id: String,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn identity_error(what: &str) -> impl FnOnce(String) -> EmulatorError + '_ {
    move |reason| EmulatorError::Identity {
        reason: format!("{what}: {reason}"),
    }
}

impl TokenIssuer {
    /// Makes a new RSA-2048 key and a self-signed certificate over it, for `issuer` (the
    /// `iss` of its tokens).
    pub fn new(issuer: impl Into<String>) -> Result<Self, EmulatorError> {
        Self::with_identity(issuer.into(), DEFAULT_TENANT_ID, DEFAULT_CLIENT_ID)
    }

    pub(crate) fn with_identity(
        issuer: String,
        tenant_id: &str,
        client_id: &str,
    ) -> Result<Self, EmulatorError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
            .map_err(|e| identity_error("generating the RSA key")(e.to_string()))?;
        let now = time::OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "e4k emulator");
        params
            .distinguished_name
            .push(DnType::CommonName, "e4k emulator token issuer");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = now - BACKDATE;
        params.not_after = now + CERT_VALIDITY;
        let cert = params
            .self_signed(&key)
            .map_err(|e| identity_error("signing the issuer certificate")(e.to_string()))?;
        let encoding = EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes())
            .map_err(|e| identity_error("loading the signing key")(e.to_string()))?;
        let decoding = public_key(cert.der()).map_err(identity_error("reading the public key"))?;
        Ok(Self {
            issuer,
            kid: thumbprint(cert.der()),
            certificate_pem: cert.pem(),
            encoding,
            decoding,
            tenant_id: tenant_id.to_owned(),
            client_id: client_id.to_owned(),
        })
    }

    /// The issuer URL (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key id (`kid` and `x5t` of each token header): the base64url SHA-1 thumbprint of
    /// the certificate, as Entra ID writes it.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The self-signed certificate over the signing key, PEM (what
    /// `customJwtAuthentication.encodedIssuerCertificates[].encodedCertificate` holds).
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The public key, for verification.
    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Signs a token for `request` (RS256; header `typ`, `alg`, `kid`, `x5t`).
    pub fn token(&self, request: &TokenRequest) -> Result<String, EmulatorError> {
        let iat = unix_seconds(request.issued_at);
        let exp = unix_seconds(request.issued_at + request.lifetime);
        let mut claims = json!({
            "iss": request.issuer.as_deref().unwrap_or(&self.issuer),
            "aud": request.audience,
            "sub": request.subject,
            "iat": iat,
            "nbf": iat,
            "exp": exp,
        });
        if request.entra
            && let Some(map) = claims.as_object_mut()
        {
            map.insert("oid".into(), json!(request.subject));
            map.insert("tid".into(), json!(self.tenant_id));
            map.insert("appid".into(), json!(self.client_id));
            map.insert("ver".into(), json!("1.0"));
        }
        if let Some(map) = claims.as_object_mut() {
            map.extend(request.claims.clone());
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.x5t = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| identity_error("signing a token")(e.to_string()))
    }
}

/// The emulator's identity: its issuer and who the endpoint issues tokens for.
#[derive(Debug)]
pub(crate) struct Identity {
    /// The signing key and issuer URL.
    pub(crate) issuer: TokenIssuer,
    /// The managed identity the endpoint serves.
    pub(crate) config: IdentityConfig,
}

impl Identity {
    /// Makes the key; the issuer URL is `{base_url}/{tenant}/`, like Entra ID's
    /// `https://sts.windows.net/{tenant}/`.
    pub(crate) fn new(config: IdentityConfig, base_url: &str) -> Result<Self, EmulatorError> {
        let issuer = format!("{}/{}/", base_url.trim_end_matches('/'), config.tenant_id);
        Ok(Self {
            issuer: TokenIssuer::with_identity(issuer, &config.tenant_id, &config.client_id)?,
            config,
        })
    }
}

/// Seconds since the epoch (0 before it).
pub(crate) fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The RSA public key of a certificate (DER), for RS256 verification.
pub(crate) fn public_key(certificate_der: &[u8]) -> Result<DecodingKey, String> {
    const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
    let (_, cert) = x509_parser::parse_x509_certificate(certificate_der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm.to_id_string() != RSA_ENCRYPTION {
        return Err("the certificate's key is not an RSA key (RS256 needs one)".into());
    }
    Ok(DecodingKey::from_rsa_der(&spki.subject_public_key.data))
}

/// base64url (no padding) of the certificate's SHA-1: the JOSE `x5t`.
fn thumbprint(der: &[u8]) -> String {
    use sha1::Digest as _;
    base64url(&sha1::Sha1::digest(der))
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Validation, decode};

    #[test]
    fn roles_are_read_from_definition_ids() {
        let id = DataRole::Publisher.definition_id("s1");
        assert!(id.ends_with("/roleDefinitions/a12b0b94-b317-4dcd-84a8-502ce99884c6"));
        assert_eq!(DataRole::from_definition_id(&id), Some(DataRole::Publisher));
        assert_eq!(
            DataRole::from_definition_id("4B0F2FD7-60B4-4ECA-896F-4435034F8BF5"),
            Some(DataRole::Subscriber)
        );
        assert_eq!(
            DataRole::from_definition_id("/x/roleDefinitions/other"),
            None
        );
    }

    #[test]
    fn base64url_matches_rfc_4648_vectors() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn tokens_verify_with_the_certificate_key() {
        let issuer = TokenIssuer::new("https://issuer.test/").unwrap();
        let token = issuer
            .token(
                &TokenRequest::entra("p1", EVENT_GRID_AUDIENCE)
                    .lifetime(Duration::from_secs(20))
                    .claim("extra", json!(3)),
            )
            .unwrap();
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(issuer.certificate_pem().as_bytes()).unwrap();
        let key = public_key(&pem.contents).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[EVENT_GRID_AUDIENCE]);
        validation.set_issuer(&["https://issuer.test/"]);
        let data = decode::<Map<String, Value>>(&token, &key, &validation).unwrap();
        assert_eq!(data.claims["oid"], "p1");
        assert_eq!(data.claims["sub"], "p1");
        assert_eq!(data.claims["extra"], 3);
        let lifetime = data.claims["exp"].as_u64().unwrap() - data.claims["iat"].as_u64().unwrap();
        assert_eq!(lifetime, 20);
        assert_eq!(data.header.kid.as_deref(), Some(issuer.kid()));
        // Another issuer's key does not verify it.
        let other = TokenIssuer::new("https://issuer.test/").unwrap();
        assert!(decode::<Map<String, Value>>(&token, other.decoding_key(), &validation).is_err());
    }
}
