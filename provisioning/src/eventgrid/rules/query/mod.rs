//! The client group query language: a syntax check and an evaluator.
//!
//! Grammar (keywords case-insensitive; `and` binds tighter than `or`):
//!
//! ```text
//! expr       := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "not" unary | "(" expr ")" | comparison
//! comparison := field op value | field "in" "[" value ("," value)* "]"
//! field      := "authenticationName" | "attributes." key        key := [A-Za-z0-9_]+
//! op         := "=" | "<>" | "!=" | "<" | ">" | "<=" | ">="   (the last four need integers)
//! value      := 'string' | "string" | integer | true | false
//! ```
//!
//! # Evaluation
//!
//! Event Grid documents the syntax but not every detail of the semantics (eventgrid.md §9);
//! these are the choices made here, for the emulator's data plane:
//!
//! - `authenticationName` compares case-insensitively (it is unique case-insensitively);
//!   attribute values compare case-sensitively. Attribute keys are looked up exactly, then
//!   case-insensitively.
//! - Comparisons are typed: a string matches a string, an integer an integer, a boolean a
//!   boolean; a string attribute `"3"` does not equal the integer `3`.
//! - `<`, `>`, `<=`, `>=` hold only for integer attributes.
//! - An array attribute (`["Fan", "Light"]`) satisfies `=`, `IN` and the orderings when any
//!   element does; `<>`/`!=` is the negation of `=` (no element equals the value).
//! - A comparison on a missing attribute is false, `<>` included (SQL's NULL rule); `not` of
//!   it is true.
//!
//! [`syntax`] tokenizes and parses a query into an expression tree; [`mod@eval`] evaluates the
//! tree for one client.

use serde_json::{Map, Value};

use self::eval::eval;
use self::syntax::{Expr, Parser, describe, tokenize};

mod eval;
mod syntax;

/// A parsed client group query, ready to be evaluated against many clients.
///
/// ```
/// use e4k_provisioning::eventgrid::rules::Query;
/// use serde_json::json;
///
/// let query = Query::parse(r#"attributes.commander = "true""#)?;
/// let attributes = json!({ "commander": "true" });
/// assert!(query.matches("mosquitto", attributes.as_object().unwrap()));
/// assert!(!query.matches("mqttbridge", &serde_json::Map::new()));
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Query(Expr);

impl Query {
    /// Parses a query; the error says what is wrong (the same text as [`check_query`]).
    pub fn parse(query: &str) -> Result<Self, String> {
        let mut parser = Parser {
            tokens: tokenize(query)?,
            pos: 0,
        };
        if parser.tokens.is_empty() {
            return Err("the query is empty".into());
        }
        let expr = parser.expr()?;
        match parser.peek() {
            None => Ok(Self(expr)),
            Some(token) => Err(format!(
                "unexpected {} after the end",
                describe(Some(token))
            )),
        }
    }

    /// Whether a client with this authentication name and these attributes belongs to the
    /// group (see the module documentation for the rules).
    #[must_use]
    pub fn matches(&self, authentication_name: &str, attributes: &Map<String, Value>) -> bool {
        eval(&self.0, authentication_name, attributes)
    }
}

/// Checks the syntax of a client group query; the error says what is wrong.
pub fn check_query(query: &str) -> Result<(), String> {
    Query::parse(query).map(|_| ())
}

/// Parses `query` and tells whether a client with this authentication name and these
/// attributes belongs to the group. To evaluate one query against many clients, parse it once
/// with [`Query::parse`].
pub fn evaluate(
    query: &str,
    authentication_name: &str,
    attributes: &Map<String, Value>,
) -> Result<bool, String> {
    Ok(Query::parse(query)?.matches(authentication_name, attributes))
}

#[cfg(test)]
mod tests {
    use super::{Query, check_query, evaluate};
    use serde_json::{Map, Value, json};

    fn attrs(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    fn eval(query: &str, name: &str, attributes: Value) -> bool {
        evaluate(query, name, &attrs(attributes)).unwrap()
    }

    #[test]
    fn evaluates_the_seed_group() {
        let q = r#"attributes.commander = "true""#;
        assert!(eval(q, "mosquitto", json!({"commander": "true"})));
        assert!(!eval(q, "mqttbridge", json!({})));
        assert!(!eval(q, "x", json!({"commander": "false"})));
        assert!(
            !eval(q, "x", json!({"commander": "TRUE"})),
            "values are case-sensitive"
        );
        assert!(
            !eval(q, "x", json!({"commander": true})),
            "comparisons are typed"
        );
        assert!(eval(
            "attributes.commander = true",
            "x",
            json!({"commander": true})
        ));
    }

    #[test]
    fn evaluates_names_lists_and_precedence() {
        let q = "authenticationName IN ['client1', 'client2']";
        assert!(
            eval(q, "Client1", json!({})),
            "names compare case-insensitively"
        );
        assert!(!eval(q, "client3", json!({})));
        assert!(eval(
            "authenticationName = 'a' or authenticationName = 'b'",
            "b",
            json!({})
        ));
        assert!(eval("authenticationName <> 'a'", "b", json!({})));
        // and binds tighter than or: a or (b and c)
        let q = "attributes.a = 1 or attributes.b = 1 and attributes.c = 1";
        assert!(eval(q, "x", json!({"a": 1})));
        assert!(!eval(q, "x", json!({"b": 1})));
        assert!(!eval(
            "(attributes.a = 1 or attributes.b = 1) and attributes.c = 1",
            "x",
            json!({"a": 1})
        ));
        assert!(eval("not attributes.a = 1", "x", json!({"a": 2})));
        assert!(eval(
            "NOT (attributes.a = 1 OR attributes.a = 2)",
            "x",
            json!({"a": 3})
        ));
    }

    #[test]
    fn evaluates_integers_arrays_and_missing_attributes() {
        let floor = r#"attributes.sensors IN ["motion", "humidity"] and attributes.floor <= 5"#;
        assert!(eval(
            floor,
            "x",
            json!({"sensors": ["noise", "motion"], "floor": 5})
        ));
        assert!(!eval(floor, "x", json!({"sensors": ["noise"], "floor": 5})));
        assert!(!eval(floor, "x", json!({"sensors": "motion", "floor": 6})));
        assert!(eval(floor, "x", json!({"sensors": "motion", "floor": -1})));
        assert!(eval(
            "attributes.floor > 2 and attributes.floor >= 3 and attributes.floor < 4",
            "x",
            json!({"floor": 3})
        ));
        assert!(!eval("attributes.floor < 4", "x", json!({"floor": "3"})));
        assert!(eval(
            "attributes.sensors = 'motion'",
            "x",
            json!({"sensors": ["motion", "noise"]})
        ));
        assert!(!eval(
            "attributes.sensors <> 'motion'",
            "x",
            json!({"sensors": ["motion", "noise"]})
        ));
        assert!(eval(
            "attributes.sensors != 'light'",
            "x",
            json!({"sensors": ["motion", "noise"]})
        ));
        assert!(!eval("attributes.missing = 'a'", "x", json!({})));
        assert!(!eval("attributes.missing <> 'a'", "x", json!({})));
        assert!(eval("not attributes.missing = 'a'", "x", json!({})));
        assert!(
            eval("attributes.Room = '1'", "x", json!({"room": "1"})),
            "keys fall back to case-insensitive"
        );
    }

    #[test]
    fn a_parsed_query_is_reusable() {
        let q = Query::parse("attributes.a = 'x'").unwrap();
        assert!(q.matches("n", &attrs(json!({"a": "x"}))));
        assert!(!q.matches("n", &attrs(json!({"a": "y"}))));
        assert!(evaluate("attributes.a =", "n", &Map::new()).is_err());
        assert!(Query::parse("attributes.a = 99999999999999999999").is_err());
    }

    #[test]
    fn accepts_documented_queries() {
        for q in [
            r#"attributes.commander = "true""#,
            "attributes.b IN ['a', 'b', 'c']",
            r#"(attributes.sensors = "motion" or attributes.sensors = "humidity") or attributes.type = "home-sensors""#,
            r#"attributes.sensors IN ["motion", "humidity", "temperature"] and attributes.floor <= 5"#,
            "authenticationName IN ['client1', 'client2']",
            "attributes.floor != 3 AND NOT attributes.x <> 'y'",
            "attributes.keyName in ['a']",
            "attributes.enabled = true",
        ] {
            assert_eq!(check_query(q), Ok(()), "{q}");
        }
    }

    #[test]
    fn refuses_broken_queries() {
        for q in [
            "",
            "attributes.a =",
            "attributes.a = 'x",
            "attributes. = 'x'",
            "name = 'x'",
            "attributes.a < 'x'",
            "attributes.a IN ('x')",
            "(attributes.a = 'x'",
            "attributes.a = 'x' attributes.b = 'y'",
            "attributes.a = 'x' or",
            "attributes.a ~ 'x'",
        ] {
            assert!(check_query(q).is_err(), "{q}");
        }
    }
}
