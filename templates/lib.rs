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

/// The subscription ID the demo and the tests give the seed's spec against an emulator.
pub const EMULATOR_SUBSCRIPTION_ID: &str = "00000000-0000-0000-0000-00000000e4ed";

/// [`EVENTGRID_YAML`] with `${AZURE_SUBSCRIPTION_ID}` set to `subscription_id`.
#[must_use]
pub fn eventgrid_yaml(subscription_id: &str) -> String {
    EVENTGRID_YAML.replace("${AZURE_SUBSCRIPTION_ID}", subscription_id)
}
