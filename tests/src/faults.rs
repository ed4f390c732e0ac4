//! Fixtures of the bridge fault tests (`tests/tests/bridge_faults/`,
//! `cli/tests/bridge_faults.rs`): a PKI with the bridge's client-certificate secret, the
//! mosquitto lines of a TLS remote broker standing in for Event Grid (optionally persistent),
//! of a local broker that queues without limit, and a graceful broker stop.

use std::{
    io,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::Mosquitto;
use crate::pki::{Pki, Validity};
use crate::wire;

/// The common name of the bridge's client certificate.
pub const BRIDGE_CN: &str = "mqttbridge";
/// The secret (directory under [`FaultPki::secrets`]) holding the bridge's certificate.
pub const BRIDGE_SECRET: &str = "bridge-client-cert";

/// Lines that let a broker queue every QoS 1 message of an offline or slow session: the
/// default (1000) would drop messages during an outage at 1,000 msg/s, which would be the
/// broker's loss, not the bridge's.
pub const UNLIMITED_QUEUES: &str = "max_queued_messages 0\n";

fn other(error: impl std::fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

/// A [`Pki`] in `dir/pki` (root and intermediate CA, a server certificate for localhost), the
/// bridge's client secret in `dir/secrets/bridge-client-cert` and a test client certificate.
#[derive(Debug)]
pub struct FaultPki {
    dir: PathBuf,
    pki: Pki,
}

impl FaultPki {
    /// Creates everything under `dir`.
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn new(dir: &Path) -> io::Result<Self> {
        let pki = Self {
            dir: dir.to_owned(),
            pki: Pki::new(&dir.join("pki"), "faults"),
        };
        let (tester_cert, tester_key) = pki.tester();
        pki.pki
            .write_client_pem("tester", &tester_cert, &tester_key)?;
        pki.rotate_bridge_cert(BRIDGE_CN)?;
        std::fs::create_dir_all(pki.configmaps())?;
        Ok(pki)
    }

    /// Issues a new bridge client certificate and key for `cn` into the secret, as a rotation
    /// by cert-manager would (the files are replaced).
    ///
    /// # Errors
    /// When the files cannot be written.
    pub fn rotate_bridge_cert(&self, cn: &str) -> io::Result<()> {
        self.pki
            .write_client_secret(&self.secrets(), BRIDGE_SECRET, cn, Validity::Good)
    }

    /// The secrets directory (`--secrets-dir`).
    #[must_use]
    pub fn secrets(&self) -> PathBuf {
        self.dir.join("secrets")
    }

    /// An empty config-maps directory (`--configmaps-dir`).
    #[must_use]
    pub fn configmaps(&self) -> PathBuf {
        self.dir.join("configmaps")
    }

    /// The root CA certificate (`--remote-ca-file`, the test clients' CA).
    #[must_use]
    pub fn root(&self) -> PathBuf {
        self.pki.root_file.clone()
    }

    /// The test client's certificate (with the intermediate) and key files, CN `tester`.
    #[must_use]
    pub fn tester(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("tester.pem"), self.dir.join("tester.key"))
    }

    /// The mosquitto lines of the remote broker's TLS listener (client certificates required,
    /// identity as user name, no ACL), with unlimited queues, and with persistence in
    /// `persistence` when given.
    #[must_use]
    pub fn remote_listener(&self, persistence: Option<&Path>) -> String {
        let dir = self.pki.dir.display();
        let persist = persistence.map_or_else(String::new, |path| {
            format!(
                "persistence true\npersistence_location {}/\n",
                path.display()
            )
        });
        format!(
            "cafile {root}\n\
             certfile {dir}/server.pem\n\
             keyfile {dir}/server.key\n\
             require_certificate true\n\
             use_identity_as_username true\n\
             allow_anonymous false\n\
             {UNLIMITED_QUEUES}\
             {persist}",
            root = self.root().display()
        )
    }
}

/// The mosquitto lines of a plain local broker with unlimited queues, persistent in
/// `persistence` when given.
#[must_use]
pub fn local_listener(persistence: Option<&Path>) -> String {
    let persist = persistence.map_or_else(String::new, |path| {
        format!(
            "persistence true\npersistence_location {}/\n",
            path.display()
        )
    });
    format!("allow_anonymous true\n{UNLIMITED_QUEUES}{persist}")
}

/// Stops a broker with SIGTERM, as an orderly shutdown does (mosquitto writes its persistence
/// file then), and waits for it to exit.
///
/// # Errors
/// When the signal cannot be sent or the broker does not exit within 10 s.
pub fn terminate(broker: &mut Mosquitto) -> io::Result<()> {
    broker
        .child
        .terminate(Duration::from_secs(10))
        .map(drop)
        .map_err(crate::emulator_error)
}

/// What [`publish_sequence`] did.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    /// Messages sent (and acknowledged by the broker): `0..sent`.
    pub sent: u64,
    /// Messages per second over the publishing time.
    pub rate: f64,
}

/// Publishes the decimal sequence numbers `0, 1, 2, ...` at QoS 1 to `topic` on the plain
/// broker at 127.0.0.1:`port` (MQTT 3.1.1, clean session), `per_tick` messages every 10 ms
/// for `duration`, then waits up to 20 s until the broker acknowledged every one. A plain
/// std client, so that tests without an async runtime (the `e4k` binary tests) can drive a
/// steady load.
///
/// # Errors
/// When the broker cannot be reached or does not acknowledge everything in time.
pub fn publish_sequence(
    port: u16,
    client_id: &str,
    topic: &str,
    per_tick: u64,
    duration: Duration,
) -> io::Result<Published> {
    use std::io::Write as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    let mut connect = Vec::new();
    wire::string(b"MQTT", &mut connect);
    connect.extend_from_slice(&[4, 0x02, 0, 60]);
    wire::string(client_id.as_bytes(), &mut connect);
    stream.write_all(&wire::packet(0x10, &connect))?;
    let (kind, body) = wire::read_packet(&mut stream)?;
    if kind != 0x20 || body.get(1) != Some(&0) {
        return Err(other(format!("CONNECT refused: {kind:#x} {body:?}")));
    }
    let acks = Arc::new(AtomicU64::new(0));
    let mut reader = stream.try_clone()?;
    let counter = Arc::clone(&acks);
    std::thread::spawn(move || {
        while let Ok((kind, _)) = wire::read_packet(&mut reader) {
            if kind & 0xf0 == 0x40 {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    let started = Instant::now();
    let mut sent = 0u64;
    let mut ticks = 0u32;
    while started.elapsed() < duration {
        let mut batch = Vec::new();
        for _ in 0..per_tick {
            let payload = sent.to_string();
            let pkid = u16::try_from(sent % 65_535 + 1).unwrap_or(1);
            let mut body = Vec::new();
            wire::string(topic.as_bytes(), &mut body);
            body.extend_from_slice(&pkid.to_be_bytes());
            body.extend_from_slice(payload.as_bytes());
            batch.extend_from_slice(&wire::packet(0x32, &body));
            sent += 1;
        }
        stream.write_all(&batch)?;
        ticks += 1;
        let next = started + Duration::from_millis(10) * ticks;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let elapsed = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(20);
    while acks.load(Ordering::Relaxed) < sent {
        if Instant::now() > deadline {
            return Err(other(format!(
                "the broker acknowledged {} of {sent} messages",
                acks.load(Ordering::Relaxed)
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = stream.write_all(&[0xe0, 0]);
    #[allow(clippy::cast_precision_loss)]
    let rate = sent as f64 / elapsed.as_secs_f64();
    Ok(Published { sent, rate })
}
