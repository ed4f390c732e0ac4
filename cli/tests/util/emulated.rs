//! The seed's Event Grid in the emulator (ARM and the MQTT data plane), set up as a user does
//! it: `e4k certs init`, the commander's certificate, `e4k eventgrid setup --spec` over ARM;
//! and the seed's `bridge.yaml` turned to JWT authentication.

use std::path::{Path, PathBuf};
use std::time::Duration;

use e4k_emulator::identity::DEFAULT_PRINCIPAL_ID;
use e4k_emulator::{Emulator, EmulatorConfig, MqttConfig, RunningEmulator, TokenIssuer};

use super::Dir;
use super::seed::Cloud;

/// The subscription of the emulated namespace.
pub const SUBSCRIPTION: &str = "11111111-2222-3333-4444-555555555555";
/// The principal of the emulator's managed identity (the bridge's, with `--credential
/// managed-identity`).
pub const PRINCIPAL: &str = DEFAULT_PRINCIPAL_ID;
/// The audience of a CUSTOM-JWT token for the namespace: its MQTT hostname is `localhost`.
pub const NAMESPACE_AUDIENCE: &str = "https://localhost/";

/// An emulator with the MQTT data plane, on free loopback ports, stopped on drop.
pub struct EventGrid {
    emulator: Option<RunningEmulator>,
    runtime: tokio::runtime::Runtime,
}

impl EventGrid {
    /// The emulator's configuration: fast LROs, the MQTT data plane on `localhost`.
    pub fn config() -> EmulatorConfig {
        EmulatorConfig {
            lro_delay: Duration::from_millis(10),
            lro_retry_after_secs: 0,
            mqtt_hostname: "localhost".into(),
            mqtt: Some(MqttConfig::default()),
            ..EmulatorConfig::default()
        }
    }

    pub fn start() -> Self {
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        let emulator = runtime
            .block_on(Emulator::start(Self::config()))
            .expect("the emulator starts (is mosquitto installed?)");
        Self {
            emulator: Some(emulator),
            runtime,
        }
    }

    pub fn emulator(&self) -> &RunningEmulator {
        self.emulator.as_ref().expect("running")
    }

    /// `localhost:<MQTT port>`, the bridge's `--remote-endpoint`.
    pub fn endpoint(&self) -> String {
        let addr = self.emulator().mqtt_addr().expect("MQTT data plane");
        format!("localhost:{}", addr.port())
    }

    /// The CA of the MQTT data plane (`--remote-ca-file`, `--cafile`).
    pub fn ca(&self) -> PathBuf {
        self.emulator()
            .mqtt_ca_pem_path()
            .expect("MQTT data plane")
            .to_owned()
    }

    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` of the managed identity.
    pub fn identity_env(&self) -> Vec<(&'static str, String)> {
        self.emulator().identity_env().to_vec()
    }

    /// The seed's commander, with the certificate [`workspace`] made.
    pub fn cloud(&self, d: &Dir) -> Cloud {
        Cloud {
            port: self.emulator().mqtt_addr().expect("MQTT").port(),
            ca: self.ca(),
            cert: d.path("mosquitto.pem"),
            key: d.path("mosquitto.key"),
        }
    }

    /// Writes `spec` to `eventgrid.yaml` and runs `e4k eventgrid setup --spec eventgrid.yaml
    /// --yes` against the emulator's ARM endpoint; waits until the data plane follows.
    #[track_caller]
    pub fn setup(&self, d: &Dir, spec: &str) {
        std::fs::write(d.path("eventgrid.yaml"), spec).expect("write the spec");
        let url = self.emulator().base_url();
        d.e4k_env(
            &[
                "eventgrid",
                "setup",
                "--spec",
                "eventgrid.yaml",
                "--yes",
                "--min-poll-interval-ms",
                "10",
            ],
            &[
                ("E4K_ARM_ENDPOINT", &url),
                ("E4K_ARM_TOKEN", "local"),
                ("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION),
            ],
        )
        .ok();
        assert!(
            self.runtime
                .block_on(self.emulator().mqtt_synced(Duration::from_secs(10))),
            "the data plane follows the ARM state"
        );
    }

    /// The seed's [`workspace`] and namespace with CUSTOM-JWT authentication for a new
    /// identity provider, which it returns; `extra` is appended to the spec.
    #[track_caller]
    pub fn setup_custom_jwt(&self, d: &Dir, extra: &str) -> TokenIssuer {
        workspace(d);
        let idp = TokenIssuer::new("https://idp.e4k.test/").expect("token issuer");
        self.setup(d, &seed_spec(&custom_jwt(d, &idp), extra));
        idp
    }

    /// The arguments of `e4k bridge run` for `bridge.yaml` in the test directory, between the
    /// emulator and the factory broker on `local_port`, `/readyz` on `metrics_port`.
    pub fn bridge_args(&self, local_port: u16, metrics_port: u16) -> Vec<String> {
        bridge_args(self.emulator(), local_port, metrics_port)
    }
}

/// The arguments of `e4k bridge run` for `bridge.yaml` in the test directory, between
/// `emulator` and the factory broker on `local_port`, `/readyz` on `metrics_port`.
pub fn bridge_args(emulator: &RunningEmulator, local_port: u16, metrics_port: u16) -> Vec<String> {
    let mqtt = emulator.mqtt_addr().expect("MQTT data plane");
    let ca = emulator.mqtt_ca_pem_path().expect("MQTT data plane");
    [
        "--config".to_owned(),
        "bridge.yaml".to_owned(),
        "--remote-endpoint".to_owned(),
        format!("localhost:{}", mqtt.port()),
        "--local-endpoint".to_owned(),
        format!("127.0.0.1:{local_port}"),
        "--remote-ca-file".to_owned(),
        ca.display().to_string(),
        "--metrics-listen".to_owned(),
        format!("127.0.0.1:{metrics_port}"),
    ]
    .to_vec()
}

impl Drop for EventGrid {
    fn drop(&mut self) {
        if let Some(emulator) = self.emulator.take() {
            let _ = self.runtime.block_on(emulator.shutdown());
        }
    }
}

/// The seed's PKI (`pki/`, whose CAs the spec uploads) and the commander's certificate
/// (`mosquitto.pem` with its intermediate, `mosquitto.key`).
pub fn workspace(d: &Dir) {
    d.init_pki(&[]);
    d.create("mosquitto", &["--not-after", "2400h", "--bundle"])
        .ok();
}

/// The seed's spec (`templates/eventgrid.yaml`) with `mqtt` added under `namespace.mqtt` and
/// `extra` appended.
pub fn seed_spec(mqtt: &str, extra: &str) -> String {
    let anchor = "    maxSessionExpiryInHours: 1\n";
    let template = e4k_templates::EVENTGRID_YAML;
    assert!(template.contains(anchor), "{template}");
    format!(
        "{}{extra}",
        template.replacen(anchor, &format!("{anchor}{mqtt}"), 1)
    )
}

/// `roleAssignments` that let `principal` do what the seed's bindings let every client do:
/// publish telemetry, subscribe to commands.
pub fn seed_roles(principal: &str) -> String {
    format!(
        "roleAssignments:\n\
         \x20 - {{ principalId: {principal}, role: publisher, topicSpace: telemetry }}\n\
         \x20 - {{ principalId: {principal}, role: subscriber, topicSpace: command }}\n"
    )
}

/// `namespace.mqtt.customJwtAuthentication` for `idp`, whose certificate is written to
/// `jwt-issuer.pem` next to the spec.
pub fn custom_jwt(d: &Dir, idp: &TokenIssuer) -> String {
    std::fs::write(d.path("jwt-issuer.pem"), idp.certificate_pem()).expect("issuer PEM");
    format!(
        "    customJwtAuthentication:\n\
         \x20     tokenIssuer: {}\n\
         \x20     issuerCertificates:\n\
         \x20       - {{ kid: \"{}\", file: jwt-issuer.pem }}\n",
        idp.issuer(),
        idp.kid()
    )
}

/// Writes [`jwt_bridge_yaml`] as `bridge.yaml` in `d`.
pub fn write_jwt_bridge_yaml(d: &Dir, audience: &str, token_file: Option<&Path>) {
    std::fs::write(d.path("bridge.yaml"), jwt_bridge_yaml(audience, token_file))
        .expect("write bridge.yaml");
}

/// The seed's `bridge.yaml` with `systemAssignedManagedIdentity` for `audience` instead of
/// x509 (OAUTH2-JWT), or with the token file annotation too (CUSTOM-JWT from `token_file`).
pub fn jwt_bridge_yaml(audience: &str, token_file: Option<&Path>) -> String {
    let x509 = "      x509:\n        clientK8sSecret: \"bridge-client-cert\"\n";
    let metadata = "  name: \"my-mqtt-bridge\"\n";
    let seed = e4k_templates::BRIDGE_YAML;
    assert!(seed.contains(x509) && seed.contains(metadata), "{seed}");
    let mut yaml = seed.replacen(
        x509,
        &format!("      systemAssignedManagedIdentity:\n        audience: \"{audience}\"\n"),
        1,
    );
    if let Some(file) = token_file {
        yaml = yaml.replacen(
            metadata,
            &format!(
                "{metadata}  annotations:\n    e4k.dev/remote-jwt-token-file: \"{}\"\n",
                file.display()
            ),
            1,
        );
    }
    yaml
}
