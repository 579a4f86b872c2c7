//! Behaviour tests of the renderer against nunjucks 3.2.4 / Backstage.

use super::*;
use serde_json::json;

fn r(t: &str, ctx: serde_json::Value) -> String {
    Renderer::new()
        .render_str(t, &ctx)
        .unwrap_or_else(|e| format!("ERR: {e}"))
}

#[test]
fn renders_variables() {
    assert_eq!(r("a ${{ x }} b", json!({"x": 1})), "a 1 b");
}

#[test]
fn render_value_keeps_types() {
    let ctx = json!({"parameters": {"n": 3, "list": ["a"], "o": {"k": true}, "s": "x"}});
    let r = Renderer::new();
    let input = json!({
        "num": "${{ parameters.n }}",
        "list": "${{ parameters.list }}",
        "obj": "${{ parameters.o }}",
        "text": "n=${{ parameters.n }}",
        "gone": "${{ parameters.missing }}",
        "arr": ["${{ parameters.missing }}", "${{ parameters.s }}"],
        "bad": "${{ parameters.s | nope }}",
        "lit": 5
    });
    assert_eq!(
        r.render_value(&input, &ctx),
        Some(json!({
            "num": 3,
            "list": ["a"],
            "obj": {"k": true},
            "text": "n=3",
            "arr": [null, "x"],
            "bad": "${{ parameters.s | nope }}",
            "lit": 5
        }))
    );
    assert_eq!(
        r.render_value(&json!("${{ parameters.missing }}"), &ctx),
        None
    );
}

#[test]
fn backstage_filters() {
    let ctx = json!({"u": "github.com?owner=acme&repo=demo", "e": "group:default/team-a"});
    assert_eq!(
        r("${{ u | parseRepoUrl | dump }}", ctx.clone()),
        r#"{"host":"github.com","owner":"acme","repo":"demo"}"#
    );
    assert_eq!(r("${{ u | projectSlug }}", ctx.clone()), "acme/demo");
    assert_eq!(
        r("${{ e | parseEntityRef | dump }}", ctx.clone()),
        r#"{"kind":"group","namespace":"default","name":"team-a"}"#
    );
    assert_eq!(
        r("${{ e | parseEntityRef | pick('name') }}", ctx.clone()),
        "team-a"
    );
    assert_eq!(
        r("${{ 'techdocs' | parseEntityRef({ defaultKind:\"group\", defaultNamespace:\"another-namespace\" }) | dump }}", ctx),
        r#"{"kind":"group","namespace":"another-namespace","name":"techdocs"}"#
    );
}
