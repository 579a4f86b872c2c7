//! Failures outside the service: a git remote that cannot be reached (and a
//! retry once it is back), and a workspace whose disk is full. Each task ends
//! `failed` with the cause in its completion event, never stuck.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::helpers::{spawn_app_with, TestApp};

const LIMIT: Duration = Duration::from_secs(60);

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    std::fs::write(path, text).expect("write");
}

/// A templates directory with `publish-local` (writes a file, publishes it to
/// the local git host) and `fill-disk` (copies a 4 MiB skeleton file).
fn templates(root: &Path) -> PathBuf {
    let dir = root.join("templates");
    write(
        &dir.join("publish-local/template.yaml"),
        "apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\nmetadata:\n  name: publish-local\nspec:\n  steps:\n    \
         - id: write\n      action: catalog:write\n      input:\n        entity: {kind: Component, metadata: {name: x}}\n    \
         - id: publish\n      action: publish:git\n      input:\n        repoUrl: git.local?owner=team&repo=svc\n        defaultBranch: main\n",
    );
    write(
        &dir.join("fill-disk/template.yaml"),
        "apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\nmetadata:\n  name: fill-disk\nspec:\n  steps:\n    \
         - id: fetch\n      action: fetch:plain\n      input:\n        url: ./skeleton\n",
    );
    write(&dir.join("fill-disk/skeleton/big.bin"), &"x".repeat(4 << 20));
    dir
}

fn completion_error(events: &[Value]) -> String {
    events
        .iter()
        .find(|e| e["type"] == "completion")
        .map(|e| e["body"]["error"]["message"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

async fn finished(app: &TestApp, id: &str) -> (String, String) {
    let events = app.events_until_completion(id, LIMIT).await;
    let status = app.task(id).await["status"].as_str().unwrap_or_default().to_owned();
    (status, completion_error(&events))
}

#[tokio::test]
async fn an_unreachable_git_remote_fails_the_step_and_retry_works_once_it_is_back() {
    let root = tempfile::tempdir().expect("temp dir");
    let dirs = templates(root.path());
    // The local git host's directory cannot be created: a file is in the way.
    let git = root.path().join("git");
    std::fs::write(&git, "not a directory").expect("blocker");
    let git_dir = git.clone();
    let app = spawn_app_with(move |s| {
        s.templates.dirs = vec![dirs];
        s.integrations.local_git.dir = Some(git_dir);
    })
    .await;
    let id = app.create_task("publish-local", json!({})).await;
    let (status, error) = finished(&app, &id).await;
    assert_eq!(status, "failed");
    assert!(!error.is_empty(), "no error message in the completion event");
    assert!(
        error.contains(&git.display().to_string()) || error.to_lowercase().contains("directory"),
        "the remote's message is not passed on: {error}"
    );

    // The remote comes back; retry resumes and publishes.
    std::fs::remove_file(&git).expect("remove blocker");
    std::fs::create_dir_all(&git).expect("git dir");
    let (code, body) = app.post_json(&format!("/v2/tasks/{id}/retry"), &json!({})).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (status, error) = finished(&app, &id).await;
    assert_eq!(status, "completed", "retry failed: {error}");
    assert!(git.join("team/svc.git").is_dir(), "no repository after the retry");
}

/// A 1 MiB tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: PathBuf) -> Tmpfs {
        std::fs::create_dir_all(&path).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&path)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI and development machines run as root)"
        );
        Tmpfs(path)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_fails_the_step_cleanly_and_the_task_ends() {
    if !crate::common::tools::root("mounting a 1 MiB tmpfs as a full disk") {
        return;
    }
    let root = tempfile::tempdir().expect("temp dir");
    let dirs = templates(root.path());
    let disk = Tmpfs::mount(root.path().join("small-disk"));
    let work = disk.0.clone();
    let app = spawn_app_with(move |s| {
        s.templates.dirs = vec![dirs];
        s.worker.work_dir = Some(work);
    })
    .await;
    let id = app.create_task("fill-disk", json!({})).await;
    let (status, error) = finished(&app, &id).await;
    assert_eq!(status, "failed");
    assert!(error.contains("No space left on device"), "unclear error: {error}");
    // The service still answers after the failure.
    let (code, body) = app.get_json("/v2/tasks").await;
    assert_eq!(code, StatusCode::OK, "{body}");
}
