//! The permission framework against a real Backstage backend: the packages
//! of `../shared/bench/backstage-ref` (installed by `.ci/run` under
//! `$HOME/.cache/scaffolder/`, found through `BACKSTAGE_REF_DIR`) started
//! with `tests/data/backstage-permission` (permission on, its own policy,
//! switched per user through a file), tokens from its guest provider, and
//! its discovery pointing `scaffolder` at the server under test, so
//! conditional decisions come back to `apply-conditions`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::auth::helpers::spawn_app_with;
use crate::common::data::{current_test, skip_or_fail, test_data_dir};

const GUEST: &str = "user:development/guest";

/// A copy of the benchmark backend with its `node_modules`.
fn backstage_ref_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("BACKSTAGE_REF_DIR").map(PathBuf::from);
    match dir {
        Some(dir) if dir.join("node_modules/@backstage/plugin-permission-backend").is_dir() => Some(dir),
        _ => {
            skip_or_fail(&format!(
                "{}needs BACKSTAGE_REF_DIR: a copy of ../shared/bench/backstage-ref with node_modules \
                 installed (.ci/run does it under $HOME/.cache/scaffolder/backstage-ref-<lock hash>)",
                current_test()
            ));
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Backstage {
    url: String,
    child: tokio::process::Child,
}

/// Starts the Backstage backend and waits for the line it prints once its
/// plugins are initialised.
async fn start_backstage(ref_dir: &Path, port: u16, policy: &Path, scaffolder: &str) -> Backstage {
    let discovery = json!([{ "target": format!("{scaffolder}/api/{{{{pluginId}}}}"), "plugins": ["scaffolder"] }]);
    let mut child = tokio::process::Command::new("node")
        .arg(test_data_dir().join("backstage-permission/index.js"))
        .env("BACKSTAGE_REF_DIR", ref_dir)
        .env("PORT", port.to_string())
        .env("POLICY_FILE", policy)
        .env("APP_CONFIG_discovery_endpoints", discovery.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let started = tokio::time::timeout(crate::common::PATIENCE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("backstage-permission: started") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(started, Ok(true), "the Backstage backend did not start");
    // Keep draining its log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Backstage {
        url: format!("http://127.0.0.1:{port}"),
        child,
    }
}

fn set_policy(file: &Path, mode: &str) {
    std::fs::write(file, json!({ GUEST: mode }).to_string()).expect("policy file");
}

#[tokio::test]
async fn each_policy_outcome_of_a_real_backstage_permission_backend_is_applied() {
    let Some(ref_dir) = backstage_ref_dir() else { return };
    let scratch = tempfile::tempdir().expect("scratch");
    let policy = scratch.path().join("policy.json");
    set_policy(&policy, "allow");
    let backstage_port = free_port();
    let backstage_url = format!("http://127.0.0.1:{backstage_port}");
    let base = backstage_url.clone();
    let db_url = format!(
        "{}/scaffolder_test_{}",
        crate::common::db::admin_url(),
        uuid::Uuid::new_v4().simple()
    );
    let app_db = db_url.clone();
    let app = spawn_app_with(move |s| {
        s.database.url = app_db.into();
        s.auth.backstage = Some(scaffolder::config::BackstageAuthSettings {
            base_url: base,
            jwks_url: None,
            issuer: None,
            audience: None,
            jwks_min_refresh_seconds: 30,
        });
        s.permission.enabled = true;
        // Policies switch between requests here.
        s.permission.cache_seconds = 0;
        s.templates
            .dirs
            .push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/templates"));
    })
    .await;
    let mut backstage = start_backstage(&ref_dir, backstage_port, &policy, &app.address).await;
    let (status, identity) = {
        let res = reqwest::Client::new()
            .post(format!("{}/api/auth/guest/refresh", backstage.url))
            .json(&json!({}))
            .send()
            .await
            .expect("guest refresh");
        (res.status(), res.json::<Value>().await.unwrap_or(Value::Null))
    };
    assert!(status.is_success(), "{identity}");
    let token = identity["backstageIdentity"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let token = Some(token.as_str());
    let schema_pages = |schema: &Value| {
        schema["steps"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter_map(|p| p["title"].as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let create = |values: Value| {
        let app = &app;
        async move {
            app.post(
                "/v2/tasks",
                token,
                &json!({"templateRef": "permissioned", "values": values}),
            )
            .await
        }
    };
    let message = |body: &Value| body["error"]["message"].as_str().unwrap_or_default().to_owned();
    let mut observed: Vec<String> = Vec::new();

    // allow: everything goes.
    let (_, schema) = app
        .get("/v2/templates/default/template/permissioned/parameter-schema", token)
        .await;
    assert_eq!(schema_pages(&schema), ["Basics", "Secret settings"], "{schema}");
    let (status, body) = create(json!({"seconds": 0, "budget": "10k"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let allowed_task = body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.wait_finished(&allowed_task, token).await["status"], "completed");
    let (status, body) = app
        .post(
            "/v2/dry-run",
            token,
            &json!({"template": serde_norway::from_str::<Value>(&std::fs::read_to_string(
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/templates/permissioned/template.yaml"),
            ).expect("template")).expect("YAML"), "values": {"seconds": 0}, "directoryContents": []}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    observed.push("allow: parameter-schema 2 pages, create 201 (completed), dry-run 200".into());

    // deny: nothing goes.
    set_policy(&policy, "deny");
    let (status, schema) = app
        .get("/v2/templates/default/template/permissioned/parameter-schema", token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(schema_pages(&schema).is_empty(), "{schema}");
    let (status, refused) = create(json!({"seconds": 0})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["name"], "NotAllowedError");
    assert!(message(&refused).contains("scaffolder.task.create"), "{refused}");
    let (status, body) = app.get(&format!("/v2/tasks/{allowed_task}"), token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(message(&body).contains("scaffolder.task.read"), "{body}");
    let template: Value = serde_norway::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/templates/permissioned/template.yaml"),
        )
        .expect("template"),
    )
    .expect("YAML");
    let dry_run = json!({"template": template, "values": {"seconds": 0}, "directoryContents": []});
    let (status, body) = app.post("/v2/dry-run", token, &dry_run).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(message(&body).contains("scaffolder.template.dry-run"), "{body}");
    observed.push(format!(
        "deny: parameter-schema 0 pages, create 403 ({}), read 403, dry-run 403",
        message(&refused)
    ));

    // no-create: the form shows, a task cannot start.
    set_policy(&policy, "no-create");
    let (_, schema) = app
        .get("/v2/templates/default/template/permissioned/parameter-schema", token)
        .await;
    assert_eq!(schema_pages(&schema).len(), 2, "{schema}");
    let (status, body) = create(json!({"seconds": 0})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    observed.push("no-create: parameter-schema 2 pages, create 403".into());

    // conditional: decided by this service's apply-conditions.
    set_policy(&policy, "conditional");
    let (_, schema) = app
        .get("/v2/templates/default/template/permissioned/parameter-schema", token)
        .await;
    assert_eq!(schema_pages(&schema), ["Basics"], "the secret page is hidden: {schema}");
    let (status, body) = create(json!({"seconds": 0})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let own = body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.wait_finished(&own, token).await["status"], "completed");
    let (status, body) = create(json!({"seconds": 0, "budget": "10k"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        message(&body).contains("scaffolder.template.parameter.read for budget"),
        "{body}"
    );
    let (status, wait_refused) = create(json!({"seconds": 5})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{wait_refused}");
    assert!(
        message(&wait_refused).contains("scaffolder.action.execute for debug:wait in step wait"),
        "{wait_refused}"
    );
    let (status, step_refused) = app
        .post(
            "/v2/tasks",
            token,
            &json!({"templateRef": "permissioned-step", "values": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{step_refused}");
    assert!(
        message(&step_refused).contains("scaffolder.template.step.read for step hidden"),
        "{step_refused}"
    );
    observed.push(format!(
        "conditional: parameter-schema 1 page, create 201 for seconds 0, 403 with the secret parameter, \
         403 ({}), 403 ({}), own task readable",
        message(&wait_refused),
        message(&step_refused)
    ));

    // Refusals are in the audit trail (read from the database: the guest
    // is no administrator).
    let store = sqlx::PgPool::connect(&db_url).await.expect("test database");
    let (denials,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM audit_events WHERE event_id = 'permission' AND actor = $1")
            .bind(GUEST)
            .fetch_one(&store)
            .await
            .expect("audit");
    assert!(denials >= 5, "{denials} permission:deny events");

    // The permission backend gone: nothing runs, and the error says why.
    backstage.child.kill().await.expect("kill backstage");
    let _ = backstage.child.wait().await;
    let (status, body) = create(json!({"seconds": 0})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(message(&body).contains("cannot be reached"), "{body}");
    observed.push(format!("backend down: create 503 ({})", message(&body)));

    for line in &observed {
        eprintln!("permission policy outcome: {line}");
    }
    let _ = backstage_url;
}
