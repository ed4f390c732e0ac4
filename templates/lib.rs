//! Seed files that users start from, embedded so that commands can print or render them.
//!
//! Each template is a plain file in this directory; this crate only embeds them with
//! `include_str!`, so that the files stay readable and diffable on their own.

/// The seed's `bridge.yaml` (`MqttBridgeConnector` + `MqttBridgeTopicMap`), unchanged.
pub const BRIDGE_YAML: &str = include_str!("bridge.yaml");

/// The seed's whole Event Grid setup as an `e4k eventgrid` spec.
pub const EVENTGRID_YAML: &str = include_str!("eventgrid.yaml");

/// The Kubernetes manifests that run `e4k bridge run` (ServiceAccount, ConfigMap, Service,
/// StatefulSet), with `${…}` placeholders that `e4k k8s manifests` fills in.
pub const K8S_BRIDGE_YAML: &str = include_str!("k8s/bridge.yaml");
