//! Integration tests of the bridge configuration: parsing, resolution, and one test per
//! validation problem with its exact message and path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use e4k_bridge::config::{
    self, Authentication, BridgeError, ConfigOptions, Direction, LogLevel, Problem, QoS, RawConfig,
    Report, SessionRole, Severity, SharedSubscription, Transport, TrustRoots,
};

fn seed_yaml() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/bridge.yaml");
    std::fs::read_to_string(path).unwrap()
}

/// Options that do not touch the file system.
fn no_files() -> ConfigOptions {
    let mut options = ConfigOptions::default();
    options.check_files = false;
    options
}

const CONNECTOR: &str = "\
apiVersion: az-edge.com/v1alpha4
kind: MqttBridgeConnector
metadata:
  name: bridge
spec:
  bridgeInstances: 1
  clientIdPrefix: e4k
  remoteBrokerConnection:
    endpoint: example.westeurope-1.ts.eventgrid.azure.net:8883
    tls:
      tlsEnabled: true
    authentication:
      x509:
        clientK8sSecret: bridge-client-cert
";

/// A topic map named `name`, referring to connector `bridge`, whose `routes:` block is
/// `routes` (already indented), after the YAML `before`.
fn topic_map(before: &str, name: &str, routes: &str) -> String {
    format!(
        "{before}---
apiVersion: az-edge.com/v1alpha4
kind: MqttBridgeTopicMap
metadata:
  name: {name}
spec:
  mqttBridgeConnectorRef: bridge
  routes:
{routes}"
    )
}

/// The test connector plus topic map `map` with the given routes.
fn with_routes(routes: &str) -> String {
    topic_map(CONNECTOR, "map", routes)
}

/// `connector` plus topic map `map` with one valid route.
fn with_connector(connector: &str) -> String {
    topic_map(connector, "map", UP)
}

/// The test connector plus one route with the given `sharedSubscription` value.
fn with_shared_subscription(shared: &str) -> String {
    with_routes(&format!(
        "    - {{direction: local-to-remote, name: a, source: a/#, sharedSubscription: {shared}}}\n"
    ))
}

/// A valid local-to-remote route.
const UP: &str = "    - {direction: local-to-remote, name: up, source: up/#}\n";

fn report(yaml: &str, options: &ConfigOptions) -> Report {
    config::validate(&RawConfig::parse_str(yaml).unwrap(), options)
}

/// `(severity, path, message)` of every problem, without touching files.
fn problems(yaml: &str) -> Vec<(Severity, String, String)> {
    summarize(&report(yaml, &no_files()))
}

fn summarize(report: &Report) -> Vec<(Severity, String, String)> {
    report
        .problems
        .iter()
        .map(|p| (p.severity, p.path.clone(), p.message.clone()))
        .collect()
}

fn error(path: &str, message: &str) -> (Severity, String, String) {
    (Severity::Error, path.to_owned(), message.to_owned())
}

fn warning(path: &str, message: &str) -> (Severity, String, String) {
    (Severity::Warning, path.to_owned(), message.to_owned())
}

const CONN: &str = "documents[0](MqttBridgeConnector/bridge)";
const MAP: &str = "documents[1](MqttBridgeTopicMap/map)";

fn conn(field: &str) -> String {
    format!("{CONN}.{field}")
}

fn route(index: usize, field: &str) -> String {
    format!("{MAP}.spec.routes[{index}].{field}")
}

/// The connector cut off before `marker`, with a topic map.
fn connector_until(marker: &str) -> String {
    let end = CONNECTOR.find(marker).unwrap();
    with_connector(&CONNECTOR[..end])
}

/// The connector with one line of its spec replaced.
fn connector_replacing(from: &str, to: &str) -> String {
    assert!(CONNECTOR.contains(from), "{from}");
    with_connector(&CONNECTOR.replace(from, to))
}

/// Defines one test per validation problem: `name: yaml => [expected problems];` asserts that
/// validating `yaml` (without touching files) reports exactly the expected problems.
macro_rules! problem_tests {
    ($($name:ident: $yaml:expr => [$($expected:expr),* $(,)?];)*) => {
        $(
            #[test]
            fn $name() {
                assert_eq!(problems(&$yaml), [$($expected),*]);
            }
        )*
    };
}

/// `value.pipe(f)` = `f(value)`, to keep the problem tests one expression each.
trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl Pipe for String {}

fn resolve_one(yaml: &str) -> config::BridgeConfig {
    let raw = RawConfig::parse_str(yaml).unwrap();
    let mut resolved = config::resolve(&raw, &no_files()).unwrap_or_else(|r| panic!("{r}"));
    resolved.bridges.remove(0)
}

mod connectors;
mod documents;
mod malformed;
mod options;
mod overlaps;
mod report;
mod routes;
mod seed;
