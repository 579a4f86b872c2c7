//! The parser: a recursive-descent parser for nunjucks expressions and
//! the `if`/`elif`/`for`/`set`/`verbatim` tags, following nunjucks'
//! `parser.js`.
//!
//! Invariant: a translation is returned only when the whole token list
//! parses; `None` means "keep the tag verbatim", never a partial rewrite.

use super::emit::{emit, quote, tok_text, Node, PResult};
use super::lexer::Tok;

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

pub(super) fn translate_expression(toks: &[Tok], compat: bool) -> Option<String> {
    let mut p = Parser::new(toks, compat);
    let out = p.expression().ok()?;
    p.at_end().then_some(out)
}

/// Translates the content of a `{% %}` tag; `None` keeps it verbatim.
pub(super) fn translate_block(toks: &[Tok], compat: bool) -> Option<String> {
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
