//! A test PKI made with rcgen, like `e4k certs init`: root → intermediate → leaves, valid or
//! expired, written as the files mosquitto and the bridge read.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A CA hierarchy: root → intermediate → leaves, like `e4k certs init`.
pub struct Pki {
    /// Where the files are: `root.pem`, `intermediate.pem`, `server.pem` and `server.key`.
    pub dir: PathBuf,
    intermediate: Issuer<'static, KeyPair>,
    intermediate_pem: String,
    /// The root CA certificate file.
    pub root_file: PathBuf,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .field("root_file", &self.root_file)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Creates the CAs and a server certificate for localhost / 127.0.0.1 in `dir`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let root_key = KeyPair::generate().unwrap();
        let mut root_params = CertificateParams::default();
        root_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} Root CA"));
        root_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        root_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);

        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} Intermediate CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let intermediate = params.signed_by(&key, &root_issuer).unwrap();
        let intermediate_pem = intermediate.pem();
        let root_file = dir.join("root.pem");
        std::fs::write(&root_file, root.pem()).unwrap();
        std::fs::write(dir.join("intermediate.pem"), &intermediate_pem).unwrap();
        let pki = Pki {
            dir: dir.to_owned(),
            intermediate: Issuer::new(params, key),
            intermediate_pem,
            root_file,
        };
        let (cert, key) = pki.leaf("localhost", true, Validity::Good);
        std::fs::write(
            dir.join("server.pem"),
            format!("{cert}{}", pki.intermediate_pem),
        )
        .unwrap();
        std::fs::write(dir.join("server.key"), key).unwrap();
        pki
    }

    /// Issues a leaf: (certificate PEM, key PEM).
    pub fn leaf(&self, cn: &str, server: bool, validity: Validity) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let sans = if server {
            vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
        } else {
            Vec::new()
        };
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = if server {
            vec![ExtendedKeyUsagePurpose::ServerAuth]
        } else {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        };
        let now = time::OffsetDateTime::now_utc();
        match validity {
            Validity::Good => {
                params.not_before = now - time::Duration::hours(1);
                params.not_after = now + time::Duration::days(30);
            }
            Validity::Expired => {
                params.not_before = now - time::Duration::days(30);
                params.not_after = now - time::Duration::days(1);
            }
        }
        let cert = params.signed_by(&key, &self.intermediate).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a client-certificate secret `<secrets>/<name>/` for `cn` (replacing its files).
    pub fn client_secret(&self, secrets: &Path, name: &str, cn: &str, validity: Validity) {
        self.write_client_secret(secrets, name, cn, validity)
            .unwrap();
    }

    /// [`client_secret`](Pki::client_secret), its write errors returned.
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn write_client_secret(
        &self,
        secrets: &Path,
        name: &str,
        cn: &str,
        validity: Validity,
    ) -> std::io::Result<()> {
        let dir = secrets.join(name);
        std::fs::create_dir_all(&dir)?;
        let (cert, key) = self.leaf(cn, false, validity);
        std::fs::write(dir.join("client_cert.pem"), cert)?;
        std::fs::write(dir.join("client_key.pem"), key)?;
        std::fs::write(
            dir.join("client_intermediate_certs.pem"),
            &self.intermediate_pem,
        )
    }

    /// Writes [`client_pem`](Pki::client_pem) for `cn` to `cert` and `key`.
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn write_client_pem(&self, cn: &str, cert: &Path, key: &Path) -> std::io::Result<()> {
        let (cert_pem, key_pem) = self.client_pem(cn);
        std::fs::write(cert, cert_pem)?;
        std::fs::write(key, key_pem)
    }

    /// The intermediate CA certificate file.
    #[must_use]
    pub fn intermediate_file(&self) -> PathBuf {
        self.dir.join("intermediate.pem")
    }

    /// A client certificate for a test client: (cert + chain PEM, key PEM).
    pub fn client_pem(&self, cn: &str) -> (String, String) {
        let (cert, key) = self.leaf(cn, false, Validity::Good);
        (format!("{cert}{}", self.intermediate_pem), key)
    }
}

/// Validity of a test certificate.
#[derive(Debug, Clone, Copy)]
pub enum Validity {
    /// From an hour ago for 30 days.
    Good,
    /// Expired yesterday.
    Expired,
}
