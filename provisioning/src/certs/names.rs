//! The names of many leaves at once (`--name-template`, `--names-file`), and the check that
//! a name can be used as a file name.

use std::path::Path;

use crate::{Error, Result};

use super::pki::validate_common_name;

/// Expands `--name-template` with `{n}` = 1..=count.
///
/// # Errors
/// [`Error::InvalidInput`] when the template has no `{n}` or count is 0.
pub fn names_from_template(template: &str, count: usize) -> Result<Vec<String>> {
    if !template.contains("{n}") {
        return Err(Error::invalid(
            "--name-template",
            template,
            "must contain {n}, e.g. device-{n}",
        ));
    }
    if count == 0 {
        return Err(Error::invalid("--count", "0", "must be at least 1"));
    }
    Ok((1..=count)
        .map(|n| template.replace("{n}", &n.to_string()))
        .collect())
}

/// Reads names from a file, one per line; blank lines and `#` comments are skipped.
///
/// # Errors
/// [`Error::Read`], or [`Error::BadFile`] naming the line of a duplicate or unusable name.
pub fn names_from_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut names = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, line) in text.lines().enumerate() {
        let name = line.trim();
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        if let Err(e) = check_file_name(name) {
            return Err(Error::bad_file(path, format!("line {}: {e}", index + 1)));
        }
        if !seen.insert(name.to_owned()) {
            return Err(Error::bad_file(
                path,
                format!("line {}: {name:?} is listed twice", index + 1),
            ));
        }
        names.push(name.to_owned());
    }
    if names.is_empty() {
        return Err(Error::bad_file(path, "no names in the file"));
    }
    Ok(names)
}

/// A name used as a file name in bulk mode must not leave the output directory.
///
/// # Errors
/// [`Error::InvalidInput`] for names with path separators or a leading dot.
pub fn check_file_name(name: &str) -> Result<()> {
    validate_common_name("name", name)?;
    if name.contains(['/', '\\', '\0']) || name.starts_with('.') {
        return Err(Error::invalid(
            "name",
            name,
            "cannot be used as a file name (no '/', '\\' or leading '.')",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_names() {
        assert_eq!(
            names_from_template("device-{n}", 3).unwrap(),
            ["device-1", "device-2", "device-3"]
        );
        assert!(names_from_template("device", 3).is_err());
        assert!(check_file_name("../x").is_err());
        assert!(check_file_name(".hidden").is_err());
        assert!(check_file_name(&"a".repeat(65)).is_err());
        assert!(check_file_name("device-1").is_ok());
    }
}
