//! Client authentication: which registered client a TLS client certificate and a CONNECT
//! stand for (eventgrid.md §9, "Validation schemes" and "Alternative authentication name
//! sources").

use std::net::IpAddr;

use e4k_provisioning::certs::CertInfo;
use rustls_pki_types::{CertificateDer, UnixTime};

use super::model::{ClientView, NameSource, NamespaceView, Scheme};
use super::packet::Refusal;

/// What the front end reads from a client certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PeerCert {
    /// The subject CN, if there is one.
    pub(crate) common_name: Option<String>,
    /// The whole subject DN (RFC 4514 style, as x509-parser prints it).
    pub(crate) subject: String,
    /// SAN dNSNames.
    pub(crate) dns: Vec<String>,
    /// SAN URIs.
    pub(crate) uris: Vec<String>,
    /// SAN iPAddresses.
    pub(crate) ips: Vec<IpAddr>,
    /// SAN rfc822Names.
    pub(crate) emails: Vec<String>,
    /// SHA-256 of the DER, lowercase hex.
    pub(crate) sha256: String,
    /// SHA-1 of the DER, lowercase hex.
    pub(crate) sha1: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl PeerCert {
    /// Reads the fields of a DER certificate (through `e4k certs inspect`'s reading of it).
    pub(crate) fn parse(der: &[u8]) -> Result<Self, String> {
        let info = CertInfo::from_der(der).map_err(|e| e.to_string())?;
        Ok(Self {
            common_name: info.common_name,
            subject: info.subject,
            dns: info.sans.dns,
            uris: info.sans.uri,
            ips: info
                .sans
                .ip
                .iter()
                .filter_map(|ip| ip.parse().ok())
                .collect(),
            emails: info.sans.email,
            sha256: info.sha256,
            sha1: hex(&sha1(der)),
        })
    }

    /// The values a name source yields, in preference order (the CN, then the whole DN).
    fn names_from(&self, source: NameSource) -> Vec<String> {
        match source {
            NameSource::Subject => self
                .common_name
                .iter()
                .cloned()
                .chain((!self.subject.is_empty()).then(|| self.subject.clone()))
                .collect(),
            NameSource::Dns => self.dns.clone(),
            NameSource::Uri => self.uris.clone(),
            NameSource::Ip => self.ips.iter().map(ToString::to_string).collect(),
            NameSource::Email => self.emails.clone(),
        }
    }

    /// Whether the certificate field of `scheme` carries `name`.
    fn proves(&self, scheme: Scheme, name: &str, thumbprints: &[String]) -> bool {
        let eq = |value: &String| value.eq_ignore_ascii_case(name);
        match scheme {
            Scheme::Subject => self.common_name.iter().any(eq) || eq(&self.subject),
            Scheme::Dns => self.dns.iter().any(eq),
            Scheme::Uri => self.uris.iter().any(eq),
            Scheme::Email => self.emails.iter().any(eq),
            Scheme::Ip => name
                .parse::<IpAddr>()
                .is_ok_and(|ip| self.ips.contains(&ip)),
            Scheme::Thumbprint => self.has_thumbprint(thumbprints),
        }
    }

    /// Whether the SHA-256 or SHA-1 thumbprint is among `allowed` (normalized).
    pub(crate) fn has_thumbprint(&self, allowed: &[String]) -> bool {
        allowed.iter().any(|t| *t == self.sha256 || *t == self.sha1)
    }
}

/// Whether `chain` (leaf first) chains to one of `cas` for client authentication.
pub(crate) fn chains_to(chain: &[CertificateDer<'_>], cas: &[CertificateDer<'static>]) -> bool {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return false;
    };
    let anchors: Vec<_> = cas
        .iter()
        .filter_map(|ca| webpki::anchor_from_trusted_cert(ca).ok())
        .collect();
    if anchors.is_empty() {
        return false;
    }
    let Ok(leaf) = webpki::EndEntityCert::try_from(leaf) else {
        return false;
    };
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        intermediates,
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .is_ok()
}

/// A client that passed authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Authenticated {
    /// The client resource name.
    pub(crate) client: String,
    /// Its authentication name (original case).
    pub(crate) authentication_name: String,
}

/// Authenticates a connection against one namespace: the authentication name is the CONNECT
/// username, or else the first certificate field the namespace's alternative name sources
/// yield; the registered client with that name must be enabled and its validation scheme's
/// certificate field must carry the name; and the certificate must chain to an uploaded CA
/// (except with ThumbprintMatch).
pub(crate) fn authenticate(
    namespace: &NamespaceView,
    chain: &[CertificateDer<'_>],
    peer: &PeerCert,
    username: Option<&str>,
) -> Result<Authenticated, Refusal> {
    let client = find_client(namespace, peer, username).ok_or(Refusal::BadCredentials)?;
    if !client.enabled {
        return Err(Refusal::NotAuthorized);
    }
    if !peer.proves(
        client.scheme,
        &client.authentication_name,
        &client.thumbprints,
    ) {
        return Err(Refusal::BadCredentials);
    }
    if client.scheme != Scheme::Thumbprint && !chains_to(chain, &namespace.cas) {
        return Err(Refusal::BadCredentials);
    }
    Ok(Authenticated {
        client: client.name.clone(),
        authentication_name: client.authentication_name.clone(),
    })
}

fn find_client<'a>(
    namespace: &'a NamespaceView,
    peer: &PeerCert,
    username: Option<&str>,
) -> Option<&'a ClientView> {
    if let Some(name) = username.filter(|u| !u.is_empty()) {
        return namespace.client(name);
    }
    // The first source that yields a value decides; within the subject, the CN is tried
    // before the whole DN.
    let names = namespace
        .name_sources
        .iter()
        .map(|source| peer.names_from(*source))
        .find(|names| !names.is_empty())?;
    names.iter().find_map(|name| namespace.client(name))
}

/// SHA-1, only for certificate thumbprints: Event Grid's docs leave open whether
/// `allowedThumbprints` holds SHA-1 or SHA-256, so both are compared (the TLS handshake, not the
/// thumbprint, proves the key).
fn sha1(data: &[u8]) -> [u8; 20] {
    use sha1::Digest as _;
    sha1::Sha1::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;
    use std::collections::BTreeMap;

    #[test]
    fn sha1_matches_the_standard_vectors() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }

    fn client(name: &str, scheme: Scheme, enabled: bool) -> ClientView {
        ClientView {
            name: name.into(),
            authentication_name: name.into(),
            enabled,
            scheme,
            thumbprints: vec!["ab12".into()],
            attributes: Map::new(),
        }
    }

    fn namespace(sources: Vec<NameSource>) -> NamespaceView {
        NamespaceView {
            name: "ns".into(),
            hostname: None,
            enabled: true,
            max_sessions: 1,
            name_sources: sources,
            cas: Vec::new(),
            clients: vec![
                client("mosquitto", Scheme::Subject, true),
                client("off", Scheme::Subject, false),
                client("dev.example.com", Scheme::Dns, true),
                client("printed", Scheme::Thumbprint, true),
            ],
            groups: BTreeMap::new(),
            topic_spaces: BTreeMap::new(),
            bindings: Vec::new(),
            role_grants: Vec::new(),
            custom_jwt: None,
        }
    }

    fn peer(cn: &str) -> PeerCert {
        PeerCert {
            common_name: Some(cn.into()),
            subject: format!("CN={cn}"),
            dns: vec!["dev.example.com".into()],
            sha256: "ab12".into(),
            sha1: "cd34".into(),
            ..PeerCert::default()
        }
    }

    #[test]
    fn the_name_comes_from_the_username_or_the_sources() {
        let subject = namespace(vec![NameSource::Subject]);
        let none = namespace(Vec::new());
        let dns_first = namespace(vec![NameSource::Dns, NameSource::Subject]);
        let cert = peer("mosquitto");
        let name = |ns: &NamespaceView, user: Option<&str>| {
            find_client(ns, &cert, user).map(|c| c.name.clone())
        };
        assert_eq!(name(&subject, None).as_deref(), Some("mosquitto"));
        assert_eq!(name(&none, None), None, "no username and no sources");
        assert_eq!(name(&none, Some("MOSQUITTO")).as_deref(), Some("mosquitto"));
        assert_eq!(name(&dns_first, None).as_deref(), Some("dev.example.com"));
    }

    #[test]
    fn schemes_compare_their_field() {
        let ns = namespace(vec![NameSource::Subject]);
        // Subject-scheme clients need a chain to an uploaded CA, and this namespace has none.
        assert_eq!(
            authenticate(&ns, &[], &peer("mosquitto"), None),
            Err(Refusal::BadCredentials)
        );
        assert_eq!(
            authenticate(&ns, &[], &peer("off"), None),
            Err(Refusal::NotAuthorized)
        );
        assert_eq!(
            authenticate(&ns, &[], &peer("intruder"), None),
            Err(Refusal::BadCredentials)
        );
        // A thumbprint client needs no CA.
        assert_eq!(
            authenticate(&ns, &[], &peer("x"), Some("printed")),
            Ok(Authenticated {
                client: "printed".into(),
                authentication_name: "printed".into()
            })
        );
        let mut other = peer("x");
        other.sha256 = "ff".into();
        assert_eq!(
            authenticate(&ns, &[], &other, Some("printed")),
            Err(Refusal::BadCredentials)
        );
        assert!(peer("a").proves(Scheme::Subject, "CN=a", &[]));
        assert!(!peer("a").proves(Scheme::Ip, "127.0.0.1", &[]));
    }
}
