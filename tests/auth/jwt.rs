use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::auth::helpers::{b64url, jwks_server, spawn_app_with, TestApp, TestKey, JWKS_PATH};
use scaffolder::config::BackstageAuthSettings;

async fn app_trusting(jwks: &str, min_refresh: u64) -> TestApp {
    let base = jwks.to_owned();
    spawn_app_with(move |s| {
        s.auth.backstage = Some(BackstageAuthSettings {
            base_url: base,
            jwks_url: None,
            issuer: None,
            audience: Some("backstage".into()),
            jwks_min_refresh_seconds: min_refresh,
        });
    })
    .await
}

fn assert_401(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["name"], "AuthenticationError", "{body}");
    assert_eq!(body["response"]["statusCode"], 401, "{body}");
    assert_eq!(body["request"]["method"], "GET", "{body}");
    assert_eq!(body["request"]["url"], "/v2/actions", "{body}");
}

#[tokio::test]
async fn valid_user_tokens_pass_and_forged_ones_are_rejected() {
    let key = TestKey::new("k1");
    let jwks = jwks_server(&[&key]);
    let app = app_trusting(&jwks.url, 3600).await;

    let (status, body) = app.get("/v2/actions", Some(&key.token("user:default/jane", 600))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // No credentials, garbage, expired, signed by another key under the same kid.
    let (status, body) = app.get("/v2/actions", None).await;
    assert_401(status, &body);
    assert_eq!(body["error"]["message"], "Missing credentials");
    let (status, body) = app.get("/v2/actions", Some("not-a-token")).await;
    assert_401(status, &body);
    assert_eq!(
        body["error"]["message"],
        "Could not resolve credentials; caused by AuthenticationError: Illegal token"
    );
    assert_eq!(body["error"]["cause"]["name"], "AuthenticationError");
    let (status, body) = app
        .get("/v2/actions", Some(&key.token("user:default/jane", -3600)))
        .await;
    assert_401(status, &body);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{body}"
    );
    let impostor = TestKey::new("k1");
    let (status, body) = app
        .get("/v2/actions", Some(&impostor.token("user:default/jane", 600)))
        .await;
    assert_401(status, &body);

    // alg: none, and HS256 signed with the public key (key confusion).
    let payload = b64url(
        json!({"sub": "user:default/jane", "exp": chrono::Utc::now().timestamp() + 600})
            .to_string()
            .as_bytes(),
    );
    let none = format!("{}.{payload}.", b64url(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#));
    let (status, body) = app.get("/v2/actions", Some(&none)).await;
    assert_401(status, &body);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k1".into());
    let public = key.jwk().to_string();
    let hs = jsonwebtoken::encode(
        &header,
        &json!({"sub": "user:default/jane", "exp": chrono::Utc::now().timestamp() + 600}),
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
    )
    .expect("hs256");
    let (status, body) = app.get("/v2/actions", Some(&hs)).await;
    assert_401(status, &body);

    // The JWKS was fetched once: known keys are cached.
    assert_eq!(jwks.hits(JWKS_PATH), 1);

    // Health checks and the API description stay open.
    let res = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .expect("healthz");
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.client.get(app.api("/openapi.json")).send().await.expect("openapi");
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_key_ids_refresh_the_jwks_at_a_limited_rate() {
    let k1 = TestKey::new("k1");
    let k2 = TestKey::new("k2");

    // Refreshes allowed: a rotated key is picked up.
    let jwks = jwks_server(&[&k1]);
    let app = app_trusting(&jwks.url, 0).await;
    let (status, _) = app.get("/v2/actions", Some(&k1.token("user:default/jane", 600))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/v2/actions", Some(&k2.token("user:default/jane", 600))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "k2 is not published yet");
    jwks.set(JWKS_PATH, json!({"keys": [k1.jwk(), k2.jwk()]}));
    let (status, body) = app.get("/v2/actions", Some(&k2.token("user:default/jane", 600))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Rate limited: unknown key ids do not trigger downloads.
    let jwks = jwks_server(&[&k1]);
    let app = app_trusting(&jwks.url, 3600).await;
    let (status, _) = app.get("/v2/actions", Some(&k1.token("user:default/jane", 600))).await;
    assert_eq!(status, StatusCode::OK);
    for i in 0..5 {
        let (status, body) = app
            .get(
                "/v2/actions",
                Some(&k2.token_with_kid("user:default/jane", 600, &format!("forged-{i}"))),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("unknown key id"),
            "{body}"
        );
    }
    assert_eq!(jwks.hits(JWKS_PATH), 1);
}
