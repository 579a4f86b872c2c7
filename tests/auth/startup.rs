use scaffolder::config::Settings;
use scaffolder::startup::Application;

use crate::auth::helpers::test_settings;

#[tokio::test]
async fn binding_a_public_address_without_auth_is_refused() {
    let mut settings = test_settings();
    settings.server.bind = "0.0.0.0:0".into();
    let err = match Application::build(settings.clone()).await {
        Ok(_) => panic!("started on 0.0.0.0 without auth"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("refusing to serve on 0.0.0.0:0"), "{err}");
    assert!(err.contains("auth.allow_anonymous"), "{err}");

    // The environment switch docker-compose uses lets it start.
    let env = vec![("SCAFFOLDER__AUTH__ALLOW_ANONYMOUS".to_owned(), "true".to_owned())];
    let loaded = Settings::load_from(None, &env).expect("config");
    assert_eq!(loaded.auth.allow_anonymous, Some(true));
    settings.auth.allow_anonymous = Some(true);
    let app = Application::build(settings).await.expect("starts with allow_anonymous");
    app.shutdown_token().cancel();
}
