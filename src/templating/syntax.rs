//! Source-to-source translation of nunjucks templates into minijinja ones.
//!
//! minijinja is a Jinja2 engine; nunjucks expressions are JavaScript at
//! heart. Every expression inside `${{ }}` and the expression parts of
//! `{% if/elif/for/set %}` are parsed with nunjucks' grammar and precedence,
//! and operators whose JS meaning differs from Jinja's are emitted as calls
//! to helper functions (see `js.rs`): `+` (string coercion), `-`/`*`/`/`
//! (NaN instead of errors), comparisons (`==` is loose, `===` strict), `in`,
//! `~`, `.length`, regex literals `r/…/g`. Bare dict keys (`{ a: 1 }`) become
//! strings, as in nunjucks. Text, comments and `{% raw %}` bodies are copied
//! untouched. A tag that does not parse is copied verbatim so minijinja
//! reports the syntax error.

/// Tag delimiters of one syntax flavour.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Delimiters {
    pub var_start: &'static str,
    pub var_end: &'static str,
    pub block_start: &'static str,
    pub block_end: &'static str,
    pub comment_start: &'static str,
    pub comment_end: &'static str,
    /// nunjucks' Jinja compatibility (`True`/`False`/`None` literals).
    pub jinja_compat: bool,
}

/// Backstage's syntax: `${{ }}` variables.
pub(crate) const BACKSTAGE: Delimiters = Delimiters {
    var_start: "${{",
    var_end: "}}",
    block_start: "{%",
    block_end: "%}",
    comment_start: "{#",
    comment_end: "#}",
    jinja_compat: false,
};

/// `cookiecutterCompat`: plain Jinja `{{ }}` variables.
pub(crate) const COOKIECUTTER: Delimiters = Delimiters {
    var_start: "{{",
    jinja_compat: true,
    ..BACKSTAGE
};

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Name(String),
    Str(String),
    Num(String),
    Regex(String, String),
    Op(&'static str),
}

const OPS: [&str; 30] = [
    "===", "!==", "//", "**", "==", "!=", ">=", "<=", "(", ")", "[", "]", "{", "}", "+", "-", "*", "/", "%", ".", ",",
    ":", "~", "|", "=", "<", ">", "!", "?", ";",
];

#[derive(Clone, Copy, PartialEq, Debug)]
enum TagKind {
    Var,
    Block,
}

/// Where a tag's content ends, found with minijinja's rules (end delimiters
/// count only outside brackets and string literals).
struct Scanned {
    toks: Option<Vec<Tok>>,
    /// Byte offset (in the template) where the closing marker starts
    /// (including a `-`/`+` whitespace marker).
    close_start: usize,
    /// Byte offset just past the end delimiter.
    end: usize,
}

fn scan_tag(src: &str, from: usize, end_delim: &str) -> Option<Scanned> {
    let bytes = src.as_bytes();
    let mut i = from;
    let mut depth: i32 = 0;
    let mut toks: Vec<Tok> = Vec::new();
    let mut tokens_ok = true;
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        let rest = &src[i..];
        if depth <= 0 {
            if (rest.starts_with('-') || rest.starts_with('+')) && rest[1..].starts_with(end_delim) {
                return Some(Scanned {
                    toks: tokens_ok.then_some(toks),
                    close_start: i,
                    end: i + 1 + end_delim.len(),
                });
            }
            if rest.starts_with(end_delim) {
                return Some(Scanned {
                    toks: tokens_ok.then_some(toks),
                    close_start: i,
                    end: i + end_delim.len(),
                });
            }
        }
        let c = rest.chars().next()?;
        if c == '"' || c == '\'' {
            let (s, len) = lex_string(rest)?;
            toks.push(Tok::Str(s));
            i += len;
            continue;
        }
        if c == 'r' && rest[1..].starts_with('/') {
            if let Some((pat, flags, len)) = lex_regex(rest) {
                toks.push(Tok::Regex(pat, flags));
                i += len;
                continue;
            }
        }
        if c.is_ascii_digit() {
            let mut len = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
            if rest[len..].starts_with('.') && rest[len + 1..].bytes().next().is_some_and(|b| b.is_ascii_digit()) {
                len += 1 + rest[len + 1..].bytes().take_while(|b| b.is_ascii_digit()).count();
            }
            toks.push(Tok::Num(rest[..len].to_string()));
            i += len;
            continue;
        }
        if c.is_alphabetic() || c == '_' || c == '$' {
            let len: usize = rest
                .char_indices()
                .find(|(_, ch)| !(ch.is_alphanumeric() || *ch == '_' || *ch == '$'))
                .map(|(idx, _)| idx)
                .unwrap_or(rest.len());
            toks.push(Tok::Name(rest[..len].to_string()));
            i += len;
            continue;
        }
        if let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) {
            match *op {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => depth -= 1,
                _ => {}
            }
            toks.push(Tok::Op(op));
            i += op.len();
            continue;
        }
        // Unknown character: keep scanning for the end, but do not rewrite.
        tokens_ok = false;
        i += c.len_utf8();
    }
}

/// A nunjucks string literal: `\n`, `\t`, `\r` escapes, any other escaped
/// character stands for itself. Returns the value and the consumed length.
fn lex_string(rest: &str) -> Option<(String, usize)> {
    let mut chars = rest.char_indices();
    let (_, quote) = chars.next()?;
    let mut out = String::new();
    while let Some((idx, c)) = chars.next() {
        if c == quote {
            return Some((out, idx + c.len_utf8()));
        }
        if c == '\\' {
            let (_, esc) = chars.next()?;
            match esc {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                other => out.push(other),
            }
        } else {
            out.push(c);
        }
    }
    None
}

/// A nunjucks regex literal `r/pattern/flags`.
fn lex_regex(rest: &str) -> Option<(String, String, usize)> {
    let body = &rest[2..];
    let mut pat = String::new();
    let mut escaped = false;
    let mut end = None;
    for (idx, c) in body.char_indices() {
        if escaped {
            pat.push(c);
            escaped = false;
        } else if c == '\\' {
            pat.push(c);
            escaped = true;
        } else if c == '/' {
            end = Some(idx);
            break;
        } else {
            pat.push(c);
        }
    }
    let end = end?;
    let flags: String = body[end + 1..]
        .chars()
        .take_while(|c| matches!(c, 'g' | 'i' | 'm' | 'y' | 's' | 'u'))
        .collect();
    Some((pat, flags.clone(), 2 + end + 1 + flags.len()))
}

/// Emits a minijinja string literal holding `s`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            other => out.push(other),
        }
    }
    out.push('"');
    out
}

fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Name(n) => n.clone(),
        Tok::Str(s) => quote(s),
        Tok::Num(n) => n.clone(),
        Tok::Regex(p, f) => format!("__jsregex({}, {})", quote(p), quote(f)),
        Tok::Op(o) => (*o).to_string(),
    }
}

/// An expression as nunjucks' compiler emits it: operators it writes as
/// bare JavaScript operators stay structured, so that the emitted operator
/// sequence can be re-read with JavaScript's precedence (nunjucks emits
/// `a + b - c` or `!a == b` without parentheses and JS decides).
#[derive(Debug, Clone)]
enum Node {
    /// Fully translated minijinja text of a self-contained term.
    Atom(String),
    Bin(Box<Node>, &'static str, Box<Node>),
    Prefix(&'static str, Box<Node>),
}

#[derive(Debug, Clone)]
enum Flat {
    Operand(String),
    Op(&'static str),
    Prefix(&'static str),
}

fn flatten(node: Node, out: &mut Vec<Flat>) {
    match node {
        Node::Atom(s) => out.push(Flat::Operand(s)),
        Node::Bin(l, op, r) => {
            flatten(*l, out);
            if op == "~" {
                // nunjucks: `a ~ b` is emitted as `a + "" + b`.
                out.push(Flat::Op("+"));
                out.push(Flat::Operand("\"\"".to_string()));
                out.push(Flat::Op("+"));
            } else {
                out.push(Flat::Op(op));
            }
            flatten(*r, out);
        }
        Node::Prefix(p, inner) => {
            out.push(Flat::Prefix(p));
            flatten(*inner, out);
        }
    }
}

fn js_precedence(op: &str) -> u8 {
    match op {
        "||" => 1,
        "&&" => 2,
        "==" | "!=" | "===" | "!==" => 3,
        "<" | ">" | "<=" | ">=" => 4,
        "+" | "-" => 5,
        _ => 6,
    }
}

struct FlatParser {
    items: Vec<Flat>,
    pos: usize,
}

impl FlatParser {
    fn operand(&mut self) -> PResult {
        let item = self.items.get(self.pos).cloned().ok_or(())?;
        self.pos += 1;
        match item {
            Flat::Operand(s) => Ok(s),
            Flat::Prefix(p) => {
                let inner = self.operand()?;
                Ok(match p {
                    "!" => format!("(not __jstruth({inner}))"),
                    "-" => format!("__jsneg({inner})"),
                    _ => format!("__jsnum({inner})"),
                })
            }
            Flat::Op(_) => Err(()),
        }
    }

    fn expr(&mut self, min_prec: u8) -> PResult {
        let mut lhs = self.operand()?;
        while let Some(Flat::Op(op)) = self.items.get(self.pos).cloned() {
            let prec = js_precedence(op);
            if prec < min_prec {
                break;
            }
            self.pos += 1;
            let rhs = self.expr(prec + 1)?;
            lhs = match op {
                "||" => format!("({lhs} or {rhs})"),
                "&&" => format!("({lhs} and {rhs})"),
                "+" => format!("__jsadd({lhs}, {rhs})"),
                "-" => format!("__jssub({lhs}, {rhs})"),
                "*" => format!("__jsmul({lhs}, {rhs})"),
                "/" => format!("__jsdiv({lhs}, {rhs})"),
                "%" => format!("__jsmod({lhs}, {rhs})"),
                cmp => format!("__jscmp({lhs}, {}, {rhs})", quote(cmp)),
            };
        }
        Ok(lhs)
    }
}

/// Emits a node as minijinja text, applying JS precedence to its operators.
fn emit(node: Node) -> PResult {
    if let Node::Atom(s) = node {
        return Ok(s);
    }
    let mut items = Vec::new();
    flatten(node, &mut items);
    let mut p = FlatParser { items, pos: 0 };
    let out = p.expr(0)?;
    if p.pos == p.items.len() {
        Ok(out)
    } else {
        Err(())
    }
}

type PResult = Result<String, ()>;
type NResult = Result<Node, ()>;

/// Recursive-descent parser following nunjucks' `parser.js`: inline-if,
/// or, and, not, in, is, compare, `~`, `+`, `-`, `*`, `/`, `//`, `%`, `**`,
/// unary (filters bind after unary operators), primary with postfix.
struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
    /// Jinja compatibility (`cookiecutterCompat`): `True`/`False`/`None`.
    compat: bool,
}

impl<'a> Parser<'a> {
    fn new(toks: &'a [Tok], compat: bool) -> Self {
        Parser { toks, pos: 0, compat }
    }

    fn peek(&self) -> Option<&'a Tok> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, off: usize) -> Option<&'a Tok> {
        self.toks.get(self.pos + off)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(o)) if *o == op)
    }

    fn is_name(&self, name: &str) -> bool {
        matches!(self.peek(), Some(Tok::Name(n)) if n == name)
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if self.is_op(op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_name(&mut self, name: &str) -> bool {
        if self.is_name(name) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_op(&mut self, op: &str) -> Result<(), ()> {
        if self.eat_op(op) {
            Ok(())
        } else {
            Err(())
        }
    }

    /// A complete expression, emitted.
    fn expression(&mut self) -> PResult {
        let node = self.inline_if()?;
        emit(node)
    }

    fn inline_if(&mut self) -> NResult {
        let body = self.or()?;
        if self.eat_name("if") {
            let cond = emit(self.or()?)?;
            // nunjucks compiles a missing `else` to `""`.
            let otherwise = if self.eat_name("else") {
                emit(self.or()?)?
            } else {
                "\"\"".to_string()
            };
            return Ok(Node::Atom(format!("({} if {cond} else {otherwise})", emit(body)?)));
        }
        Ok(body)
    }

    fn binary_level(&mut self, word: &str, op: &'static str, next: fn(&mut Self) -> NResult) -> NResult {
        let mut node = next(self)?;
        loop {
            let matched = if word.chars().all(|c| c.is_ascii_alphabetic()) {
                self.eat_name(word)
            } else {
                self.eat_op(word)
            };
            if !matched {
                return Ok(node);
            }
            let rhs = next(self)?;
            node = Node::Bin(Box::new(node), op, Box::new(rhs));
        }
    }

    fn or(&mut self) -> NResult {
        self.binary_level("or", "||", Self::and)
    }

    fn and(&mut self) -> NResult {
        self.binary_level("and", "&&", Self::not)
    }

    fn not(&mut self) -> NResult {
        if self.is_name("not") && !matches!(self.peek_at(1), Some(Tok::Name(n)) if n == "in") {
            self.pos += 1;
            let inner = self.not()?;
            return Ok(Node::Prefix("!", Box::new(inner)));
        }
        self.in_op()
    }

    fn in_op(&mut self) -> NResult {
        let mut node = self.is_test()?;
        loop {
            let negate = if self.is_name("not") && matches!(self.peek_at(1), Some(Tok::Name(n)) if n == "in") {
                self.pos += 2;
                true
            } else if self.eat_name("in") {
                false
            } else {
                return Ok(node);
            };
            let rhs = self.is_test()?;
            let call = Node::Atom(format!("__jsin({}, {})", emit(node)?, emit(rhs)?));
            node = if negate {
                Node::Prefix("!", Box::new(call))
            } else {
                call
            };
        }
    }

    fn is_test(&mut self) -> NResult {
        let node = self.compare()?;
        if self.eat_name("is") {
            let negate = self.eat_name("not");
            let name = match self.peek() {
                Some(Tok::Name(n)) => n.clone(),
                _ => return Err(()),
            };
            self.pos += 1;
            let args = if self.eat_op("(") {
                format!("({})", self.args()?)
            } else {
                String::new()
            };
            let not = if negate { "not " } else { "" };
            return Ok(Node::Atom(format!("({} is {not}{name}{args})", emit(node)?)));
        }
        Ok(node)
    }

    fn compare(&mut self) -> NResult {
        let mut node = self.concat()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op(o)) if matches!(*o, "==" | "===" | "!=" | "!==" | "<" | ">" | "<=" | ">=") => *o,
                _ => return Ok(node),
            };
            self.pos += 1;
            let rhs = self.concat()?;
            node = Node::Bin(Box::new(node), op, Box::new(rhs));
        }
    }

    fn concat(&mut self) -> NResult {
        self.binary_level("~", "~", Self::add)
    }

    fn add(&mut self) -> NResult {
        self.binary_level("+", "+", Self::sub)
    }

    fn sub(&mut self) -> NResult {
        self.binary_level("-", "-", Self::mul)
    }

    fn mul(&mut self) -> NResult {
        self.binary_level("*", "*", Self::div)
    }

    fn div(&mut self) -> NResult {
        self.binary_level("/", "/", Self::floordiv)
    }

    fn floordiv(&mut self) -> NResult {
        let mut node = self.modulo()?;
        while self.eat_op("//") {
            let rhs = self.modulo()?;
            node = Node::Atom(format!("__jsfloordiv({}, {})", emit(node)?, emit(rhs)?));
        }
        Ok(node)
    }

    fn modulo(&mut self) -> NResult {
        self.binary_level("%", "%", Self::pow)
    }

    fn pow(&mut self) -> NResult {
        let mut node = self.unary(false)?;
        while self.eat_op("**") {
            let rhs = self.unary(false)?;
            node = Node::Atom(format!("__jspow({}, {})", emit(node)?, emit(rhs)?));
        }
        Ok(node)
    }

    fn unary(&mut self, no_filters: bool) -> NResult {
        let node = if self.eat_op("-") {
            Node::Prefix("-", Box::new(self.unary(true)?))
        } else if self.eat_op("+") {
            Node::Prefix("+", Box::new(self.unary(true)?))
        } else {
            Node::Atom(self.primary()?)
        };
        if no_filters || !self.is_op("|") {
            Ok(node)
        } else {
            Ok(Node::Atom(self.filters(emit(node)?)?))
        }
    }

    fn filters(&mut self, mut node: String) -> PResult {
        while self.eat_op("|") {
            let name = match self.peek() {
                Some(Tok::Name(n)) => n.clone(),
                _ => return Err(()),
            };
            self.pos += 1;
            let args = if self.eat_op("(") {
                format!("({})", self.args()?)
            } else {
                String::new()
            };
            node = format!("({node})|{name}{args}");
        }
        Ok(node)
    }

    /// Call arguments after `(`, through the closing `)`.
    fn args(&mut self) -> PResult {
        let mut parts: Vec<String> = Vec::new();
        loop {
            if self.eat_op(")") {
                return Ok(parts.join(", "));
            }
            if !parts.is_empty() {
                self.expect_op(",")?;
                if self.eat_op(")") {
                    return Ok(parts.join(", "));
                }
            }
            if let (Some(Tok::Name(n)), Some(Tok::Op("="))) = (self.peek(), self.peek_at(1)) {
                self.pos += 2;
                let value = self.expression()?;
                parts.push(format!("{n}={value}"));
            } else {
                parts.push(self.expression()?);
            }
        }
    }

    fn primary(&mut self) -> PResult {
        let tok = self.peek().ok_or(())?;
        self.pos += 1;
        let node = match tok {
            Tok::Name(n) => match n.as_str() {
                "true" => "true".to_string(),
                "false" => "false".to_string(),
                "none" | "null" => "none".to_string(),
                "True" if self.compat => "true".to_string(),
                "False" if self.compat => "false".to_string(),
                "None" if self.compat => "none".to_string(),
                "if" | "else" | "and" | "or" | "not" | "in" | "is" => return Err(()),
                _ if is_identifier(n) && !is_reserved(n) => n.clone(),
                // A name minijinja would read differently: look it up.
                _ => format!("__jsvar({})", quote(n)),
            },
            Tok::Str(s) => quote(s),
            Tok::Num(n) => n.clone(),
            Tok::Regex(p, f) => format!("__jsregex({}, {})", quote(p), quote(f)),
            Tok::Op("(") => self.paren()?,
            Tok::Op("[") => self.list()?,
            Tok::Op("{") => self.dict()?,
            Tok::Op(_) => return Err(()),
        };
        self.postfix(node)
    }

    fn paren(&mut self) -> PResult {
        if self.eat_op(")") {
            return Err(());
        }
        let mut items = vec![self.expression()?];
        while self.eat_op(",") {
            if self.is_op(")") {
                break;
            }
            items.push(self.expression()?);
        }
        self.expect_op(")")?;
        // JS comma operator: `(a, b)` is `b`.
        Ok(format!("({})", items.pop().ok_or(())?))
    }

    fn list(&mut self) -> PResult {
        let mut items: Vec<String> = Vec::new();
        loop {
            if self.eat_op("]") {
                return Ok(format!("[{}]", items.join(", ")));
            }
            if !items.is_empty() {
                self.expect_op(",")?;
                if self.eat_op("]") {
                    return Ok(format!("[{}]", items.join(", ")));
                }
            }
            items.push(self.expression()?);
        }
    }

    fn dict(&mut self) -> PResult {
        let mut items: Vec<String> = Vec::new();
        loop {
            if self.eat_op("}") {
                return Ok(format!("{{{}}}", items.join(", ")));
            }
            if !items.is_empty() {
                self.expect_op(",")?;
                if self.eat_op("}") {
                    return Ok(format!("{{{}}}", items.join(", ")));
                }
            }
            // nunjucks: a bare name as key is the key's text, not a variable.
            let key = match (self.peek(), self.peek_at(1)) {
                (Some(Tok::Name(n)), Some(Tok::Op(":"))) => {
                    self.pos += 1;
                    quote(n)
                }
                _ => self.primary()?,
            };
            self.expect_op(":")?;
            let value = self.expression()?;
            items.push(format!("{key}: {value}"));
        }
    }

    fn postfix(&mut self, mut node: String) -> PResult {
        loop {
            if self.eat_op("(") {
                node = format!("{node}({})", self.args()?);
            } else if self.eat_op("[") {
                let (sub, is_slice) = self.subscript()?;
                if self.is_op("(") || is_slice {
                    node = format!("{node}[{sub}]");
                } else {
                    node = format!("__jsget({node}, {sub})");
                }
            } else if self.is_op(".") {
                let name = match self.peek_at(1) {
                    Some(Tok::Name(n)) => n.clone(),
                    Some(Tok::Num(n)) if !n.contains('.') => n.clone(),
                    _ => return Err(()),
                };
                self.pos += 2;
                if self.is_op("(") && is_identifier(&name) {
                    // A method call: JS methods come from the unknown-method callback.
                    node = format!("{node}.{name}");
                } else if name.chars().all(|c| c.is_ascii_digit()) {
                    node = format!("__jsget({node}, {name})");
                } else {
                    node = format!("__jsget({node}, {})", quote(&name));
                }
            } else {
                return Ok(node);
            }
        }
    }

    /// Inside `[…]`: an index or a `start:stop:step` slice.
    fn subscript(&mut self) -> Result<(String, bool), ()> {
        let mut parts: Vec<String> = Vec::new();
        let mut current = String::new();
        loop {
            if self.eat_op("]") {
                parts.push(current);
                break;
            }
            if self.eat_op(":") {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            if !current.is_empty() {
                return Err(());
            }
            current = self.expression()?;
        }
        if parts.len() == 1 {
            if parts[0].is_empty() {
                return Err(());
            }
            return Ok((parts.remove(0), false));
        }
        if parts.len() > 3 {
            return Err(());
        }
        Ok((parts.join(":"), true))
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Names minijinja treats as literals or keywords but nunjucks as variables.
fn is_reserved(s: &str) -> bool {
    matches!(
        s,
        "True" | "False" | "None" | "true" | "false" | "none" | "recursive" | "with" | "as" | "without"
    )
}

fn translate_expression(toks: &[Tok], compat: bool) -> Option<String> {
    let mut p = Parser::new(toks, compat);
    let out = p.expression().ok()?;
    p.at_end().then_some(out)
}

/// Translates the content of a `{% %}` tag; `None` keeps it verbatim.
fn translate_block(toks: &[Tok], compat: bool) -> Option<String> {
    let (name, rest) = match toks.split_first() {
        Some((Tok::Name(n), rest)) => (n.as_str(), rest),
        _ => return None,
    };
    match name {
        "if" | "elif" | "elseif" => {
            let expr = translate_expression(rest, compat)?;
            let tag = if name == "if" { "if" } else { "elif" };
            Some(format!("{tag} {expr}"))
        }
        "for" => {
            let in_pos = rest.iter().position(|t| matches!(t, Tok::Name(n) if n == "in"))?;
            let targets = &rest[..in_pos];
            if targets.is_empty()
                || !targets
                    .iter()
                    .all(|t| matches!(t, Tok::Name(_) | Tok::Op(",") | Tok::Op("(") | Tok::Op(")")))
            {
                return None;
            }
            let expr = translate_expression(&rest[in_pos + 1..], compat)?;
            let target_text: Vec<String> = targets.iter().map(tok_text).collect();
            let multiple = targets.iter().any(|t| matches!(t, Tok::Op(",")));
            // nunjucks iterates `key, value` pairs of an object.
            let source = if multiple { format!("__jsentries({expr})") } else { expr };
            Some(format!("for {} in {source}", target_text.join(" ")))
        }
        "set" => {
            let eq = rest.iter().position(|t| matches!(t, Tok::Op("=")))?;
            let targets = &rest[..eq];
            if targets.is_empty() || !targets.iter().all(|t| matches!(t, Tok::Name(_) | Tok::Op(","))) {
                return None;
            }
            let expr = translate_expression(&rest[eq + 1..], compat)?;
            let target_text: Vec<String> = targets.iter().map(tok_text).collect();
            let names = targets.iter().filter(|t| matches!(t, Tok::Name(_))).count();
            if names > 1 {
                // nunjucks assigns the whole value to every target.
                let copies = vec![expr; names].join(", ");
                return Some(format!("set {} = ({copies})", target_text.join(" ")));
            }
            Some(format!("set {} = {expr}", target_text.join(" ")))
        }
        "verbatim" if rest.is_empty() => Some("raw".to_string()),
        "endverbatim" if rest.is_empty() => Some("endraw".to_string()),
        _ => None,
    }
}

/// One piece of a template.
#[derive(Debug, PartialEq)]
pub(crate) enum Piece<'a> {
    Text(&'a str),
    /// A `${{ }}` tag (whole source text).
    Var(&'a str),
    /// A `{% %}` or `{# #}` tag or a raw block (whole source text).
    Other(&'a str),
}

/// Translates a nunjucks template into minijinja source.
pub(crate) fn translate(src: &str, delims: &Delimiters) -> String {
    let mut out = String::with_capacity(src.len() + 16);
    for_each_piece(src, delims, |piece, translated| match piece {
        Piece::Text(t) => out.push_str(t),
        Piece::Var(t) | Piece::Other(t) => out.push_str(translated.as_deref().unwrap_or(t)),
    });
    out
}

/// Splits a template into pieces; `visit` receives each piece and, for
/// tags, their translation (`None` = keep verbatim).
pub(crate) fn for_each_piece<'a>(src: &'a str, d: &Delimiters, mut visit: impl FnMut(Piece<'a>, Option<String>)) {
    let mut pos = 0;
    while pos < src.len() {
        let rest = &src[pos..];
        let next = [
            (rest.find(d.var_start), 0u8),
            (rest.find(d.block_start), 1u8),
            (rest.find(d.comment_start), 2u8),
        ]
        .into_iter()
        .filter_map(|(p, k)| p.map(|p| (p, k)))
        .min_by_key(|(p, k)| (*p, *k));
        let Some((rel, kind)) = next else {
            visit(Piece::Text(rest), None);
            return;
        };
        if rel > 0 {
            visit(Piece::Text(&rest[..rel]), None);
        }
        let start = pos + rel;
        if kind == 2 {
            let body_from = start + d.comment_start.len();
            match src[body_from..].find(d.comment_end) {
                Some(e) => {
                    let end = body_from + e + d.comment_end.len();
                    let whole = &src[start..end];
                    visit(Piece::Other(whole), Some(comment_as_var(whole, d)));
                    pos = end;
                }
                None => {
                    visit(Piece::Other(&src[start..]), None);
                    return;
                }
            }
            continue;
        }
        let (open, close, tag_kind) = if kind == 0 {
            (d.var_start, d.var_end, TagKind::Var)
        } else {
            (d.block_start, d.block_end, TagKind::Block)
        };
        let mut content_from = start + open.len();
        let open_marker = match src[content_from..].chars().next() {
            Some(c @ ('-' | '+')) => {
                content_from += 1;
                Some(c)
            }
            _ => None,
        };
        let Some(scanned) = scan_tag(src, content_from, close) else {
            visit(Piece::Other(&src[start..]), None);
            return;
        };
        let whole = &src[start..scanned.end];
        let closing = &src[scanned.close_start..scanned.end];
        let opening = match open_marker {
            Some(m) => format!("{open}{m}"),
            None => open.to_string(),
        };
        let translated = scanned.toks.as_ref().and_then(|toks| match tag_kind {
            TagKind::Var => translate_expression(toks, d.jinja_compat),
            TagKind::Block => translate_block(toks, d.jinja_compat),
        });
        let is_raw = tag_kind == TagKind::Block
            && matches!(scanned.toks.as_deref(), Some([Tok::Name(n)]) if n == "raw" || n == "verbatim");
        if is_raw {
            // Copy the body untouched up to the matching end tag.
            let body_from = scanned.end;
            match find_raw_end(src, body_from, d) {
                Some((end_start, end_end, end_text)) => {
                    let open_tag = format!("{opening} raw {closing}");
                    let full = format!("{open_tag}{}{end_text}", &src[body_from..end_start]);
                    visit(Piece::Other(&src[start..end_end]), Some(full));
                    pos = end_end;
                }
                None => {
                    visit(Piece::Other(&src[start..]), None);
                    return;
                }
            }
            continue;
        }
        // Keep the tag's line count so error line numbers stay right.
        let newlines = "\n".repeat(whole.matches('\n').count());
        let translated = translated.map(|t| format!("{opening} {t} {newlines}{closing}"));
        match tag_kind {
            TagKind::Var => visit(Piece::Var(whole), translated),
            TagKind::Block => visit(Piece::Other(whole), translated),
        }
        pos = scanned.end;
    }
}

/// A comment as an empty variable tag with the same whitespace markers:
/// nunjucks honours `{#-`/`-#}` but applies neither `trimBlocks` nor
/// `lstripBlocks` to comments, like to variables.
fn comment_as_var(whole: &str, d: &Delimiters) -> String {
    let body = &whole[d.comment_start.len()..whole.len() - d.comment_end.len()];
    let open = if body.starts_with('-') { "-" } else { "" };
    let close = if body.len() > open.len() && body.ends_with('-') {
        "-"
    } else {
        ""
    };
    let newlines = "\n".repeat(whole.matches('\n').count());
    format!("{}{open} \"\" {newlines}{close}{}", d.var_start, d.var_end)
}

/// Finds `{% endraw %}` / `{% endverbatim %}` (with optional whitespace
/// markers); returns its span and its minijinja spelling.
fn find_raw_end(src: &str, from: usize, d: &Delimiters) -> Option<(usize, usize, String)> {
    let mut search = from;
    while let Some(rel) = src[search..].find(d.block_start) {
        let start = search + rel;
        let mut i = start + d.block_start.len();
        let mut open_marker = "";
        if let Some(m @ ('-' | '+')) = src[i..].chars().next() {
            open_marker = if m == '-' { "-" } else { "+" };
            i += 1;
        }
        let after_ws = src[i..].trim_start();
        let i2 = src.len() - after_ws.len();
        for word in ["endraw", "endverbatim"] {
            if let Some(after) = after_ws.strip_prefix(word) {
                let after_trim = after.trim_start();
                let j = src.len() - after_trim.len();
                let (close_marker, k) = match after_trim.chars().next() {
                    Some(m @ ('-' | '+')) => (if m == '-' { "-" } else { "+" }, j + 1),
                    _ => ("", j),
                };
                if src[k..].starts_with(d.block_end) {
                    let end = k + d.block_end.len();
                    // nunjucks applies neither lstripBlocks nor trimBlocks
                    // to the end tag: `+` markers turn them off.
                    let open_marker = if open_marker.is_empty() { "+" } else { open_marker };
                    let close_marker = if close_marker.is_empty() { "+" } else { close_marker };
                    let text = format!("{}{open_marker} endraw {close_marker}{}", d.block_start, d.block_end);
                    let _ = i2;
                    return Some((start, end, text));
                }
            }
        }
        search = start + d.block_start.len();
    }
    None
}

/// If the whole string is one node for nunjucks' parser (a single
/// `${{ … }}` tag, or a block tag structure with nothing around it), returns
/// true: Backstage then renders it through `dump` and re-parses the JSON.
pub(crate) fn is_single_node(src: &str) -> bool {
    let mut pieces = 0usize;
    let mut first_is_text = false;
    let mut first_is_var = false;
    for_each_piece(src, &BACKSTAGE, |piece, _| {
        if pieces == 0 {
            first_is_text = matches!(piece, Piece::Text(_));
            first_is_var = matches!(piece, Piece::Var(_));
        }
        pieces += 1;
    });
    if pieces == 0 || first_is_text {
        return false;
    }
    if first_is_var {
        return pieces == 1;
    }
    // A block structure: `{% if %}…{% endif %}` is one node when it spans
    // the whole string.
    src.starts_with(BACKSTAGE.block_start) && src.ends_with(BACKSTAGE.block_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(s: &str) -> String {
        translate(s, &BACKSTAGE)
    }

    #[test]
    fn text_and_comments_are_untouched() {
        assert_eq!(tr("a {{ b }} c"), "a {{ b }} c");
        // Comments become empty variable tags (no trim/lstrip, as in nunjucks).
        assert_eq!(tr("a {#- c ${{ d }} #} e"), "a ${{- \"\" }} e");
    }

    #[test]
    fn operators_become_js_helpers() {
        assert_eq!(tr("${{ a + 1 }}"), "${{ __jsadd(a, 1) }}");
        assert_eq!(tr("${{ a === 'x' }}"), "${{ __jscmp(a, \"===\", \"x\") }}");
        assert_eq!(tr("${{- a.length -}}"), "${{- __jsget(a, \"length\") -}}");
        assert_eq!(tr("${{ a + b - c }}"), "${{ __jssub(__jsadd(a, b), c) }}");
        assert_eq!(tr("${{ not a == b }}"), "${{ __jscmp((not __jstruth(a)), \"==\", b) }}");
        assert_eq!(tr("${{ x if y }}"), "${{ (x if y else \"\") }}");
    }

    #[test]
    fn bare_dict_keys_are_strings() {
        assert_eq!(
            tr("${{ x | f({ a: 1, 'b': 2 }) }}"),
            "${{ (x)|f({\"a\": 1, \"b\": 2}) }}"
        );
    }

    #[test]
    fn tags_are_translated() {
        assert_eq!(tr("{%- if a in b %}"), "{%- if __jsin(a, b) %}");
        assert_eq!(tr("{% elseif a %}"), "{% elif a %}");
        assert_eq!(tr("{% for k, v in o %}"), "{% for k , v in __jsentries(o) %}");
        assert_eq!(tr("{% set n = a ~ b %}"), "{% set n = __jsadd(__jsadd(a, \"\"), b) %}");
    }

    #[test]
    fn raw_blocks_are_copied() {
        assert_eq!(
            tr("{% raw %}${{ a + b }}{% endraw %}"),
            "{% raw %}${{ a + b }}{%+ endraw +%}"
        );
        assert_eq!(tr("{%- verbatim %}x{% endverbatim -%}"), "{%- raw %}x{%+ endraw -%}");
    }

    #[test]
    fn single_node_detection() {
        assert!(is_single_node("${{ a }}"));
        assert!(!is_single_node(" ${{ a }}"));
        assert!(!is_single_node("${{ a }}${{ b }}"));
        assert!(!is_single_node("${{ a }}\n"));
        assert!(is_single_node("{% if a %}1{% endif %}"));
        assert!(!is_single_node("plain"));
    }
}
