//! Behaviour tests. Expected values are nunjucks 3.2.4's output for the same
//! template and context (checked against the real engine), or Backstage's.

use super::*;
use serde_json::json;

fn ctx() -> serde_json::Value {
    json!({
        "s": "Hello World", "n": 3, "f": 1.5, "z": 0, "arr": [1, 2, 3], "e": [], "o": {"a": 1, "b": "x"},
        "eo": {}, "nul": null, "t": true, "strs": ["b", "A", "c"], "nested": [[1, 2], [3]],
        "objs": [{"n": "a", "v": 2}, {"n": "b", "v": 1}], "csv": "a,b,c", "num": "42", "fl": "3.14abc",
        "big": 1e21, "small": 1e-7, "tf": 2.0,
        "url": "github.com?owner=acme&repo=demo", "ref": "group:default/team-a"
    })
}

fn r(t: &str) -> String {
    Renderer::new()
        .render_str(t, &ctx())
        .unwrap_or_else(|e| format!("ERR: {e}"))
}

fn is_err(t: &str) -> bool {
    Renderer::new().render_str(t, &ctx()).is_err()
}

macro_rules! cases {
    ($($name:ident: $tpl:expr => $want:expr;)*) => {
        $(
            #[test]
            fn $name() {
                assert_eq!(r($tpl), $want, "template: {}", $tpl);
            }
        )*
    };
}

// Printing values the way JS `String(x)` does.
cases! {
    prints_string: "${{ s }}" => "Hello World";
    prints_integer: "${{ n }}" => "3";
    prints_float: "${{ f }}" => "1.5";
    prints_integral_float_without_fraction: "${{ tf }}" => "2";
    prints_array_comma_joined: "${{ arr }}" => "1,2,3";
    prints_nested_array_flat: "${{ nested }}" => "1,2,3";
    prints_object: "${{ o }}" => "[object Object]";
    prints_null_as_empty: "${{ nul }}" => "";
    prints_booleans: "${{ t }} ${{ false }}" => "true false";
    prints_big_number_exponent: "${{ big }}" => "1e+21";
    prints_small_number_exponent: "${{ small }}" => "1e-7";
    prints_division_result: "${{ 4 / 2 }} ${{ n / 2 }}" => "2 1.5";
}

// Undefined handling.
cases! {
    undefined_prints_empty: "[${{ nope }}]" => "[]";
    undefined_chain_prints_empty: "[${{ github.event.repository.name }}]" => "[]";
    null_member_prints_empty: "[${{ nul.x }}]" => "[]";
    github_expression_in_skeleton: "ref: ${{ github.sha }}\n" => "ref: \n";
    dashed_name_is_subtraction: "${{ steps.build-image.outputs.image }}" => "NaN";
    for_over_undefined_is_empty: "{% for x in nope %}x{% else %}empty{% endfor %}" => "empty";
}

// Operators with JS semantics.
cases! {
    plus_concatenates_strings: "${{ s + 1 }}" => "Hello World1";
    plus_adds_numbers: "${{ n + 1 }}" => "4";
    plus_number_and_numeric_string: "${{ n + '1' }}" => "31";
    plus_array_coerces: "${{ arr + 1 }}" => "1,2,31";
    plus_undefined_string: "${{ 'a' + nope }}" => "aundefined";
    plus_is_left_associative: "${{ 1 + 2 + 'a' }}" => "3a";
    plus_minus_follow_js_precedence: "${{ 'a' + 1 - 1 }}" => "NaN";
    arithmetic: "${{ n * 2 }} ${{ 7 % 3 }} ${{ -7 % 3 }} ${{ 7 // 2 }} ${{ 2 ** 10 }} ${{ -n }}" => "6 1 -1 3 1024 -3";
    tilde_concatenates: "${{ s ~ n }} ${{ nope ~ 'x' }} ${{ 1.5 ~ 2 }}" => "Hello World3 undefinedx 1.52";
    loose_equality: "${{ n == '3' }} ${{ nul == nope }} ${{ t == 1 }}" => "true true true";
    strict_equality: "${{ n === '3' }} ${{ n !== 3 }} ${{ nul === nope }}" => "false false false";
    relational: "${{ 'a' < 'b' }} ${{ 2 < 10 }} ${{ '2' < '10' }}" => "true true false";
    inline_if_without_else_is_empty: "[${{ 'x' if z }}]" => "[]";
    empty_array_is_truthy: "${{ 'x' if e else 'y' }} {% if eo %}yes{% endif %}" => "x yes";
    and_or_return_operands: "${{ e and 'yes' }} ${{ z or 'def' }}" => "yes def";
    not_operator: "${{ not e }} ${{ not z }}" => "false true";
    in_operator: "${{ 2 in arr }} ${{ '2' in arr }} ${{ 'ell' in s }} ${{ 'a' in o }} ${{ 'zz' not in o }}" => "true false true true true";
    comma_operator_in_parens: "${{ (1, 2) }}" => "2";
    bare_dict_keys_are_strings: "${{ {a: 1}.a }}" => "1";
    negative_index_is_undefined: "[${{ arr[-1] }}]" => "[]";
    subscripts: "${{ s[0] }} ${{ o['a'] }} ${{ nested[0][1] }} ${{ csv.split(',')[1] }}" => "H 1 2 b";
    steps_lookup_both_styles: "[${{ steps['id'].output.x }}${{ steps.id.output.x }}]" => "[]";
}

#[test]
fn in_on_undefined_fails_like_nunjucks() {
    assert!(is_err("${{ 'x' in nope }}"));
}

// JS properties and methods.
cases! {
    length_of_string: "${{ s.length }}" => "11";
    length_of_array: "${{ arr.length }} ${{ csv.split(',').length }}" => "3 3";
    length_of_object_is_undefined: "[${{ o.length }}]" => "[]";
    method_split: "${{ s.split(' ') | dump }} ${{ 'abc'.split('') | dump }}" => r#"["Hello","World"] ["a","b","c"]"#;
    method_replace_first_only: "${{ s.replace('l', 'L') }}" => "HeLlo World";
    method_replace_regex_global: "${{ s.replace(r/o/g, '0') }}" => "Hell0 W0rld";
    method_replace_pattern_tokens: "${{ s.replace('o', '$&$&') }}" => "Helloo World";
    method_replace_all: "${{ s.replaceAll('l', 'L') }}" => "HeLLo WorLd";
    method_slice: "${{ s.slice(1, 3) }} ${{ s.slice(-3) }}" => "el rld";
    method_substring: "${{ s.substring(6) }} ${{ s.substring(5, 1) }}" => "World ello";
    method_trim: "[${{ '  x '.trim() }}]" => "[x]";
    method_case: "${{ s.toLowerCase() }} ${{ s.toUpperCase() }}" => "hello world HELLO WORLD";
    method_starts_ends_includes: "${{ s.startsWith('He') }} ${{ s.endsWith('d') }} ${{ s.includes('lo W') }}" => "true true true";
    method_index_of: "${{ s.indexOf('o') }} ${{ s.indexOf('zz') }} ${{ s.lastIndexOf('o') }}" => "4 -1 7";
    method_pad_start: "${{ '5'.padStart(3, '0') }}" => "005";
    method_concat: "${{ s.concat('!', 1) }} ${{ arr.concat([4]) }}" => "Hello World!1 1,2,3,4";
    method_join: "${{ arr.join('-') }} ${{ arr.join() }}" => "1-2-3 1,2,3";
    method_array_includes_index_of: "${{ arr.includes(2) }} ${{ arr.indexOf(3) }}" => "true 2";
    method_array_slice: "${{ arr.slice(1) }}" => "2,3";
    method_char_at: "${{ s.charAt(1) }}" => "e";
    method_number_to_string: "${{ n.toString() }} ${{ f.toFixed(2) }}" => "3 1.50";
    method_split_regex: "${{ 'a  b c'.split(r/\\s+/) | dump }}" => r#"["a","b","c"]"#;
}

#[test]
fn calling_a_method_on_undefined_fails() {
    assert!(is_err("${{ nope.split(',') }}"));
}

// nunjucks built-in filters.
cases! {
    filter_lower_upper: "${{ s | lower }} ${{ s | upper }}" => "hello world HELLO WORLD";
    filter_capitalize: "${{ 'hELLO wORLD' | capitalize }}" => "Hello world";
    filter_title: "${{ 'hello big world' | title }}" => "Hello Big World";
    filter_trim: "[${{ '  x  ' | trim }}]" => "[x]";
    filter_length: "${{ s | length }} ${{ arr | length }} ${{ o | length }} ${{ nope | length }}" => "11 3 2 0";
    filter_join: "${{ arr | join }} ${{ arr | join(', ') }} ${{ objs | join(',', 'n') }}" => "123 1, 2, 3 a,b";
    filter_first_last: "${{ arr | first }} ${{ arr | last }} ${{ s | first }}" => "1 3 H";
    filter_indent: "${{ 'a\\nb\\n\\nc' | indent }}|${{ 'a\\nb' | indent(2, true) }}" => "a\n    b\n    \n    c|  a\n  b";
    filter_safe: "${{ s | safe }}" => "Hello World";
    filter_string: "${{ n | string }} ${{ arr | string }}" => "3 1,2,3";
    filter_int: "${{ num | int }} ${{ fl | int }} [${{ 'x' | int }}] ${{ 'x' | int(5) }} ${{ f | int }}" => "42 3 [] 5 1";
    filter_float: "${{ fl | float }} [${{ 'x' | float }}] ${{ '1e3' | float }}" => "3.14 [] 1000";
    filter_urlencode: "${{ 'a b&c/d' | urlencode }} ${{ o | urlencode }}" => "a%20b%26c%2Fd a=1&b=x";
    filter_truncate: "${{ 'hello world foo bar' | truncate(9) }} ${{ 'hello world foo bar' | truncate(9, true) }} ${{ 'hello world foo bar' | truncate(9, false, '!') }}" => "hello... hello wor... hello!";
    filter_sort: "${{ strs | sort }} ${{ strs | sort(true) }} ${{ strs | sort(false, true) }}" => "A,b,c c,b,A A,b,c";
    filter_sort_attribute: "${{ objs | sort(false, false, 'v') | dump }}" => r#"[{"n":"b","v":1},{"n":"a","v":2}]"#;
    filter_reverse: "${{ arr | reverse }} ${{ s | reverse }}" => "3,2,1 dlroW olleH";
    filter_list: "${{ 'ab' | list | dump }} ${{ o | list | dump }}" => r#"["a","b"] [{"key":"a","value":1},{"key":"b","value":"x"}]"#;
    filter_batch: "${{ arr | batch(2) | dump }} ${{ arr | batch(2, 0) | dump }} ${{ arr | batch(2, 'x') | dump }}" => r#"[[1,2],[3]] [[1,2],[3]] [[1,2],[3,"x"]]"#;
    filter_wordcount: "${{ 'a b  c' | wordcount }}" => "3";
    filter_striptags: "${{ '<p>Hi <b>there</b></p>' | striptags }}" => "Hi there";
    filter_round: "${{ 2.456 | round(2) }} ${{ 2.5 | round }} ${{ 2.4 | round(0, 'ceil') }}" => "2.46 3 3";
    filter_abs: "${{ -3 | abs }}" => "3";
    filter_default: "${{ nope | default('d') }} [${{ nul | default('d') }}] [${{ '' | default('d') }}] ${{ '' | default('d', true) }}" => "d [] [] d";
    filter_default_boolean_keeps_empty_array: "${{ e | default('d', true) | dump }} ${{ z | d('zero', true) }}" => "[] zero";
    filter_dump: "${{ o | dump }} ${{ s | dump }} ${{ f | dump }} ${{ tf | dump }} ${{ nul | dump }} [${{ nope | dump }}]" => r#"{"a":1,"b":"x"} "Hello World" 1.5 2 null []"#;
    filter_dump_indent: "${{ o | dump(2) }}" => "{\n  \"a\": 1,\n  \"b\": \"x\"\n}";
    filter_dump_undefined_members: "${{ [nope, 1] | dump }} ${{ {a: nope, b: 1} | dump }}" => r#"[null,1] {"b":1}"#;
    filter_replace: "${{ s | replace('o', '0') }} ${{ s | replace('o', '0', 1) }} ${{ 'abc' | replace('', '.') }}" => "Hell0 W0rld Hell0 World .a.b.c.";
    filter_dictsort: "${{ {b: 1, a: 2} | dictsort | dump }}" => r#"[["a",2],["b",1]]"#;
    filter_groupby: "${{ objs | groupby('n') | dump }}" => r#"{"a":[{"n":"a","v":2}],"b":[{"n":"b","v":1}]}"#;
    filter_sum: "${{ arr | sum }} ${{ objs | sum('v') }}" => "6 3";
    filter_select_reject: "${{ arr | select('odd') | dump }} ${{ arr | reject('odd') | dump }}" => "[1,3] [2]";
    filter_selectattr: "${{ [{a: 1}, {a: 0}] | selectattr('a') | dump }}" => r#"[{"a":1}]"#;
    filter_center: "[${{ 'x' | center(5) }}]" => "[  x  ]";
    filter_nl2br: "${{ 'a\\nb' | nl2br }}" => "a<br />\nb";
    filter_escape: "${{ '<&>' | escape }}" => "&lt;&amp;&gt;";
    filter_slice: "${{ arr | slice(2) | dump }}" => "[[1,2],[3]]";
}

#[test]
fn filter_string_of_undefined_fails() {
    assert!(is_err("${{ nope | string }}"));
}

#[test]
fn unknown_filter_is_an_error() {
    assert!(matches!(
        Renderer::new().render_str("${{ 1 | jsonify }}", &json!({})),
        Err(TemplateError::Render(_))
    ));
}

// Tests and globals.
cases! {
    tests_defined: "${{ n is defined }} ${{ nope is defined }} ${{ nope is undefined }}" => "true false true";
    tests_numbers: "${{ n is odd }} ${{ n is divisibleby(3) }} ${{ n is number }}" => "true true true";
    tests_types: "${{ nul is null }} ${{ s is string }} ${{ s is not string }} ${{ o is mapping }}" => "true true false true";
    global_range: "${{ range(3) }} ${{ range(1, 5, 2) }}" => "0,1,2 1,3";
}

// Tags, whitespace and raw blocks.
cases! {
    for_loop_variables: "{% for x in arr %}${{ loop.index }}${{ loop.first }}${{ loop.revindex }};{% endfor %}" => "1true3;2false2;3false1;";
    for_over_object_pairs: "{% for k, v in o %}${{ k }}=${{ v }};{% endfor %}" => "a=1;b=x;";
    set_tag: "{% set y = n * 2 %}${{ y }}" => "6";
    set_multiple_targets_assigns_whole_value: "{% set a, b = [1, 2] %}${{ a }}|${{ b }}" => "1,2|1,2";
    elseif_alias: "{% if z %}a{% elseif n %}b{% endif %}" => "b";
    raw_block_untouched: "{% raw %}${{ a + b }}{% endraw %}" => "${{ a + b }}";
    verbatim_block: "{% verbatim %}${{ a }}{% endverbatim %}" => "${{ a }}";
    comment_removed: "a{# ${{ x }} #}b" => "ab";
    keeps_trailing_newline: "x\n\n" => "x\n\n";
    whitespace_control: "a ${{- ' b ' -}} c" => "a b c";
    literal_dollar_braces: "${{\"${{\"}}" => "${{";
    curly_braces_are_text: "{{ x }}" => "{{ x }}";
}

#[test]
fn trim_and_lstrip_blocks_follow_nunjucks() {
    let r = Renderer::with_options(RenderOptions {
        trim_blocks: true,
        lstrip_blocks: true,
        ..RenderOptions::default()
    });
    let c = json!({"t": true, "arr": [1, 2]});
    let out = |t: &str| r.render_str(t, &c).unwrap_or_else(|e| e.to_string());
    assert_eq!(out("  {% if t %}\n  yes\n  {% endif %}\n"), "  yes\n");
    assert_eq!(out("{% for x in arr %}\n- ${{ x }}\n{% endfor %}\n"), "- 1\n- 2\n");
    // nunjucks applies neither option to comments nor to `{% endraw %}`.
    assert_eq!(out("  {# c #}\nx\n"), "  \nx\n");
    assert_eq!(out("{% raw %}\n  {{ x }}\n{% endraw %}\n"), "  {{ x }}\n\n");
}

#[test]
fn cookiecutter_compat_uses_double_braces_and_jsonify() {
    let r = Renderer::with_options(RenderOptions {
        cookiecutter_compat: true,
        ..RenderOptions::default()
    });
    let c = json!({"cookiecutter": {"name": "demo", "o": {"a": 1}}});
    assert_eq!(
        r.render_str("{{ cookiecutter.name }} {{ cookiecutter.o | jsonify }} ${{ x }}", &c),
        Ok(r#"demo {"a":1} $"#.to_string())
    );
    assert_eq!(r.render_str("{{ True }}", &c), Ok("true".to_string()));
    assert!(r.render_str("{{ 'x' | parseRepoUrl }}", &c).is_err());
}

// Backstage filters.
cases! {
    filter_parse_repo_url: "${{ url | parseRepoUrl | dump }}" => r#"{"host":"github.com","owner":"acme","repo":"demo"}"#;
    filter_parse_repo_url_member: "${{ (url | parseRepoUrl).repo }}" => "demo";
    project_slug: "${{ url | projectSlug }}" => "acme/demo";
    parse_entity_ref: "${{ ref | parseEntityRef | dump }}" => r#"{"kind":"group","namespace":"default","name":"team-a"}"#;
    parse_entity_ref_with_context: "${{ 'techdocs' | parseEntityRef({ defaultKind:\"group\", defaultNamespace:\"another-namespace\" }) | dump }}" => r#"{"kind":"group","namespace":"another-namespace","name":"techdocs"}"#;
    parse_entity_ref_keeps_kind_case: "${{ 'Component:x' | parseEntityRef | pick('kind') }}" => "Component";
    pick_property: "${{ ref | parseEntityRef | pick('name') }}" => "team-a";
    pick_path: "${{ {a: {b: [5, 6]}} | pick('a.b[1]') }}" => "6";
}

#[test]
fn parse_repo_url_errors() {
    assert!(is_err("${{ 'github.com?owner=o' | parseRepoUrl }}"));
    assert!(is_err("${{ 'github.com?repo=r' | parseRepoUrl }}"));
    assert!(is_err("${{ 'unknown.example.com?owner=o&repo=r' | parseRepoUrl }}"));
    assert!(is_err("${{ 'techdocs' | parseEntityRef }}"));
    let spec = parse_repo_url("gitlab.com?project=42", &Integrations::default());
    assert_eq!(spec.map(|s| s.project), Ok(Some("42".to_string())));
    let gitea = Integrations::default().with("cnoe.localtest.me:8443", "gitea");
    let spec = parse_repo_url("cnoe.localtest.me:8443?repo=r", &gitea);
    assert_eq!(spec.map(|s| s.host), Ok("cnoe.localtest.me:8443".to_string()));
}

#[test]
fn custom_filters_and_globals() {
    let r = Renderer::builder()
        .documented_filter("shout", json!({"description": "upper"}), |v, args| {
            let suffix = args.first().and_then(|a| a.as_str()).unwrap_or("");
            Ok(v.as_str().map(|s| json!(format!("{}{suffix}", s.to_uppercase()))))
        })
        .filter("fail", |_, _| Err("nope".into()))
        .global_value("site", json!({"name": "acme"}))
        .global_function("twice", |args| Ok(args.first().map(|a| json!([a, a]))))
        .build();
    let c = json!({"x": "hi"});
    assert_eq!(
        r.render_str("${{ x | shout('!') }} ${{ site.name }} ${{ twice(1) }}", &c),
        Ok("HI! acme 1,1".to_string())
    );
    assert!(r.render_str("${{ x | fail }}", &c).is_err());
    assert!(r.templating_extensions()["filters"]["shout"].is_object());
}

// Step values (`render_value`).
#[test]
fn render_value_keeps_types() {
    let ctx = json!({"parameters": {"n": 3, "list": ["a"], "o": {"k": true}, "s": "x", "f": 1.0}});
    let r = Renderer::new();
    let input = json!({
        "num": "${{ parameters.n }}",
        "float": "${{ parameters.f }}",
        "list": "${{ parameters.list }}",
        "obj": "${{ parameters.o }}",
        "bool": "${{ parameters.n === 3 }}",
        "text": "n=${{ parameters.n }}",
        "mixed": "${{ parameters.o }} x",
        "gone": "${{ parameters.missing }}",
        "empty_if": "${{ 'x' if parameters.missing }}",
        "arr": ["${{ parameters.missing }}", "${{ parameters.s }}"],
        "bad": "${{ parameters.s | nope }}",
        "lit": 5,
        "nested": {"deep": "${{ parameters.s }}"}
    });
    assert_eq!(
        r.render_value(&input, &ctx),
        Some(json!({
            "num": 3,
            "float": 1,
            "list": ["a"],
            "obj": {"k": true},
            "bool": true,
            "text": "n=3",
            "mixed": "[object Object] x",
            // `("" | dump)` is `""`, which parses back to an empty string.
            "empty_if": "",
            "arr": [null, "x"],
            "bad": "${{ parameters.s | nope }}",
            "lit": 5,
            "nested": {"deep": "x"}
        }))
    );
    assert_eq!(r.render_value(&json!("${{ parameters.missing }}"), &ctx), None);
    assert_eq!(
        r.render_value(&json!("{% if true %}5{% endif %}"), &ctx),
        Some(json!(5))
    );
    assert_eq!(
        r.render_value(&json!("${{ parameters.s }}\n"), &ctx),
        Some(json!("x\n"))
    );
}

// Limits.
#[test]
fn fuel_limit_stops_runaway_loops() {
    let r = Renderer::builder().fuel(100_000).build();
    let out = r.render_str(
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        &json!({}),
    );
    assert_eq!(out, Err(TemplateError::FuelExhausted(100_000)));
    assert!(Renderer::new()
        .render_str("{% for i in range(1000000000) %}x{% endfor %}", &json!({}))
        .is_err());
}

#[test]
fn output_limit_stops_huge_output() {
    let r = Renderer::builder().output_limit(1000).build();
    let out = r.render_str("{% for i in range(100) %}0123456789abcdef{% endfor %}", &json!({}));
    assert_eq!(out, Err(TemplateError::OutputTooLarge(1000)));
}

#[test]
fn syntax_errors_are_reported() {
    let err = Renderer::new().render_str("${{ invalid...syntax }}", &json!({}));
    assert!(matches!(err, Err(TemplateError::Syntax(_))), "{err:?}");
}

#[test]
fn renderer_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Renderer>();
}

#[test]
fn extensions_match_backstage_listing() {
    let ext = templating_extensions();
    // Backstage's four come first, then the nunjucks built-ins.
    let filters = ext["filters"]
        .as_object()
        .map(|m| m.keys().take(4).cloned().collect::<Vec<_>>());
    assert_eq!(
        filters,
        Some(vec![
            "parseRepoUrl".to_string(),
            "parseEntityRef".to_string(),
            "pick".to_string(),
            "projectSlug".to_string()
        ])
    );
    assert_eq!(ext["globals"], json!({"functions": {}, "values": {}}));
    assert_eq!(
        ext["filters"]["pick"]["description"],
        "Selects a specific property (e.g. kind, namespace, name) from an object."
    );
}

/// Filters applied to `| safe` values (and, for contrast, to plain ones),
/// against Backstage 4.3's answers captured in
/// `tests/data/api-golden-extra/dry-run-safe-filters.json` (one dry-run per
/// case, the file rendered by `fetch:template`).
#[test]
fn filters_on_safe_values_match_backstage() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/api-golden-extra/dry-run-safe-filters.json");
    let capture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("capture")).expect("capture JSON");
    let cases = [
        ("missing-safe", "values.missing | safe"),
        ("lines-safe", "values.lines | safe"),
        ("missing", "values.missing"),
        ("empty-safe", "values.empty | safe"),
    ];
    let context = json!({"values": {"lines": "one\ntwo", "empty": ""}});
    let results = capture["results"].as_object().expect("results");
    let mut differing = Vec::new();
    for (key, expected) in results {
        let (case, filter) = key.split_once(" | ").expect("case | filter");
        let (_, expression) = cases.iter().find(|(c, _)| *c == case).expect("known case");
        let template = format!("[${{{{ {expression} | {filter} }}}}]");
        let ours = Renderer::new().render_str(&template, &context);
        let matches = match (expected["status"].as_u64(), &ours) {
            (Some(200), Ok(text)) => expected["text"].as_str() == Some(text.as_str()),
            (Some(200), Err(_)) => false,
            (_, result) => result.is_err(),
        };
        if !matches {
            differing.push(format!("{key}: ours {ours:?}, Backstage {expected}"));
        }
    }
    assert!(differing.is_empty(), "{}", differing.join("\n"));
}

/// `| safe` turns any value into its text, as Backstage 4.3 renders it in a
/// step input or `output` (`tests/data/api-golden-extra/dry-run-safe-values.json`).
#[test]
fn safe_values_are_strings_in_rendered_values() {
    let context = json!({"parameters": {"obj": {"a": 1}, "n": 5, "list": ["x", "y"]}});
    let renderer = Renderer::new();
    for (template, expected) in [
        ("${{ parameters.obj | safe }}", json!("[object Object]")),
        ("${{ parameters.n | safe }}", json!("5")),
        ("${{ parameters.list | safe }}", json!("x,y")),
        ("${{ parameters.missing | safe }}", json!("")),
        ("${{ parameters.missing | safe | indent(2, true) }}", json!("  ")),
    ] {
        assert_eq!(
            renderer.render_value(&json!(template), &context),
            Some(expected),
            "{template}"
        );
    }
}
