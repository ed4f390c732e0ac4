//! The work list of `e4k certs create`: [`LeafTemplate`] holds what every new leaf shares
//! (profile, key, validity, protection) and turns one name, or a bulk list of names, into the
//! `(LeafSpec, LeafOutput)` jobs that [`CertificateAuthority::issue_to_files`] signs.
//!
//! [`CertificateAuthority::issue_to_files`]: super::CertificateAuthority::issue_to_files

use std::path::{Path, PathBuf};

use super::{
    KeyFormat, KeyProtection, KeyType, LeafOutput, LeafSpec, NotAfter, Profile, San,
    check_file_name,
};
use crate::Result;

/// What every certificate of one `e4k certs create` shares.
#[derive(Debug, Clone)]
pub struct LeafTemplate {
    /// Client or server.
    pub profile: Profile,
    /// The new keys' type.
    pub key_type: KeyType,
    /// The certificates' validity.
    pub not_after: NotAfter,
    /// How the keys are written.
    pub key_format: KeyFormat,
    /// Whether the keys are encrypted.
    pub protection: KeyProtection,
    /// Whether the certificate file also holds the CA chain.
    pub bundle: bool,
}

impl LeafTemplate {
    fn spec(&self, name: String, sans: Vec<San>) -> LeafSpec {
        LeafSpec {
            name,
            sans,
            profile: self.profile,
            key_type: self.key_type,
            not_after: self.not_after,
            key_format: self.key_format,
            protection: self.protection.clone(),
        }
    }

    /// One certificate `name` with `sans`, written to `cert_file` and `key_file` (default
    /// `NAME.pem` and `NAME.key` in the current directory).
    #[must_use]
    pub fn single(
        &self,
        name: String,
        sans: Vec<San>,
        cert_file: Option<PathBuf>,
        key_file: Option<PathBuf>,
    ) -> Vec<(LeafSpec, LeafOutput)> {
        let output = LeafOutput {
            cert: cert_file.unwrap_or_else(|| PathBuf::from(format!("{name}.pem"))),
            key: key_file.unwrap_or_else(|| PathBuf::from(format!("{name}.key"))),
            bundle: self.bundle,
        };
        vec![(self.spec(name, sans), output)]
    }

    /// One certificate per name, without SANs, written to `out_dir/NAME.pem` and
    /// `out_dir/NAME.key`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for the first name that cannot be
    /// a file name (see [`check_file_name`]).
    pub fn bulk(&self, names: Vec<String>, out_dir: &Path) -> Result<Vec<(LeafSpec, LeafOutput)>> {
        names
            .into_iter()
            .map(|name| {
                check_file_name(&name)?;
                let output = LeafOutput {
                    cert: out_dir.join(format!("{name}.pem")),
                    key: out_dir.join(format!("{name}.key")),
                    bundle: self.bundle,
                };
                Ok((self.spec(name, Vec::new()), output))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> LeafTemplate {
        LeafTemplate {
            profile: Profile::Client,
            key_type: KeyType::default(),
            not_after: NotAfter::parse("90d").expect("a validity"),
            key_format: KeyFormat::default(),
            protection: KeyProtection::Plaintext,
            bundle: true,
        }
    }

    #[test]
    fn single_defaults_to_name_files() {
        let jobs = template().single("dev1".into(), Vec::new(), None, Some("k.key".into()));
        assert_eq!(jobs.len(), 1);
        let (spec, output) = &jobs[0];
        assert_eq!(spec.name, "dev1");
        assert_eq!(output.cert, PathBuf::from("dev1.pem"));
        assert_eq!(output.key, PathBuf::from("k.key"));
        assert!(output.bundle);
    }

    #[test]
    fn bulk_writes_into_the_directory() {
        let jobs = template()
            .bulk(vec!["a".into(), "b".into()], Path::new("out"))
            .expect("valid names");
        let files: Vec<_> = jobs.iter().map(|(_, o)| o.cert.clone()).collect();
        assert_eq!(
            files,
            [PathBuf::from("out/a.pem"), PathBuf::from("out/b.pem")]
        );
        assert!(jobs.iter().all(|(s, _)| s.sans.is_empty()));
    }

    #[test]
    fn bulk_refuses_a_path_as_a_name() {
        let err = template()
            .bulk(vec!["ok".into(), "../x".into()], Path::new("out"))
            .expect_err("not a file name");
        assert!(err.is_usage());
    }
}
