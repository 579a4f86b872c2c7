use reqwest::StatusCode;

use crate::auth::helpers::spawn_app_with;
use scaffolder::config::CorsSettings;

#[tokio::test]
async fn preflights_are_answered_and_answers_carry_cors_headers() {
    let app = spawn_app_with(|s| {
        s.server.cors = Some(CorsSettings {
            origins: vec!["http://localhost:3000".into()],
            ..CorsSettings::default()
        });
    })
    .await;
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, app.api("/v2/tasks"))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .expect("preflight");
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:3000");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap_or_default()
        .contains("POST"));
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap_or_default()
        .to_ascii_lowercase()
        .contains("authorization"));

    let res = app
        .client
        .get(app.api("/v2/actions"))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["access-control-allow-origin"], "http://localhost:3000");

    // Errors and event streams carry them too.
    let res = app
        .client
        .get(app.api(&format!("/v2/tasks/{}/eventstream", uuid::Uuid::new_v4())))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .expect("stream");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["access-control-allow-origin"], "http://localhost:3000");

    // Another origin gets no grant.
    let res = app
        .client
        .get(app.api("/v2/actions"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("get");
    assert!(res.headers().get("access-control-allow-origin").is_none());
}
