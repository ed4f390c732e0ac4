//! A syntax check of the client group query language.
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

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Open,
    Close,
    OpenList,
    CloseList,
    Comma,
    Op(&'static str),
    Str,
    Int,
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
                (Token::Str, end + 2)
            }
            (c, _) if c.is_ascii_digit() || c == '-' => {
                let len = 1 + chars[i + 1..]
                    .iter()
                    .take_while(|x| x.is_ascii_digit())
                    .count();
                if c == '-' && len == 1 {
                    return Err(format!("'-' without digits at character {}", i + 1));
                }
                (Token::Int, len)
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

    fn expr(&mut self) -> Result<(), String> {
        self.and()?;
        while self.keyword("or") {
            self.and()?;
        }
        Ok(())
    }

    fn and(&mut self) -> Result<(), String> {
        self.unary()?;
        while self.keyword("and") {
            self.unary()?;
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<(), String> {
        if self.keyword("not") {
            return self.unary();
        }
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            self.expr()?;
            return self.expect(&Token::Close, "')'");
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<(), String> {
        match self.next() {
            Some(Token::Word(field)) => check_field(&field)?,
            other => {
                return Err(format!(
                    "expected authenticationName or attributes.<key>, found {}",
                    describe(other.as_ref())
                ));
            }
        }
        if self.keyword("in") {
            self.expect(&Token::OpenList, "'[' after IN")?;
            loop {
                self.value()?;
                match self.next() {
                    Some(Token::Comma) => continue,
                    Some(Token::CloseList) => return Ok(()),
                    other => {
                        return Err(format!(
                            "expected ',' or ']', found {}",
                            describe(other.as_ref())
                        ));
                    }
                }
            }
        }
        match self.next() {
            Some(Token::Op("=" | "<>" | "!=")) => self.value(),
            Some(Token::Op(op)) => match self.next() {
                Some(Token::Int) => Ok(()),
                other => Err(format!(
                    "{op} compares integers only, found {}",
                    describe(other.as_ref())
                )),
            },
            other => Err(format!(
                "expected an operator or IN, found {}",
                describe(other.as_ref())
            )),
        }
    }

    fn value(&mut self) -> Result<(), String> {
        match self.next() {
            Some(Token::Str | Token::Int) => Ok(()),
            Some(Token::Word(w))
                if w.eq_ignore_ascii_case("true") || w.eq_ignore_ascii_case("false") =>
            {
                Ok(())
            }
            other => Err(format!(
                "expected a value, found {}",
                describe(other.as_ref())
            )),
        }
    }
}

fn check_field(field: &str) -> Result<(), String> {
    if field.eq_ignore_ascii_case("authenticationName") {
        return Ok(());
    }
    let key = field
        .get(..11)
        .filter(|prefix| prefix.eq_ignore_ascii_case("attributes."))
        .map(|_| &field[11..]);
    match key {
        Some(key)
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            Ok(())
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
        Some(Token::Str) => "a string".into(),
        Some(Token::Int) => "a number".into(),
        Some(Token::Open) => "'('".into(),
        Some(Token::Close) => "')'".into(),
        Some(Token::OpenList) => "'['".into(),
        Some(Token::CloseList) => "']'".into(),
        Some(Token::Comma) => "','".into(),
    }
}

/// Checks the syntax of a client group query; the error says what is wrong.
pub fn check_query(query: &str) -> Result<(), String> {
    let mut parser = Parser {
        tokens: tokenize(query)?,
        pos: 0,
    };
    if parser.tokens.is_empty() {
        return Err("the query is empty".into());
    }
    parser.expr()?;
    match parser.peek() {
        None => Ok(()),
        Some(token) => Err(format!(
            "unexpected {} after the end",
            describe(Some(token))
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::check_query;

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
