//! Governance: approval gates (`approval:wait`, approve/reject, restarts,
//! timeouts) and the audit trail (what is recorded, who may read it,
//! filters and paging).

mod approvals;
mod audit;
mod permission;

use std::path::PathBuf;

use reqwest::StatusCode;
use scaffolder::config::{BackstageAuthSettings, Settings};
use serde_json::Value;

use crate::auth::helpers::{spawn_app_with, FakeServer, TestApp};

pub const ADMIN: &str = "user:default/admin";

/// The scaffolder with Backstage tokens from `jwks`, `ADMIN` an
/// administrator, the test templates, one worker slot and a fast fallback
/// poll (gate timeouts are found by it); `more` adjusts the rest.
pub async fn spawn_governed(jwks: &FakeServer, more: impl FnOnce(&mut Settings)) -> TestApp {
    let jwks_url = jwks.url.clone();
    spawn_app_with(move |s| {
        s.auth.backstage = Some(BackstageAuthSettings {
            base_url: jwks_url,
            jwks_url: None,
            issuer: None,
            audience: None,
            jwks_min_refresh_seconds: 30,
        });
        s.auth.admins = vec![ADMIN.into()];
        s.templates
            .dirs
            .push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/templates"));
        s.worker.concurrency = 1;
        s.worker.poll_seconds = 1;
        more(s);
    })
    .await
}

/// The messages of a task's events.
pub fn messages(events: &Value) -> Vec<String> {
    events
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["body"]["message"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Long-polls the task's events (as `token`) until one message contains `needle`.
pub async fn wait_for_message(app: &TestApp, id: &str, token: &str, needle: &str) -> Vec<String> {
    wait_for_message_as(app, id, Some(token), needle).await
}

/// [`wait_for_message`] as any caller (`None`: anonymous).
pub async fn wait_for_message_as(app: &TestApp, id: &str, token: Option<&str>, needle: &str) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + crate::common::PATIENCE;
    let mut after: Option<i64> = None;
    let mut seen = Vec::new();
    loop {
        let path = match after {
            Some(a) => format!("/v2/tasks/{id}/events?after={a}"),
            None => format!("/v2/tasks/{id}/events"),
        };
        let (status, events) = app.get(&path, token).await;
        assert_eq!(status, StatusCode::OK, "{events}");
        if let Some(last) = events
            .as_array()
            .and_then(|a| a.iter().filter_map(|e| e["id"].as_i64()).max())
        {
            after = Some(last);
        }
        seen.extend(messages(&events));
        if seen.iter().any(|m| m.contains(needle)) {
            return seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no event containing {needle:?} in task {id}: {seen:?}"
        );
    }
}
