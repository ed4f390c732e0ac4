//! Writing certificates and keys all-or-nothing, with safe permissions.
//!
//! A command plans every file first, then [`write_all`] places them in two phases: each file is
//! written to a temporary file beside its destination (private keys created `0600`), and only
//! when all of them are written are they moved into place. Without `force`, a destination that
//! exists stops everything before anything is written, and placing uses `link(2)`, which never
//! replaces a file, so a race with another writer cannot clobber it either. When anything fails,
//! what this call placed is removed again: nothing is half-written.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use rayon::prelude::*;

use crate::{Error, Result};

/// One file to write.
#[derive(Debug)]
pub(crate) struct PlannedFile {
    /// Where it goes.
    pub(crate) path: PathBuf,
    /// What it holds.
    pub(crate) contents: zeroize::Zeroizing<Vec<u8>>,
    /// A private key: mode `0600`, its directory `0700` when e4k creates it.
    pub(crate) secret: bool,
}

impl PlannedFile {
    pub(crate) fn public(path: PathBuf, contents: impl Into<Vec<u8>>) -> Self {
        Self {
            path,
            contents: zeroize::Zeroizing::new(contents.into()),
            secret: false,
        }
    }

    pub(crate) fn secret(path: PathBuf, contents: &str) -> Self {
        Self {
            path,
            contents: zeroize::Zeroizing::new(contents.as_bytes().to_vec()),
            secret: true,
        }
    }
}

/// Writes every planned file, or none of them.
///
/// # Errors
/// [`Error::AlreadyExists`] (without `force`), [`Error::Write`].
pub(crate) fn write_all(files: &[PlannedFile], force: bool) -> Result<()> {
    if !force && let Some(existing) = files.iter().find(|f| f.path.symlink_metadata().is_ok()) {
        return Err(Error::AlreadyExists {
            path: existing.path.clone(),
        });
    }
    for file in files {
        if let Some(parent) = file.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dir(parent, file.secret)?;
        }
    }
    let temps: Vec<Result<PathBuf>> = files.par_iter().map(write_temp).collect();
    if temps.iter().any(Result::is_err) {
        for temp in temps.iter().flatten() {
            let _ = fs::remove_file(temp);
        }
        return Err(temps
            .into_iter()
            .find_map(Result::err)
            .unwrap_or_else(|| write_error(Path::new("."), std::io::Error::other("unknown"))));
    }
    let temps: Vec<PathBuf> = temps.into_iter().flatten().collect();
    let placed: Vec<Result<()>> = files
        .par_iter()
        .zip(temps.par_iter())
        .map(|(file, temp)| place(temp, &file.path, force))
        .collect();
    for temp in &temps {
        let _ = fs::remove_file(temp);
    }
    if placed.iter().any(Result::is_err) {
        // Undo: remove what this call created. With `force` an overwritten file cannot be
        // restored, but every other file stays as it was.
        if !force {
            for (file, result) in files.iter().zip(&placed) {
                if result.is_ok() {
                    let _ = fs::remove_file(&file.path);
                }
            }
        }
        return placed.into_iter().collect();
    }
    Ok(())
}

fn write_error(path: &Path, source: std::io::Error) -> Error {
    Error::Write {
        path: path.to_owned(),
        source,
    }
}

fn create_dir(dir: &Path, secret: bool) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(if secret { 0o700 } else { 0o755 });
    }
    builder.create(dir).map_err(|e| write_error(dir, e))
}

fn write_temp(file: &PlannedFile) -> Result<PathBuf> {
    let mut nonce = [0u8; 6];
    getrandom::fill(&mut nonce)
        .map_err(|e| write_error(&file.path, std::io::Error::other(e.to_string())))?;
    let suffix: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let name = file
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = file
        .path
        .with_file_name(format!(".{name}.e4k-{suffix}.tmp"));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if file.secret { 0o600 } else { 0o644 });
    }
    let result = options
        .open(&temp)
        .and_then(|mut f| f.write_all(&file.contents));
    match result {
        Ok(()) => Ok(temp),
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(write_error(&file.path, e))
        }
    }
}

fn place(temp: &Path, path: &Path, force: bool) -> Result<()> {
    if force {
        return fs::rename(temp, path).map_err(|e| write_error(path, e));
    }
    fs::hard_link(temp, path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::AlreadyExists {
                path: path.to_owned(),
            }
        } else {
            write_error(path, e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_or_nothing_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.crt");
        let b = dir.path().join("secrets/b.key");
        fs::create_dir_all(b.parent().unwrap()).unwrap();
        fs::write(&b, "old").unwrap();
        let files = vec![
            PlannedFile::public(a.clone(), "new"),
            PlannedFile::secret(b.clone(), "new"),
        ];
        let err = write_all(&files, false).unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { path } if path == b));
        assert!(!a.exists());
        assert_eq!(fs::read_to_string(&b).unwrap(), "old");
        write_all(&files, true).unwrap();
        assert_eq!(fs::read_to_string(&b).unwrap(), "new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&b).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert_eq!(
                fs::metadata(&a).unwrap().permissions().mode() & 0o777,
                0o644
            );
        }
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("secrets"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }
}
