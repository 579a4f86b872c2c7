use reqwest::StatusCode;
use serde_json::json;

use crate::api::helpers::spawn_app;

#[tokio::test]
async fn unknown_routes_get_backstages_error_body() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/v2/does-not-exist").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["name"], "NotFoundError");
    assert_eq!(body["request"], json!({"method": "GET", "url": "/v2/does-not-exist"}));
    assert_eq!(body["response"], json!({"statusCode": 404}));
    // Wrong method on a known path is not a 500 either.
    let res = app.client.delete(app.api("/v2/tasks")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn autocomplete_with_an_unknown_provider_is_an_input_error() {
    let app = spawn_app().await;
    let (status, body) = app
        .post_json(
            "/v2/autocomplete/nope/repositories",
            &json!({"token": "t", "context": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["name"], "InputError");
    assert_eq!(body["error"]["message"], "Unsupported provider: nope");
    assert_eq!(body["request"]["url"], "/v2/autocomplete/nope/repositories");
}

/// Requests a careless or hostile client sends: none may produce a 500.
#[tokio::test]
async fn a_sweep_of_bad_requests_never_gets_a_500() {
    let app = spawn_app().await;
    let long = "a".repeat(5000);
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("POST", "/v2/tasks".into(), Some("")),
        ("POST", "/v2/tasks".into(), Some("{")),
        ("POST", "/v2/tasks".into(), Some("[]")),
        ("POST", "/v2/tasks".into(), Some("null")),
        ("POST", "/v2/tasks".into(), Some("42")),
        ("POST", "/v2/tasks".into(), Some(r#"{"templateRef":null,"values":{}}"#)),
        ("POST", "/v2/tasks".into(), Some(r#"{"templateRef":"","values":{}}"#)),
        (
            "POST",
            "/v2/tasks".into(),
            Some(r#"{"templateRef":"a:b:c/d","values":{}}"#),
        ),
        (
            "POST",
            "/v2/tasks".into(),
            Some(r#"{"templateRef":"wait-and-fail","values":[]}"#),
        ),
        (
            "POST",
            "/v2/tasks".into(),
            Some(r#"{"templateRef":"wait-and-fail","values":{"seconds":"x"}}"#),
        ),
        (
            "POST",
            "/v2/tasks".into(),
            Some(r#"{"templateRef":"wait-and-fail","values":{"seconds":1e400}}"#),
        ),
        (
            "POST",
            "/v2/tasks".into(),
            Some(r#"{"templateRef":"wait-and-fail","values":{},"secrets":[]}"#),
        ),
        ("POST", "/v2/tasks".into(), Some("\u{0}\u{1}")),
        (
            "POST",
            "/v2/tasks".into(),
            Some(r#"{"templateRef":"wait-and-fail","values":{"seconds":-1}}"#),
        ),
        ("GET", "/v2/tasks?limit=99999999999999999999".into(), None),
        ("GET", "/v2/tasks?offset=-5".into(), None),
        ("GET", "/v2/tasks?order=".into(), None),
        ("GET", "/v2/tasks?createdBy=%FF".into(), None),
        ("GET", format!("/v2/tasks/{long}"), None),
        ("GET", "/v2/tasks/%00".into(), None),
        ("GET", "/v2/tasks/../../etc/passwd".into(), None),
        (
            "GET",
            "/v2/tasks/00000000-0000-0000-0000-000000000000/events?after=-1".into(),
            None,
        ),
        (
            "GET",
            "/v2/tasks/00000000-0000-0000-0000-000000000000/events?after=1e9".into(),
            None,
        ),
        ("GET", "/v2/tasks/x/eventstream?after=zz".into(), None),
        ("POST", "/v2/tasks/x/cancel".into(), Some("garbage")),
        (
            "POST",
            "/v2/tasks/00000000-0000-0000-0000-000000000000/retry".into(),
            Some("garbage"),
        ),
        (
            "POST",
            "/v2/tasks/00000000-0000-0000-0000-000000000000/retry".into(),
            Some("[1]"),
        ),
        ("GET", "/v2/templates/a/b/c/parameter-schema".into(), None),
        ("GET", "/v2/templates/%2F/template/x/parameter-schema".into(), None),
        ("GET", "/v2/templates/default/template//parameter-schema".into(), None),
        ("POST", "/v2/autocomplete/x/y".into(), Some("not json")),
        ("POST", "/v2/actions".into(), Some("{}")),
        (
            "PUT",
            "/v2/tasks/00000000-0000-0000-0000-000000000000".into(),
            Some("{}"),
        ),
        ("GET", "/v2/templating-extensions/extra".into(), None),
    ];
    assert!(cases.len() >= 30);
    for (method, path, body) in cases {
        let mut req = app
            .client
            .request(method.parse().unwrap(), app.api(&path))
            .header("content-type", "application/json");
        if let Some(body) = body {
            req = req.body(body.to_owned());
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert!(
            status.is_client_error() || status.is_success(),
            "{method} {path}: {status} {text}"
        );
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{method} {path}: {text}");
        if status.is_client_error() {
            let body: serde_json::Value =
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: {text}"));
            assert!(
                body.get("error").is_some() || body.get("errors").is_some(),
                "{method} {path}: {text}"
            );
        }
    }
}
