//! Request counters, the optional request log and the MQTT per-client counters that tests
//! read.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::ResourceKind;

/// What a request did to a resource type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// GET of one resource.
    Get,
    /// GET of a collection (one page).
    List,
    /// PUT (create or replace).
    Put,
    /// PATCH (namespace update).
    Patch,
    /// DELETE.
    Delete,
}

impl Verb {
    /// Whether the verb changes state (PUT, PATCH, DELETE).
    pub fn is_write(self) -> bool {
        matches!(self, Self::Put | Self::Patch | Self::Delete)
    }
}

/// A snapshot of the request counters. Every request that reaches a resource route is counted,
/// whatever its outcome (rejected, throttled, accepted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests per verb and resource type.
    pub by_kind: BTreeMap<(Verb, ResourceKind), u64>,
    /// GETs of operation-status and operation-result monitors.
    pub polls: u64,
    /// Requests to paths the emulator does not serve.
    pub unrouted: u64,
    /// Requests answered with an injected 429.
    pub throttled: u64,
    /// Requests answered with an injected 500 or 503.
    pub server_errors: u64,
    /// Tokens the managed-identity endpoint issued.
    pub identity_tokens: u64,
}

impl Stats {
    /// Requests with `verb` on `kind`.
    pub fn count(&self, verb: Verb, kind: ResourceKind) -> u64 {
        self.by_kind.get(&(verb, kind)).copied().unwrap_or_default()
    }

    fn sum(&self, keep: impl Fn(Verb, ResourceKind) -> bool) -> u64 {
        self.by_kind
            .iter()
            .filter(|((verb, kind), _)| keep(*verb, *kind))
            .map(|(_, n)| n)
            .sum()
    }

    /// PUT, PATCH and DELETE requests on any resource type.
    pub fn writes(&self) -> u64 {
        self.sum(|verb, _| verb.is_write())
    }

    /// GETs of single resources.
    pub fn gets(&self) -> u64 {
        self.sum(|verb, _| verb == Verb::Get)
    }

    /// GETs of collections (each page counts).
    pub fn lists(&self) -> u64 {
        self.sum(|verb, _| verb == Verb::List)
    }

    /// Requests of any verb on `kind`.
    pub fn for_kind(&self, kind: ResourceKind) -> u64 {
        self.sum(|_, k| k == kind)
    }

    /// Every request counted, polls and unrouted ones included.
    pub fn total(&self) -> u64 {
        self.sum(|_, _| true) + self.polls + self.unrouted
    }
}

/// What the MQTT front end saw of one client id (session name), for tests: e.g. a JWT client
/// that re-authenticated twice on one connection has `connects == 1` and
/// `reauthentications == 2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MqttClientStats {
    /// CONNECT packets received (accepted or refused).
    pub connects: u64,
    /// CONNECTs the front end accepted and passed to the broker.
    pub accepted: u64,
    /// AUTH re-authentications (reason 0x19) answered with success.
    pub reauthentications: u64,
    /// AUTH re-authentications refused (the connection was closed with DISCONNECT).
    pub reauthentication_failures: u64,
    /// Connections closed because their token expired.
    pub expired: u64,
}

/// One request as the emulator received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedRequest {
    /// The HTTP method, e.g. `PUT`.
    pub method: String,
    /// The decoded-as-sent path, without the query.
    pub path: String,
    /// The `api-version` query parameter, if any.
    pub api_version: Option<String>,
    /// The body as text, if the request had one.
    pub body: Option<String>,
}

impl CapturedRequest {
    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        self.body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
    }
}
