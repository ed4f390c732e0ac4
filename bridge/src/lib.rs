//! The e4k MQTT v5 bridge engine.
//!
//! # Layout
//!
//! - [`config`]: reads `MqttBridgeConnector` / `MqttBridgeTopicMap` YAML (both the
//!   `az-edge.com/v1alpha4` and `mq.iotoperations.azure.com/v1beta1` spellings), validates it
//!   into a [`config::Report`] that lists every problem with its YAML path, and resolves it
//!   into typed [`config::BridgeConfig`]s.
//! - [`engine`]: the routing engine. [`Bridge`] plans the links (client sessions) of the
//!   configured connectors and [`Bridge::run`] connects both brokers, forwards messages with
//!   ordered at-least-once delivery, serves `/metrics`, `/healthz` and `/readyz`, and drains
//!   and disconnects on shutdown.
//! - [`spool`]: the durable store-and-forward spool (`--spool-dir`) and
//!   [`spool::inspect`].
//! - [`run_options`]: what `e4k bridge run` derives from the configuration (whether it needs
//!   an Entra ID credential, its default log level).
//! - [`units`]: quantities on the command line (`10s`, `1GiB`): one "number + unit" parser.
//! - [`error`]: [`BridgeError`], for input that cannot be read or parsed and for failures to
//!   start.
//!
//! ```no_run
//! use e4k_bridge::config::{self, ConfigOptions, RawConfig};
//! use e4k_bridge::{Bridge, RunOptions};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let raw = RawConfig::load("bridge.yaml".as_ref())?;
//! let resolved = config::resolve(&raw, &ConfigOptions::default()).map_err(|r| r.to_string())?;
//! let bridge = Bridge::new(&resolved.bridges, RunOptions::default())?;
//! let shutdown = CancellationToken::new();
//! bridge.run(shutdown).await?;
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod engine;
pub mod error;
pub mod run_options;
pub mod spool;
pub mod units;

pub use engine::{Bridge, BridgeHandle, RunOptions};
pub use error::BridgeError;
