//! The bridge's client certificate Secret, byte for byte what `kubectl create secret generic …
//! --dry-run=client -o yaml` prints.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Serialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{
    Error, Result,
    certs::{load_key, read_certificates},
};

/// The keys the bridge reads from its secret (Azure IoT MQ's layout).
pub const CERT_KEY: &str = "client_cert.pem";
/// The private key.
pub const KEY_KEY: &str = "client_key.pem";
/// The intermediate CA certificates (optional).
pub const INTERMEDIATE_KEY: &str = "client_intermediate_certs.pem";

/// The files of a client certificate secret.
#[derive(Debug, Clone, Serialize)]
pub struct SecretFiles {
    /// The client certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, unencrypted).
    pub key: PathBuf,
    /// The intermediate CA certificate(s), if any.
    pub intermediate: Option<PathBuf>,
}

/// A rendered Secret.
#[derive(Debug, Clone, Serialize)]
pub struct RenderedSecret {
    /// Its name.
    pub name: String,
    /// Its namespace, when given.
    pub namespace: Option<String>,
    /// The manifest, as `kubectl --dry-run=client -o yaml` prints it.
    pub yaml: String,
}

/// Checks a Kubernetes object name (RFC 1123 subdomain: at most 253 characters of lowercase
/// letters, digits, `-` and `.`, starting and ending with a letter or digit).
///
/// # Errors
/// [`Error::InvalidInput`] naming `what`.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(Error::invalid(
            what,
            name,
            "not a valid Kubernetes name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        ));
    }
    Ok(())
}

/// Checks a namespace name (RFC 1123 label: at most 63 characters, no dots).
///
/// # Errors
/// [`Error::InvalidInput`].
pub fn check_namespace(namespace: &str) -> Result<()> {
    if namespace.len() > 63 || namespace.contains('.') {
        return Err(Error::invalid(
            "--namespace",
            namespace,
            "not a valid namespace: at most 63 lowercase letters, digits and '-'",
        ));
    }
    check_name("--namespace", namespace)
}

/// Renders the Secret after checking that the certificate and key belong together and that
/// the key is not encrypted (the bridge cannot use an encrypted key).
///
/// # Errors
/// [`Error::InvalidInput`] (names), [`Error::Read`], [`Error::BadFile`] (not PEM, no
/// certificate, an encrypted key, a key that does not match the certificate).
pub fn render_secret(
    name: &str,
    namespace: Option<&str>,
    files: &SecretFiles,
) -> Result<RenderedSecret> {
    check_name("NAME", name)?;
    if let Some(ns) = namespace {
        check_namespace(ns)?;
    }
    let cert_der = read_certificates(&files.cert)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::bad_file(&files.cert, "no certificate found"))?;
    let key = load_key(&files.key, None, "").map_err(|e| match e {
        Error::PasswordNeeded { path, .. } => Error::bad_file(
            &path,
            "the key is encrypted, and the bridge cannot use an encrypted key: issue one with \
             `e4k certs create … --no-password --insecure`, or decrypt it with `openssl pkey`",
        ),
        other => other,
    })?;
    let (_, cert) = X509Certificate::from_der(&cert_der).map_err(|e| {
        Error::bad_file(&files.cert, format!("not a valid X.509 certificate ({e})"))
    })?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(Error::bad_file(
            &files.key,
            format!(
                "this key does not belong to the certificate {}",
                files.cert.display()
            ),
        ));
    }
    if let Some(intermediate) = &files.intermediate {
        read_certificates(intermediate)?;
    }
    let mut data = vec![(CERT_KEY, read(&files.cert)?), (KEY_KEY, read(&files.key)?)];
    if let Some(intermediate) = &files.intermediate {
        data.push((INTERMEDIATE_KEY, read(intermediate)?));
    }
    Ok(RenderedSecret {
        name: name.to_owned(),
        namespace: namespace.map(str::to_owned),
        yaml: secret_yaml(name, namespace, &data),
    })
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// The YAML kubectl prints for an Opaque secret: keys sorted, values base64 on one line, and
/// `creationTimestamp: null` (kubectl's client-side dry run).
#[must_use]
pub fn secret_yaml(name: &str, namespace: Option<&str>, data: &[(&str, Vec<u8>)]) -> String {
    let mut sorted: Vec<&(&str, Vec<u8>)> = data.iter().collect();
    sorted.sort_by_key(|(key, _)| *key);
    let mut out = String::from("apiVersion: v1\ndata:\n");
    for (key, value) in sorted {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        out.push_str(&format!("  {}: {encoded}\n", scalar(key)));
    }
    out.push_str("kind: Secret\nmetadata:\n  creationTimestamp: null\n");
    out.push_str(&format!("  name: {}\n", scalar(name)));
    if let Some(ns) = namespace {
        out.push_str(&format!("  namespace: {}\n", scalar(ns)));
    }
    out
}

/// A plain YAML scalar, double-quoted when YAML 1.1 (which kubectl's marshaller follows) would
/// read it as something other than a string: a number, a boolean or null.
pub(crate) fn scalar(text: &str) -> String {
    const WORDS: [&str; 10] = [
        "y", "yes", "n", "no", "true", "false", "on", "off", "null", "~",
    ];
    let lower = text.to_ascii_lowercase();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = text.trim_start_matches(['-', '+']);
    let is_int = digits(unsigned)
        || unsigned
            .strip_prefix("0x")
            .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()));
    let is_float = {
        let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
            Some((m, e)) => (m, Some(e.trim_start_matches(['-', '+']))),
            None => (unsigned, None),
        };
        let mantissa_ok = match mantissa.split_once('.') {
            Some((a, b)) => {
                (digits(a) || a.is_empty())
                    && (digits(b) || b.is_empty())
                    && !(a.is_empty() && b.is_empty())
            }
            None => digits(mantissa),
        };
        mantissa_ok && exponent.is_none_or(digits) && (mantissa.contains('.') || exponent.is_some())
    };
    if text.is_empty() || WORDS.contains(&lower.as_str()) || is_int || is_float {
        format!("\"{text}\"")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_quote_what_yaml_would_not_read_as_a_string() {
        for quoted in [
            "123", "1e3", "yes", "on", "null", "true", "0x1f", "007", "1.5", "-1", "",
        ] {
            assert_eq!(scalar(quoted), format!("\"{quoted}\""), "{quoted}");
        }
        for plain in [
            "a.b",
            "e4k",
            "remote-client-secret",
            "client_cert.pem",
            "1a",
            "x1e3",
        ] {
            assert_eq!(scalar(plain), plain, "{plain}");
        }
    }

    #[test]
    fn names() {
        assert!(check_name("NAME", "remote-client-secret").is_ok());
        assert!(check_name("NAME", "a.b").is_ok());
        for bad in ["", "Upper", "-a", "a-", "a_b", "a..b"] {
            assert!(check_name("NAME", bad).is_err(), "{bad}");
        }
        assert!(check_namespace("a.b").is_err());
    }
}
