//! Retry and recovery keep their work: a retried task starts its first
//! unfinished step on exactly the files its finished steps left (the
//! durable workspace), clean-up steps run again, and a long `fetch:template`
//! stops when cancelled.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::helpers::{spawn_app_with, step_statuses, TestApp, LIMIT};
use crate::common::git::git;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    std::fs::write(path, text).expect("write");
}

/// `fetch` renders a skeleton into the workspace, `publish` pushes the
/// workspace to the local git host, `cleanup` runs whatever happened.
fn resume_template(root: &Path) -> PathBuf {
    let dir = root.join("templates");
    write(
        &dir.join("resume-files/template.yaml"),
        r#"apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: resume-files
spec:
  parameters:
    - properties:
        name: {type: string}
  steps:
    - id: fetch
      action: fetch:template
      input:
        url: ./skeleton
        values:
          name: ${{ parameters.name }}
    - id: publish
      action: publish:git
      input:
        repoUrl: git.local?owner=team&repo=${{ parameters.name }}
        defaultBranch: main
    - id: cleanup
      if: ${{ always() }}
      action: debug:log
      input:
        message: cleaning up
  output:
    text:
      - title: Published
        content: ${{ steps.publish.output.remoteUrl }}
"#,
    );
    write(&dir.join("resume-files/skeleton/README.md"), "# ${{ values.name }}\n");
    write(
        &dir.join("resume-files/skeleton/src/main.go"),
        "package ${{ values.name }}\n",
    );
    dir
}

fn begun(events: &[Value], step: &str) -> usize {
    step_statuses(events)
        .iter()
        .filter(|(s, status)| s == step && status == "processing")
        .count()
}

fn reused(events: &[Value], step: &str) -> bool {
    events.iter().any(|e| {
        e["body"]["stepId"] == step
            && e["body"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("earlier attempt"))
    })
}

async fn status(app: &TestApp, id: &str) -> String {
    app.task(id).await["status"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_retry_resumes_on_the_files_the_finished_steps_left() {
    let root = tempfile::tempdir().expect("temp dir");
    let templates = resume_template(root.path());
    // The local git host is unusable at first: a file is in the way.
    let git_dir = root.path().join("git");
    std::fs::write(&git_dir, "not a directory").expect("blocker");
    let dir = git_dir.clone();
    let app = spawn_app_with(move |s| {
        s.templates.dirs = vec![templates];
        s.integrations.local_git.dir = Some(dir);
    })
    .await;

    let id = app.create_task("resume-files", json!({"name": "ledger"})).await;
    let events = app.events_until_completion(&id, LIMIT).await;
    assert_eq!(status(&app, &id).await, "failed", "{:#?}", step_statuses(&events));
    assert_eq!(begun(&events, "cleanup"), 1, "the clean-up step runs after the failure");

    // The cause is fixed; the retry resumes at `publish`.
    std::fs::remove_file(&git_dir).expect("remove blocker");
    std::fs::create_dir_all(&git_dir).expect("git dir");
    let (code, body) = app.post_json(&format!("/v2/tasks/{id}/retry"), &json!({})).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let events = app.events_until_completion(&id, LIMIT).await;
    assert_eq!(status(&app, &id).await, "completed", "{:#?}", events.last());

    // Backstage's body for the event that starts a retried run.
    let recovered: Vec<&Value> = events.iter().filter(|e| e["type"] == "recovered").collect();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0]["body"], json!({"recoverStrategy": "none"}));
    // `fetch` ran once; its files were restored, not fetched again.
    assert!(reused(&events, "fetch"), "fetch was not reused");
    assert_eq!(begun(&events, "fetch"), 2, "the page shows the reused step move");
    assert!(
        events.iter().any(|e| e["body"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Restored the workspace of the earlier attempt: 2 files"))),
        "no restore line"
    );
    // The `always()` step ran in both attempts, never reused.
    assert_eq!(begun(&events, "cleanup"), 2);
    assert!(!reused(&events, "cleanup"));

    // The published repository holds what `fetch` rendered in attempt 1.
    let bare = git_dir.join("team/ledger.git");
    assert_eq!(git(&bare, &["show", "main:README.md"]), "# ledger\n");
    assert_eq!(git(&bare, &["show", "main:src/main.go"]), "package ledger\n");

    // A completed task keeps no saved workspace.
    let pool = sqlx::PgPool::connect(&app.db_url).await.expect("database");
    let (left,): (i64,) =
        sqlx::query_as("SELECT (SELECT count(*) FROM task_workspaces) + (SELECT count(*) FROM task_workspace_blobs)")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(left, 0, "the saved workspace outlived the completed task");
}

#[tokio::test]
async fn a_failed_task_keeps_its_saved_workspace_sealed_for_a_retry() {
    let root = tempfile::tempdir().expect("temp dir");
    let templates = resume_template(root.path());
    let git_dir = root.path().join("git");
    std::fs::write(&git_dir, "not a directory").expect("blocker");
    let dir = git_dir.clone();
    let app = spawn_app_with(move |s| {
        s.templates.dirs = vec![templates];
        s.integrations.local_git.dir = Some(dir);
    })
    .await;
    let id = app.create_task("resume-files", json!({"name": "vault"})).await;
    app.events_until_completion(&id, LIMIT).await;
    assert_eq!(status(&app, &id).await, "failed");

    let pool = sqlx::PgPool::connect(&app.db_url).await.expect("database");
    let (files, bytes): (i32, i64) = sqlx::query_as("SELECT files, bytes FROM task_workspaces")
        .fetch_one(&pool)
        .await
        .expect("a saved workspace");
    assert_eq!(
        (files, bytes),
        (2, ("# vault\n".len() + "package vault\n".len()) as i64)
    );
    // Nothing readable is stored: names and contents are sealed.
    let stored: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT manifest FROM task_workspaces UNION ALL SELECT data FROM task_workspace_blobs")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(stored.len(), 3);
    for (bytes,) in stored {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("vault") && !text.contains("README"), "{text}");
    }
}

/// The golden path: `app-base-go-react` fails at the GitOps registration
/// because another owner holds the service name; the owner hands it over;
/// the retry registers the overlays from the restored workspace, and the
/// service repository is published exactly once.
#[tokio::test]
async fn app_base_go_react_retried_after_a_gitops_conflict_completes_with_one_publish() {
    let data = tempfile::tempdir().expect("temp dir");
    let git_dir = data.path().join("git");
    let templates = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates");
    let dir = git_dir.clone();
    let app = spawn_app_with(move |s| {
        s.integrations.local_git.dir = Some(dir);
        s.templates.dirs.push(templates);
    })
    .await;
    let values = |repo: &str| {
        json!({
            "name": "billing-api",
            "description": "Billing",
            "owner": "group:default/team-a",
            "repoUrl": format!("git.local?owner=soft-yt&repo={repo}"),
            "clusters": ["onprem-dev"],
            "gitopsRepoUrl": "git.local?owner=soft-yt&repo=infra-gitops",
        })
    };
    // An earlier service registered `billing-api`; its marker names its owner.
    let first = app
        .create_task("template:default/app-base-go-react", values("billing-legacy"))
        .await;
    app.events_until_completion(&first, LIMIT * 4).await;
    assert_eq!(status(&app, &first).await, "completed");
    let work = tempfile::tempdir().expect("temp dir");
    let gitops = work.path().join("infra-gitops");
    git(
        work.path(),
        &[
            "clone",
            "-q",
            &git_dir.join("soft-yt/infra-gitops.git").to_string_lossy(),
            &gitops.to_string_lossy(),
        ],
    );
    let marker = std::fs::read_dir(gitops.join("apps/billing-api"))
        .expect("service dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_file())
        .expect("the ownership marker");
    let original = std::fs::read_to_string(&marker).expect("marker");
    let owner_line = original
        .lines()
        .find(|l| l.trim_start().starts_with("owner:"))
        .expect("an owner line")
        .to_owned();
    let set_owner = |line: &str, message: &str| {
        let text = original.replace(&owner_line, line);
        std::fs::write(&marker, text).expect("marker");
        git(&gitops, &["commit", "-qam", message]);
        git(&gitops, &["push", "-q", "origin", "HEAD"]);
    };
    set_owner(
        "owner: group:default/someone-else",
        "billing-api belongs to someone else",
    );

    let id = app
        .create_task("template:default/app-base-go-react", values("billing-api"))
        .await;
    let events = app.events_until_completion(&id, LIMIT * 4).await;
    assert_eq!(status(&app, &id).await, "failed");
    let error = events.last().expect("completion")["body"]["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("already registered"), "{error}");

    // Anonymous runs are owned by the service's repository, not a shared
    // default: billing-legacy's repository owned the name. It hands the
    // service over to billing-api's; the retry finishes the registration.
    assert!(
        owner_line.contains("repository:git.local/soft-yt/billing-legacy"),
        "{owner_line}"
    );
    set_owner(
        "owner: repository:git.local/soft-yt/billing-api",
        "hand billing-api over",
    );
    let (code, body) = app.post_json(&format!("/v2/tasks/{id}/retry"), &json!({})).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let events = app.events_until_completion(&id, LIMIT * 4).await;
    assert_eq!(
        status(&app, &id).await,
        "completed",
        "{:#?}",
        events.iter().rev().take(5).collect::<Vec<_>>()
    );
    assert!(reused(&events, "fetch") && reused(&events, "publish"));

    let service = git_dir.join("soft-yt/billing-api.git");
    assert_eq!(
        git(&service, &["rev-list", "--count", "main"]).trim(),
        "1",
        "published more than once"
    );
    git(&gitops, &["pull", "-q", "--rebase", "origin", "main"]);
    let overlay = std::fs::read_to_string(gitops.join("apps/billing-api/overlays/onprem-dev/kustomization.yaml"))
        .expect("overlay registered by the retry");
    assert!(overlay.contains("ghcr.io/soft-yt/billing-api-backend"), "{overlay}");
}

/// A 5,000-file skeleton: cancel takes effect in the middle of the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_long_fetch_template_in_the_middle() {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("templates");
    write(
        &dir.join("many-files/template.yaml"),
        "apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\nmetadata:\n  name: many-files\nspec:\n  steps:\n    \
         - id: fetch\n      action: fetch:template\n      input:\n        url: ./skeleton\n        values: {name: x}\n",
    );
    for i in 0..5000 {
        write(
            &dir.join(format!("many-files/skeleton/d{}/f{i}.txt", i % 50)),
            "${{ values.name }} {% for n in range(0, 200) %}${{ n }}{% endfor %}\n",
        );
    }
    let app = spawn_app_with(move |s| {
        s.templates.dirs = vec![dir];
        s.limits.events_per_task = 100_000;
    })
    .await;
    let id = app.create_task("many-files", json!({})).await;
    let first = app
        .wait_for_event(
            &id,
            |e| {
                e["type"] == "completion"
                    || e["body"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("Writing file"))
            },
            LIMIT,
        )
        .await;
    assert_ne!(first["type"], "completion", "the task ended before copying: {first}");
    let asked = std::time::Instant::now();
    let res = app
        .client
        .post(app.api(&format!("/v2/tasks/{id}/cancel")))
        .send()
        .await
        .expect("cancel");
    assert_eq!(res.status(), StatusCode::OK);
    let events = app.events_until_completion(&id, LIMIT).await;
    eprintln!("cancel of a 5,000-file fetch:template took {:?}", asked.elapsed());
    assert_eq!(status(&app, &id).await, "cancelled");
    let written = events
        .iter()
        .filter(|e| {
            e["body"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Writing file"))
        })
        .count();
    assert!(
        written < 5000,
        "the copy ran to its end ({written} files) before the cancel"
    );
    assert!(!events.iter().any(|e| e["body"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("Template result written"))));
}
