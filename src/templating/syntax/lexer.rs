//! The lexer: turns the inside of one `${{ }}` or `{% %}` tag into tokens
//! and finds where the tag ends.
//!
//! Invariant: the end of a tag is found with minijinja's rules (an end
//! delimiter counts only outside brackets and string literals), so the
//! walker and minijinja agree on every tag's extent; tokens are returned
//! only when every character of the tag was understood, otherwise the tag
//! is copied verbatim and minijinja reports the error.

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
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

/// Where a tag's content ends, found with minijinja's rules (end delimiters
/// count only outside brackets and string literals).
pub(super) struct Scanned {
    pub(super) toks: Option<Vec<Tok>>,
    /// Byte offset (in the template) where the closing marker starts
    /// (including a `-`/`+` whitespace marker).
    pub(super) close_start: usize,
    /// Byte offset just past the end delimiter.
    pub(super) end: usize,
}

pub(super) fn scan_tag(src: &str, from: usize, end_delim: &str) -> Option<Scanned> {
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
