//! The e4k MQTT v5 bridge engine.
//!
//! # Layout
//!
//! - [`config`]: reads `MqttBridgeConnector` / `MqttBridgeTopicMap` YAML (both the
//!   `az-edge.com/v1alpha4` and `mq.iotoperations.azure.com/v1beta1` spellings), validates it
//!   into a [`config::Report`] that lists every problem with its YAML path, and resolves it
//!   into typed [`config::BridgeConfig`]s.
//! - [`error`]: [`ConfigError`], for input that cannot be read or parsed at all.
//!
//! The routing engine, metrics and health endpoints are not built yet.

pub mod config;
pub mod error;

pub use error::ConfigError;
