//! The bridge engine run in-process for tests and benchmarks: [`Running`] starts it on the
//! current tokio runtime, waits for readiness or metrics, and stops it.
//!
//! Test support: its waits panic with the last readiness report or metrics text when the
//! bridge does not get there in time, which is the failure message a test wants.
#![allow(clippy::panic, clippy::expect_used)]

use std::time::{Duration, Instant};

use e4k_bridge::config::{self, BridgeConfig, ConfigOptions, MqttVersion, RawConfig};
use e4k_bridge::engine::{BackoffPolicy, Readiness};
use e4k_bridge::{Bridge, BridgeError, BridgeHandle, RunOptions};
use tokio_util::sync::CancellationToken;

/// How long [`Running`]'s waits last unless told otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(20);

/// A bridge running in a task of this process.
#[derive(Debug)]
pub struct Running {
    /// Readiness and metrics.
    pub handle: BridgeHandle,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), BridgeError>>,
    wait: Duration,
}

impl Running {
    /// Starts a bridge for `configs` on the current runtime.
    ///
    /// # Errors
    /// When [`Bridge::new`] refuses the configuration.
    pub fn start(configs: &[BridgeConfig], options: RunOptions) -> Result<Running, BridgeError> {
        let bridge = Bridge::new(configs, options)?;
        let handle = bridge.handle();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(bridge.run(shutdown.clone()));
        Ok(Running {
            handle,
            shutdown,
            task,
            wait: DEFAULT_WAIT,
        })
    }

    /// Uses `wait` instead of [`DEFAULT_WAIT`] for the waits without a timeout of their own.
    #[must_use]
    pub fn with_wait(mut self, wait: Duration) -> Running {
        self.wait = wait;
        self
    }

    /// Polls readiness every 10 ms until `check` holds; `Err(last)` after `timeout`.
    ///
    /// # Errors
    /// The last readiness report when `check` never held.
    pub async fn wait_for_within(
        &self,
        timeout: Duration,
        check: impl Fn(&Readiness) -> bool,
    ) -> Result<Readiness, Readiness> {
        let deadline = Instant::now() + timeout;
        loop {
            let readiness = self.handle.readiness();
            if check(&readiness) {
                return Ok(readiness);
            }
            if Instant::now() > deadline {
                return Err(readiness);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// [`wait_for_within`](Running::wait_for_within) the default wait.
    ///
    /// # Errors
    /// The last readiness report when `check` never held.
    pub async fn wait_for(
        &self,
        check: impl Fn(&Readiness) -> bool,
    ) -> Result<Readiness, Readiness> {
        self.wait_for_within(self.wait, check).await
    }

    /// Waits until `/readyz` would say ready; panics with the report otherwise.
    pub async fn ready(&self) {
        if let Err(readiness) = self.wait_for(|r| r.ready).await {
            panic!("bridge not ready in time:\n{readiness:#?}");
        }
    }

    /// Waits until the metrics text contains `needle`; panics with the text otherwise.
    pub async fn wait_metric(&self, needle: &str) {
        let deadline = Instant::now() + self.wait;
        loop {
            let text = self.handle.metrics();
            if text.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` in metrics:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Cancels and waits for the run to return; panics when it does not stop in 15 s,
    /// panicked or failed.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("bridge did not stop in time")
            .expect("bridge task panicked")
            .expect("bridge run failed");
    }
}

/// The YAML of a test bridge: an `MqttBridgeConnector` (endpoints are placeholders that the
/// tests override) and an `MqttBridgeTopicMap` `{name}-map` with `routes`.
#[derive(Debug, Clone)]
pub struct ConnectorYaml<'a> {
    /// The connector's `metadata.name`.
    pub name: &'a str,
    /// `clientIdPrefix`.
    pub prefix: &'a str,
    /// `protocol`.
    pub protocol: MqttVersion,
    /// `bridgeInstances`.
    pub instances: u32,
    /// The remote's client-certificate secret (TLS with X.509); `None` makes the remote plain
    /// TCP and anonymous.
    pub remote_secret: Option<&'a str>,
    /// The audience of the remote's `systemAssignedManagedIdentity` authentication (TLS with
    /// OAUTH2-JWT); when given, `remote_secret` is not used.
    pub remote_audience: Option<&'a str>,
    /// `logLevel`, when given.
    pub log_level: Option<&'a str>,
    /// `metadata.annotations` of the connector.
    pub annotations: &'a [(&'a str, &'a str)],
    /// The `routes:` items, indented by 4.
    pub routes: &'a str,
}

impl<'a> ConnectorYaml<'a> {
    /// MQTT 5, one instance, client IDs prefixed `name`, the remote over TLS with the secret
    /// `bridge-client-cert`, no annotations.
    pub fn new(name: &'a str, routes: &'a str) -> Self {
        ConnectorYaml {
            name,
            prefix: name,
            protocol: MqttVersion::V5,
            instances: 1,
            remote_secret: Some("bridge-client-cert"),
            remote_audience: None,
            log_level: None,
            annotations: &[],
            routes,
        }
    }

    /// The two documents.
    pub fn render(&self) -> String {
        let ConnectorYaml {
            name,
            prefix,
            protocol,
            instances,
            remote_secret,
            remote_audience,
            log_level,
            annotations,
            routes,
        } = self;
        let protocol = protocol.as_str();
        let annotations: String = if annotations.is_empty() {
            String::new()
        } else {
            let lines: String = annotations
                .iter()
                .map(|(key, value)| format!("    {key}: {value}\n"))
                .collect();
            format!("  annotations:\n{lines}")
        };
        let log_level =
            log_level.map_or_else(String::new, |level| format!("  logLevel: {level}\n"));
        let remote = match (remote_audience, remote_secret) {
            (Some(audience), _) => format!(
                "    endpoint: placeholder:8883\n    tls:\n      tlsEnabled: true\n    \
                 authentication:\n      systemAssignedManagedIdentity:\n        \
                 audience: {audience}\n"
            ),
            (None, Some(secret)) => format!(
                "    endpoint: placeholder:8883\n    tls:\n      tlsEnabled: true\n    \
                 authentication:\n      x509:\n        clientK8sSecret: {secret}\n"
            ),
            (None, None) => {
                "    endpoint: placeholder:1883\n    tls:\n      tlsEnabled: false\n    \
                     authentication:\n      basic:\n        anonymous: true\n"
                    .to_owned()
            }
        };
        format!(
            "apiVersion: az-edge.com/v1alpha4
kind: MqttBridgeConnector
metadata:
  name: {name}
{annotations}spec:
  protocol: {protocol}
  bridgeInstances: {instances}
  clientIdPrefix: {prefix}
{log_level}  remoteBrokerConnection:
{remote}  localBrokerConnection:
    endpoint: placeholder:1883
    authentication:
      basic:
        anonymous: true
---
apiVersion: az-edge.com/v1alpha4
kind: MqttBridgeTopicMap
metadata:
  name: {name}-map
spec:
  mqttBridgeConnectorRef: {name}
  routes:
{routes}"
        )
    }
}

/// Run options for tests: reconnects after 50–400 ms instead of 1 s–2 min, a 5 s drain, a
/// 3 s connect timeout.
pub fn fast_run_options() -> RunOptions {
    let mut options = RunOptions::default();
    options.backoff = BackoffPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
        jitter: 0.25,
    };
    options.drain_timeout = Duration::from_secs(5);
    options.connect_timeout = Duration::from_secs(3);
    options
}

/// The sum of the values of the metric lines that start with `prefix` (name and labels); 0
/// when there is none.
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Parses `yaml` and resolves it with `options`; panics with the report when it is invalid.
pub fn resolve(yaml: &str, options: &ConfigOptions) -> Vec<BridgeConfig> {
    let raw = RawConfig::parse_str(yaml).expect("test config YAML");
    match config::resolve(&raw, options) {
        Ok(resolved) => resolved.bridges,
        Err(report) => panic!("invalid test config:\n{report}"),
    }
}

/// Options for brokers on loopback: the remote at `remote_endpoint`, the local broker at
/// 127.0.0.1:`local_port`, files not checked (the tests write them as they go).
pub fn loopback_options(remote_endpoint: String, local_port: u16) -> ConfigOptions {
    let mut options = ConfigOptions::default();
    options.remote_endpoint = Some(remote_endpoint);
    options.local_endpoint = Some(format!("127.0.0.1:{local_port}"));
    options.check_files = false;
    options
}
