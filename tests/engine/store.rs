//! The store's task lifecycle on a fresh database each: concurrent claimers,
//! lease expiry and takeover, fenced and atomic writes, retry and purge.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use scaffolder::config::Settings;
use scaffolder::model::{EventType, NewEvent, StepStatus, TaskId, TaskStatus};
use scaffolder::store::{RetryOutcome, Store, WorkspaceRecord};

use crate::engine::support::fresh_db;

async fn store() -> Store {
    let mut settings = Settings::default();
    settings.database.url = fresh_db().into();
    let store = Store::connect(&settings.database).await.expect("database");
    store.migrate().await.expect("migrations");
    store
}

fn spec() -> Value {
    json!({"apiVersion": "scaffolder.backstage.io/v1beta3", "steps": [], "templateInfo": {"entityRef": "template:default/t"}})
}

async fn task(store: &Store) -> TaskId {
    store
        .create_task(TaskId::new(), &spec(), None, None, None)
        .await
        .expect("task")
}

const LEASE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_take_each_task_exactly_once() {
    let store = store().await;
    let mut ids = Vec::new();
    for _ in 0..60 {
        ids.push(task(&store).await);
    }
    let mut claimers = tokio::task::JoinSet::new();
    for n in 0..8 {
        let store = store.clone();
        claimers.spawn(async move {
            let owner = format!("claimer-{n}");
            let mut mine = Vec::new();
            while let Some(claimed) = store.claim_task(&owner, LEASE, true, 5).await.expect("claim") {
                assert_eq!(claimed.attempts, 1);
                assert!(!claimed.took_over);
                mine.push(claimed.task.id);
            }
            mine
        });
    }
    let mut seen: HashMap<TaskId, usize> = HashMap::new();
    while let Some(mine) = claimers.join_next().await {
        for id in mine.expect("claimer") {
            *seen.entry(id).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), ids.len());
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_old_owner_is_fenced_off() {
    let store = store().await;
    let id = task(&store).await;
    // A lease of zero has expired by the next statement.
    let first = store.claim_task("a", Duration::ZERO, true, 5).await.unwrap().unwrap();
    assert_eq!(first.task.id, id);
    let second = store.claim_task("b", LEASE, true, 5).await.unwrap().unwrap();
    assert_eq!(second.task.id, id);
    assert!(second.took_over);
    assert_eq!(second.attempts, 2);
    let events = store.list_events(id, None).await.unwrap();
    let recovered: Vec<_> = events.iter().filter(|e| e.event_type == EventType::Recovered).collect();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].body["recoverStrategy"], "resume");

    // Everything the old owner writes is refused.
    assert_eq!(store.heartbeat(id, "a", LEASE).await.unwrap(), None);
    let event = NewEvent::message("late");
    assert_eq!(
        store
            .append_events_as(id, "a", std::slice::from_ref(&event))
            .await
            .unwrap(),
        None
    );
    assert!(!store.record_step(id, "a", "s1", &json!({}), None).await.unwrap());
    assert!(!store
        .finish_task(
            id,
            "a",
            TaskStatus::Completed,
            &[NewEvent::completion(TaskStatus::Completed, None, None)]
        )
        .await
        .unwrap());
    assert_eq!(
        store.get_task(id).await.unwrap().unwrap().status,
        TaskStatus::Processing
    );
    assert_eq!(store.heartbeat(id, "b", LEASE).await.unwrap(), Some(false));
}

#[tokio::test]
async fn a_task_out_of_attempts_is_failed_not_taken_over() {
    let store = store().await;
    let id = task(&store).await;
    store.claim_task("a", Duration::ZERO, true, 1).await.unwrap().unwrap();
    assert!(store.claim_task("b", LEASE, true, 1).await.unwrap().is_none());
    let failed = store
        .fail_abandoned_tasks(true, 1, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(failed, vec![id]);
    assert_eq!(store.get_task(id).await.unwrap().unwrap().status, TaskStatus::Failed);
    let events = store.list_events(id, None).await.unwrap();
    let completion = events.last().unwrap();
    assert_eq!(completion.event_type, EventType::Completion);
    assert!(completion.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("after 1 attempts"));
}

#[tokio::test]
async fn finishing_writes_status_and_events_together_and_drops_the_saved_workspace() {
    let store = store().await;
    let id = task(&store).await;
    store.claim_task("a", LEASE, true, 5).await.unwrap().unwrap();
    let record = WorkspaceRecord {
        manifest: b"sealed manifest",
        bytes: 10,
        files: 1,
    };
    let blob = uuid::Uuid::new_v4();
    assert!(store
        .put_workspace_blobs(id, "a", &[(blob, b"sealed".to_vec())])
        .await
        .unwrap());
    assert!(store
        .record_step(id, "a", "fetch", &json!({"x": 1}), Some(record))
        .await
        .unwrap());
    assert!(store.workspace_manifest(id).await.unwrap().is_some());
    // A failed run keeps its saved workspace for a retry...
    let failed = NewEvent::step_status("fetch", StepStatus::Failed, "Error: x");
    assert!(store
        .append_events_as(id, "a", std::slice::from_ref(&failed))
        .await
        .unwrap()
        .is_some());
    assert!(store
        .finish_task(
            id,
            "a",
            TaskStatus::Failed,
            &[NewEvent::completion(TaskStatus::Failed, None, None)]
        )
        .await
        .unwrap());
    assert!(store.workspace_manifest(id).await.unwrap().is_some());
    assert_eq!(store.workspace_blobs(id, &[blob]).await.unwrap().len(), 1);

    // ...which resumes from its journal: the retry keeps both.
    assert!(matches!(
        store.retry_task(id, None, None).await.unwrap(),
        RetryOutcome::Retried
    ));
    let retried = store.list_events(id, None).await.unwrap();
    assert!(retried.iter().all(|e| e.event_type != EventType::Completion));
    assert_eq!(
        retried.last().map(|e| e.body.clone()),
        Some(json!({"recoverStrategy": "none"}))
    );
    assert_eq!(store.step_journal(id).await.unwrap().len(), 1);
    store.claim_task("b", LEASE, true, 5).await.unwrap().unwrap();
    assert!(store
        .finish_task(
            id,
            "b",
            TaskStatus::Completed,
            &[NewEvent::completion(TaskStatus::Completed, None, Some(&json!({})))]
        )
        .await
        .unwrap());
    // Completed: the status, the completion event and nothing saved, at once.
    assert_eq!(store.get_task(id).await.unwrap().unwrap().status, TaskStatus::Completed);
    let events = store.list_events(id, None).await.unwrap();
    assert_eq!(events.last().unwrap().event_type, EventType::Completion);
    assert!(store.workspace_manifest(id).await.unwrap().is_none());
    assert!(store.workspace_blobs(id, &[blob]).await.unwrap().is_empty());
}

#[tokio::test]
async fn saved_workspaces_past_their_retention_go_with_their_journal() {
    let store = store().await;
    let id = task(&store).await;
    store.claim_task("a", LEASE, true, 5).await.unwrap().unwrap();
    let record = WorkspaceRecord {
        manifest: b"m",
        bytes: 1,
        files: 1,
    };
    assert!(store
        .record_step(id, "a", "fetch", &json!({}), Some(record))
        .await
        .unwrap());
    assert!(store
        .finish_task(
            id,
            "a",
            TaskStatus::Failed,
            &[NewEvent::completion(TaskStatus::Failed, None, None)]
        )
        .await
        .unwrap());
    // Within the retention nothing goes; past it, the workspace and the journal.
    assert_eq!(
        store.purge_saved_workspaces(Duration::from_secs(3600)).await.unwrap(),
        0
    );
    assert_eq!(store.purge_saved_workspaces(Duration::ZERO).await.unwrap(), 1);
    assert!(store.workspace_manifest(id).await.unwrap().is_none());
    assert!(store.step_journal(id).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_of_several_tasks_split_a_burst_oldest_first_without_overlap() {
    let store = store().await;
    let mut ids = Vec::new();
    for _ in 0..25 {
        ids.push(task(&store).await);
    }
    // One claimer asks for 10 at once: the 10 oldest, in creation order,
    // each a first attempt with no events and no journal.
    let first = store.claim_tasks("a", LEASE, true, 5, 10).await.expect("claim");
    assert_eq!(first.iter().map(|c| c.task.id).collect::<Vec<_>>(), ids[..10].to_vec());
    assert!(first
        .iter()
        .all(|c| c.attempts == 1 && c.events == 0 && !c.journaled && !c.took_over));
    // Two more claimers at once share the rest without overlap.
    let (b, c) = tokio::join!(
        store.claim_tasks("b", LEASE, true, 5, 10),
        store.claim_tasks("c", LEASE, true, 5, 10)
    );
    let mut rest: Vec<TaskId> = b
        .expect("b")
        .into_iter()
        .chain(c.expect("c"))
        .map(|c| c.task.id)
        .collect();
    rest.sort_by_key(|id| ids.iter().position(|i| i == id));
    assert_eq!(rest, ids[10..].to_vec());
    assert!(store
        .claim_tasks("d", LEASE, true, 5, 10)
        .await
        .expect("claim")
        .is_empty());
}

#[tokio::test]
async fn a_batch_of_events_lands_in_order_only_under_the_lease() {
    let store = store().await;
    let id = task(&store).await;
    let claimed = store.claim_tasks("a", LEASE, true, 5, 1).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    let batch: Vec<NewEvent> = (0..5).map(|i| NewEvent::step_log("s", format!("line {i}"))).collect();
    assert_eq!(store.append_events_as(id, "a", &batch).await.expect("append"), Some(5));
    // Another owner is fenced off: nothing of its batch lands.
    assert_eq!(store.append_events_as(id, "b", &batch).await.expect("append"), None);
    let lines: Vec<String> = store
        .list_events(id, None)
        .await
        .expect("events")
        .iter()
        .filter_map(|e| e.body["message"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(lines, (0..5).map(|i| format!("line {i}")).collect::<Vec<_>>());
    assert!(store
        .claim_tasks("b", LEASE, true, 5, 1)
        .await
        .expect("claim")
        .is_empty());

    // A takeover knows the events the task has, its `recovered` one included.
    let other = task(&store).await;
    let expiring = store.claim_tasks("x", Duration::ZERO, true, 5, 1).await.expect("claim");
    assert_eq!(expiring[0].task.id, other);
    assert_eq!(
        store.append_events_as(other, "x", &batch[..3]).await.expect("append"),
        Some(3)
    );
    let taken = store.claim_tasks("y", LEASE, true, 5, 1).await.expect("claim");
    assert_eq!(taken[0].task.id, other);
    assert!(taken[0].took_over);
    assert_eq!(taken[0].events, 4);
}
