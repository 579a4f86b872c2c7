//! `GET /metrics` against the real service: what tasks, steps, requests,
//! the queue and event watchers leave in the exposition.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::api::helpers::{spawn_app, spawn_app_with, TestApp, LIMIT};

/// One sample of the exposition: name and labels.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').expect("label pair");
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("numeric value"),
            }
        })
        .collect()
}

/// The value of the sample `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

impl TestApp {
    async fn scrape(&self) -> Vec<Sample> {
        let res = self
            .client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .expect("scrape");
        assert_eq!(res.status(), StatusCode::OK);
        let content_type = res.headers()["content-type"].to_str().unwrap_or_default().to_owned();
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
        let text = res.text().await.expect("body");
        assert!(text.contains("# TYPE scaffolder_queue_depth gauge"), "{text}");
        parse(&text)
    }

    /// Scrapes until `check` holds (metrics are recorded just after the
    /// database write a client can see), failing after `LIMIT`.
    async fn scrape_until(&self, what: &str, check: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let samples = self.scrape().await;
            if check(&samples) {
                return samples;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: never seen in {samples:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

const TEMPLATE: &str = "template:default/wait-and-fail";

#[tokio::test]
async fn tasks_steps_and_requests_are_counted_by_template_action_and_route() {
    let app = spawn_app().await;
    let ok = app.create_task(TEMPLATE, json!({"seconds": 0})).await;
    app.events_until_completion(&ok, LIMIT).await;
    let failed = app.create_task(TEMPLATE, json!({"seconds": 0, "fail": true})).await;
    app.events_until_completion(&failed, LIMIT).await;
    assert_eq!(app.task(&ok).await["status"], "completed");

    for path in ["/no/such/route", "/api/scaffolder/v2/no-such-route"] {
        let res = app.client.get(format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }

    let samples = app
        .scrape_until("both tasks finished", |s| {
            value(s, "scaffolder_tasks_finished_total", &[("result", "failed")]).is_some()
                && value(s, "scaffolder_tasks_finished_total", &[("result", "completed")]).is_some()
        })
        .await;
    let t = ("template", TEMPLATE);
    assert_eq!(value(&samples, "scaffolder_tasks_started_total", &[t]), Some(2.0));
    for result in ["completed", "failed"] {
        let labels = [t, ("result", result)];
        assert_eq!(value(&samples, "scaffolder_tasks_finished_total", &labels), Some(1.0));
        assert_eq!(
            value(&samples, "scaffolder_task_duration_seconds_count", &labels),
            Some(1.0)
        );
    }
    // hello and bye twice (bye is skipped after the failure: never begun),
    // wait twice; boom's action is not installed.
    let step = |action: &str, result: &str| {
        value(
            &samples,
            "scaffolder_steps_total",
            &[("action", action), ("result", result)],
        )
    };
    assert_eq!(step("debug:log", "completed"), Some(3.0));
    assert_eq!(step("debug:wait", "completed"), Some(2.0));
    assert_eq!(step("unregistered", "skipped"), Some(1.0));
    assert_eq!(step("unregistered", "failed"), Some(1.0));
    assert_eq!(step("does-not:exist", "failed"), None);
    assert_eq!(
        value(
            &samples,
            "scaffolder_step_duration_seconds_count",
            &[("action", "debug:wait"), ("result", "completed")]
        ),
        Some(2.0)
    );
    // Backstage's series: results `ok`/`failed`, steps labelled by name;
    // a step skipped by its `if` is timed, not counted.
    for result in ["ok", "failed"] {
        let labels = [t, ("result", result)];
        assert_eq!(value(&samples, "scaffolder_task_count", &labels), Some(1.0), "{result}");
        assert_eq!(
            value(&samples, "scaffolder_task_duration_count", &labels),
            Some(1.0),
            "{result}"
        );
    }
    let backstage_step = |name: &str, result: &str| {
        value(
            &samples,
            "scaffolder_step_count",
            &[t, ("step", name), ("result", result)],
        )
    };
    assert_eq!(backstage_step("Say hello", "ok"), Some(2.0));
    assert_eq!(backstage_step("Wait", "ok"), Some(2.0));
    assert_eq!(backstage_step("Fail when asked", "failed"), Some(1.0));
    assert_eq!(backstage_step("Fail when asked", "skipped"), None);
    assert_eq!(
        value(
            &samples,
            "scaffolder_step_duration_count",
            &[t, ("step", "Fail when asked"), ("result", "skipped")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&samples, "scaffolder_tasks_running", &[]), Some(0.0));
    assert_eq!(value(&samples, "scaffolder_lease_takeovers_total", &[]), Some(0.0));
    assert_eq!(value(&samples, "scaffolder_queue_depth", &[]), Some(0.0));

    // Requests are labelled by route pattern, never by the raw path.
    let created = [
        ("method", "POST"),
        ("route", "/api/scaffolder/v2/tasks"),
        ("status", "201"),
    ];
    assert_eq!(value(&samples, "scaffolder_http_requests_total", &created), Some(2.0));
    assert_eq!(
        value(&samples, "scaffolder_http_request_duration_seconds_count", &created),
        Some(2.0)
    );
    let got = [
        ("method", "GET"),
        ("route", "/api/scaffolder/v2/tasks/{taskId}"),
        ("status", "200"),
    ];
    assert!(value(&samples, "scaffolder_http_requests_total", &got).is_some_and(|n| n >= 1.0));
    let unmatched = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    assert_eq!(value(&samples, "scaffolder_http_requests_total", &unmatched), Some(2.0));
    assert!(
        !samples
            .iter()
            .any(|s| s.labels.get("route").is_some_and(|r| r.contains(&ok))),
        "a raw path leaked into a label"
    );
}

#[tokio::test]
async fn queue_depth_and_oldest_age_come_from_the_database() {
    let app = spawn_app_with(|s| s.worker.enabled = false).await;
    let samples = app.scrape().await;
    assert_eq!(value(&samples, "scaffolder_queue_depth", &[]), Some(0.0));
    assert_eq!(value(&samples, "scaffolder_queue_oldest_age_seconds", &[]), Some(0.0));

    let first = app.create_task(TEMPLATE, json!({"seconds": 0})).await;
    let second = app.create_task(TEMPLATE, json!({"seconds": 0})).await;
    let pool = sqlx::PgPool::connect(&app.db_url).await.unwrap();
    sqlx::query("UPDATE tasks SET created_at = now() - interval '300 seconds' WHERE id = $1::uuid")
        .bind(&first)
        .execute(&pool)
        .await
        .unwrap();

    let samples = app.scrape().await;
    assert_eq!(value(&samples, "scaffolder_queue_depth", &[]), Some(2.0));
    let age = value(&samples, "scaffolder_queue_oldest_age_seconds", &[]).unwrap();
    assert!((300.0..400.0).contains(&age), "oldest open task age {age}");
    assert_eq!(value(&samples, "scaffolder_tasks_running", &[]), Some(0.0));

    // Cancelling an open task takes it out of the queue; the age is the other one's.
    let (status, body) = app.post_json(&format!("/v2/tasks/{first}/cancel"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let samples = app.scrape().await;
    assert_eq!(value(&samples, "scaffolder_queue_depth", &[]), Some(1.0));
    let age = value(&samples, "scaffolder_queue_oldest_age_seconds", &[]).unwrap();
    assert!((0.0..60.0).contains(&age), "oldest open task age {age}");
    assert_eq!(app.task(&second).await["status"], "open");
}

#[tokio::test]
async fn event_watchers_are_counted_while_they_wait() {
    let app = spawn_app_with(|s| {
        s.worker.enabled = false;
        s.server.sse_keepalive_seconds = 1;
        s.server.long_poll_seconds = 3;
    })
    .await;
    let id = app.create_task(TEMPLATE, json!({"seconds": 0})).await;
    let samples = app.scrape().await;
    assert_eq!(value(&samples, "scaffolder_sse_clients", &[]), Some(0.0));
    assert_eq!(value(&samples, "scaffolder_long_poll_watchers", &[]), Some(0.0));

    let stream = app
        .client
        .get(app.api(&format!("/v2/tasks/{id}/eventstream")))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let samples = app.scrape().await;
    assert_eq!(value(&samples, "scaffolder_sse_clients", &[]), Some(1.0));

    // The task stays open (no worker), so the long poll waits its 3 s.
    let poll = {
        let (client, url) = (app.client.clone(), app.api(&format!("/v2/tasks/{id}/events")));
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
    };
    app.scrape_until("a waiting long poll", |s| {
        value(s, "scaffolder_long_poll_watchers", &[]) == Some(1.0)
    })
    .await;
    assert_eq!(poll.await.unwrap().unwrap(), StatusCode::OK);
    let samples = app.scrape().await;
    assert_eq!(value(&samples, "scaffolder_long_poll_watchers", &[]), Some(0.0));

    // The client goes away: the server notices at the next keep-alive.
    drop(stream);
    app.scrape_until("the stream closed", |s| {
        value(s, "scaffolder_sse_clients", &[]) == Some(0.0)
    })
    .await;
}

#[tokio::test]
async fn a_metrics_token_protects_the_endpoint() {
    let app = spawn_app_with(|s| s.telemetry.metrics_token = Some("scrape-token-1".into())).await;
    let url = format!("{}/metrics", app.address);
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app.client.get(&url).bearer_auth("scrape-token-2").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["name"], "AuthenticationError");
    let res = app.client.get(&url).bearer_auth("scrape-token-1").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("scaffolder_queue_depth"));
    // The API itself is unaffected by the metrics token.
    let (status, _) = app.get_json("/v2/actions").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_task_taken_over_from_an_expired_lease_is_counted() {
    // The task's first replica "died" while running it: its lease ran out.
    let first = spawn_app_with(|s| s.worker.enabled = false).await;
    let id = first.create_task(TEMPLATE, json!({"seconds": 0})).await;
    let pool = sqlx::PgPool::connect(&first.db_url).await.unwrap();
    sqlx::query(
        "UPDATE tasks SET status = 'processing', lease_owner = 'gone', attempts = 1, \
         lease_expires_at = now() - interval '1 minute' WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(&pool)
    .await
    .unwrap();

    let db_url = first.db_url.clone();
    let second = spawn_app_with(move |s| s.database.url = db_url.into()).await;
    second.events_until_completion(&id, LIMIT).await;
    let samples = second
        .scrape_until("the resumed task finished", |s| {
            value(s, "scaffolder_tasks_finished_total", &[("result", "completed")]) == Some(1.0)
        })
        .await;
    assert_eq!(value(&samples, "scaffolder_lease_takeovers_total", &[]), Some(1.0));
    assert_eq!(
        value(&samples, "scaffolder_tasks_started_total", &[("template", TEMPLATE)]),
        Some(1.0)
    );
    let samples = first.scrape().await;
    assert_eq!(value(&samples, "scaffolder_lease_takeovers_total", &[]), Some(0.0));
}
