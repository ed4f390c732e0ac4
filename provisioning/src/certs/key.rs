//! Private keys: key types, generation, encoding and loading.
//!
//! Keys are written as PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`, what `step` writes) or
//! encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`: PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC,
//! which `openssl pkey -passin` and `step` both read). Loading accepts all of those, PKCS#1
//! `RSA PRIVATE KEY`, and the legacy OpenSSL encryption (`Proc-Type: 4,ENCRYPTED`) that
//! `step ca init` uses for its CA keys, so an existing `~/.step` PKI can keep issuing.

use std::{fmt, path::Path, str::FromStr};

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use md5::{Digest, Md5};
use pkcs8::der::{Encode, pem::LineEnding};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, RsaKeySize};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// PBKDF2 rounds for the keys e4k encrypts: the value `step` uses for PKCS#8 (OWASP 2023).
pub const PBKDF2_ROUNDS: u32 = 600_000;

/// The kinds of key e4k generates; all of them are accepted by Event Grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyType {
    /// ECDSA on NIST P-256 with SHA-256: `step`'s default and the key type Microsoft's docs use.
    #[default]
    EcP256,
    /// ECDSA on NIST P-384 with SHA-384.
    EcP384,
    /// RSA 2048-bit, PKCS#1 v1.5 signatures with SHA-256.
    Rsa2048,
    /// RSA 3072-bit.
    Rsa3072,
    /// RSA 4096-bit.
    Rsa4096,
}

impl KeyType {
    /// Builds a key type from `step`-style flags: `--kty EC|RSA`, `--crv P-256|P-384` (EC only),
    /// `--size 2048|3072|4096` (RSA only). Flags are case-insensitive.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the flag for an unknown key type, curve or size, or a flag
    /// that does not apply to the key type.
    pub fn from_flags(kty: &str, crv: Option<&str>, size: Option<u32>) -> Result<Self> {
        match kty.to_ascii_uppercase().as_str() {
            "EC" => {
                if let Some(size) = size {
                    return Err(Error::invalid(
                        "--size",
                        &size.to_string(),
                        "--size applies to RSA keys; for EC keys choose --crv P-256 or P-384",
                    ));
                }
                match crv.map(str::to_ascii_uppercase).as_deref() {
                    None | Some("P-256" | "P256") => Ok(Self::EcP256),
                    Some("P-384" | "P384") => Ok(Self::EcP384),
                    Some(_) => Err(Error::invalid(
                        "--crv",
                        crv.unwrap_or_default(),
                        "expected P-256 or P-384",
                    )),
                }
            }
            "RSA" => {
                if let Some(crv) = crv {
                    return Err(Error::invalid(
                        "--crv",
                        crv,
                        "--crv applies to EC keys; for RSA keys choose --size",
                    ));
                }
                match size {
                    None | Some(2048) => Ok(Self::Rsa2048),
                    Some(3072) => Ok(Self::Rsa3072),
                    Some(4096) => Ok(Self::Rsa4096),
                    Some(other) => Err(Error::invalid(
                        "--size",
                        &other.to_string(),
                        "expected 2048, 3072 or 4096",
                    )),
                }
            }
            _ => Err(Error::invalid(
                "--kty",
                kty,
                "expected EC or RSA (Event Grid does not document Ed25519/OKP keys)",
            )),
        }
    }

    /// Generates a new key pair of this type.
    ///
    /// # Errors
    /// [`Error::Crypto`] when the system's random source or the crypto library fails.
    pub fn generate(self) -> Result<KeyPair> {
        let result = match self {
            Self::EcP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
            Self::EcP384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384),
            Self::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
            Self::Rsa3072 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_3072),
            Self::Rsa4096 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096),
        };
        result.map_err(|e| Error::crypto(format!("generating a {self} key"), e))
    }

    /// Whether this is an elliptic-curve key (which SEC1 encoding applies to).
    #[must_use]
    pub fn is_ec(self) -> bool {
        matches!(self, Self::EcP256 | Self::EcP384)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EcP256 => "EC P-256",
            Self::EcP384 => "EC P-384",
            Self::Rsa2048 => "RSA 2048",
            Self::Rsa3072 => "RSA 3072",
            Self::Rsa4096 => "RSA 4096",
        })
    }
}

/// How an unencrypted private key is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyFormat {
    /// PKCS#8 `PRIVATE KEY`: read by everything, including .NET and Azure Key Vault.
    #[default]
    Pkcs8,
    /// SEC1 `EC PRIVATE KEY` with the named curve, byte-compatible with `step`'s output
    /// (EC keys only).
    Sec1,
}

impl FromStr for KeyFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "pkcs8" => Ok(Self::Pkcs8),
            "sec1" => Ok(Self::Sec1),
            _ => Err(Error::invalid("--key-format", s, "expected pkcs8 or sec1")),
        }
    }
}

/// A password for a private key. Never printed: `Debug` shows `Password(***)`.
#[derive(Clone)]
pub struct Password(SecretString);

impl Password {
    /// Wraps a password.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when it is empty.
    pub fn new(password: impl Into<String>) -> Result<Self> {
        let password: String = password.into();
        if password.is_empty() {
            return Err(Error::invalid(
                "password",
                "",
                "the password is empty; give a non-empty one",
            ));
        }
        Ok(Self(SecretString::from(password)))
    }

    /// Reads a password from the first line of a file (its line ending is not part of it).
    ///
    /// # Errors
    /// [`Error::Read`] when the file cannot be read, [`Error::BadFile`] when it is empty.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?);
        let line = text.lines().next().unwrap_or_default();
        Self::new(line).map_err(|_| Error::bad_file(path, "the password file is empty"))
    }

    /// The password in `file` when one is given, else the value of the environment variable
    /// `env` when it is set and not empty, else `None`.
    ///
    /// # Errors
    /// As [`Password::from_file`].
    pub fn from_file_or_env(file: Option<&Path>, env: &str) -> Result<Option<Self>> {
        if let Some(file) = file {
            return Ok(Some(Self::from_file(file)?));
        }
        match std::env::var(env) {
            Ok(value) if !value.is_empty() => Ok(Some(Self::new(value)?)),
            _ => Ok(None),
        }
    }

    fn bytes(&self) -> &[u8] {
        self.0.expose_secret().as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Whether a new private key is encrypted on disk.
#[derive(Debug, Clone)]
pub enum KeyProtection {
    /// Encrypted PKCS#8 under this password.
    Encrypted(Password),
    /// Written in the clear (`--no-password --insecure`), as Kubernetes secrets need.
    Plaintext,
}

/// Encodes a key pair as PEM, in the clear or encrypted.
///
/// An encrypted key is always PKCS#8 (SEC1 has no standard encryption); asking for SEC1 with a
/// password is refused by the caller's validation.
pub(crate) fn encode_key(
    key: &KeyPair,
    format: KeyFormat,
    protection: &KeyProtection,
) -> Result<Zeroizing<String>> {
    let pkcs8_der = key.serialized_der();
    match (protection, format) {
        (KeyProtection::Encrypted(password), _) => encrypt_pkcs8(pkcs8_der, password),
        (KeyProtection::Plaintext, KeyFormat::Pkcs8) => Ok(Zeroizing::new(key.serialize_pem())),
        (KeyProtection::Plaintext, KeyFormat::Sec1) => pkcs8_to_sec1_pem(pkcs8_der, key),
    }
}

fn encrypt_pkcs8(pkcs8_der: &[u8], password: &Password) -> Result<Zeroizing<String>> {
    let context = "encrypting the private key";
    let info = pkcs8::PrivateKeyInfo::try_from(pkcs8_der).map_err(|e| Error::crypto(context, e))?;
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::crypto(context, e))?;
    getrandom::fill(&mut iv).map_err(|e| Error::crypto(context, e))?;
    let params = pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(PBKDF2_ROUNDS, &salt, &iv)
        .map_err(|e| Error::crypto(context, e))?;
    let document = info
        .encrypt_with_params(params, password.bytes())
        .map_err(|e| Error::crypto(context, e))?;
    document
        .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .map_err(|e| Error::crypto(context, e))
}

fn pkcs8_to_sec1_pem(pkcs8_der: &[u8], key: &KeyPair) -> Result<Zeroizing<String>> {
    let context = "writing the key as SEC1";
    let info = pkcs8::PrivateKeyInfo::try_from(pkcs8_der).map_err(|e| Error::crypto(context, e))?;
    let curve = info
        .algorithm
        .parameters_oid()
        .map_err(|_| Error::crypto(context, "SEC1 applies to EC keys only"))?;
    let mut ec =
        sec1::EcPrivateKey::try_from(info.private_key).map_err(|e| Error::crypto(context, e))?;
    ec.parameters = Some(sec1::EcParameters::NamedCurve(curve));
    if ec.public_key.is_none() {
        ec.public_key = Some(key.public_key_raw());
    }
    let der = Zeroizing::new(ec.to_der().map_err(|e| Error::crypto(context, e))?);
    let pem = pkcs8::der::pem::encode_string("EC PRIVATE KEY", LineEnding::LF, &der)
        .map_err(|e| Error::crypto(context, e))?;
    Ok(Zeroizing::new(pem))
}

/// Loads a private key from a PEM file, decrypting it when needed.
///
/// `password_hint` names where a password can come from (e.g. `--ca-password-file or
/// E4K_PASSWORD`) for the error when one is needed but missing.
///
/// # Errors
/// [`Error::Read`], [`Error::BadFile`] (no PEM private key, unsupported encryption),
/// [`Error::PasswordNeeded`], [`Error::WrongPassword`].
pub fn load_key(path: &Path, password: Option<&Password>, password_hint: &str) -> Result<KeyPair> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?);
    let blocks = pem::parse_many(&*bytes)
        .map_err(|e| Error::bad_file(path, format!("not a PEM file ({e})")))?;
    let block = blocks
        .into_iter()
        .find(|b| b.tag().ends_with("PRIVATE KEY"))
        .ok_or_else(|| {
            Error::bad_file(
                path,
                "no private key found (expected a PEM block such as -----BEGIN PRIVATE KEY-----)",
            )
        })?;
    let contents = Zeroizing::new(block.contents().to_vec());
    let needs_password = || Error::PasswordNeeded {
        path: path.to_owned(),
        hint: password_hint.to_owned(),
    };
    if block.tag() == "ENCRYPTED PRIVATE KEY" {
        let password = password.ok_or_else(needs_password)?;
        let der = decrypt_pkcs8(path, &contents, password)?;
        return key_from_der(path, &der).map_err(|_| Error::WrongPassword {
            path: path.to_owned(),
        });
    }
    if block
        .headers()
        .get("Proc-Type")
        .is_some_and(|v| v.contains("ENCRYPTED"))
    {
        let password = password.ok_or_else(needs_password)?;
        let dek_info = block
            .headers()
            .get("DEK-Info")
            .unwrap_or_default()
            .to_owned();
        let der = decrypt_legacy(path, &dek_info, &contents, password)?;
        return key_from_der(path, &der).map_err(|_| Error::WrongPassword {
            path: path.to_owned(),
        });
    }
    key_from_der(path, &contents)
}

fn key_from_der(path: &Path, der: &[u8]) -> Result<KeyPair> {
    KeyPair::try_from(der).map_err(|e| {
        Error::bad_file(
            path,
            format!("not a usable private key ({e}); e4k reads EC P-256/P-384 and RSA keys"),
        )
    })
}

fn decrypt_pkcs8(path: &Path, der: &[u8], password: &Password) -> Result<Zeroizing<Vec<u8>>> {
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
        .map_err(|e| Error::bad_file(path, format!("malformed encrypted key ({e})")))?;
    match info.decrypt(password.bytes()) {
        Ok(document) => Ok(Zeroizing::new(document.as_bytes().to_vec())),
        // pkcs5 reports a bad padding (the sign of a wrong password) as `EncryptFailed`.
        Err(pkcs8::Error::EncryptedPrivateKey(
            pkcs5::Error::DecryptFailed | pkcs5::Error::EncryptFailed,
        )) => Err(Error::WrongPassword {
            path: path.to_owned(),
        }),
        Err(e) => Err(Error::bad_file(
            path,
            format!(
                "unsupported key encryption ({e}); re-encrypt it with \
                 `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256`"
            ),
        )),
    }
}

/// Decrypts RFC 1423 "traditional" OpenSSL PEM encryption (`DEK-Info: AES-256-CBC,<iv>`), the
/// format `step ca init` writes its CA keys in. Key derivation is OpenSSL's `EVP_BytesToKey`
/// with MD5, one round, salted with the first 8 bytes of the IV.
fn decrypt_legacy(
    path: &Path,
    dek_info: &str,
    ciphertext: &[u8],
    password: &Password,
) -> Result<Zeroizing<Vec<u8>>> {
    let unsupported = |what: &str| {
        Error::bad_file(
            path,
            format!(
                "{what}; convert the key with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out NEW`"
            ),
        )
    };
    let (cipher, iv_hex) = dek_info
        .split_once(',')
        .ok_or_else(|| unsupported("malformed DEK-Info header"))?;
    let iv = decode_hex(iv_hex.trim())
        .filter(|iv| iv.len() == 16)
        .ok_or_else(|| unsupported("malformed DEK-Info IV"))?;
    let key_len = match cipher.trim() {
        "AES-128-CBC" => 16,
        "AES-192-CBC" => 24,
        "AES-256-CBC" => 32,
        other => return Err(unsupported(&format!("unsupported legacy cipher {other}"))),
    };
    let key = evp_bytes_to_key(password.bytes(), &iv[..8], key_len);
    let wrong = || Error::WrongPassword {
        path: path.to_owned(),
    };
    let plain = match key_len {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv)
            .map_err(|_| wrong())?
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(&key, &iv)
            .map_err(|_| wrong())?
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, &iv)
            .map_err(|_| wrong())?
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext),
    };
    plain.map(Zeroizing::new).map_err(|_| wrong())
}

fn evp_bytes_to_key(password: &[u8], salt: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + 16));
    let mut previous: Vec<u8> = Vec::new();
    while out.len() < len {
        let mut md5 = Md5::new();
        md5.update(&previous);
        md5.update(password);
        md5.update(salt);
        previous = md5.finalize().to_vec();
        out.extend_from_slice(&previous);
    }
    out.truncate(len);
    out
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_flags() {
        assert_eq!(
            KeyType::from_flags("ec", None, None).unwrap(),
            KeyType::EcP256
        );
        assert_eq!(
            KeyType::from_flags("EC", Some("P-384"), None).unwrap(),
            KeyType::EcP384
        );
        assert_eq!(
            KeyType::from_flags("RSA", None, Some(3072)).unwrap(),
            KeyType::Rsa3072
        );
        assert_eq!(
            KeyType::from_flags("OKP", None, None)
                .unwrap_err()
                .to_string(),
            "invalid --kty \"OKP\": expected EC or RSA (Event Grid does not document Ed25519/OKP keys)"
        );
        assert_eq!(
            KeyType::from_flags("RSA", None, Some(1024))
                .unwrap_err()
                .to_string(),
            "invalid --size \"1024\": expected 2048, 3072 or 4096"
        );
        assert!(KeyType::from_flags("EC", None, Some(2048)).is_err());
        assert!(KeyType::from_flags("RSA", Some("P-256"), None).is_err());
        assert!(KeyType::from_flags("EC", Some("P-521"), None).is_err());
    }

    #[test]
    fn password_is_never_printed() {
        let p = Password::new("hunter2").unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
        assert!(Password::new("").is_err());
    }

    #[test]
    fn sec1_round_trip() {
        let key = KeyType::EcP384.generate().unwrap();
        let pem = encode_key(&key, KeyFormat::Sec1, &KeyProtection::Plaintext).unwrap();
        assert!(pem.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, pem.as_bytes()).unwrap();
        let loaded = load_key(&path, None, "").unwrap();
        assert_eq!(loaded.public_key_raw(), key.public_key_raw());
    }

    #[test]
    fn hex() {
        assert_eq!(decode_hex("0aFF"), Some(vec![10, 255]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
