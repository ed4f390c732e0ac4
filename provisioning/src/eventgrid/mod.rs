//! Event Grid MQTT provisioning through ARM: a declarative spec, static validation, a plan
//! (create / update / delete / no-op with field diffs) and its application.
//!
//! - [`arm`]: the ARM client: requests with retries (429/5xx, `Retry-After`, capped exponential
//!   backoff), long-running operations, paged lists, cancellation.
//! - [`assertion`]: service principal certificate credentials (RS256 client assertions).
//! - [`credential`]: access tokens: Azure CLI / developer tools, service principal, workload and
//!   managed identity (azure_identity), or a static token for the emulator.
//! - [`session`]: the ARM flags ([`session::ArmOptions`]) into a credential and an ARM client.
//! - [`spec`]: the YAML spec file (`templates/eventgrid.yaml` is the seed's whole setup).
//! - [`validate`]: static validation with spec paths, before any network call.
//! - [`load`]: a spec file read, validated and turned into the desired ARM state.
//! - [`kind`]: [`kind::ResourceKind`], the resource types and their ARM names (shared with the
//!   emulator).
//! - [`model`]: the desired ARM state (ids, PUT bodies; CA PEM without line breaks).
//! - [`plan`]: create / update / replace / delete / no-op per resource, with field diffs.
//! - [`apply`]: reading the current state, applying a plan in dependency order with bounded
//!   parallelism, and `destroy_plan` (carried out by the same `apply`).
//! - [`render`]: plans and applied changes as text, and the resources `show` lists.
//! - [`rbac`]: Azure RBAC role assignments on the namespace and its topic spaces (spec,
//!   deterministic names, validation, reading, planning).
//! - [`jwt`]: custom JWT authentication of MQTT clients (issuer and certificates).
//! - [`rules`]: Event Grid's syntax rules (client group queries, topic templates), shared with
//!   the emulator.

pub mod apply;
pub mod arm;
pub mod assertion;
pub mod credential;
pub mod jwt;
pub mod kind;
pub mod load;
pub mod model;
pub mod plan;
pub mod rbac;
pub mod render;
pub mod rules;
pub mod session;
pub mod spec;
pub mod validate;
