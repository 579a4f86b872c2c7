//! The emitter: writes minijinja text for parsed expressions.
//!
//! nunjucks compiles its binary operators to bare JavaScript operators and
//! lets JavaScript's precedence decide (`a + b - c`, `!a == b`); [`emit`]
//! flattens a [`Node`] back into that operator sequence and re-reads it
//! with JavaScript's precedence, writing each operator as the `__js*` helper
//! that gives it its JavaScript meaning (see `js.rs`).
//!
//! Invariant: everything emitted is a self-contained minijinja expression
//! (a call, a literal or a parenthesised term), so the caller can splice it
//! anywhere without adding parentheses.

use super::lexer::Tok;

/// Emits a minijinja string literal holding `s`.
pub(super) fn quote(s: &str) -> String {
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

pub(super) fn tok_text(t: &Tok) -> String {
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
pub(super) enum Node {
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
pub(super) fn emit(node: Node) -> PResult {
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

pub(super) type PResult = Result<String, ()>;
