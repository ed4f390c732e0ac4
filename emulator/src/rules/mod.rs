//! The service rules that the OpenAPI schema does not express (eventgrid.md §3, §7, §8).
//!
//! Each function takes a body already cleaned by [`Spec::validate`](crate::spec::Spec::validate)
//! and returns an ARM 400/409 error naming the offending property in `target`.

mod cert;

use e4k_provisioning::eventgrid::rules;
use serde_json::{Map, Value};

use crate::arm::{ArmError, code};
use crate::config::Quotas;
use axum::http::StatusCode;

pub(crate) use cert::parse_certificate;

/// Throughput units a namespace may have (spec text: 1..20).
const CAPACITY: (i64, i64) = (1, 20);
/// `maximumSessionExpiryInHours` range.
const SESSION_EXPIRY_HOURS: (i64, i64) = (1, 8);
/// `maximumClientSessionsPerAuthenticationName` range.
const SESSIONS_PER_NAME: (i64, i64) = (1, 100);
/// `authenticationName` length range.
const AUTH_NAME_LEN: (usize, usize) = (1, 128);
/// `allowedThumbprints` entries with `ThumbprintMatch`.
const MAX_THUMBPRINTS: usize = 2;
/// Attribute bytes per client (the docs: under 4 KB).
const MAX_ATTRIBUTE_BYTES: usize = 4096;

/// The built-in client group that holds every client.
const ALL_CLIENTS: &str = "$all";
/// The validation scheme that takes `allowedThumbprints`.
const THUMBPRINT_MATCH: &str = "ThumbprintMatch";

fn bad(target: &str, message: impl Into<String>) -> ArmError {
    ArmError::bad_request(message).with_target(target)
}

fn props(body: &Value) -> Option<&Map<String, Value>> {
    body.get("properties").and_then(Value::as_object)
}

fn check_range(
    body: &Value,
    pointer: &str,
    target: &str,
    (lo, hi): (i64, i64),
) -> Result<(), ArmError> {
    match body.pointer(pointer).and_then(Value::as_i64) {
        Some(n) if !(lo..=hi).contains(&n) => Err(bad(
            target,
            format!("{target} must be between {lo} and {hi}; it is {n}."),
        )),
        _ => Ok(()),
    }
}

/// The region part of the hostname: the location in lowercase without spaces.
pub(crate) fn region(location: &str) -> String {
    location
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The region of a resource document's `location`.
pub(crate) fn region_of(doc: &Value) -> String {
    region(
        doc.get("location")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    )
}

/// Namespace rules for a PUT or a merged PATCH; `old` is the stored resource on update.
pub(crate) fn namespace(body: &Value, old: Option<&Value>) -> Result<(), ArmError> {
    let location = body
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if location.trim().is_empty() {
        return Err(bad("location", "The location property is required."));
    }
    check_range(body, "/sku/capacity", "sku.capacity", CAPACITY)?;
    let tsc = "/properties/topicSpacesConfiguration";
    check_range(
        body,
        &format!("{tsc}/maximumSessionExpiryInHours"),
        "properties.topicSpacesConfiguration.maximumSessionExpiryInHours",
        SESSION_EXPIRY_HOURS,
    )?;
    check_range(
        body,
        &format!("{tsc}/maximumClientSessionsPerAuthenticationName"),
        "properties.topicSpacesConfiguration.maximumClientSessionsPerAuthenticationName",
        SESSIONS_PER_NAME,
    )?;
    let sources = body
        .pointer(&format!(
            "{tsc}/clientAuthentication/alternativeAuthenticationNameSources"
        ))
        .and_then(Value::as_array);
    if let Some(sources) = sources {
        let mut seen = Vec::new();
        for source in sources {
            if seen.contains(&source) {
                return Err(bad(
                    "properties.topicSpacesConfiguration.clientAuthentication.alternativeAuthenticationNameSources",
                    format!("alternativeAuthenticationNameSources lists {source} twice."),
                ));
            }
            seen.push(source);
        }
    }
    if let Some(route) = body
        .pointer(&format!("{tsc}/routeTopicResourceId"))
        .and_then(Value::as_str)
    {
        check_topic_id(route)?;
    }
    let Some(old) = old else { return Ok(()) };
    let old_location = old
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if region(old_location) != region(location) {
        return Err(ArmError::new(
            StatusCode::CONFLICT,
            code::INVALID_LOCATION,
            format!(
                "The resource already exists in location '{old_location}'; a resource with the same name cannot be created in location '{location}'."
            ),
        )
        .with_target("location"));
    }
    let zone = "/properties/isZoneRedundant";
    match (old.pointer(zone), body.pointer(zone)) {
        (Some(before), Some(after)) if before != after => Err(bad(
            "properties.isZoneRedundant",
            "isZoneRedundant cannot be changed after the namespace is created.",
        )),
        _ => Ok(()),
    }
}

fn check_topic_id(id: &str) -> Result<(), ArmError> {
    let segments: Vec<&str> = id.split('/').collect();
    let fixed = [
        (1, "subscriptions"),
        (3, "resourceGroups"),
        (5, "providers"),
        (6, "Microsoft.EventGrid"),
        (7, "topics"),
    ];
    let well_formed = segments.len() == 9
        && segments.first() == Some(&"")
        && fixed
            .iter()
            .all(|(i, s)| segments.get(*i).is_some_and(|x| x.eq_ignore_ascii_case(s)))
        && segments.iter().skip(1).all(|s| !s.is_empty());
    if well_formed {
        Ok(())
    } else {
        Err(bad(
            "properties.topicSpacesConfiguration.routeTopicResourceId",
            format!("routeTopicResourceId '{id}' is not the ARM id of an Event Grid topic."),
        ))
    }
}

/// Another client of the namespace, for the `authenticationName` uniqueness rule.
pub(crate) struct OtherClient<'a> {
    pub(crate) name: &'a str,
    pub(crate) authentication_name: &'a str,
}

/// Client rules; fills `authenticationName` (default: the resource name, or the stored one) and
/// `state` (default `Enabled`) into `properties`.
pub(crate) fn client<'a>(
    name: &str,
    body: &mut Value,
    old: Option<&Value>,
    others: impl IntoIterator<Item = OtherClient<'a>>,
) -> Result<(), ArmError> {
    let props = props(body).cloned().unwrap_or_default();
    let auth = props.get("clientCertificateAuthentication");
    let scheme = auth
        .and_then(|a| a.get("validationScheme"))
        .and_then(Value::as_str);
    let target = "properties.clientCertificateAuthentication";
    let Some(scheme) = scheme else {
        return Err(bad(
            &format!("{target}.validationScheme"),
            "clientCertificateAuthentication.validationScheme is required.",
        ));
    };
    let thumbprints = auth
        .and_then(|a| a.get("allowedThumbprints"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let thumbprint_target = format!("{target}.allowedThumbprints");
    if scheme == THUMBPRINT_MATCH {
        if thumbprints.is_empty() || thumbprints.len() > MAX_THUMBPRINTS {
            return Err(bad(
                &thumbprint_target,
                format!("ThumbprintMatch needs 1 to {MAX_THUMBPRINTS} allowedThumbprints."),
            ));
        }
        if thumbprints
            .iter()
            .any(|t| t.as_str().is_none_or(|t| t.trim().is_empty()))
        {
            return Err(bad(
                &thumbprint_target,
                "allowedThumbprints must not be empty strings.",
            ));
        }
    } else if !thumbprints.is_empty() {
        return Err(bad(
            &thumbprint_target,
            format!("allowedThumbprints is only allowed with ThumbprintMatch, not with {scheme}."),
        ));
    }

    let old_auth_name = old
        .and_then(|o| o.pointer("/properties/authenticationName"))
        .and_then(Value::as_str);
    let auth_name = props
        .get("authenticationName")
        .and_then(Value::as_str)
        .or(old_auth_name)
        .unwrap_or(name)
        .to_owned();
    let auth_target = "properties.authenticationName";
    let len = auth_name.chars().count();
    if !(AUTH_NAME_LEN.0..=AUTH_NAME_LEN.1).contains(&len) {
        return Err(bad(
            auth_target,
            format!(
                "authenticationName must be 1 to {} characters long.",
                AUTH_NAME_LEN.1
            ),
        ));
    }
    if let Some(old_name) = old_auth_name.filter(|o| *o != auth_name) {
        return Err(bad(
            auth_target,
            format!("authenticationName cannot be changed (it is '{old_name}')."),
        ));
    }
    let taken = others.into_iter().find(|other| {
        !other.name.eq_ignore_ascii_case(name)
            && other.authentication_name.eq_ignore_ascii_case(&auth_name)
    });
    if let Some(other) = taken {
        return Err(ArmError::conflict(format!(
            "authenticationName '{auth_name}' is already used by client '{}'.",
            other.name
        ))
        .with_target(auth_target));
    }
    if let Some(attributes) = props.get("attributes") {
        check_attributes(attributes)?;
    }
    let out = body.as_object_mut().map(|o| {
        o.entry("properties")
            .or_insert_with(|| Value::Object(Map::new()))
    });
    if let Some(Value::Object(out)) = out {
        out.insert("authenticationName".into(), Value::String(auth_name));
        out.entry("state")
            .or_insert_with(|| Value::String("Enabled".into()));
    }
    Ok(())
}

fn check_attributes(attributes: &Value) -> Result<(), ArmError> {
    let target = "properties.attributes";
    let Some(map) = attributes.as_object() else {
        return Err(bad(target, "attributes must be an object."));
    };
    for (key, value) in map {
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad(
                &format!("{target}.{key}"),
                format!("attribute name '{key}' may only hold letters, digits and '_'."),
            ));
        }
        let supported = match value {
            Value::String(_) | Value::Bool(_) => true,
            Value::Number(n) => n.is_i64() || n.is_u64(),
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => false,
        };
        if !supported {
            return Err(bad(
                &format!("{target}.{key}"),
                format!(
                    "attribute '{key}' must be an integer, a boolean, a string or an array of strings."
                ),
            ));
        }
    }
    if attributes.to_string().len() >= MAX_ATTRIBUTE_BYTES {
        return Err(bad(target, "attributes must stay under 4 KB."));
    }
    Ok(())
}

/// Topic space rules: 1 to `quotas.topic_templates` distinct, well-formed templates.
pub(crate) fn topic_space(body: &Value, quotas: &Quotas) -> Result<(), ArmError> {
    let target = "properties.topicTemplates";
    let templates = body
        .pointer("/properties/topicTemplates")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if templates.is_empty() {
        return Err(bad(
            target,
            "A topic space needs at least one topic template.",
        ));
    }
    if templates.len() > quotas.topic_templates {
        return Err(bad(
            target,
            format!(
                "A topic space holds at most {} topic templates.",
                quotas.topic_templates
            ),
        ));
    }
    for (i, t) in templates.iter().enumerate() {
        let text = t.as_str().unwrap_or_default();
        rules::check_template(text).map_err(|reason| {
            bad(
                &format!("{target}[{i}]"),
                format!("Topic template '{text}' is invalid: {reason}."),
            )
        })?;
        if templates[..i].contains(t) {
            return Err(bad(
                &format!("{target}[{i}]"),
                format!("Topic template '{text}' is listed twice."),
            ));
        }
    }
    Ok(())
}

/// Client group rules: a query of valid syntax.
pub(crate) fn client_group(body: &Value) -> Result<(), ArmError> {
    let target = "properties.query";
    let query = body
        .pointer("/properties/query")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(target, "A client group needs a query."))?;
    rules::check_query(query).map_err(|reason| {
        bad(
            target,
            format!("The client group query '{query}' is invalid: {reason}."),
        )
    })
}

/// Permission binding rules: all three properties, and references to a topic space and a client
/// group (or the built-in `$all`) that exist in the namespace.
pub(crate) fn permission_binding(
    body: &Value,
    topic_space_exists: impl Fn(&str) -> bool,
    client_group_exists: impl Fn(&str) -> bool,
) -> Result<(), ArmError> {
    let field = |key: &str| {
        body.pointer(&format!("/properties/{key}"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad(&format!("properties.{key}"), format!("{key} is required.")))
    };
    let topic_space = field("topicSpaceName")?;
    let client_group = field("clientGroupName")?;
    field("permission")?;
    if !topic_space_exists(topic_space) {
        return Err(bad(
            "properties.topicSpaceName",
            format!("Topic space '{topic_space}' does not exist in this namespace."),
        ));
    }
    if client_group != ALL_CLIENTS && !client_group_exists(client_group) {
        return Err(bad(
            "properties.clientGroupName",
            format!("Client group '{client_group}' does not exist in this namespace."),
        ));
    }
    Ok(())
}

/// CA certificate rules: a parsable certificate. Fills `issueTimeInUtc` and `expiryTimeInUtc`.
pub(crate) fn ca_certificate(body: &mut Value) -> Result<(), ArmError> {
    let target = "properties.encodedCertificate";
    let encoded = body
        .pointer("/properties/encodedCertificate")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(target, "encodedCertificate is required."))?;
    let validity = parse_certificate(encoded).map_err(|reason| {
        bad(
            target,
            format!("encodedCertificate is not a valid certificate: {reason}."),
        )
    })?;
    if let Some(Value::Object(props)) = body.get_mut("properties") {
        props.insert(
            "issueTimeInUtc".into(),
            Value::String(crate::store::timestamp(validity.not_before)),
        );
        props.insert(
            "expiryTimeInUtc".into(),
            Value::String(crate::store::timestamp(validity.not_after)),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn client_body(auth: Value) -> Value {
        json!({ "properties": { "clientCertificateAuthentication": auth } })
    }

    #[test]
    fn thumbprints_only_with_thumbprint_match() {
        let mut ok = client_body(
            json!({"validationScheme": "ThumbprintMatch", "allowedThumbprints": ["ab"]}),
        );
        assert!(client("c1", &mut ok, None, []).is_ok());
        let mut none = client_body(json!({"validationScheme": "ThumbprintMatch"}));
        assert!(client("c1", &mut none, None, []).is_err());
        let mut wrong = client_body(
            json!({"validationScheme": "SubjectMatchesAuthenticationName", "allowedThumbprints": ["ab"]}),
        );
        let err = client("c1", &mut wrong, None, []).unwrap_err();
        assert_eq!(
            err.target.as_deref(),
            Some("properties.clientCertificateAuthentication.allowedThumbprints")
        );
    }

    #[test]
    fn authentication_name_defaults_is_unique_and_immutable() {
        let mut body = client_body(json!({"validationScheme": "SubjectMatchesAuthenticationName"}));
        client("dev1", &mut body, None, []).unwrap();
        assert_eq!(body["properties"]["authenticationName"], "dev1");
        assert_eq!(body["properties"]["state"], "Enabled");

        let other = OtherClient {
            name: "dev2",
            authentication_name: "DEV1",
        };
        let mut dup = client_body(json!({"validationScheme": "SubjectMatchesAuthenticationName"}));
        let err = client("dev1", &mut dup, None, [other]).unwrap_err();
        assert_eq!(err.status, StatusCode::CONFLICT);

        let mut renamed =
            client_body(json!({"validationScheme": "SubjectMatchesAuthenticationName"}));
        renamed["properties"]["authenticationName"] = json!("other");
        assert!(client("dev1", &mut renamed, Some(&body), []).is_err());
    }

    #[test]
    fn attributes_are_checked() {
        let mut body = client_body(json!({"validationScheme": "SubjectMatchesAuthenticationName"}));
        body["properties"]["attributes"] = json!({"a": {"nested": 1}});
        assert!(client("c", &mut body, None, []).is_err());
        body["properties"]["attributes"] = json!({"a-b": "x"});
        assert!(client("c", &mut body, None, []).is_err());
        body["properties"]["attributes"] =
            json!({"room": "345", "floor": 3, "on": true, "types": ["a"]});
        assert!(client("c", &mut body, None, []).is_ok());
    }

    #[test]
    fn namespace_ranges_and_immutables() {
        let body = json!({"location": "westus", "properties": {"topicSpacesConfiguration": {"maximumSessionExpiryInHours": 9}}});
        assert!(namespace(&body, None).is_err());
        let body = json!({"location": "westus", "sku": {"capacity": 21}});
        assert!(namespace(&body, None).is_err());
        let old = json!({"location": "West US", "properties": {"isZoneRedundant": true}});
        assert!(namespace(&json!({"location": "westus"}), Some(&old)).is_ok());
        assert_eq!(
            namespace(&json!({"location": "eastus"}), Some(&old))
                .unwrap_err()
                .status,
            StatusCode::CONFLICT
        );
        let flipped = json!({"location": "westus", "properties": {"isZoneRedundant": false}});
        assert!(namespace(&flipped, Some(&old)).is_err());
        let route = json!({"location": "westus", "properties": {"topicSpacesConfiguration": {"routeTopicResourceId": "/subscriptions/s/resourceGroups/r/providers/Microsoft.EventGrid/topics/t"}}});
        assert!(namespace(&route, None).is_ok());
        let bad_route = json!({"location": "westus", "properties": {"topicSpacesConfiguration": {"routeTopicResourceId": "topic"}}});
        assert!(namespace(&bad_route, None).is_err());
    }

    #[test]
    fn bindings_need_existing_references() {
        let body = json!({"properties": {"topicSpaceName": "ts", "clientGroupName": "$all", "permission": "Publisher"}});
        assert!(permission_binding(&body, |n| n == "ts", |_| false).is_ok());
        let err = permission_binding(&body, |_| false, |_| true).unwrap_err();
        assert_eq!(err.target.as_deref(), Some("properties.topicSpaceName"));
    }

    #[test]
    fn certificates_are_parsed() {
        let pem = include_str!("../../tests/fixtures/root-ca.pem");
        let one_line: String = pem.lines().collect();
        let validity = parse_certificate(&one_line).unwrap();
        assert!(validity.not_before < validity.not_after);
        let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(parse_certificate(&der_b64).unwrap(), validity);
        assert!(parse_certificate(pem).is_err(), "multi-line PEM is refused");
        assert!(parse_certificate("base64EncodePemFormattedCertificateString").is_err());
        assert!(parse_certificate(&format!("{one_line}{one_line}")).is_err());
    }
}
