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
//! Kubernetes secrets and manifests join this crate in a later module.

pub mod certs;
mod error;
pub mod eventgrid;

pub use error::{Error, Result};
