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

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::{EmulatorError, ResourceKind};

const STABLE_JSON: &str = include_str!("../specs/2025-02-15/EventGrid.json");
const PREVIEW_JSON: &str = include_str!("../specs/2026-06-15-preview/EventGrid.json");
const COMMON_JSON: &str = include_str!("../specs/common-types.json");

mod authorization;
pub use authorization::{AUTHORIZATION_API_VERSION, ROLE_ASSIGNMENT_CREATE_DEFINITION};

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

/// The rule a resource name must follow, read from the spec's path parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameRule {
    /// The minimum length in characters.
    pub min_len: usize,
    /// The maximum length in characters.
    pub max_len: usize,
    /// The pattern as written in the spec, e.g. `^[a-zA-Z0-9-]*$`.
    pub pattern: String,
    allowed: CharClass,
}

impl NameRule {
    /// Checks `name`; the error says which rule it breaks.
    pub fn check(&self, name: &str) -> Result<(), String> {
        let len = name.chars().count();
        if len < self.min_len || len > self.max_len {
            return Err(format!(
                "must be between {} and {} characters long (it has {len})",
                self.min_len, self.max_len
            ));
        }
        match name.chars().find(|c| !self.allowed.contains(*c)) {
            Some(c) => Err(format!("contains {c:?}; it must match {}", self.pattern)),
            None => Ok(()),
        }
    }
}

/// A set of characters parsed from a pattern of the form `^[…]*$` (or `+`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct CharClass {
    ranges: Vec<(char, char)>,
}

impl CharClass {
    /// Parses `^[…]*$`; any other regex shape is refused (the specs use no other).
    fn parse(pattern: &str) -> Option<Self> {
        let body = pattern
            .strip_prefix("^[")?
            .strip_suffix("]*$")
            .or_else(|| pattern.strip_prefix("^[")?.strip_suffix("]+$"))?;
        let mut literals = Vec::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            let literal = if c == '\\' { chars.next()? } else { c };
            literals.push((literal, c == '\\'));
        }
        let mut ranges = Vec::new();
        let mut i = 0;
        while i < literals.len() {
            let (lo, _) = literals[i];
            match (literals.get(i + 1), literals.get(i + 2)) {
                (Some(('-', false)), Some((hi, _))) => {
                    ranges.push((lo, *hi));
                    i += 3;
                }
                _ => {
                    ranges.push((lo, lo));
                    i += 1;
                }
            }
        }
        Some(Self { ranges })
    }

    fn contains(&self, c: char) -> bool {
        self.ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Doc {
    Main,
    Common,
}

/// The properties, required names and extra-property schema an object schema allows, with
/// `allOf` folded in.
#[derive(Default)]
struct Shape<'a> {
    properties: Vec<(Doc, &'a str, &'a Value)>,
    required: Vec<&'a str>,
    additional: Option<(Doc, &'a Value)>,
}

impl<'a> Shape<'a> {
    /// Finds a property exactly, then case-insensitively (ARM deserialises case-insensitively).
    fn property(&self, key: &str) -> Option<(Doc, &'a str, &'a Value)> {
        self.properties
            .iter()
            .find(|(_, name, _)| *name == key)
            .or_else(|| {
                self.properties
                    .iter()
                    .find(|(_, name, _)| name.eq_ignore_ascii_case(key))
            })
            .copied()
    }
}

/// A schema that accepts anything (`additionalProperties: true`, a missing `items`).
static ANY: Value = Value::Bool(true);

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
        let names = name_rules(&root).map_err(fail)?;
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

    /// Checks `value` against `definition` and returns it cleaned: properties in their canonical
    /// case, enum values in canonical case, and (for requests) read-only properties and `null`s
    /// dropped. A property the definition does not declare is a violation.
    pub fn validate(
        &self,
        definition: &str,
        value: &Value,
        direction: Direction,
    ) -> Result<Value, SchemaViolation> {
        let schema = self
            .definitions
            .get(definition)
            .ok_or_else(|| violation("", format!("unknown definition {definition}")))?;
        let node = Node {
            doc: Doc::Main,
            name: Some(definition),
            schema,
        };
        Walk {
            spec: self,
            direction,
        }
        .check_node(node, value, "")
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

    fn is_read_only(&self, doc: Doc, schema: &Value) -> bool {
        let flag = |s: &Value| s.get("readOnly").and_then(Value::as_bool) == Some(true);
        flag(schema)
            || schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| self.resolve(doc, r).ok())
                .is_some_and(|(_, _, def)| flag(def))
    }

    /// The subtype a discriminated object names, if `node` is a discriminated base.
    fn subtype(&self, node: Node<'_>, input: &Map<String, Value>) -> Option<&str> {
        let field = node.schema.get("discriminator").and_then(Value::as_str)?;
        let tag = input.get(field).and_then(Value::as_str)?;
        let base = node.name.filter(|_| node.doc == Doc::Main)?;
        let key = self
            .subtypes
            .keys()
            .find(|(b, t)| b == base && t.eq_ignore_ascii_case(tag))?;
        self.subtypes.get(key).map(String::as_str)
    }

    fn collect<'a>(
        &'a self,
        doc: Doc,
        schema: &'a Value,
        shape: &mut Shape<'a>,
    ) -> Result<(), SchemaViolation> {
        for part in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match part.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    let (target, _, def) = self.resolve(doc, reference)?;
                    self.collect(target, def, shape)?;
                }
                None => self.collect(doc, part, shape)?,
            }
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (key, property) in properties {
                shape.properties.retain(|(_, name, _)| name != key);
                shape.properties.push((doc, key.as_str(), property));
            }
        }
        let required = schema.get("required").and_then(Value::as_array);
        shape
            .required
            .extend(required.into_iter().flatten().filter_map(Value::as_str));
        match schema.get("additionalProperties") {
            Some(Value::Bool(true)) => shape.additional = Some((doc, &ANY)),
            Some(extra @ Value::Object(_)) => shape.additional = Some((doc, extra)),
            _ => {}
        }
        Ok(())
    }
}

/// Where a schema sits: its document, its definition name (if it is one) and its JSON.
#[derive(Clone, Copy)]
struct Node<'a> {
    doc: Doc,
    name: Option<&'a str>,
    schema: &'a Value,
}

/// One validation run over a body.
struct Walk<'a> {
    spec: &'a Spec,
    direction: Direction,
}

impl Walk<'_> {
    /// Checks `value` against an unresolved schema (a `$ref` or an inline schema).
    fn check(
        &self,
        doc: Doc,
        schema: &Value,
        value: &Value,
        path: &str,
    ) -> Result<Value, SchemaViolation> {
        let node = match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let (doc, name, schema) = self.spec.resolve(doc, reference)?;
                Node {
                    doc,
                    name: Some(name),
                    schema,
                }
            }
            None => Node {
                doc,
                name: None,
                schema,
            },
        };
        self.check_node(node, value, path)
    }

    fn check_node(
        &self,
        node: Node<'_>,
        value: &Value,
        path: &str,
    ) -> Result<Value, SchemaViolation> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let schema = node.schema;
        let is_object_schema = ["properties", "allOf", "additionalProperties"]
            .iter()
            .any(|k| schema.get(k).is_some());
        let ty = schema
            .get("type")
            .and_then(Value::as_str)
            .or(is_object_schema.then_some("object"));
        let checked = match ty {
            Some("object") => return self.check_object(node, value, path),
            Some("array") => {
                let items = value
                    .as_array()
                    .ok_or_else(|| type_error(path, "an array", value))?;
                let item_schema = schema.get("items").unwrap_or(&ANY);
                let checked = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        self.check(node.doc, item_schema, item, &format!("{path}[{i}]"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Value::Array(checked)
            }
            Some("string") => {
                let text = value
                    .as_str()
                    .ok_or_else(|| type_error(path, "a string", value))?;
                check_string(schema, text, path)?;
                value.clone()
            }
            Some("integer") => {
                if !(value.is_i64() || value.is_u64()) {
                    return Err(type_error(path, "an integer", value));
                }
                check_number(schema, value, path)?;
                value.clone()
            }
            Some("number") => {
                if !value.is_number() {
                    return Err(type_error(path, "a number", value));
                }
                check_number(schema, value, path)?;
                value.clone()
            }
            Some("boolean") => {
                if !value.is_boolean() {
                    return Err(type_error(path, "a boolean", value));
                }
                value.clone()
            }
            Some(other) => {
                return Err(violation(path, format!("unsupported schema type {other}")));
            }
            None => value.clone(),
        };
        match schema.get("enum").and_then(Value::as_array) {
            Some(allowed) => canonical_enum(allowed, checked, path),
            None => Ok(checked),
        }
    }

    fn check_object(
        &self,
        node: Node<'_>,
        value: &Value,
        path: &str,
    ) -> Result<Value, SchemaViolation> {
        let input = value
            .as_object()
            .ok_or_else(|| type_error(path, "an object", value))?;
        let mut shape = Shape::default();
        // A discriminated base dispatches to its subtype, whose allOf holds the base; the
        // subtype is collected without dispatching again.
        let node = match self.spec.subtype(node, input) {
            Some(subtype) => Node {
                doc: Doc::Main,
                name: Some(subtype),
                schema: self.spec.table(Doc::Main).get(subtype).unwrap_or(&ANY),
            },
            None => node,
        };
        self.spec.collect(node.doc, node.schema, &mut shape)?;
        self.check_fields(&shape, node.name, input, path)
    }

    fn check_fields(
        &self,
        shape: &Shape<'_>,
        name: Option<&str>,
        input: &Map<String, Value>,
        path: &str,
    ) -> Result<Value, SchemaViolation> {
        let mut out = Map::new();
        for (key, item) in input {
            let item_path = join(path, key);
            if let Some((doc, canonical, schema)) = shape.property(key) {
                let dropped = self.direction == Direction::Request
                    && (item.is_null() || self.spec.is_read_only(doc, schema));
                if !dropped {
                    let checked = self.check(doc, schema, item, &item_path)?;
                    out.insert(canonical.to_owned(), checked);
                }
            } else if let Some((doc, schema)) = shape.additional {
                let checked = self.check(doc, schema, item, &item_path)?;
                out.insert(key.clone(), checked);
            } else {
                let owner = name.unwrap_or("this object");
                return Err(violation(
                    &item_path,
                    format!(
                        "'{key}' is not a property of {owner} in api-version {}",
                        self.spec.api_version
                    ),
                ));
            }
        }
        if let Some(missing) = shape
            .required
            .iter()
            .find(|r| out.get(**r).is_none_or(Value::is_null))
        {
            return Err(violation(&join(path, missing), "is required"));
        }
        Ok(Value::Object(out))
    }
}

/// Whether `api_version` is validated against the preview spec.
pub(crate) fn is_preview(api_version: &str) -> bool {
    api_version.ends_with("-preview")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn type_error(path: &str, expected: &str, value: &Value) -> SchemaViolation {
    let found = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    violation(path, format!("must be {expected}, not {found}"))
}

fn check_string(schema: &Value, text: &str, path: &str) -> Result<(), SchemaViolation> {
    let len = text.chars().count() as u64;
    if let Some(min) = schema
        .get("minLength")
        .and_then(Value::as_u64)
        .filter(|m| len < *m)
    {
        return Err(violation(
            path,
            format!("must be at least {min} characters long"),
        ));
    }
    if let Some(max) = schema
        .get("maxLength")
        .and_then(Value::as_u64)
        .filter(|m| len > *m)
    {
        return Err(violation(
            path,
            format!("must be at most {max} characters long"),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match CharClass::parse(pattern) {
            Some(class) if !text.chars().all(|c| class.contains(c)) => {
                return Err(violation(path, format!("must match {pattern}")));
            }
            Some(_) => {}
            None => tracing::debug!(pattern, "pattern form not supported; not checked"),
        }
    }
    Ok(())
}

fn check_number(schema: &Value, value: &Value, path: &str) -> Result<(), SchemaViolation> {
    let n = value.as_f64().unwrap_or_default();
    if schema.get("format").and_then(Value::as_str) == Some("int32")
        && value.as_i64().is_none_or(|i| i32::try_from(i).is_err())
    {
        return Err(violation(path, "must fit in a 32-bit integer"));
    }
    if let Some(min) = schema
        .get("minimum")
        .and_then(Value::as_f64)
        .filter(|m| n < *m)
    {
        return Err(violation(path, format!("must be at least {min}")));
    }
    if let Some(max) = schema
        .get("maximum")
        .and_then(Value::as_f64)
        .filter(|m| n > *m)
    {
        return Err(violation(path, format!("must be at most {max}")));
    }
    Ok(())
}

fn canonical_enum(allowed: &[Value], value: Value, path: &str) -> Result<Value, SchemaViolation> {
    let found = allowed.iter().find(|candidate| match (candidate, &value) {
        (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
        (a, b) => *a == b,
    });
    match found {
        Some(canonical) => Ok(canonical.clone()),
        None => {
            let names: Vec<String> = allowed.iter().map(Value::to_string).collect();
            Err(violation(
                path,
                format!("{value} is not one of {}", names.join(", ")),
            ))
        }
    }
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

/// Reads the name rule of every resource kind from the PUT operation's path parameters.
fn name_rules(root: &Value) -> Result<HashMap<ResourceKind, NameRule>, String> {
    let paths = root
        .get("paths")
        .and_then(Value::as_object)
        .ok_or("no paths")?;
    let mut rules = HashMap::new();
    for kind in ResourceKind::EVENT_GRID {
        let param = kind.name_parameter();
        let suffix = format!("/{}/{{{param}}}", kind.segment());
        let operation = paths
            .iter()
            .find(|(template, _)| template.ends_with(&suffix))
            .and_then(|(_, item)| item.get("put"))
            .ok_or_else(|| format!("no PUT path ending in {suffix}"))?;
        let parameter = operation
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|p| resolve_parameter(root, p))
            .find(|p| p.get("name").and_then(Value::as_str) == Some(param))
            .ok_or_else(|| format!("no path parameter {param}"))?;
        let number = |key: &str| {
            parameter
                .get(key)
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| format!("{param} has no {key}"))
        };
        let pattern = parameter
            .get("pattern")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{param} has no pattern"))?;
        let allowed = CharClass::parse(pattern)
            .ok_or_else(|| format!("{param}: pattern {pattern} is not of the form ^[…]*$"))?;
        let rule = NameRule {
            min_len: number("minLength")?,
            max_len: number("maxLength")?,
            pattern: pattern.to_owned(),
            allowed,
        };
        rules.insert(kind, rule);
    }
    Ok(rules)
}

fn resolve_parameter<'a>(root: &'a Value, parameter: &'a Value) -> &'a Value {
    parameter
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/parameters/"))
        .and_then(|name| root.get("parameters")?.get(name))
        .unwrap_or(parameter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn char_class_parses_ranges_escapes_and_dashes() {
        let class = CharClass::parse(r"^[-a-zA-Z0-9:\._]*$").unwrap();
        for c in ['-', 'a', 'Z', '5', ':', '.', '_'] {
            assert!(class.contains(c), "{c}");
        }
        assert!(!class.contains('$'));
        assert!(!class.contains('/'));
        assert!(CharClass::parse("^abc$").is_none());
    }

    #[test]
    fn name_rules_come_from_the_spec() {
        for spec in [Spec::stable().unwrap(), Spec::preview().unwrap()] {
            let client = spec.name_rule(ResourceKind::Client).unwrap();
            assert_eq!((client.min_len, client.max_len), (1, 128));
            assert!(client.check("dev:1.a_b").is_ok());
            let ts = spec.name_rule(ResourceKind::TopicSpace).unwrap();
            assert_eq!((ts.min_len, ts.max_len), (3, 50));
            assert!(ts.check("ab").is_err());
            assert!(ts.check("a_b").is_err());
            assert!(
                spec.name_rule(ResourceKind::ClientGroup)
                    .unwrap()
                    .check("$all")
                    .is_err()
            );
        }
    }

    #[test]
    fn request_drops_read_only_and_keeps_known_fields() {
        let spec = Spec::stable().unwrap();
        let body = json!({
            "id": "x", "name": "y",
            "properties": { "topicTemplates": ["a/#"], "provisioningState": "Succeeded",
                            "Description": "d" }
        });
        let out = spec
            .validate("TopicSpace", &body, Direction::Request)
            .unwrap();
        assert_eq!(
            out,
            json!({ "properties": { "topicTemplates": ["a/#"], "description": "d" } })
        );
    }

    #[test]
    fn preview_only_property_is_refused_on_stable() {
        let body = json!({ "location": "westus", "properties": { "topicSpacesConfiguration": {
            "clientAuthentication": { "alternativeAuthenticationNameSources": ["ClientCertificateSubject"] } } } });
        let err = Spec::stable()
            .unwrap()
            .validate("Namespace", &body, Direction::Request)
            .unwrap_err();
        assert_eq!(
            err.path,
            "properties.topicSpacesConfiguration.clientAuthentication"
        );
        assert!(
            Spec::preview()
                .unwrap()
                .validate("Namespace", &body, Direction::Request)
                .is_ok()
        );
    }

    #[test]
    fn types_enums_and_required_are_checked() {
        let spec = Spec::preview().unwrap();
        let check = |body: Value| spec.validate("Namespace", &body, Direction::Request);
        assert_eq!(check(json!({})).unwrap_err().path, "location");
        let err = check(json!({"location": "w", "sku": {"capacity": "1"}})).unwrap_err();
        assert_eq!(err.path, "sku.capacity");
        let err = check(json!({"location": "w", "sku": {"capacity": 1.5}})).unwrap_err();
        assert_eq!(err.path, "sku.capacity");
        let err = check(json!({"location": "w", "sku": {"name": "Premium"}})).unwrap_err();
        assert_eq!(err.path, "sku.name");
        let ok = check(json!({"location": "w", "sku": {"name": "standard"}})).unwrap();
        assert_eq!(ok["sku"]["name"], "Standard");
        let err = check(json!({"location": "w", "tags": {"a": 1}})).unwrap_err();
        assert_eq!(err.path, "tags.a");
    }

    #[test]
    fn discriminator_selects_the_subtype() {
        let spec = Spec::stable().unwrap();
        let body = |extra: Value| {
            json!({ "location": "w", "properties": { "topicSpacesConfiguration": {
                "routingEnrichments": { "static": [extra] } } } })
        };
        let ok = body(json!({"key": "k", "valueType": "String", "value": "v"}));
        assert!(spec.validate("Namespace", &ok, Direction::Request).is_ok());
        let missing = body(json!({"key": "k"}));
        let err = spec
            .validate("Namespace", &missing, Direction::Request)
            .unwrap_err();
        assert!(err.path.ends_with("static[0].valueType"), "{err}");
    }

    #[test]
    fn responses_keep_read_only_properties() {
        let spec = Spec::stable().unwrap();
        let body = json!({ "id": "i", "name": "n", "type": "t",
            "systemData": { "createdBy": "me", "createdByType": "User" },
            "properties": { "query": "attributes.a = 'b'", "provisioningState": "Succeeded" } });
        let out = spec
            .validate("ClientGroup", &body, Direction::Response)
            .unwrap();
        assert_eq!(out, body);
    }
}
