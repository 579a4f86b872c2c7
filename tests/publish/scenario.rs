//! Whole tasks through the real `Runner`: fetch:template → catalog:write →
//! publish:github → publish:github:pull-request → catalog:register, against
//! the fake GitHub and catalog, and the same on the local git host with
//! default settings.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use scaffolder::actions::{builtin_actions_with, ActionRegistry};
use scaffolder::config::{GithubIntegrationSettings, Settings};
use scaffolder::engine::{FinalStatus, RunEnd, RunId, RunOutcome, RunRequest, RunSink, Runner};
use scaffolder::model::{NewEvent, TaskId};
use scaffolder::startup::action_deps;
use scaffolder::templating::Renderer;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::publish::fake_catalog::FakeCatalog;
use crate::publish::fake_github::FakeGithub;
use crate::publish::helpers::git;

#[derive(Default)]
struct Events(Mutex<Vec<NewEvent>>);

#[async_trait]
impl RunSink for Events {
    async fn emit(&self, event: NewEvent) {
        if let Ok(mut events) = self.0.lock() {
            events.push(event);
        }
    }
}

impl Events {
    fn messages(&self) -> String {
        self.0
            .lock()
            .map(|events| {
                events
                    .iter()
                    .filter_map(|e| e.body.get("message").and_then(Value::as_str).map(str::to_owned))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }
}

/// A template directory with a skeleton, and the spec that uses it.
fn template(dir: &std::path::Path, repo_url: &str, register_optional: bool) -> Value {
    let skeleton = dir.join("template/skeleton");
    std::fs::create_dir_all(skeleton.join("src")).unwrap();
    std::fs::write(skeleton.join("README.md"), "# ${{ values.name }}\n").unwrap();
    std::fs::write(skeleton.join("src/lib.rs"), "// ${{ values.name }}\n").unwrap();
    let extra = dir.join("template/docs");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("index.md"), "# Docs\n").unwrap();
    let base = url::Url::from_file_path(dir.join("template/template.yaml")).unwrap();
    json!({
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "templateInfo": {"entityRef": "template:default/svc", "baseUrl": base.as_str()},
        "parameters": {"name": "svc", "repoUrl": repo_url},
        "user": {"ref": "user:default/jane"},
        "steps": [
            {"id": "fetch", "name": "Fetch skeleton", "action": "fetch:template",
             "input": {"url": "./skeleton", "values": {"name": "${{ parameters.name }}"}}},
            {"id": "catalog-info", "name": "Write catalog file", "action": "catalog:write",
             "input": {"entity": {"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
                                  "metadata": {"name": "${{ parameters.name }}"},
                                  "spec": {"type": "service", "lifecycle": "experimental", "owner": "acme"}}}},
            {"id": "publish", "name": "Publish", "action": "publish:github",
             "input": {"repoUrl": "${{ parameters.repoUrl }}", "defaultBranch": "main",
                       "description": "The ${{ parameters.name }} service", "topics": ["scaffolded"]}},
            {"id": "docs", "name": "Fetch docs", "action": "fetch:plain",
             "input": {"url": "./docs", "targetPath": "pr-docs"}},
            {"id": "pr", "name": "Open pull request", "action": "publish:github:pull-request",
             "input": {"repoUrl": "${{ parameters.repoUrl }}", "branchName": "add-docs", "title": "Add docs",
                       "description": "Docs for ${{ parameters.name }}", "sourcePath": "pr-docs", "targetPath": "docs"}},
            {"id": "register", "name": "Register", "action": "catalog:register",
             "input": {"repoContentsUrl": "${{ steps.publish.output.repoContentsUrl }}",
                       "catalogInfoPath": "/catalog-info.yaml", "optional": register_optional}},
        ],
        "output": {
            "remoteUrl": "${{ steps.publish.output.remoteUrl }}",
            "commitHash": "${{ steps.publish.output.commitHash }}",
            "pullRequest": "${{ steps.pr.output.remoteUrl }}",
            "entityRef": "${{ steps.register.output.entityRef }}",
        },
    })
}

async fn run(
    settings: &Settings,
    spec: Value,
    secrets: Map<String, Value>,
    workspace: std::path::PathBuf,
) -> (RunEnd, Arc<Events>) {
    let deps = action_deps(settings).expect("deps");
    let renderer = Arc::new(Renderer::builder().integrations(deps.integrations.templating()).build());
    let runner = Runner::new(ActionRegistry::new(builtin_actions_with(&deps)), renderer);
    let events = Arc::new(Events::default());
    let request = RunRequest {
        task_id: RunId::Task(TaskId::new()),
        spec,
        secrets,
        workspace,
        dry_run: false,
        cancel: CancellationToken::new(),
        abort: CancellationToken::new(),
        resume: Default::default(),
        notes: Vec::new(),
        deadline: None,
        answers: None,
        approval: None,
    };
    let RunOutcome::Finished(end) = runner.run(request, events.clone()).await else {
        panic!("the run was aborted: {}", events.messages());
    };
    (end, events)
}

#[tokio::test]
async fn a_task_publishes_to_github_opens_a_pull_request_and_registers() {
    let github = FakeGithub::start(Some("ghp_scenario"));
    let catalog = FakeCatalog::start();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.integrations.github.push(GithubIntegrationSettings {
        host: "github.example".into(),
        api_base_url: Some(github.api_base.clone()),
        token: Some("ghp_scenario".into()),
        app: None,
    });
    settings.integrations.local_git.dir = Some(dir.path().join("git"));
    settings.catalog.base_url = Some(catalog.base_url.clone());
    let spec = template(dir.path(), "github.example?owner=acme&repo=svc", false);
    let workspace = dir.path().join("workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    let mut secrets = Map::new();
    secrets.insert("backstageToken".into(), json!("jane-token"));

    let (outcome, events) = run(&settings, spec, secrets, workspace).await;
    assert_eq!(outcome.status, FinalStatus::Completed, "{}", events.messages());

    let bare = github.bare("acme", "svc");
    assert_eq!(outcome.output["remoteUrl"], json!(format!("file://{}", bare.display())));
    assert_eq!(
        outcome.output["commitHash"],
        json!(git(&bare, &["rev-parse", "main"]).trim())
    );
    assert_eq!(
        outcome.output["pullRequest"],
        json!("https://github.example/acme/svc/pull/1")
    );
    assert_eq!(outcome.output["entityRef"], json!("component:default/svc"));
    assert_eq!(git(&bare, &["show", "main:README.md"]), "# svc\n");
    assert!(git(&bare, &["show", "main:catalog-info.yaml"]).contains("name: svc"));
    assert_eq!(git(&bare, &["show", "add-docs:docs/index.md"]), "# Docs\n");
    assert_eq!(github.state.lock().unwrap().topics["acme/svc"], vec!["scaffolded"]);
    let registered = catalog.requests();
    assert_eq!(
        registered[0].body["target"],
        json!("https://github.example/acme/svc/blob/main/catalog-info.yaml")
    );
    assert!(registered.iter().all(|r| r.token.as_deref() == Some("jane-token")));
    assert!(github
        .requests("POST", "/pulls")
        .iter()
        .all(|r| r.authorization.as_deref() == Some("Bearer ghp_scenario")));
}

#[tokio::test]
async fn the_same_task_completes_on_the_local_git_host_with_default_settings() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    // Default settings, except that the repositories go to a scratch directory.
    settings.integrations.local_git.dir = Some(dir.path().join("git"));
    let spec = template(dir.path(), "git.local?owner=acme&repo=svc", true);
    let workspace = dir.path().join("workspace");
    std::fs::create_dir_all(&workspace).unwrap();

    let (outcome, events) = run(&settings, spec, Map::new(), workspace).await;
    assert_eq!(outcome.status, FinalStatus::Completed, "{}", events.messages());
    let bare = dir.path().join("git/acme/svc.git");
    assert_eq!(outcome.output["remoteUrl"], json!(format!("file://{}", bare.display())));
    assert_eq!(git(&bare, &["show", "main:README.md"]), "# svc\n");
    assert_eq!(git(&bare, &["show", "add-docs:docs/index.md"]), "# Docs\n");
    assert!(events.messages().contains("would register"), "{}", events.messages());
}
