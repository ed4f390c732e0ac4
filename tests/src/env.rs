//! The setup of the engine tests: a PKI with the bridge's client secret, a plain local
//! mosquitto and a TLS remote mosquitto standing in for Event Grid (client certificates,
//! `use_identity_as_username`, an ACL), and the bridge configured for them and run in-process.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use e4k_bridge::RunOptions;
use e4k_bridge::config::BridgeConfig;

use crate::Mosquitto;
use crate::bridge::{self, ConnectorYaml, Running, loopback_options};
use crate::client::TestClient;
use crate::pki::{Pki, Validity};

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(15);

/// The ACL of the Event Grid stand-in: the seed's permissions, plus `e2e/#` for the tests.
pub const ACL: &str = "\
user mqttbridge
topic write factory/telemetry/#
topic read command/#
topic readwrite e2e/#

user mosquitto
topic write command/#
topic read factory/telemetry/#
topic readwrite e2e/#
";

/// The mosquitto lines of the remote broker's TLS listener.
pub fn remote_config(pki: &Pki, extra: &str) -> String {
    let dir = pki.dir.display();
    let acl = pki.dir.join("acl");
    std::fs::write(&acl, ACL).unwrap();
    format!(
        "cafile {dir}/root.pem\n\
         certfile {dir}/server.pem\n\
         keyfile {dir}/server.key\n\
         require_certificate true\n\
         use_identity_as_username true\n\
         allow_anonymous false\n\
         acl_file {}\n\
         {extra}\n",
        acl.display()
    )
}

/// Starts the Event Grid stand-in.
pub fn remote_broker(pki: &Pki, extra: &str) -> Mosquitto {
    Mosquitto::start(&remote_config(pki, extra)).unwrap()
}

/// Starts the plain local broker.
pub fn local_broker() -> Mosquitto {
    Mosquitto::start("allow_anonymous true\n").unwrap()
}

/// A connector and topic map: `routes` is the YAML of `spec.routes` items (indented by 4).
pub fn yaml(instances: u32, routes: &str) -> String {
    ConnectorYaml {
        prefix: "e4k",
        instances,
        ..ConnectorYaml::new("test-bridge", routes)
    }
    .render()
}

/// Resolves `yaml` against the two brokers' ports.
pub fn resolve(
    yaml: &str,
    secrets: &Path,
    remote_port: u16,
    local_port: u16,
    ca: &Path,
) -> Vec<BridgeConfig> {
    let mut options = loopback_options(format!("localhost:{remote_port}"), local_port);
    options.secrets_dir = secrets.to_owned();
    options.configmaps_dir = secrets.to_owned();
    options.remote_ca_file = Some(ca.to_owned());
    bridge::resolve(yaml, &options)
}

/// Run options for tests: fast backoff and drain.
pub fn run_options() -> RunOptions {
    crate::bridge::fast_run_options()
}

/// Starts a bridge in this process, its waits lasting [`WAIT`].
pub fn start_bridge(configs: &[BridgeConfig], options: RunOptions) -> Running {
    Running::start(configs, options).unwrap().with_wait(WAIT)
}

/// A test setup: PKI, the bridge's secret, both brokers.
pub struct Env {
    /// The scratch directory (`pki/`, `secrets/`).
    pub dir: tempfile::TempDir,
    /// The PKI of the remote broker and its clients.
    pub pki: Pki,
    /// The plain local broker.
    pub local: Mosquitto,
    /// The TLS remote broker, standing in for Event Grid.
    pub remote: Mosquitto,
}

impl Env {
    /// Both brokers; `remote_extra` adds mosquitto lines to the remote.
    pub fn new(remote_extra: &str) -> Env {
        Self::with_local(remote_extra, "")
    }

    /// Both brokers, with extra mosquitto lines for each.
    pub fn with_local(remote_extra: &str, local_extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(&dir.path().join("pki"), "test");
        pki.client_secret(
            &dir.path().join("secrets"),
            "bridge-client-cert",
            "mqttbridge",
            Validity::Good,
        );
        let remote = remote_broker(&pki, remote_extra);
        let local = Mosquitto::start(&format!("allow_anonymous true\n{local_extra}\n")).unwrap();
        Env {
            dir,
            pki,
            local,
            remote,
        }
    }

    /// The secrets directory (`--secrets-dir`), with `bridge-client-cert`.
    #[must_use]
    pub fn secrets(&self) -> PathBuf {
        self.dir.path().join("secrets")
    }

    /// The resolved configuration for these brokers.
    pub fn config(&self, instances: u32, routes: &str) -> Vec<BridgeConfig> {
        resolve(
            &yaml(instances, routes),
            &self.secrets(),
            self.remote.port(),
            self.local.port(),
            &self.pki.root_file,
        )
    }

    /// A test client of the local broker.
    pub async fn local_client(&self, id: &str) -> TestClient {
        TestClient::local(self.local.port(), id).await
    }

    /// A test client of the remote broker, CN `mosquitto`.
    pub async fn remote_client(&self, id: &str) -> TestClient {
        TestClient::remote(self.remote.port(), id, &self.pki, "mosquitto").await
    }
}
