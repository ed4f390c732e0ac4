//! The private mosquitto behind the front end: its configuration, its ACL file and reloads;
//! the process itself is a [`Mosquitto`].
//!
//! mosquitto listens on 127.0.0.1 only, on a port of its own, with anonymous access (no
//! password file): only the front end is meant to reach it, and the front end always sets the
//! username the ACL is keyed by. It enforces the topic ACL and the packet size
//! (`max_packet_size`; the front end checks it too). SIGHUP makes mosquitto 2.0 re-read
//! `acl_file` ("Reloaded on reload signal ... Existing subscriptions will be affected after
//! the reload", mosquitto.conf(5)). `max_qos 1` is set too, but mosquitto 2.0.11 resets it to 2
//! on the first reload (observed: the v5 CONNACK loses Maximum QoS and QoS 2 is accepted), so
//! the front end enforces QoS itself.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::EmulatorError;
use crate::mosquitto::{self, Mosquitto};

/// How long mosquitto may take to log that it reloads.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(2);
/// The line mosquitto 2.0 logs (at `information`) when it reloads on SIGHUP.
const RELOADING: &str = "Reloading config.";
/// Event Grid's maximum packet size: 512 KiB.
pub(crate) const MAX_PACKET_SIZE: usize = 512 * 1024;
/// Event Grid's maximum keep-alive, in seconds.
const MAX_KEEPALIVE_SECS: u32 = 1160;
/// Event Grid queues at most 100 messages for an offline session.
const MAX_QUEUED_MESSAGES: u32 = 100;
/// QoS 1 messages in flight to one connected session, and from it (Event Grid's inbound
/// in-flight limit, "1,000 messages"). mosquitto's default is 20, and its
/// `max_queued_messages` counts every message past the in-flight window, for connected
/// sessions too: with 20, a connected subscriber that fell 120 messages behind lost QoS 1
/// messages, which Event Grid does not do. mosquitto fills in-flight slots only for a
/// connected session, so an offline one still keeps just [`MAX_QUEUED_MESSAGES`].
const MAX_INFLIGHT_MESSAGES: u32 = 1000;

/// A running mosquitto; dropping it kills it and waits for it.
#[derive(Debug)]
pub(crate) struct Broker {
    mosquitto: Mosquitto,
    acl: PathBuf,
    log: PathBuf,
}

impl Broker {
    /// Writes the configuration and `acl` into `dir`, starts `binary` and waits until it
    /// accepts connections.
    pub(crate) async fn start(binary: &Path, dir: &Path, acl: &str) -> Result<Self, EmulatorError> {
        let port = mosquitto::free_loopback_port().map_err(|source| EmulatorError::Mosquitto {
            binary: binary.to_owned(),
            port: 0,
            reason: "no free loopback port".to_owned(),
            source: Some(source),
        })?;
        let acl_path = dir.join("acl");
        let log = dir.join("mosquitto.log");
        let conf = dir.join("mosquitto.conf");
        write_atomically(&acl_path, acl)?;
        let config = format!(
            "# Written by e4k-emulator: the private broker of the MQTT data plane.\n\
             # Only the emulator's TLS front end connects here; it sets the username.\n\
             user root\n\
             per_listener_settings false\n\
             allow_anonymous true\n\
             persistence false\n\
             log_dest file {log}\n\
             log_type error\n\
             log_type warning\n\
             log_type notice\n\
             log_type information\n\
             connection_messages true\n\
             acl_file {acl}\n\
             max_packet_size {MAX_PACKET_SIZE}\n\
             max_keepalive {MAX_KEEPALIVE_SECS}\n\
             max_queued_messages {MAX_QUEUED_MESSAGES}\n\
             max_inflight_messages {MAX_INFLIGHT_MESSAGES}\n\
             listener {port} 127.0.0.1\n\
             max_qos 1\n",
            log = log.display(),
            acl = acl_path.display(),
        );
        write_atomically(&conf, &config)?;
        let mosquitto = Mosquitto::start(binary, &conf, port, Some(&log)).await?;
        Ok(Self {
            mosquitto,
            acl: acl_path,
            log,
        })
    }

    /// The loopback address mosquitto listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.mosquitto.addr()
    }

    /// Replaces the ACL file, makes mosquitto re-read it (SIGHUP) and waits (up to
    /// [`RELOAD_TIMEOUT`]) until its log says "Reloading config.": mosquitto reloads in the
    /// same turn of its loop, so a packet sent after that is checked against the new ACL.
    pub(crate) async fn reload_acl(&self, acl: &str) -> Result<(), EmulatorError> {
        write_atomically(&self.acl, acl)?;
        let before = std::fs::metadata(&self.log).map_or(0, |m| m.len());
        self.mosquitto.reload().await?;
        let deadline = Instant::now() + RELOAD_TIMEOUT;
        while !self.logged_since(before, RELOADING) {
            if Instant::now() > deadline {
                tracing::warn!("mosquitto did not log its reload in time; going on");
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    /// Whether the log holds `line` after its first `offset` bytes.
    fn logged_since(&self, offset: u64, line: &str) -> bool {
        use std::io::{Read as _, Seek as _};
        let Ok(mut file) = std::fs::File::open(&self.log) else {
            return false;
        };
        let mut text = String::new();
        file.seek(io::SeekFrom::Start(offset)).is_ok()
            && file.read_to_string(&mut text).is_ok()
            && text.contains(line)
    }
}

/// Writes `text` to a sibling temporary file and renames it over `path`, so mosquitto never
/// reads half a file.
fn write_atomically(path: &Path, text: &str) -> Result<(), EmulatorError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let error = |path: &Path| {
        let path = path.to_owned();
        move |source: io::Error| EmulatorError::WriteFile { path, source }
    };
    std::fs::write(&tmp, text).map_err(error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(error(path))
}
