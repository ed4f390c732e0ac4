//! A running `e4k bridge run`: its stderr (the log) and stdout in files, SIGTERM, killed on
//! drop.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::Dir;

/// A running `e4k bridge run`, killed on drop if still running.
pub struct BridgeProcess {
    child: Child,
    log: PathBuf,
    stdout: PathBuf,
}

impl BridgeProcess {
    /// `e4k bridge run ARGS` in `dir`, with `env` added to an environment without `RUST_LOG`
    /// and `E4K_INSTANCE_INDEX`. Global flags (`-vvv`, `--output json`) may be among `args`.
    pub fn start(dir: &Dir, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = dir.path("bridge.log");
        let stdout = dir.path("bridge.stdout");
        let mut command = Command::new(env!("CARGO_BIN_EXE_e4k"));
        command
            .arg("bridge")
            .arg("run")
            .args(args)
            .current_dir(dir.dir.path())
            .env_remove("RUST_LOG")
            .env_remove("E4K_INSTANCE_INDEX")
            .env_remove("E4K_CREDENTIAL")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("bridge stdout file"))
            .stderr(std::fs::File::create(&log).expect("bridge log file"));
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("start e4k bridge run");
        BridgeProcess { child, log, stdout }
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// The lines of the log that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// Sends SIGTERM and waits (up to 10 s) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the bridge") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "bridge did not exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGTERM, then: exit 0, no panic, "bridge stopped" logged. Returns the log.
    #[track_caller]
    pub fn stop_cleanly(&mut self) -> String {
        let status = self.terminate();
        let log = self.log();
        assert!(status.success(), "exit {status:?}:\n{log}");
        assert!(!log.contains("panicked"), "{log}");
        assert!(log.contains("bridge stopped"), "{log}");
        // stderr is a file here, not a terminal: no colour codes.
        assert!(
            !log.contains('\u{1b}'),
            "ANSI escape codes in the log:\n{log}"
        );
        if std::env::var_os("E4K_SHOW_LOG").is_some() {
            eprintln!("{log}");
        }
        log
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
