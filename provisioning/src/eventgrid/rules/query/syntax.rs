//! The query's syntax: tokens, the expression tree and the recursive-descent parser.

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Token {
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

pub(super) fn tokenize(query: &str) -> Result<Vec<Token>, String> {
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
pub(super) enum Field {
    AuthenticationName,
    Attribute(String),
}

/// A literal of the query.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Literal {
    Str(String),
    Int(i64),
    Bool(bool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Compare(Field, CmpOp, Literal),
    In(Field, Vec<Literal>),
}

pub(super) struct Parser {
    pub(super) tokens: Vec<Token>,
    pub(super) pos: usize,
}

impl Parser {
    pub(super) fn peek(&self) -> Option<&Token> {
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

    pub(super) fn expr(&mut self) -> Result<Expr, String> {
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

pub(super) fn describe(token: Option<&Token>) -> String {
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
