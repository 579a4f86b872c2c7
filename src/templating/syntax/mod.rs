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
//!
//! The translation runs in four stages, one file each: the walker
//! (`walk.rs`) splits the template into pieces, the lexer (`lexer.rs`)
//! tokenizes each tag, the parser (`parser.rs`) reads the tokens with
//! nunjucks' grammar, and the emitter (`emit.rs`) writes minijinja text.
//! Only this file is seen by the rest of `templating`.

mod emit;
mod lexer;
mod parser;
mod walk;

use walk::{for_each_piece, Piece};

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

/// Translates a nunjucks template into minijinja source.
pub(crate) fn translate(src: &str, delims: &Delimiters) -> String {
    let mut out = String::with_capacity(src.len() + 16);
    for_each_piece(src, delims, |piece, translated| match piece {
        Piece::Text(t) => out.push_str(t),
        Piece::Var(t) | Piece::Other(t) => out.push_str(translated.as_deref().unwrap_or(t)),
    });
    out
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
