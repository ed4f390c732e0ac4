//! A spec on its way to ARM: read it, validate it, and turn it into the desired ARM state.
//!
//! [`check`] is `e4k eventgrid validate`: every problem, errors and warnings. [`load`] is what
//! `plan`, `setup`, `destroy` and `show` start from: a spec with an error stops there
//! ([`Error::SpecErrors`], exit 2), before any network call.

use std::path::{Path, PathBuf};

use super::{
    model::{self, Desired},
    spec::Spec,
    validate::{self, Problem, Severity, ValidateOptions},
};
use crate::{Error, Result};

/// A spec and every problem static validation found in it.
#[derive(Debug)]
pub struct Checked {
    /// The spec as read (variables substituted).
    pub spec: Spec,
    /// Errors and warnings, in the order the validator found them.
    pub problems: Vec<Problem>,
}

impl Checked {
    /// How many of the problems are errors.
    #[must_use]
    pub fn error_count(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }

    /// Whether the spec can be applied (warnings only).
    #[must_use]
    pub fn valid(&self) -> bool {
        self.error_count() == 0
    }

    /// The spec and its warnings when it has no error.
    ///
    /// # Errors
    /// [`Error::SpecErrors`] with every error, naming `path`.
    pub fn into_valid(self, path: &Path) -> Result<(Spec, Vec<Problem>)> {
        let (errors, warnings): (Vec<Problem>, Vec<Problem>) = self
            .problems
            .into_iter()
            .partition(|p| p.severity == Severity::Error);
        if errors.is_empty() {
            Ok((self.spec, warnings))
        } else {
            Err(Error::SpecErrors {
                path: path.to_owned(),
                errors,
            })
        }
    }
}

/// A spec without errors: its desired ARM state and its warnings.
#[derive(Debug)]
pub struct Loaded {
    /// The spec file.
    pub path: PathBuf,
    /// What the namespace should hold.
    pub desired: Desired,
    /// The validator's warnings (the caller decides how to show them).
    pub warnings: Vec<Problem>,
}

/// Reads the spec at `path` and validates it, without any network call.
///
/// # Errors
/// [`Error::Spec`] or [`Error::Read`] when the file cannot be read or parsed; problems the
/// validator finds are returned, not raised.
pub fn check(path: &Path, options: &ValidateOptions) -> Result<Checked> {
    let spec = Spec::load(path)?;
    let problems = validate::validate(&spec, spec_dir(path), options);
    Ok(Checked { spec, problems })
}

/// Reads and validates the spec at `path` and builds its desired ARM state.
///
/// # Errors
/// [`Error::SpecErrors`] with every error the validator found; the errors of [`check`] and of
/// [`model::desired`] (a CA file that cannot be read).
pub fn load(path: &Path, options: &ValidateOptions) -> Result<Loaded> {
    let (spec, warnings) = check(path, options)?.into_valid(path)?;
    let desired = model::desired(&spec, spec_dir(path), path)?;
    Ok(Loaded {
        path: path.to_owned(),
        desired,
        warnings,
    })
}

/// Where the spec's relative file paths start: its directory (empty for a bare file name, so
/// that messages show `pki/…` rather than `./pki/…`).
#[must_use]
pub fn spec_dir(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_spec(dir: &Path, yaml: &str) -> PathBuf {
        let path = dir.join("spec.yaml");
        std::fs::write(&path, yaml).expect("write spec");
        path
    }

    #[test]
    fn spec_dir_of_a_bare_name_is_empty() {
        assert_eq!(spec_dir(Path::new("spec.yaml")), Path::new(""));
        assert_eq!(spec_dir(Path::new("a/spec.yaml")), Path::new("a"));
    }

    #[test]
    fn load_stops_at_errors_and_names_each_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The seed's spec without its PKI beside it: each CA file it names is missing.
        let path = write_spec(
            dir.path(),
            &e4k_templates::eventgrid_yaml(e4k_templates::EMULATOR_SUBSCRIPTION_ID),
        );
        let checked = check(&path, &ValidateOptions::default()).expect("check");
        assert!(!checked.valid());
        let count = checked.error_count();
        let err = load(&path, &ValidateOptions::default()).expect_err("errors stop the load");
        assert!(err.is_usage());
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{} has {count} error(s):\n  ", path.display())),
            "{text}"
        );
        assert_eq!(text.lines().count(), count + 1, "{text}");
    }
}
