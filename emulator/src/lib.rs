//! A local Azure Event Grid namespace: the ARM control plane for namespaces and their MQTT child
//! resources, served over HTTP for offline tests and CI, and optionally the MQTT data plane
//! (a TLS port that authenticates clients and authorizes topics from the control-plane state).
//!
//! Tests start it in-process on port 0 and point an ARM client at
//! [`RunningEmulator::base_url`]. It validates request bodies against the embedded OpenAPI
//! specs of the api-version used, applies the service rules Event Grid enforces, answers writes
//! as long-running operations, injects seeded faults, counts requests and can persist its state.
//! See `README.md` for the routes, the rules and the differences from the real service.
//!
//! ```
//! use e4k_emulator::{Emulator, EmulatorConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), e4k_emulator::EmulatorError> {
//! let emulator = Emulator::start(EmulatorConfig { page_size: 2, ..EmulatorConfig::default() }).await?;
//! let base = emulator.base_url(); // use instead of https://management.azure.com
//! # let _ = base;
//! // ... run the code under test against `base` ...
//! assert_eq!(emulator.stats().writes(), 0);
//! emulator.shutdown().await
//! # }
//! ```
//!
//! # Layout
//! - [`server`] holds [`Emulator`] (bind, run with a `CancellationToken`, start in the background)
//!   and [`RunningEmulator`] (address, stats, request log, shutdown).
//! - [`config`] holds [`EmulatorConfig`], [`FaultConfig`], [`Quotas`], [`MqttConfig`],
//!   [`IdentityConfig`]; [`options`] holds [`EmulatorOptions`] (the command line's flags) and
//!   [`EmulatorConfig::from_options`].
//! - [`identity`] holds the local token issuer ([`TokenIssuer`], [`TokenRequest`]), the
//!   managed-identity endpoint `azure_identity` can use, and the Event Grid [`DataRole`]s.
//! - [`spec`] holds the embedded OpenAPI specs and the body validator, usable on its own.
//! - [`stats`] holds the [`Stats`] counters and [`CapturedRequest`]s.
//! - [`demo`] runs `e4k demo`: the seed walkthrough against the emulator, with the bridge.
//! - [`mosquitto`] runs one mosquitto process ([`mosquitto::Mosquitto`]: start and wait until
//!   it listens, reload, stop), for the data plane, `e4k demo` and the e2e test fixtures.
//! - [`ResourceKind`] (e4k-provisioning's, re-exported) names the resource types served: the
//!   namespace, its five MQTT child types and role assignments (`Microsoft.Authorization`, at the
//!   namespace or a topic space).
//! - Internals: `service` (request handling and ARM operations; `service::role_assignments`
//!   the `Microsoft.Authorization/roleAssignments` routes), `route` (path parsing),
//!   `rules` (service rules beyond the schema: clients, topic templates, client group queries,
//!   bindings, certificates), `store` (resources and the state file), `arm` (error bodies),
//!   `faults` (seeded fault injection), `mqtt` (the data plane: TLS front end, client
//!   authentication by certificate or JWT, re-authentication, the private mosquitto and its
//!   ACL generated from the state).

pub mod config;
pub mod demo;
mod error;
pub mod identity;
pub mod mosquitto;
pub mod options;
pub mod server;
pub mod spec;
pub mod stats;

mod arm;
mod faults;
mod mqtt;
mod route;
mod rules;
mod service;
mod store;

pub use config::{EmulatorConfig, FaultConfig, IdentityConfig, MqttConfig, PublishLimit, Quotas};
pub use e4k_provisioning::eventgrid::kind::ResourceKind;
pub use error::EmulatorError;
pub use identity::{DataRole, TokenIssuer, TokenRequest};
pub use options::EmulatorOptions;
pub use server::{Emulator, RunningEmulator};
pub use stats::{CapturedRequest, MqttClientStats, Stats, Verb};
