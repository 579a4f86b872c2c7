//! GitHub Actions OIDC ID tokens as callers, against a test issuer
//! (discovery document, JWKS, RS256 tokens) over real HTTP.

use scaffolder::auth::Authenticator;
use scaffolder::config::{GithubActionsAuthSettings, Settings};

use super::issuer::{available, Issuer, AUDIENCE};

fn authenticator(issuer: &Issuer) -> Authenticator {
    let mut settings = Settings::default();
    settings.server.bind = "127.0.0.1:0".into();
    settings.auth.github_actions = Some(GithubActionsAuthSettings {
        issuer: issuer.url().to_owned(),
        audience: AUDIENCE.into(),
        jwks_url: None,
        host: "github.com".into(),
        jwks_min_refresh_seconds: 30,
    });
    Authenticator::from_settings(&settings).expect("auth settings")
}

#[tokio::test]
async fn a_workflow_token_is_a_ci_caller_and_forged_ones_are_refused() {
    if !available() {
        return;
    }
    let issuer = Issuer::start();
    let auth = authenticator(&issuer);
    let token = issuer.token("acme/web", ".github/workflows/ci.yaml", "refs/heads/main", 42);
    let caller = auth
        .authenticate(Some(&format!("Bearer {token}")))
        .await
        .expect("accepted");
    let ci = caller.ci().expect("a CI caller");
    assert_eq!(caller.subject(), Some("repository:github.com/acme/web"));
    assert!(!caller.sees_all);
    assert_eq!(ci.repository, "acme/web");
    assert_eq!(ci.git_ref, "refs/heads/main");
    assert_eq!(ci.workflow_path(), ".github/workflows/ci.yaml");
    assert_eq!(ci.run_id, "42");
    assert_eq!(ci.sha, format!("{:040x}", 42));
    assert_eq!(
        ci.certificate_identity(),
        "https://github.com/acme/web/.github/workflows/ci.yaml@refs/heads/main"
    );
    // The discovery document was read, then the JWKS it names.
    assert_eq!(issuer.server.hits("/.well-known/openid-configuration"), 1);
    assert_eq!(issuer.server.hits("/.well-known/jwks"), 1);

    let mut wrong_audience = issuer.claims("acme/web", ".github/workflows/ci.yaml", "refs/heads/main", 43);
    wrong_audience["aud"] = "someone-else".into();
    let err = auth
        .authenticate(Some(&format!("Bearer {}", issuer.sign(&wrong_audience))))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("wrong audience"), "{err}");

    let mut expired = issuer.claims("acme/web", ".github/workflows/ci.yaml", "refs/heads/main", 44);
    expired["exp"] = (chrono::Utc::now().timestamp() - 600).into();
    let err = auth
        .authenticate(Some(&format!("Bearer {}", issuer.sign(&expired))))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");

    // Signed by another key with the same key id.
    let other = Issuer::start();
    let mut forged = other.claims("acme/web", ".github/workflows/ci.yaml", "refs/heads/main", 45);
    forged["iss"] = issuer.url().into();
    let err = auth
        .authenticate(Some(&format!("Bearer {}", other.sign(&forged))))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid signature"), "{err}");

    let mut no_run = issuer.claims("acme/web", ".github/workflows/ci.yaml", "refs/heads/main", 46);
    no_run.as_object_mut().expect("object").remove("run_id");
    let err = auth
        .authenticate(Some(&format!("Bearer {}", issuer.sign(&no_run))))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("run_id"), "{err}");
}
