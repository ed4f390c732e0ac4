//! Helpers shared by the binary tests: run the real `e4k` and `openssl` in a temp dir.

#![allow(dead_code, unreachable_pub)]

pub mod arm;
pub mod bridge;
pub mod emulated;
pub mod seed;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// A scratch directory in which commands run.
pub struct Dir {
    pub dir: tempfile::TempDir,
}

/// What a command did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success and returns self.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success:\n{self:#?}");
        self
    }

    /// Asserts the exit code, one error line on stderr and no panic; returns that line.
    #[track_caller]
    pub fn fails(self, code: i32) -> String {
        assert_eq!(self.code, code, "unexpected exit code:\n{self:#?}");
        assert!(!self.stderr.contains("panicked"), "panic:\n{}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one error line:\n{}", self.stderr);
        lines[0].to_owned()
    }
}

impl Dir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `e4k ARGS` in this directory, with no password variables inherited.
    pub fn e4k(&self, args: &[&str]) -> Run {
        self.e4k_env(args, &[])
    }

    pub fn e4k_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_e4k"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("E4K_PASSWORD")
            .env_remove("E4K_KEY_PASSWORD")
            .env_remove("E4K_PKI_DIR")
            .env_remove("E4K_OUTPUT")
            .env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from(cmd.output().expect("run e4k"))
    }

    /// Any program in this directory.
    pub fn run(&self, program: &str, args: &[&str]) -> Run {
        Run::from(
            Command::new(program)
                .args(args)
                .current_dir(self.dir.path())
                .output()
                .unwrap_or_else(|e| panic!("cannot run {program}: {e}")),
        )
    }

    /// `e4k certs init` with password `e4k`, in `pki/`.
    pub fn init_pki(&self, extra: &[&str]) {
        let mut args = vec!["certs", "init"];
        args.extend_from_slice(extra);
        self.e4k_env(&args, &[("E4K_PASSWORD", "e4k")]).ok();
    }

    /// `e4k certs create NAME NAME.pem NAME.key --no-password --insecure EXTRA…` signed by `pki/`.
    pub fn create(&self, name: &str, extra: &[&str]) -> Run {
        let cert = format!("{name}.pem");
        let key = format!("{name}.key");
        let mut args = vec![
            "certs",
            "create",
            name,
            &cert,
            &key,
            "--no-password",
            "--insecure",
        ];
        args.extend_from_slice(extra);
        self.e4k_env(&args, &[("E4K_PASSWORD", "e4k")])
    }

    /// [`create`](Dir::create) with the server profile for `localhost` and `127.0.0.1`.
    pub fn create_localhost_server(&self, name: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            "--profile",
            "server",
            "--san",
            "localhost",
            "--san",
            "127.0.0.1",
        ];
        args.extend_from_slice(extra);
        self.create(name, &args)
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }
}

/// Mode bits of a file.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}
