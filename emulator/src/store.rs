//! The resources the emulator holds, and their JSON state file.
//!
//! Resources are kept as the JSON documents the API returns. Keys are lowercase because ARM
//! names are case-insensitive; the documents keep the case of the first PUT.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::route::NamespacePath;
use crate::{EmulatorError, ResourceKind};

/// The version written into the state file.
const STATE_VERSION: u32 = 1;

/// One namespace with its children.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct NamespaceEntry {
    /// The writable part of the namespace as last PUT or PATCHed (read-only fields stripped);
    /// PATCH merges into it.
    pub(crate) input: Value,
    /// The namespace resource as GET returns it.
    pub(crate) doc: Value,
    /// Children by kind, then by lowercase name.
    #[serde(default)]
    pub(crate) children: BTreeMap<ResourceKind, BTreeMap<String, Value>>,
    /// Role assignments at this namespace or its topic spaces, by lowercase name: the
    /// resource as GET returns it ({id, name, type, properties: {roleDefinitionId, principalId, principalType, scope, ...}}).
    #[serde(default)]
    pub(crate) role_assignments: BTreeMap<String, Value>,
}

impl NamespaceEntry {
    /// The children of one kind.
    pub(crate) fn of(&self, kind: ResourceKind) -> impl Iterator<Item = (&String, &Value)> {
        self.children.get(&kind).into_iter().flatten()
    }

    /// One child by name (case-insensitive).
    pub(crate) fn child(&self, kind: ResourceKind, name: &str) -> Option<&Value> {
        self.children.get(&kind)?.get(&key(name))
    }
}

/// Everything the emulator holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct State {
    #[serde(default)]
    version: u32,
    /// Namespaces by [`namespace_key`].
    #[serde(default)]
    pub(crate) namespaces: BTreeMap<String, NamespaceEntry>,
}

impl State {
    /// Reads a state file; a missing file is an empty state.
    pub(crate) fn load(path: &Path) -> Result<Self, EmulatorError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(EmulatorError::ReadState {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        serde_json::from_str(&text).map_err(|source| EmulatorError::ParseState {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the state file atomically: a sibling temporary file, then a rename over the target.
    pub(crate) fn save(&self, path: &Path) -> Result<(), EmulatorError> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let write_error = |path: &Path| {
            let path = path.to_owned();
            move |source| EmulatorError::WriteState { path, source }
        };
        let versioned = Self {
            version: STATE_VERSION,
            namespaces: self.namespaces.clone(),
        };
        let text = serde_json::to_vec_pretty(&versioned)
            .map_err(|e| write_error(path)(std::io::Error::other(e)))?;
        std::fs::write(&tmp, text).map_err(write_error(&tmp))?;
        std::fs::rename(&tmp, path).map_err(write_error(path))
    }

    /// The namespace entry at `path`.
    pub(crate) fn namespace(&self, path: &NamespacePath) -> Option<&NamespaceEntry> {
        self.namespaces.get(&namespace_key(path))
    }
}

/// The lowercase map key of a name.
pub(crate) fn key(name: &str) -> String {
    name.to_lowercase()
}

/// The map key of a namespace: `subscription/resourcegroup/namespace`, lowercase.
pub(crate) fn namespace_key(path: &NamespacePath) -> String {
    key(&format!(
        "{}/{}/{}",
        path.subscription, path.resource_group, path.namespace
    ))
}

/// The ARM id of a namespace.
pub(crate) fn namespace_id(path: &NamespacePath) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.EventGrid/namespaces/{}",
        path.subscription, path.resource_group, path.namespace
    )
}

/// RFC 3339 text of a time, as ARM writes it.
pub(crate) fn timestamp(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// The `provisioningState` of a stored document.
pub(crate) fn provisioning_state(doc: &Value) -> &str {
    doc.pointer("/properties/provisioningState")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Sets the `provisioningState` of a stored document.
pub(crate) fn set_provisioning_state(doc: &mut Value, state: &str) {
    if let Some(Value::Object(props)) = doc.get_mut("properties") {
        props.insert("provisioningState".into(), Value::String(state.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn state_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert!(State::load(&path).unwrap().namespaces.is_empty());
        let mut state = State::default();
        let mut entry = NamespaceEntry {
            doc: json!({"name": "ns1"}),
            ..NamespaceEntry::default()
        };
        entry
            .children
            .entry(ResourceKind::Client)
            .or_default()
            .insert("c1".into(), json!({"name": "C1"}));
        state.namespaces.insert("s/rg/ns1".into(), entry);
        state.save(&path).unwrap();
        assert!(!dir.path().join("state.json.tmp").exists());
        let loaded = State::load(&path).unwrap();
        let ns = &loaded.namespaces["s/rg/ns1"];
        assert_eq!(ns.child(ResourceKind::Client, "c1").unwrap()["name"], "C1");
        assert_eq!(loaded.version, STATE_VERSION);
    }

    #[test]
    fn garbage_state_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "not json").unwrap();
        assert!(matches!(
            State::load(&path),
            Err(EmulatorError::ParseState { .. })
        ));
    }
}
