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

use serde_json::{Map, Value};

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Open,
    Close,
    OpenList,
    CloseList,
    Comma,
    Op(&'static str),
    Str(String),
    Int(i64),
    Word(String),
}

fn tokenize(query: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = query.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let next = chars.get(i + 1).copied();
        let (token, len) = match (c, next) {
            (c, _) if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ('(', _) => (Token::Open, 1),
            (')', _) => (Token::Close, 1),
            ('[', _) => (Token::OpenList, 1),
            (']', _) => (Token::CloseList, 1),
            (',', _) => (Token::Comma, 1),
            ('<', Some('>')) => (Token::Op("<>"), 2),
            ('!', Some('=')) => (Token::Op("!="), 2),
            ('<', Some('=')) => (Token::Op("<="), 2),
            ('>', Some('=')) => (Token::Op(">="), 2),
            ('<', _) => (Token::Op("<"), 1),
            ('>', _) => (Token::Op(">"), 1),
            ('=', _) => (Token::Op("="), 1),
            ('\'' | '"', _) => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|x| *x == c)
                    .ok_or_else(|| format!("unterminated string at character {}", i + 1))?;
                let text = chars[i + 1..i + 1 + end].iter().collect();
                (Token::Str(text), end + 2)
            }
            (c, _) if c.is_ascii_digit() || c == '-' => {
                let len = 1 + chars[i + 1..]
                    .iter()
                    .take_while(|x| x.is_ascii_digit())
                    .count();
                if c == '-' && len == 1 {
                    return Err(format!("'-' without digits at character {}", i + 1));
                }
                let text: String = chars[i..i + len].iter().collect();
                let n = text
                    .parse::<i64>()
                    .map_err(|_| format!("{text} at character {} is too large", i + 1))?;
                (Token::Int(n), len)
            }
            (c, _) if c.is_alphanumeric() || c == '_' => {
                let len = chars[i..]
                    .iter()
                    .take_while(|x| x.is_alphanumeric() || **x == '_' || **x == '.')
                    .count();
                (Token::Word(chars[i..i + len].iter().collect()), len)
            }
            (c, _) => return Err(format!("unexpected {c:?} at character {}", i + 1)),
        };
        tokens.push(token);
        i += len;
    }
    Ok(tokens)
}

/// What a comparison reads from the client.
#[derive(Clone, Debug, PartialEq)]
enum Field {
    AuthenticationName,
    Attribute(String),
}

/// A literal of the query.
#[derive(Clone, Debug, PartialEq)]
enum Literal {
    Str(String),
    Int(i64),
    Bool(bool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Compare(Field, CmpOp, Literal),
    In(Field, Vec<Literal>),
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn keyword(&mut self, word: &str) -> bool {
        let found = matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word));
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect(&mut self, token: &Token, what: &str) -> Result<(), String> {
        match self.next() {
            Some(t) if t == *token => Ok(()),
            other => Err(format!(
                "expected {what}, found {}",
                describe(other.as_ref())
            )),
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut terms = vec![self.and()?];
        while self.keyword("or") {
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut terms = vec![self.unary()?];
        while self.keyword("and") {
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            let inner = self.expr()?;
            self.expect(&Token::Close, "')'")?;
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let field = match self.next() {
            Some(Token::Word(field)) => parse_field(&field)?,
            other => {
                return Err(format!(
                    "expected authenticationName or attributes.<key>, found {}",
                    describe(other.as_ref())
                ));
            }
        };
        if self.keyword("in") {
            self.expect(&Token::OpenList, "'[' after IN")?;
            let mut values = Vec::new();
            loop {
                values.push(self.value()?);
                match self.next() {
                    Some(Token::Comma) => continue,
                    Some(Token::CloseList) => return Ok(Expr::In(field, values)),
                    other => {
                        return Err(format!(
                            "expected ',' or ']', found {}",
                            describe(other.as_ref())
                        ));
                    }
                }
            }
        }
        let op = match self.next() {
            Some(Token::Op("=")) => CmpOp::Eq,
            Some(Token::Op("<>" | "!=")) => CmpOp::Ne,
            Some(Token::Op("<")) => CmpOp::Lt,
            Some(Token::Op(">")) => CmpOp::Gt,
            Some(Token::Op("<=")) => CmpOp::Le,
            Some(Token::Op(">=")) => CmpOp::Ge,
            other => {
                return Err(format!(
                    "expected an operator or IN, found {}",
                    describe(other.as_ref())
                ));
            }
        };
        if op == CmpOp::Eq && self.peek() == Some(&Token::Op("=")) {
            return Err("`==` is not an operator; compare with a single `=`".to_owned());
        }
        if matches!(op, CmpOp::Eq | CmpOp::Ne) {
            return Ok(Expr::Compare(field, op, self.value()?));
        }
        match self.next() {
            Some(Token::Int(n)) => Ok(Expr::Compare(field, op, Literal::Int(n))),
            other => Err(format!(
                "{} compares integers only, found {}",
                op.symbol(),
                describe(other.as_ref())
            )),
        }
    }

    fn value(&mut self) -> Result<Literal, String> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Literal::Str(s)),
            Some(Token::Int(n)) => Ok(Literal::Int(n)),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Literal::Bool(false)),
            other => Err(format!(
                "expected a value, found {}",
                describe(other.as_ref())
            )),
        }
    }
}

impl CmpOp {
    fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "<>",
            Self::Lt => "<",
            Self::Gt => ">",
            Self::Le => "<=",
            Self::Ge => ">=",
        }
    }
}

fn parse_field(field: &str) -> Result<Field, String> {
    if field.eq_ignore_ascii_case("authenticationName") {
        return Ok(Field::AuthenticationName);
    }
    let key = field
        .get(..11)
        .filter(|prefix| prefix.eq_ignore_ascii_case("attributes."))
        .map(|_| &field[11..]);
    match key {
        Some(key)
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            Ok(Field::Attribute(key.to_owned()))
        }
        _ => Err(format!(
            "unknown field {field:?}; use authenticationName or attributes.<key>"
        )),
    }
}

fn describe(token: Option<&Token>) -> String {
    match token {
        None => "the end of the query".into(),
        Some(Token::Word(w)) => format!("{w:?}"),
        Some(Token::Op(op)) => format!("'{op}'"),
        Some(Token::Str(_)) => "a string".into(),
        Some(Token::Int(_)) => "a number".into(),
        Some(Token::Open) => "'('".into(),
        Some(Token::Close) => "')'".into(),
        Some(Token::OpenList) => "'['".into(),
        Some(Token::CloseList) => "']'".into(),
        Some(Token::Comma) => "','".into(),
    }
}

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

fn eval(expr: &Expr, name: &str, attributes: &Map<String, Value>) -> bool {
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
