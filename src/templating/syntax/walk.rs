//! The walker: splits a template into text, `${{ }}` variables, `{% %}`
//! tags, comments and raw blocks, and hands each tag's translation to a
//! visitor.
//!
//! Invariant: text and raw bodies are passed through untouched, a comment
//! becomes an empty variable tag, and every translated tag keeps its
//! whitespace markers and its line count, so minijinja's trimming and
//! error line numbers match the source.

use super::lexer::{scan_tag, Tok};
use super::parser::{translate_block, translate_expression};
use super::Delimiters;

#[derive(Clone, Copy, PartialEq, Debug)]
enum TagKind {
    Var,
    Block,
}

/// One piece of a template.
#[derive(Debug, PartialEq)]
pub(super) enum Piece<'a> {
    Text(&'a str),
    /// A `${{ }}` tag (whole source text).
    Var(&'a str),
    /// A `{% %}` or `{# #}` tag or a raw block (whole source text).
    Other(&'a str),
}

/// Splits a template into pieces; `visit` receives each piece and, for
/// tags, their translation (`None` = keep verbatim).
pub(super) fn for_each_piece<'a>(src: &'a str, d: &Delimiters, mut visit: impl FnMut(Piece<'a>, Option<String>)) {
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
