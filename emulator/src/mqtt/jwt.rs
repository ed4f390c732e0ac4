//! JWT authentication of MQTT 5 clients, as Event Grid does it: which namespace and identity a
//! token stands for, or why it is refused.
//!
//! - `OAUTH2-JWT` (mqtt-client-microsoft-entra-token-and-rbac.md): a Microsoft Entra ID token;
//!   here one the emulator's own [`TokenIssuer`] signed (RS256) with its issuer URL as `iss`,
//!   `aud` = `https://eventgrid.azure.net/` (the docs' value; the same without the trailing
//!   slash is accepted too, which is what the `https://eventgrid.azure.net/.default` scope
//!   yields from a token endpoint), `exp` and (if present) `nbf` in force, and an `oid`. The
//!   principal must hold an EventGrid TopicSpaces Publisher or Subscriber role assignment in
//!   the namespace.
//! - `CUSTOM-JWT` (authenticate-with-namespaces-using-json-web-tokens.md): `iss` must be a
//!   namespace's `customJwtAuthentication.tokenIssuer`, the RS256 signature must verify with
//!   one of its `encodedIssuerCertificates` (the one whose `kid` the header names, else any),
//!   `iss`, `sub`, `aud`, `exp`, `nbf` are required, `aud` must contain the namespace
//!   hostname (as `host`, `host/`, `https://host` or `https://host/`). `sub` is the
//!   authentication name; the other claims of type int32, string or string array become client
//!   attributes (`iss`, `sub`, `aud`, `exp`, `nbf` excluded).
//!
//! No clock leeway: a token is refused from the second its `exp` has passed. The namespace is
//! the one whose hostname the client sent in SNI, else the first MQTT-enabled namespace that
//! accepts the token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value};

use super::model::{NamespaceView, View};
use super::packet::Refusal;
use crate::identity::{EVENT_GRID_AUDIENCE, TokenIssuer, public_key};

/// A CONNECT authentication method Event Grid knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    /// `OAUTH2-JWT`: Microsoft Entra ID.
    Entra,
    /// `CUSTOM-JWT`: the namespace's own issuer.
    Custom,
}

impl Method {
    /// The method a CONNECT names.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "OAUTH2-JWT" => Some(Self::Entra),
            "CUSTOM-JWT" => Some(Self::Custom),
            _ => None,
        }
    }

    /// Its name on the wire.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Entra => "OAUTH2-JWT",
            Self::Custom => "CUSTOM-JWT",
        }
    }
}

/// Who a valid token stands for.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Verified {
    /// How it authenticated.
    pub(crate) method: Method,
    /// The namespace name.
    pub(crate) namespace: String,
    /// The `oid` (lowercase) or the `sub`.
    pub(crate) authentication_name: String,
    /// Client attributes from the claims (CUSTOM-JWT only).
    pub(crate) attributes: Map<String, Value>,
    /// `exp`.
    pub(crate) expires: SystemTime,
}

/// Why a token is refused: the CONNACK code and the cause to log (never the token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// What the client is told.
    pub(crate) refusal: Refusal,
    /// What the log says.
    pub(crate) cause: String,
}

fn bad(cause: impl Into<String>) -> Rejection {
    Rejection {
        refusal: Refusal::BadCredentials,
        cause: cause.into(),
    }
}

/// Which namespace a token is checked against.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pick<'a> {
    /// The one whose hostname is this SNI name, else any MQTT-enabled one.
    Sni(Option<&'a str>),
    /// This one (re-authentication stays in the session's namespace).
    Namespace(&'a str),
}

fn candidates<'a>(view: &'a View, pick: Pick<'_>) -> Vec<&'a NamespaceView> {
    let enabled = view.namespaces.iter().filter(|ns| ns.enabled);
    match pick {
        Pick::Namespace(name) => enabled.filter(|ns| ns.name == name).collect(),
        Pick::Sni(sni) => {
            let all: Vec<_> = enabled.collect();
            let by_name: Vec<_> = all
                .iter()
                .copied()
                .filter(|ns| {
                    sni.is_some_and(|sni| {
                        ns.hostname
                            .as_deref()
                            .is_some_and(|h| h.eq_ignore_ascii_case(sni))
                    })
                })
                .collect();
            if by_name.len() == 1 { by_name } else { all }
        }
    }
}

/// Checks `token` for `method`.
pub(crate) fn verify(
    view: &View,
    issuer: &TokenIssuer,
    method: Method,
    token: &[u8],
    pick: Pick<'_>,
) -> Result<Verified, Rejection> {
    let token = std::str::from_utf8(token).map_err(|_| bad("the token is not UTF-8"))?;
    let namespaces = candidates(view, pick);
    if namespaces.is_empty() {
        return Err(Rejection {
            refusal: Refusal::Unavailable,
            cause: "no MQTT-enabled namespace".into(),
        });
    }
    match method {
        Method::Entra => verify_entra(&namespaces, issuer, token),
        Method::Custom => verify_custom(&namespaces, token),
    }
}

fn validation(issuer: &str, audiences: &[String], required: &[&str]) -> Validation {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.set_issuer(&[issuer]);
    validation.set_audience(audiences);
    validation.set_required_spec_claims(required);
    validation
}

/// What is wrong with a token, in words for the log.
fn cause(error: &jsonwebtoken::errors::Error) -> String {
    match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired (exp)".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => "the token is for another audience (aud)".into(),
        ErrorKind::InvalidIssuer => "the token has another issuer (iss)".into(),
        ErrorKind::InvalidSignature => "the signature does not verify".into(),
        ErrorKind::InvalidAlgorithm => "the token is not signed with RS256".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        other => format!("the token is malformed ({other:?})"),
    }
}

fn expiry(claims: &Map<String, Value>) -> SystemTime {
    let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(exp)
}

fn verify_entra(
    namespaces: &[&NamespaceView],
    issuer: &TokenIssuer,
    token: &str,
) -> Result<Verified, Rejection> {
    let audiences = [
        EVENT_GRID_AUDIENCE.to_owned(),
        EVENT_GRID_AUDIENCE.trim_end_matches('/').to_owned(),
    ];
    let validation = validation(issuer.issuer(), &audiences, &["exp", "iss", "aud"]);
    let data = decode::<Map<String, Value>>(token, issuer.decoding_key(), &validation)
        .map_err(|e| bad(cause(&e)))?;
    let principal = data
        .claims
        .get("oid")
        .and_then(Value::as_str)
        .filter(|oid| !oid.is_empty())
        .ok_or_else(|| bad("the token has no oid claim"))?
        .to_lowercase();
    let namespace = namespaces
        .iter()
        .find(|ns| ns.has_role(&principal))
        .ok_or_else(|| Rejection {
            refusal: Refusal::NotAuthorized,
            cause: format!(
                "principal {principal} has no EventGrid TopicSpaces Publisher or Subscriber role \
                 assignment in namespace {}",
                namespaces
                    .iter()
                    .map(|ns| ns.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
    Ok(Verified {
        method: Method::Entra,
        namespace: namespace.name.clone(),
        authentication_name: principal,
        attributes: Map::new(),
        expires: expiry(&data.claims),
    })
}

/// The audiences a CUSTOM-JWT token for a namespace at `hostname` may name.
fn namespace_audiences(hostname: &str) -> Vec<String> {
    let host = hostname.trim_end_matches('/');
    vec![
        host.to_owned(),
        format!("{host}/"),
        format!("https://{host}"),
        format!("https://{host}/"),
    ]
}

fn verify_custom(namespaces: &[&NamespaceView], token: &str) -> Result<Verified, Rejection> {
    let claims: Map<String, Value> =
        jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(|e| bad(cause(&e)))?;
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("the token has no iss claim"))?;
    let kid = decode_header(token).map_err(|e| bad(cause(&e)))?.kid;
    let mut last = None;
    for namespace in namespaces {
        let Some(custom) = namespace.custom_jwt.as_ref().filter(|c| c.issuer == iss) else {
            continue;
        };
        let Some(hostname) = namespace.hostname.as_deref() else {
            last = Some(bad(format!(
                "namespace {} has no hostname yet",
                namespace.name
            )));
            continue;
        };
        let validation = validation(
            iss,
            &namespace_audiences(hostname),
            &["exp", "nbf", "iss", "aud", "sub"],
        );
        let named = kid
            .as_deref()
            .filter(|kid| custom.certificates.iter().any(|(k, _)| k == kid));
        let keys = custom
            .certificates
            .iter()
            .filter(|(k, _)| named.is_none_or(|kid| k == kid))
            .filter_map(|(_, der)| public_key(der).ok());
        let keys: Vec<DecodingKey> = keys.collect();
        if keys.is_empty() {
            last = Some(bad(format!(
                "namespace {} has no usable RSA certificate in encodedIssuerCertificates",
                namespace.name
            )));
        }
        for key in &keys {
            match decode::<Map<String, Value>>(token, key, &validation) {
                Ok(data) => {
                    let sub = data
                        .claims
                        .get("sub")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| bad("the token's sub claim is empty"))?
                        .to_owned();
                    return Ok(Verified {
                        method: Method::Custom,
                        namespace: namespace.name.clone(),
                        authentication_name: sub,
                        attributes: attributes(&data.claims),
                        expires: expiry(&data.claims),
                    });
                }
                Err(e) => last = Some(bad(cause(&e))),
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        bad(format!(
            "no MQTT-enabled namespace has customJwtAuthentication with tokenIssuer {iss}"
        ))
    }))
}

/// The client attributes of a CUSTOM-JWT token: claims of type int32, string or array of
/// strings, except `iss`, `sub`, `aud`, `exp`, `nbf`.
fn attributes(claims: &Map<String, Value>) -> Map<String, Value> {
    claims
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "iss" | "sub" | "aud" | "exp" | "nbf"))
        .filter(|(_, value)| match value {
            Value::String(_) => true,
            Value::Number(n) => n.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => false,
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{DataRole, TokenRequest, roles::RoleGrant};
    use crate::mqtt::model::CustomJwt;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn namespace(name: &str) -> NamespaceView {
        NamespaceView {
            name: name.into(),
            hostname: Some(format!("{name}.local")),
            enabled: true,
            max_sessions: 1,
            name_sources: Vec::new(),
            cas: Vec::new(),
            clients: Vec::new(),
            groups: BTreeMap::new(),
            topic_spaces: BTreeMap::new(),
            bindings: Vec::new(),
            role_grants: Vec::new(),
            custom_jwt: None,
        }
    }

    #[test]
    fn entra_tokens_need_the_issuer_audience_time_and_a_role() {
        let issuer = TokenIssuer::new("http://emulator/tenant/").unwrap();
        let mut ns = namespace("ns1");
        ns.role_grants.push(RoleGrant {
            principal: "p1".into(),
            role: DataRole::Publisher,
            topic_space: None,
        });
        let view = View {
            namespaces: vec![namespace("other"), ns],
            generation: 0,
        };
        let check = |request: TokenRequest| {
            let token = issuer.token(&request).unwrap();
            verify(
                &view,
                &issuer,
                Method::Entra,
                token.as_bytes(),
                Pick::Sni(None),
            )
        };
        let ok = check(TokenRequest::entra("P1", EVENT_GRID_AUDIENCE)).unwrap();
        assert_eq!(
            (ok.namespace.as_str(), ok.authentication_name.as_str()),
            ("ns1", "p1")
        );
        assert!(check(TokenRequest::entra("p1", "https://eventgrid.azure.net")).is_ok());
        let refused = |request| check(request).unwrap_err();
        assert_eq!(
            refused(TokenRequest::entra("p2", EVENT_GRID_AUDIENCE)).refusal,
            Refusal::NotAuthorized
        );
        let wrong_aud = refused(TokenRequest::entra("p1", "https://management.azure.com/"));
        assert_eq!(wrong_aud.refusal, Refusal::BadCredentials);
        assert!(wrong_aud.cause.contains("aud"), "{}", wrong_aud.cause);
        let past = SystemTime::now() - Duration::from_secs(100);
        let expired = refused(
            TokenRequest::entra("p1", EVENT_GRID_AUDIENCE)
                .issued_at(past)
                .lifetime(Duration::from_secs(10)),
        );
        assert!(expired.cause.contains("expired"), "{}", expired.cause);
        let future = SystemTime::now() + Duration::from_secs(100);
        let early = refused(TokenRequest::entra("p1", EVENT_GRID_AUDIENCE).issued_at(future));
        assert!(early.cause.contains("nbf"), "{}", early.cause);
        let other_iss =
            refused(TokenRequest::entra("p1", EVENT_GRID_AUDIENCE).issuer("https://x/"));
        assert!(other_iss.cause.contains("iss"), "{}", other_iss.cause);
        let stranger = TokenIssuer::new(issuer.issuer()).unwrap();
        let foreign = stranger
            .token(&TokenRequest::entra("p1", EVENT_GRID_AUDIENCE))
            .unwrap();
        let rejected = verify(
            &view,
            &issuer,
            Method::Entra,
            foreign.as_bytes(),
            Pick::Sni(None),
        );
        assert!(rejected.unwrap_err().cause.contains("signature"));
        let garbage = verify(&view, &issuer, Method::Entra, b"not-a-jwt", Pick::Sni(None));
        assert_eq!(garbage.unwrap_err().refusal, Refusal::BadCredentials);
    }

    #[test]
    fn custom_tokens_need_the_namespace_issuer_and_hostname() {
        let idp = TokenIssuer::new("https://idp.example/").unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(idp.certificate_pem().as_bytes()).unwrap();
        let mut ns = namespace("ns1");
        ns.custom_jwt = Some(CustomJwt {
            issuer: idp.issuer().into(),
            certificates: vec![(idp.kid().into(), pem.contents.into())],
        });
        let view = View {
            namespaces: vec![ns],
            generation: 0,
        };
        let check = |issuer: &TokenIssuer, request: TokenRequest| {
            let token = issuer.token(&request).unwrap();
            verify(
                &view,
                issuer,
                Method::Custom,
                token.as_bytes(),
                Pick::Sni(None),
            )
        };
        let ok = check(
            &idp,
            TokenRequest::custom("d1", "https://ns1.local/")
                .claim("room", json!(7))
                .claim("tags", json!(["a", "b"]))
                .claim("ratio", json!(1.5))
                .claim("nested", json!({ "x": 1 })),
        )
        .unwrap();
        assert_eq!(ok.authentication_name, "d1");
        assert_eq!(ok.attributes["room"], 7);
        assert_eq!(ok.attributes["tags"], json!(["a", "b"]));
        assert!(!ok.attributes.contains_key("ratio") && !ok.attributes.contains_key("nested"));
        assert!(!ok.attributes.contains_key("exp") && ok.attributes.contains_key("iat"));
        assert!(check(&idp, TokenRequest::custom("d1", "ns1.local")).is_ok());
        let wrong_aud = check(&idp, TokenRequest::custom("d1", "other.local")).unwrap_err();
        assert!(wrong_aud.cause.contains("aud"), "{}", wrong_aud.cause);
        let other = TokenIssuer::new("https://other.example/").unwrap();
        let unknown = check(&other, TokenRequest::custom("d1", "ns1.local")).unwrap_err();
        assert!(unknown.cause.contains("tokenIssuer"), "{}", unknown.cause);
        // Same issuer name, another key.
        let impostor = TokenIssuer::new(idp.issuer()).unwrap();
        let forged = check(&impostor, TokenRequest::custom("d1", "ns1.local")).unwrap_err();
        assert!(forged.cause.contains("signature"), "{}", forged.cause);
    }
}
