//! The embedded Event Grid OpenAPI specs, and a validator for the part of OpenAPI 2.0 they use.
//!
//! The two `EventGrid.json` files under `specs/` are Microsoft's public specs (stable
//! `2025-02-15` and `2026-06-15-preview`); `specs/common-types.json` is the small subset of ARM
//! common-types they reference. Request bodies are checked against the definition of the
//! api-version used, so a property that only exists in the preview is refused on the stable
//! version.
//!
//! What the validator understands (everything the namespace and MQTT child definitions use):
//! `type`, `properties`, `required`, `enum` (case-insensitive, answered in canonical case),
//! `readOnly`, `items`, `additionalProperties`, `allOf`, `$ref` (local and common-types),
//! `discriminator` / `x-ms-discriminator-value`, `format: int32`, and the generic keywords
//! `minLength`, `maxLength`, `minimum`, `maximum` and `pattern` (character-class patterns of the
//! form `^[…]*$`, the only form these specs use) even though the definitions use them only on
//! path parameters. Name rules for each resource type come from those path parameters.
//!
//! [`Spec::authorization`] (module `authorization`) loads Microsoft's
//! `Microsoft.Authorization` role assignments spec (`2022-04-01`) into the same validator.
//!
//! Layout: this module loads a spec and resolves `$ref`s; `names` reads the name rules from the
//! path parameters; `validate` walks a body against a definition; `keywords` checks the leaf
//! keywords (lengths, patterns, bounds, `enum`); `authorization` loads the role assignments spec.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::{EmulatorError, ResourceKind};

const STABLE_JSON: &str = include_str!("../specs/2025-02-15/EventGrid.json");
const PREVIEW_JSON: &str = include_str!("../specs/2026-06-15-preview/EventGrid.json");
const COMMON_JSON: &str = include_str!("../specs/common-types.json");

mod authorization;
mod keywords;
mod names;
mod validate;

pub use authorization::{AUTHORIZATION_API_VERSION, ROLE_ASSIGNMENT_CREATE_DEFINITION};
pub use names::NameRule;

/// The api-version of the embedded stable spec.
pub const STABLE_API_VERSION: &str = "2025-02-15";
/// The api-version of the embedded preview spec.
pub const PREVIEW_API_VERSION: &str = "2026-06-15-preview";

/// The definition of the namespace PATCH body.
pub const NAMESPACE_UPDATE_DEFINITION: &str = "NamespaceUpdateParameters";

/// Which way a body travels: requests drop read-only properties, responses keep and check them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// A request body: read-only properties and `null` values are dropped (ARM ignores them).
    Request,
    /// A response body: read-only properties are checked like the others.
    Response,
}

/// Why a body does not match its schema.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", if path.is_empty() { "body" } else { path.as_str() })]
pub struct SchemaViolation {
    /// The dotted JSON path of the offending value, e.g. `properties.topicTemplates[0]`; empty
    /// for the body itself.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

fn violation(path: &str, reason: impl Into<String>) -> SchemaViolation {
    SchemaViolation {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Doc {
    Main,
    Common,
}

/// One loaded spec: its definitions, discriminator subtypes and name rules.
#[derive(Debug)]
pub struct Spec {
    api_version: &'static str,
    definitions: Map<String, Value>,
    common: Map<String, Value>,
    /// `(base definition, discriminator value)` → subtype definition.
    subtypes: HashMap<(String, String), String>,
    names: HashMap<ResourceKind, NameRule>,
}

impl Spec {
    /// The embedded stable spec (`2025-02-15`).
    pub fn stable() -> Result<Self, EmulatorError> {
        Self::load(STABLE_API_VERSION, STABLE_JSON)
    }

    /// The embedded preview spec (`2026-06-15-preview`).
    pub fn preview() -> Result<Self, EmulatorError> {
        Self::load(PREVIEW_API_VERSION, PREVIEW_JSON)
    }

    /// The spec that validates `api_version`: the Authorization one for
    /// [`AUTHORIZATION_API_VERSION`], the preview one for `…-preview`, else the stable one.
    pub fn for_api_version(api_version: &str) -> Result<Self, EmulatorError> {
        if api_version == AUTHORIZATION_API_VERSION {
            Self::authorization()
        } else if is_preview(api_version) {
            Self::preview()
        } else {
            Self::stable()
        }
    }

    fn load(api_version: &'static str, text: &str) -> Result<Self, EmulatorError> {
        let fail = |reason: String| EmulatorError::Spec {
            api_version: api_version.to_owned(),
            reason,
        };
        let mut root: Value =
            serde_json::from_str(text).map_err(|e| fail(format!("not JSON: {e}")))?;
        let mut common: Value =
            serde_json::from_str(COMMON_JSON).map_err(|e| fail(format!("common-types: {e}")))?;
        let take_definitions = |doc: &mut Value| match doc.get_mut("definitions").map(Value::take) {
            Some(Value::Object(map)) => Ok(map),
            _ => Err(fail("no definitions".into())),
        };
        let names = names::name_rules(&root).map_err(fail)?;
        let spec = Self {
            api_version,
            subtypes: HashMap::new(),
            definitions: take_definitions(&mut root)?,
            common: take_definitions(&mut common)?,
            names,
        };
        let spec = Self {
            subtypes: spec.find_subtypes(),
            ..spec
        };
        spec.check_references().map_err(fail)?;
        Ok(spec)
    }

    fn find_subtypes(&self) -> HashMap<(String, String), String> {
        let mut subtypes = HashMap::new();
        for (name, def) in &self.definitions {
            let Some(tag) = def.get("x-ms-discriminator-value").and_then(Value::as_str) else {
                continue;
            };
            let bases = def
                .get("allOf")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            for base in bases.filter_map(|b| b.get("$ref").and_then(Value::as_str)) {
                if let Some(base) = base.strip_prefix("#/definitions/") {
                    subtypes.insert((base.to_owned(), tag.to_owned()), name.clone());
                }
            }
        }
        subtypes
    }

    /// Resolves every `$ref` reachable from the served definitions, so that a broken spec fails at
    /// start and never in the middle of a request.
    fn check_references(&self) -> Result<(), String> {
        let mut pending: Vec<(Doc, &str)> = ResourceKind::EVENT_GRID
            .iter()
            .map(|kind| (Doc::Main, kind.definition()))
            .chain([(Doc::Main, NAMESPACE_UPDATE_DEFINITION)])
            .collect();
        pending.extend(self.subtypes.values().map(|s| (Doc::Main, s.as_str())));
        self.check_reachable(pending)
    }

    /// Resolves every `$ref` reachable from the definitions `pending` names.
    fn check_reachable<'s>(&'s self, mut pending: Vec<(Doc, &'s str)>) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        while let Some((doc, name)) = pending.pop() {
            if !seen.insert((doc, name)) {
                continue;
            }
            let def = self
                .table(doc)
                .get(name)
                .ok_or_else(|| format!("missing definition {name}"))?;
            let mut refs = Vec::new();
            collect_refs(def, &mut refs);
            for reference in refs {
                let (target, target_name, _) = self
                    .resolve(doc, reference)
                    .map_err(|v| format!("in {name}: {}", v.reason))?;
                pending.push((target, target_name));
            }
        }
        Ok(())
    }

    /// The api-version of this spec.
    pub fn api_version(&self) -> &str {
        self.api_version
    }

    /// The name rule of `kind`, from its path parameter.
    pub fn name_rule(&self, kind: ResourceKind) -> Option<&NameRule> {
        self.names.get(&kind)
    }

    fn table(&self, doc: Doc) -> &Map<String, Value> {
        match doc {
            Doc::Main => &self.definitions,
            Doc::Common => &self.common,
        }
    }

    fn resolve<'a>(
        &'a self,
        doc: Doc,
        reference: &'a str,
    ) -> Result<(Doc, &'a str, &'a Value), SchemaViolation> {
        let unresolved = || violation("", format!("cannot resolve $ref {reference}"));
        let (file, fragment) = reference.split_once('#').ok_or_else(unresolved)?;
        let name = fragment
            .strip_prefix("/definitions/")
            .ok_or_else(unresolved)?;
        let target = if file.is_empty() {
            doc
        } else if file.ends_with("/types.json") {
            Doc::Common
        } else {
            return Err(unresolved());
        };
        let def = self.table(target).get(name).ok_or_else(unresolved)?;
        Ok((target, name, def))
    }
}

/// Whether `api_version` is validated against the preview spec.
pub(crate) fn is_preview(api_version: &str) -> bool {
    api_version.ends_with("-preview")
}

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match (key.as_str(), item) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => collect_refs(item, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, out)),
        _ => {}
    }
}
