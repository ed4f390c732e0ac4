//! Evaluating a parsed query for one client (the rules are in the module docs of
//! [`super`]).

use serde_json::{Map, Value};

use super::syntax::{CmpOp, Expr, Field, Literal};

pub(super) fn eval(expr: &Expr, name: &str, attributes: &Map<String, Value>) -> bool {
    match expr {
        Expr::Or(terms) => terms.iter().any(|t| eval(t, name, attributes)),
        Expr::And(terms) => terms.iter().all(|t| eval(t, name, attributes)),
        Expr::Not(inner) => !eval(inner, name, attributes),
        Expr::Compare(Field::AuthenticationName, op, literal) => {
            let equal = matches!(literal, Literal::Str(s) if s.eq_ignore_ascii_case(name));
            match op {
                CmpOp::Eq => equal,
                CmpOp::Ne => !equal,
                // The parser only lets integers reach an ordering; a name is never one.
                _ => false,
            }
        }
        Expr::In(Field::AuthenticationName, literals) => literals
            .iter()
            .any(|l| matches!(l, Literal::Str(s) if s.eq_ignore_ascii_case(name))),
        Expr::Compare(Field::Attribute(key), op, literal) => match attribute(attributes, key) {
            None => false,
            Some(value) if *op == CmpOp::Ne => {
                !any_element(value, |v| compare(v, CmpOp::Eq, literal))
            }
            Some(value) => any_element(value, |v| compare(v, *op, literal)),
        },
        Expr::In(Field::Attribute(key), literals) => {
            attribute(attributes, key).is_some_and(|value| {
                any_element(value, |v| literals.iter().any(|l| compare(v, CmpOp::Eq, l)))
            })
        }
    }
}

fn attribute<'a>(attributes: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    attributes.get(key).or_else(|| {
        attributes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn any_element(value: &Value, test: impl Fn(&Value) -> bool) -> bool {
    match value {
        Value::Array(items) => items.iter().any(test),
        scalar => test(scalar),
    }
}

fn compare(value: &Value, op: CmpOp, literal: &Literal) -> bool {
    match (value, literal) {
        (Value::String(v), Literal::Str(l)) => match op {
            CmpOp::Eq => v == l,
            CmpOp::Ne => v != l,
            _ => false,
        },
        (Value::Bool(v), Literal::Bool(l)) => match op {
            CmpOp::Eq => v == l,
            CmpOp::Ne => v != l,
            _ => false,
        },
        (Value::Number(v), Literal::Int(l)) => match v.as_i64() {
            Some(v) => match op {
                CmpOp::Eq => v == *l,
                CmpOp::Ne => v != *l,
                CmpOp::Lt => v < *l,
                CmpOp::Gt => v > *l,
                CmpOp::Le => v <= *l,
                CmpOp::Ge => v >= *l,
            },
            None => false,
        },
        _ => false,
    }
}
