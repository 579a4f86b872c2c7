//! A team's own module (`tests/data/bridge-module`) in the bridge: its action
//! writes files, logs, sets outputs, checkpoints and honours its signal; the
//! workspace is shared with the bridge or shipped to it; a retried step gets
//! its checkpoint back, a cancelled one is aborted in the bridge.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::helpers::{app_with_bridge, bridge_dir, wait_for_file, write, Bridge, Modules};
use crate::api::helpers::{step_statuses, TestApp, LIMIT};
use crate::common::git::git;

/// `fetch:plain` lays out a file, the bridged action runs once and then once
/// per `each` item, and `publish:git` pushes what they left.
pub fn work_template(root: &Path) -> std::path::PathBuf {
    let dir = root.join("templates");
    write(
        &dir.join("bridge-work/template.yaml"),
        r#"apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: bridge-work
spec:
  parameters:
    - properties:
        name: {type: string}
        counterFile: {type: string}
        failOnceMarker: {type: string}
        waitUnless: {type: string}
        abortedFile: {type: string}
  steps:
    - id: skeleton
      action: fetch:plain
      input:
        url: ./skeleton
    - id: work
      name: Bridged work
      action: test:bridge:work
      input:
        name: ${{ parameters.name }}
        counterFile: ${{ parameters.counterFile }}
        failOnceMarker: ${{ parameters.failOnceMarker }}
        waitUnless: ${{ parameters.waitUnless }}
        abortedFile: ${{ parameters.abortedFile }}
    - id: each
      action: test:bridge:work
      each: ['x', 'y']
      input:
        name: ${{ each.value }}
    - id: publish
      action: publish:git
      input:
        repoUrl: git.local?owner=team&repo=${{ parameters.name }}
        defaultBranch: main
  output:
    resourceId: ${{ steps.work.output.resourceId }}
    eachFiles: ${{ steps.each.output.file }}
"#,
    );
    write(&dir.join("bridge-work/skeleton/before.txt"), "laid out before\n");
    dir
}

pub struct Scratch {
    pub root: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            root: tempfile::tempdir().expect("temp dir"),
        }
    }
    pub fn path(&self, name: &str) -> String {
        self.root.path().join(name).display().to_string()
    }
    /// A file that exists (an input that asks for nothing).
    pub fn existing(&self, name: &str) -> String {
        let path = self.root.path().join(name);
        std::fs::write(&path, "present").expect("write");
        path.display().to_string()
    }
}

/// Starts `bridge-work` with a step that waits for its signal unless
/// `go_on` exists (writing `aborted` when the signal fires), and returns once
/// the action said it waits.
pub async fn start_waiting_task(app: &TestApp, scratch: &Scratch, go_on: &Path, aborted: &Path) -> String {
    let id = app
        .create_task(
            "bridge-work",
            json!({
                "name": "svc",
                "counterFile": scratch.path("counter"),
                "failOnceMarker": scratch.existing("no-failure"),
                "waitUnless": go_on.display().to_string(),
                "abortedFile": aborted.display().to_string(),
            }),
        )
        .await;
    app.wait_for_event(
        &id,
        |e| {
            e["body"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("waiting for the signal"))
        },
        LIMIT,
    )
    .await;
    id
}

async fn retry(app: &TestApp, id: &str) {
    let (code, body) = app.post_json(&format!("/v2/tasks/{id}/retry"), &json!({})).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
}

fn messages(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| e["body"]["message"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn a_failed_step_is_retried_with_its_checkpoint(shared_workspace: bool) {
    let Some(dir) = bridge_dir() else { return };
    let bridge = Bridge::start(&dir, Modules::TestModule).await;
    let scratch = Scratch::new();
    let templates = work_template(scratch.root.path());
    let app = app_with_bridge(&bridge, shared_workspace, &templates, &scratch.root.path().join("git")).await;

    let counter = scratch.path("counter");
    let id = app
        .create_task(
            "bridge-work",
            json!({
                "name": "svc",
                "counterFile": counter,
                "failOnceMarker": scratch.path("failed-once"),
                "waitUnless": scratch.existing("no-wait"),
                "abortedFile": scratch.path("aborted"),
            }),
        )
        .await;
    let events = app.events_until_completion(&id, LIMIT).await;
    let log = messages(&events);
    assert_eq!(app.task(&id).await["status"], "failed", "{log}");
    assert!(log.contains("failing once after the checkpoint of svc"), "{log}");
    assert!(log.contains("\u{1b}[32minfo\u{1b}[39m: working on svc"), "{log}");
    assert_eq!(std::fs::read_to_string(&counter).unwrap(), "svc\n");

    retry(&app, &id).await;
    let events = app.events_until_completion(&id, LIMIT).await;
    let log = messages(&events);
    let task = app.task(&id).await;
    assert_eq!(task["status"], "completed", "{log}");
    // The checkpointed work ran once: the retry got its result back.
    assert_eq!(std::fs::read_to_string(&counter).unwrap(), "svc\n", "{log}");
    assert!(log.contains("\u{1b}[33mwarn\u{1b}[39m: done with svc"), "{log}");
    let (_, body) = app.get_json(&format!("/v2/tasks/{id}")).await;
    let steps = step_statuses(&events);
    assert!(steps.contains(&("work".into(), "completed".into())), "{steps:?}");

    let bare = scratch.root.path().join("git/team/svc.git");
    let written: Value = serde_json::from_str(&git(&bare, &["show", "main:svc.txt"])).expect("svc.txt is JSON");
    assert_eq!(written["taskId"], json!(id), "{body}");
    assert_eq!(written["stepId"], "work");
    assert_eq!(written["isDryRun"], false);
    assert_eq!(written["template"], "template:default/bridge-work");
    // The action saw the files the steps before it left.
    assert_eq!(written["before"], "laid out before\n");
    let x: Value = serde_json::from_str(&git(&bare, &["show", "main:x.txt"])).expect("x.txt is JSON");
    assert_eq!(x["each"], json!({"key": "0", "value": "x"}));
    assert!(git(&bare, &["show", "main:y.txt"]).contains("\"value\": \"y\""));
    assert_eq!(git(&bare, &["show", "main:before.txt"]), "laid out before\n");
    // Outputs come back to the template.
    let output = events
        .iter()
        .find(|e| e["type"] == "completion")
        .map(|e| e["body"]["output"].clone())
        .unwrap_or(Value::Null);
    assert_eq!(output["resourceId"], "resource-svc", "{output}");
    assert_eq!(output["eachFiles"], json!(["x.txt", "y.txt"]), "{output}");
}

#[tokio::test]
async fn a_bridged_step_shares_the_workspace_and_a_retry_reuses_its_checkpoint() {
    a_failed_step_is_retried_with_its_checkpoint(true).await;
}

#[tokio::test]
async fn a_bridged_step_gets_the_workspace_shipped_and_back() {
    a_failed_step_is_retried_with_its_checkpoint(false).await;
}

#[tokio::test]
async fn cancelling_a_task_fires_the_bridged_action_s_signal() {
    let Some(dir) = bridge_dir() else { return };
    let bridge = Bridge::start(&dir, Modules::TestModule).await;
    let scratch = Scratch::new();
    let templates = work_template(scratch.root.path());
    let app = app_with_bridge(&bridge, true, &templates, &scratch.root.path().join("git")).await;

    let aborted = scratch.root.path().join("aborted");
    let id = start_waiting_task(&app, &scratch, &scratch.root.path().join("never-there"), &aborted).await;
    let (code, body) = app.post_json(&format!("/v2/tasks/{id}/cancel"), &json!({})).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let events = app.events_until_completion(&id, LIMIT).await;
    assert_eq!(app.task(&id).await["status"], "cancelled", "{}", messages(&events));
    // The action itself saw the abort and stopped.
    assert_eq!(wait_for_file(&aborted).await, "aborted", "{}", bridge.log());
}

#[tokio::test]
async fn a_bridged_action_that_supports_dry_run_runs_in_a_dry_run() {
    let Some(dir) = bridge_dir() else { return };
    let bridge = Bridge::start(&dir, Modules::TestModule).await;
    let scratch = Scratch::new();
    let templates = work_template(scratch.root.path());
    let app = app_with_bridge(&bridge, true, &templates, &scratch.root.path().join("git")).await;
    let template: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(templates.join("bridge-work/template.yaml")).unwrap()).unwrap();
    let (code, body) = app
        .post_json(
            "/v2/dry-run",
            &json!({
                "template": serde_json::to_value(template).unwrap(),
                "values": {"name": "svc", "counterFile": scratch.path("counter"), "failOnceMarker": scratch.existing("f"),
                           "waitUnless": scratch.existing("w"), "abortedFile": scratch.path("a")},
                "directoryContents": [{"path": "skeleton/before.txt", "base64Content": "bGFpZCBvdXQgYmVmb3JlCg=="}],
            }),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let log = body["log"].to_string();
    assert!(log.contains("Running test:bridge:work in dry-run mode"), "{log}");
    assert!(log.contains("working on svc"), "{log}");
    let written = body["directoryContents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "svc.txt")
        .unwrap_or_else(|| panic!("svc.txt not in {body}"));
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD
        .decode(written["base64Content"].as_str().unwrap())
        .unwrap();
    let written: Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(written["isDryRun"], true);
    // A dry-run keeps no checkpoint, but the action still ran its work.
    assert_eq!(std::fs::read_to_string(scratch.path("counter")).unwrap(), "svc\n");
}

#[tokio::test]
async fn autocomplete_providers_of_bridge_modules_answer() {
    let Some(dir) = bridge_dir() else { return };
    let bridge = Bridge::start(&dir, Modules::TestModule).await;
    let scratch = Scratch::new();
    let app = app_with_bridge(&bridge, true, scratch.root.path(), &scratch.root.path().join("git")).await;
    let (code, body) = app
        .post_json(
            "/v2/autocomplete/bridge-test/teams",
            &json!({"token": "abcd", "context": {"prefix": "team-"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"results": [
            {"title": "Team alpha (4 token characters)", "id": "team-alpha"},
            {"title": "Team beta (4 token characters)", "id": "team-beta"},
        ]})
    );
    let (code, body) = app
        .post_json(
            "/v2/autocomplete/bridge-test/nothing",
            &json!({"token": "abcd", "context": {}}),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["message"], "Invalid resource: nothing");
    let (code, body) = app
        .post_json(
            "/v2/autocomplete/nobody/teams",
            &json!({"token": "abcd", "context": {}}),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["message"], "Unsupported provider: nobody");
}

#[tokio::test]
async fn a_bridge_that_is_down_at_start_is_listed_once_it_answers() {
    let Some(dir) = bridge_dir() else { return };
    let port = super::helpers::free_port();
    let scratch = Scratch::new();
    let settings = scaffolder::config::BridgeSettings {
        url: format!("http://127.0.0.1:{port}"),
        token: super::helpers::TOKEN.into(),
        shared_workspace: true,
        refresh_seconds: 1,
    };
    let templates = scratch.root.path().to_owned();
    let app = crate::api::helpers::spawn_app_with(move |s| {
        s.actions.bridges = vec![settings];
        s.templates.dirs = vec![templates];
    })
    .await;
    // The service serves without the bridge.
    let (code, listed) = app.get_json("/v2/actions").await;
    assert_eq!(code, StatusCode::OK);
    assert!(!listed.to_string().contains("test:bridge:work"));

    let bridge = Bridge::start_with(&dir, Modules::TestModule, None, port).await;
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let (_, listed) = app.get_json("/v2/actions").await;
        if listed
            .as_array()
            .is_some_and(|a| a.iter().any(|action| action["id"] == "test:bridge:work"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bridge's actions were not listed within {LIMIT:?}:\n{}",
            bridge.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn template_filters_and_globals_of_bridge_modules_render_in_our_templates() {
    let Some(dir) = bridge_dir() else { return };
    let bridge = Bridge::start(&dir, Modules::TestModule).await;
    let scratch = Scratch::new();
    let app = app_with_bridge(&bridge, true, scratch.root.path(), &scratch.root.path().join("git")).await;
    let template = json!({
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "kind": "Template",
        "metadata": {"name": "extensions"},
        "spec": {
            "parameters": [{"properties": {"name": {"type": "string"}}}],
            "steps": [
                {"id": "say", "action": "debug:log", "input": {
                    "message": "${{ parameters.name | shout }} ${{ parameters.name | shout('?') }} ${{ greet(parameters.name) }} ${{ teamName }}"
                }},
                // Files rendered by fetch:template see them too, as in Backstage.
                {"id": "files", "action": "fetch:template", "input": {
                    "url": "./skeleton",
                    "values": {"name": "${{ parameters.name }}"},
                }},
            ],
        },
    });
    let skeleton = "${{ values.name | shout }} by ${{ teamName }}: ${{ greet(values.name) }}\n";
    let (code, body) = app
        .post_json(
            "/v2/dry-run",
            &json!({"template": template, "values": {"name": "svc"}, "directoryContents": [
                {"path": "skeleton/README.md", "base64Content": BASE64.encode(skeleton)},
            ]}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let log = body["log"].to_string();
    assert!(log.contains("SVC! SVC? hello svc platform"), "{log}");
    let readme = body["directoryContents"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["path"] == "README.md"))
        .and_then(|f| f["base64Content"].as_str())
        .and_then(|b| BASE64.decode(b).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    assert_eq!(readme.as_deref(), Some("SVC! by platform: hello svc\n"), "{body}");
}
