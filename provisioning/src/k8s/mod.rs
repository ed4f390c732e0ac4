//! Kubernetes: the bridge's client certificate Secret and the manifests that run the bridge.
//!
//! - [`secret`]: a Secret byte for byte as `kubectl create secret generic --dry-run=client -o
//!   yaml` prints it, after checking that the certificate and key match and the key is usable.
//! - [`apply`]: server-side apply (field manager `e4k`) to the current kubeconfig's cluster.
//! - [`manifests`]: ServiceAccount, ConfigMap, Service and StatefulSet that run the bridge,
//!   with a persistent spool volume per pod.
//! - [`quantity`]: Kubernetes quantities of bytes (`512Mi`, `1Gi`, `10G`), parsed and printed.

pub mod apply;
pub mod manifests;
pub mod quantity;
pub mod secret;
