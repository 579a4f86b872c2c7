//! An action that panics fails its step with a clear message, the task goes
//! on like after any failure (an `always()` step still runs) and ends
//! `failed`: it is never left `processing` behind a heartbeat that outlived
//! its run. The real worker and runner on a real database, with one extra
//! action that only this test registers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use scaffolder::actions::{builtin_actions, Action, ActionContext, ActionError, ActionExample, ActionRegistry};
use scaffolder::config::Settings;
use scaffolder::engine::{Runner, Worker};
use scaffolder::model::{TaskId, TaskStatus};
use scaffolder::store::{Store, EVENTS_CHANNEL};
use scaffolder::templating::Renderer;

use crate::engine::support::fresh_db;

struct Panics;

#[async_trait]
impl Action for Panics {
    fn id(&self) -> &'static str {
        "test:panic"
    }
    fn description(&self) -> &'static str {
        "Panics (test only)"
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object"})
    }
    fn output_schema(&self) -> Option<Value> {
        None
    }
    fn examples(&self) -> Vec<ActionExample> {
        Vec::new()
    }
    fn supports_dry_run(&self) -> bool {
        false
    }
    async fn run(&self, _ctx: &mut ActionContext, _input: Value) -> Result<(), ActionError> {
        let items: Vec<u8> = Vec::new();
        // An out-of-bounds index, as a buggy action would do.
        let _ = items[items.len()];
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_action_fails_its_step_and_the_task_goes_on() {
    let mut settings = Settings::default();
    settings.database.url = fresh_db().into();
    let store = Store::connect(&settings.database).await.expect("database");
    store.migrate().await.expect("migrations");

    let mut actions = builtin_actions();
    actions.push(Arc::new(Panics));
    let runner = Runner::new(ActionRegistry::new(actions), Arc::new(Renderer::builder().build()));
    settings.worker.heartbeat_seconds = 1;
    settings.worker.lease_seconds = 2;
    let worker = Worker::new(store.clone(), runner, settings.worker.clone());

    let id = TaskId(uuid::Uuid::new_v4());
    let spec = json!({
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "steps": [
            {"id": "boom", "name": "Boom", "action": "test:panic", "input": {}},
            {"id": "after", "name": "Clean up", "action": "debug:log", "if": "${{ always() }}", "input": {"message": "cleaned"}},
        ],
        "output": {},
        "parameters": {},
        "templateInfo": {"entityRef": "template:default/panics"},
    });
    let mut listener = store.listener(&[EVENTS_CHANNEL]).await.expect("listen");
    store.create_task(id, &spec, None, None, None).await.expect("task");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));

    // Follow the task's notifications until it ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let task = loop {
        let task = store.get_task(id).await.expect("read").expect("task");
        if task.status.is_finished() {
            break task;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the task never ended: {:?}",
            task.status
        );
        let _ = tokio::time::timeout_at(deadline, listener.recv()).await;
    };
    shutdown.cancel();
    let _ = running.await;

    assert_eq!(task.status, TaskStatus::Failed);
    let events = store.list_events(id, None).await.expect("events");
    let bodies: Vec<&Value> = events.iter().map(|e| &e.body).collect();
    let failed = bodies
        .iter()
        .find(|b| b["stepId"] == "boom" && b["status"] == "failed")
        .expect("the step failed");
    let message = failed["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("test:panic stopped unexpectedly") && message.contains("index out of bounds"),
        "{message}"
    );
    assert!(
        bodies
            .iter()
            .any(|b| b["stepId"] == "after" && b["status"] == "completed"),
        "the always() step did not run: {bodies:#?}"
    );
}
