//! The validator: walking a body against a definition (`$ref`, `allOf`, discriminated
//! subtypes, objects, arrays and scalars), dropping read-only properties from requests and
//! answering property names and enum values in their canonical case.

use serde_json::{Map, Value};

use super::keywords::{canonical_enum, check_number, check_string, join, type_error};
use super::{Direction, Doc, SchemaViolation, Spec, violation};

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

impl Spec {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
