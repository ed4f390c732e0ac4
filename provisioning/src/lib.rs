//! e4k provisioning: everything that prepares the ground for the bridge.
//!
//! # Layout
//! - [`certs`]: the PKI that replaces `step ca init` / `step certificate create`: a root and an
//!   intermediate CA, client and server leaf certificates, bulk issue, inspection with what Event
//!   Grid reads from a certificate, path validation with an Event Grid preflight, expiry checks.
//! - [`Error`]: the crate's one error type; [`Error::is_usage`] tells input errors from failures.
//!
//! - [`eventgrid`]: Event Grid MQTT provisioning through ARM (spec, validation, plan, apply).
//!
//! - [`up`]: the seed flow end to end (certs, Event Grid, bridge config, Secret, manifests).
//! - [`k8s`]: the bridge's Secret (kubectl-identical) and manifests.

pub mod certs;
mod error;
pub mod eventgrid;
pub mod k8s;
pub mod up;

pub use error::{Error, Result};
