//! Template updates against real git repositories on the local git host:
//! three services generated from version 1 of a directory template, version
//! 2 written over it, fleet updates through the API and the command line.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::helpers::{spawn_app_with, TestApp};
use crate::common::git::{clone, git, git_bare};
use crate::common::PATIENCE;
use crate::publish::fake_github::{Failure, FakeGithub};
use scaffolder::config::GithubIntegrationSettings;

const TEMPLATE_V1: &str = r#"apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: fleet-svc
spec:
  parameters:
    - required: [name, repoUrl]
      properties:
        name: {type: string}
        repoUrl: {type: string}
        token: {type: string, ui:widget: password}
  steps:
    - id: fetch
      action: fetch:template
      input:
        url: ./skeleton
        values:
          name: ${{ parameters.name }}
    - id: publish
      action: publish:github
      input:
        repoUrl: ${{ parameters.repoUrl }}
        defaultBranch: main
"#;

/// Version 2: a new parameter with a default, a file that renders it, the
/// `Run` section changed, `old.txt` deleted, `config.yaml` changed but
/// excluded from updates.
const TEMPLATE_V2: &str = r#"apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: fleet-svc
spec:
  updates:
    exclude: [config.yaml]
  parameters:
    - required: [name, repoUrl]
      properties:
        name: {type: string}
        repoUrl: {type: string}
        token: {type: string, ui:widget: password}
        region: {type: string, default: eu-west}
  steps:
    - id: fetch
      action: fetch:template
      input:
        url: ./skeleton
        values:
          name: ${{ parameters.name }}
          region: ${{ parameters.region }}
    - id: publish
      action: publish:github
      input:
        repoUrl: ${{ parameters.repoUrl }}
        defaultBranch: main
"#;

const README_V1: &str = "# ${{ values.name }}\n\nIntro line.\n\n## Build\n\nmake build\n\n## Run\n\nmake run\n";
const README_V2: &str = "# ${{ values.name }}\n\nIntro line.\n\n## Build\n\nmake build\n\n## Run\n\nmake serve\n";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

struct Fleet {
    dir: tempfile::TempDir,
    app: TestApp,
}

impl Fleet {
    async fn start() -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        let template = dir.path().join("templates/fleet-svc");
        write(&template.join("template.yaml"), TEMPLATE_V1);
        write(&template.join("skeleton/README.md"), README_V1);
        write(&template.join("skeleton/config.yaml"), "port: 8080\n");
        write(&template.join("skeleton/old.txt"), "to be deleted\n");
        let (templates, git_dir) = (dir.path().join("templates"), dir.path().join("git"));
        let app = spawn_app_with(move |settings| {
            settings.templates.dirs = vec![templates];
            settings.integrations.local_git.dir = Some(git_dir);
        })
        .await;
        Fleet { dir, app }
    }

    fn template_dir(&self) -> PathBuf {
        self.dir.path().join("templates/fleet-svc")
    }

    fn bare(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("git/acme/{name}.git"))
    }

    fn repo_url(name: &str) -> String {
        format!("git.local?owner=acme&repo={name}")
    }

    async fn generate(&self, name: &str) {
        let id = self
            .app
            .create_task(
                "template:default/fleet-svc",
                json!({"name": name, "repoUrl": Fleet::repo_url(name), "token": "hunter2"}),
            )
            .await;
        let events = self.app.events_until_completion(&id, PATIENCE).await;
        let last = events.last().expect("completion");
        assert!(
            last["body"]["message"]
                .as_str()
                .unwrap_or_default()
                .ends_with("completed"),
            "{last}"
        );
    }

    /// Commits a change to `file` of `name`'s main as its team would.
    fn team_edit(&self, name: &str, file: &str, from: &str, to: &str) {
        let work = self.dir.path().join(format!("work-{name}"));
        std::fs::create_dir_all(&work).expect("mkdir");
        let checkout = clone(&self.bare(name), &work);
        let path = checkout.join(file);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(from), "{text}");
        std::fs::write(&path, text.replace(from, to)).expect("write");
        git(&checkout, &["commit", "-qam", "team change"]);
        git(&checkout, &["push", "-q", "origin", "main"]);
    }

    fn show(&self, name: &str, rev: &str, path: &str) -> String {
        git_bare(&self.bare(name), &["show", &format!("{rev}:{path}")])
    }

    fn has(&self, name: &str, rev: &str, path: &str) -> bool {
        crate::common::git::git_bare_ok(&self.bare(name), &["cat-file", "-e", &format!("{rev}:{path}")])
    }

    fn head(&self, name: &str, branch: &str) -> Option<String> {
        let out = git_bare(
            &self.bare(name),
            &[
                "for-each-ref",
                "--format=%(objectname)",
                &format!("refs/heads/{branch}"),
            ],
        );
        Some(out.trim().to_owned()).filter(|s| !s.is_empty())
    }

    fn to_version_2(&self) {
        let t = self.template_dir();
        write(&t.join("template.yaml"), TEMPLATE_V2);
        write(&t.join("skeleton/README.md"), README_V2);
        write(&t.join("skeleton/config.yaml"), "port: 9090\n");
        write(&t.join("skeleton/docs/guide.md"), "Deployed in ${{ values.region }}.\n");
        std::fs::remove_file(t.join("skeleton/old.txt")).expect("rm");
    }

    /// Starts a fleet update and waits for its end.
    async fn update(&self, body: Value) -> Value {
        let (status, run) = self.app.post_json("/v2/updates", &body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{run}");
        let id = run["id"].as_str().expect("id").to_owned();
        self.wait(&id).await
    }

    async fn wait(&self, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (status, run) = self.app.get_json(&format!("/v2/updates/{id}?wait=30")).await;
            assert_eq!(status, StatusCode::OK, "{run}");
            if run["status"] != "running" {
                return run;
            }
            assert!(tokio::time::Instant::now() < deadline, "update still running: {run:#}");
        }
    }
}

fn repo<'a>(run: &'a Value, name: &str) -> &'a Value {
    let url = Fleet::repo_url(name);
    run["repositories"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["repoUrl"] == url.as_str()))
        .unwrap_or_else(|| panic!("{name} not in {run:#}"))
}

#[tokio::test]
async fn a_fleet_follows_its_directory_template_three_way() {
    let fleet = Fleet::start().await;
    for name in ["svc-a", "svc-b", "svc-c"] {
        fleet.generate(name).await;
    }

    // Every repository remembers where it came from, secrets left out.
    let answers = fleet.show("svc-a", "main", ".scaffolder/answers.yaml");
    assert!(answers.contains("template: template:default/fleet-svc"), "{answers}");
    assert!(answers.contains("version: sha256:"), "{answers}");
    assert!(
        answers.contains("name: svc-a") && answers.contains("taskId:"),
        "{answers}"
    );
    assert!(!answers.contains("hunter2") && !answers.contains("token"), "{answers}");

    // An update before the template changed finds nothing to do.
    let run = fleet.update(json!({"templateRef": "fleet-svc"})).await;
    assert_eq!(
        run["progress"]["summary"], "3 of 3: 0 opened, 0 conflicts, 3 up to date",
        "{run:#}"
    );

    fleet.team_edit("svc-a", "README.md", "Intro line.", "Intro line, as the team wrote it.");
    fleet.team_edit("svc-b", "README.md", "make run", "make run-local");
    fleet.to_version_2();

    // A dry run shows the change and pushes nothing.
    let run = fleet
        .update(json!({"templateRef": "fleet-svc", "repositories": [Fleet::repo_url("svc-a")], "dryRun": true}))
        .await;
    let planned = repo(&run, "svc-a");
    assert_eq!(planned["status"], "planned", "{run:#}");
    let diff = planned["diff"].as_str().expect("diff");
    assert!(
        diff.contains("+make serve") && diff.contains("+Deployed in eu-west."),
        "{diff}"
    );
    assert_eq!(fleet.head("svc-a", "scaffolder/update-fleet-svc"), None);
    // The command line prints the diff it would propose.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scaffolder"))
        .args(["update", "fleet-svc", "--dry-run", "--repo", &Fleet::repo_url("svc-a")])
        .args(["--server", &fleet.app.address])
        .output()
        .await
        .expect("scaffolder update runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("repo=svc-a — planned") && stdout.contains("+make serve"),
        "{stdout}"
    );
    assert_eq!(fleet.head("svc-a", "scaffolder/update-fleet-svc"), None);

    // svc-c alone first, and its team merges the proposal: it is on version 2.
    let run = fleet
        .update(json!({"templateRef": "fleet-svc", "repositories": [Fleet::repo_url("svc-c")]}))
        .await;
    assert_eq!(repo(&run, "svc-c")["status"], "opened", "{run:#}");
    git_bare(
        &fleet.bare("svc-c"),
        &[
            "update-ref",
            "refs/heads/main",
            "refs/heads/scaffolder/update-fleet-svc",
        ],
    );

    let run = fleet.update(json!({"templateRef": "template:default/fleet-svc"})).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(
        run["progress"]["summary"], "3 of 3: 1 opened, 1 conflict, 1 up to date",
        "{run:#}"
    );
    let branch = "scaffolder/update-fleet-svc";

    // svc-a: both changes, new and deleted files, the excluded file kept.
    let a = repo(&run, "svc-a");
    assert_eq!(a["status"], "opened", "{a:#}");
    assert_eq!(a["conflicts"], json!([]));
    let readme = fleet.show("svc-a", branch, "README.md");
    assert!(
        readme.contains("Intro line, as the team wrote it.") && readme.contains("make serve"),
        "{readme}"
    );
    assert_eq!(fleet.show("svc-a", branch, "docs/guide.md"), "Deployed in eu-west.\n");
    assert!(!fleet.has("svc-a", branch, "old.txt"));
    assert_eq!(fleet.show("svc-a", branch, "config.yaml"), "port: 8080\n");
    let answers = fleet.show("svc-a", branch, ".scaffolder/answers.yaml");
    assert!(
        answers.contains("region: eu-west") && answers.contains(run["version"].as_str().expect("version")),
        "{answers}"
    );
    let body = a["body"].as_str().expect("body");
    for needle in [
        "`docs/guide.md` (added)",
        "`old.txt` (deleted)",
        "`README.md` (modified)",
        "`region = \"eu-west\"`",
        "No conflicts",
    ] {
        assert!(body.contains(needle), "{needle}: {body}");
    }
    assert!(!body.contains("config.yaml"), "{body}");

    // svc-b: the same lines changed on both sides: markers, listed.
    let b = repo(&run, "svc-b");
    assert_eq!(b["status"], "conflicts", "{b:#}");
    assert_eq!(b["conflicts"], json!(["README.md"]));
    let readme = fleet.show("svc-b", branch, "README.md");
    assert!(
        readme.contains("<<<<<<<") && readme.contains("make run-local") && readme.contains("make serve"),
        "{readme}"
    );
    assert!(b["body"]
        .as_str()
        .expect("body")
        .contains("resolve the `<<<<<<<` markers"));

    // svc-c: already on version 2.
    assert_eq!(repo(&run, "svc-c")["status"], "upToDate", "{run:#}");

    // Running the update again changes nothing: the same change is already proposed.
    let heads = [fleet.head("svc-a", branch), fleet.head("svc-b", branch)];
    // Awaited, not blocking: the server runs on this test's runtime.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scaffolder"))
        .args(["update", "fleet-svc", "--server", &fleet.app.address])
        .output()
        .await
        .expect("scaffolder update runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("3 of 3: 0 opened, 0 conflicts, 1 up to date, 2 already proposed"),
        "{stderr}"
    );
    assert!(
        stdout.contains("== git.local?owner=acme&repo=svc-b — proposed"),
        "{stdout}"
    );
    assert_eq!([fleet.head("svc-a", branch), fleet.head("svc-b", branch)], heads);
}

#[tokio::test]
async fn failures_stay_with_their_repository_and_runs_can_be_retried() {
    let fleet = Fleet::start().await;
    fleet.generate("svc-a").await;
    fleet.to_version_2();
    let run = fleet
        .update(json!({
            "templateRef": "fleet-svc",
            "repositories": [Fleet::repo_url("svc-a"), Fleet::repo_url("missing")],
            "concurrency": 1,
        }))
        .await;
    assert_eq!(
        run["progress"]["summary"], "2 of 2: 1 opened, 0 conflicts, 0 up to date, 1 failed",
        "{run:#}"
    );
    let missing = repo(&run, "missing");
    assert!(
        missing["error"].as_str().unwrap_or_default().contains("does not exist"),
        "{missing:#}"
    );

    // The missing repository appears; a retry runs it alone.
    let work = fleet.dir.path().join("seed");
    std::fs::create_dir_all(&work).expect("mkdir");
    git(&work, &["init", "-q", "-b", "main"]);
    write(&work.join("README.md"), "hand-made\n");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "by hand"]);
    git(
        &work,
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            &fleet.bare("missing").to_string_lossy(),
        ],
    );
    git(&work, &["push", "-q", &fleet.bare("missing").to_string_lossy(), "main"]);
    let id = run["id"].as_str().expect("id");
    let (status, _) = fleet
        .app
        .post_json(&format!("/v2/updates/{id}/retry"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let run = fleet.wait(id).await;
    assert_eq!(repo(&run, "svc-a")["status"], "opened", "{run:#}");
    let missing = repo(&run, "missing");
    assert_eq!(missing["status"], "failed");
    assert!(
        missing["error"]
            .as_str()
            .unwrap_or_default()
            .contains(".scaffolder/answers.yaml is missing"),
        "{missing:#}"
    );

    let (status, body) = fleet
        .app
        .post_json("/v2/updates", &json!({"templateRef": "nope"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = fleet
        .app
        .post_json("/v2/updates", &json!({"templateRef": "fleet-svc", "concurrency": 0}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = fleet
        .app
        .post_json(
            "/v2/updates",
            &json!({"templateRef": "fleet-svc", "repositories": ["a\u{0}b"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = fleet
        .app
        .get_json(&format!("/v2/updates/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_template_in_a_git_repository_updates_commit_to_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("source");
    let template = source.join("fleet-git");
    write(
        &template.join("template.yaml"),
        &TEMPLATE_V1.replace("name: fleet-svc", "name: fleet-git"),
    );
    write(&template.join("skeleton/README.md"), README_V1);
    git(dir.path(), &["init", "-q", "-b", "main", &source.to_string_lossy()]);
    git(&source, &["add", "."]);
    git(&source, &["commit", "-qm", "version 1"]);
    let bare = dir.path().join("git/acme/templates.git");
    git(
        dir.path(),
        &["init", "-q", "--bare", "-b", "main", &bare.to_string_lossy()],
    );
    git(&source, &["push", "-q", &bare.to_string_lossy(), "main"]);

    let git_dir = dir.path().join("git");
    let empty = dir.path().join("no-templates");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let app = spawn_app_with(move |settings| {
        settings.templates.dirs = vec![empty];
        settings.templates.urls = vec!["https://git.local/acme/templates/blob/main/fleet-git/template.yaml".into()];
        settings.integrations.local_git.dir = Some(git_dir);
    })
    .await;
    let fleet = Fleet { dir, app };
    let id = fleet
        .app
        .create_task(
            "fleet-git",
            json!({"name": "svc-g", "repoUrl": Fleet::repo_url("svc-g")}),
        )
        .await;
    let events = fleet.app.events_until_completion(&id, PATIENCE).await;
    assert!(events.last().expect("completion")["body"]["message"]
        .as_str()
        .unwrap_or_default()
        .ends_with("completed"));
    let first = fleet.show("svc-g", "main", ".scaffolder/answers.yaml");
    assert!(first.contains("template: template:default/fleet-git"), "{first}");

    // A new commit of the template repository is a new version.
    write(&template.join("skeleton/README.md"), README_V2);
    git(&source, &["commit", "-qam", "version 2"]);
    git(&source, &["push", "-q", &bare.to_string_lossy(), "main"]);
    let run = fleet.update(json!({"templateRef": "fleet-git"})).await;
    assert_eq!(
        run["progress"]["summary"], "1 of 1: 1 opened, 0 conflicts, 0 up to date",
        "{run:#}"
    );
    let branch = "scaffolder/update-fleet-git";
    assert!(fleet.show("svc-g", branch, "README.md").contains("make serve"));
    let answers = fleet.show("svc-g", branch, ".scaffolder/answers.yaml");
    let version = run["version"].as_str().expect("version");
    assert!(
        answers.contains(version) && !first.contains(version),
        "{first}\n{answers}"
    );
}

/// A fleet whose services live on the fake GitHub (`github.example`).
async fn github_fleet() -> (FakeGithub, Fleet) {
    let github = FakeGithub::start(Some("ghp_fleet"));
    let dir = tempfile::tempdir().expect("tempdir");
    let template = dir.path().join("templates/fleet-svc");
    write(&template.join("template.yaml"), TEMPLATE_V1);
    write(&template.join("skeleton/README.md"), README_V1);
    write(&template.join("skeleton/config.yaml"), "port: 8080\n");
    write(&template.join("skeleton/old.txt"), "to be deleted\n");
    let (templates, api_base) = (dir.path().join("templates"), github.api_base.clone());
    let app = spawn_app_with(move |settings| {
        settings.templates.dirs = vec![templates];
        settings.integrations.github.push(GithubIntegrationSettings {
            host: "github.example".into(),
            api_base_url: Some(api_base),
            token: Some("ghp_fleet".into()),
            app: None,
        });
    })
    .await;
    (github, Fleet { dir, app })
}

/// Generates `svc-gh` on the fake GitHub.
async fn generate_on_github(fleet: &Fleet) {
    let id = fleet
        .app
        .create_task(
            "fleet-svc",
            json!({"name": "svc-gh", "repoUrl": "github.example?owner=acme&repo=svc-gh"}),
        )
        .await;
    let events = fleet.app.events_until_completion(&id, PATIENCE).await;
    let last = events.last().expect("completion");
    assert!(
        last["body"]["message"]
            .as_str()
            .unwrap_or_default()
            .ends_with("completed"),
        "{last}"
    );
}

#[tokio::test]
async fn on_github_the_update_is_a_pull_request_with_the_change_in_its_body() {
    let (github, fleet) = github_fleet().await;
    let repo_url = "github.example?owner=acme&repo=svc-gh";
    let id = fleet
        .app
        .create_task("fleet-svc", json!({"name": "svc-gh", "repoUrl": repo_url}))
        .await;
    let events = fleet.app.events_until_completion(&id, PATIENCE).await;
    let last = events.last().expect("completion");
    assert!(
        last["body"]["message"]
            .as_str()
            .unwrap_or_default()
            .ends_with("completed"),
        "{last}"
    );
    let bare = github.bare("acme", "svc-gh");
    assert!(git_bare(&bare, &["show", "main:.scaffolder/answers.yaml"]).contains("name: svc-gh"));

    fleet.to_version_2();
    let run = fleet.update(json!({"templateRef": "fleet-svc"})).await;
    let item = &run["repositories"][0];
    assert_eq!(item["status"], "opened", "{run:#}");
    assert_eq!(
        item["proposal"],
        "https://github.example/acme/svc-gh/pull/1 (branch scaffolder/update-fleet-svc)"
    );
    let pulls = github.requests("POST", "/pulls");
    assert_eq!(pulls.len(), 1);
    let body = pulls[0].body["body"].as_str().expect("pull request body");
    assert!(
        body.contains("`docs/guide.md` (added)") && body.contains("`old.txt` (deleted)"),
        "{body}"
    );
    assert_eq!(pulls[0].body["head"], "scaffolder/update-fleet-svc");
    assert_eq!(pulls[0].authorization.as_deref(), Some("Bearer ghp_fleet"));
    let readme = git_bare(&bare, &["show", "scaffolder/update-fleet-svc:README.md"]);
    assert!(readme.contains("make serve"), "{readme}");
    assert!(!crate::common::git::git_bare_ok(
        &bare,
        &["cat-file", "-e", "scaffolder/update-fleet-svc:old.txt"]
    ));
}

#[tokio::test]
async fn a_run_is_cancelled_while_a_repository_is_in_flight_and_retried() {
    let (github, fleet) = github_fleet().await;
    generate_on_github(&fleet).await;
    fleet.to_version_2();
    // GitHub holds the update of svc-gh back: a rate limit asking for a minute.
    github.fail(Failure {
        method: "GET",
        path_suffix: "/repos/acme/svc-gh".into(),
        status: 403,
        headers: vec![("retry-after", "60".into())],
        body: json!({"message": "API rate limit exceeded"}),
        times: 100,
    });
    let asked = github.requests("GET", "/repos/acme/svc-gh").len();
    let (status, run) = fleet
        .app
        .post_json("/v2/updates", &json!({"templateRef": "fleet-svc", "concurrency": 1}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let id = run["id"].as_str().expect("id").to_owned();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    // In flight: its first request to GitHub was answered with the limit.
    while github.requests("GET", "/repos/acme/svc-gh").len() == asked {
        assert!(tokio::time::Instant::now() < deadline, "the update never asked GitHub");
        let _ = fleet.app.get_json(&format!("/v2/updates/{id}?wait=1")).await;
    }
    let (status, cancelled) = fleet
        .app
        .post_json(&format!("/v2/updates/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    let run = fleet.wait(&id).await;
    assert_eq!(run["status"], "cancelled", "{run:#}");
    assert_eq!(run["repositories"][0]["status"], "cancelled", "{run:#}");
    assert_eq!(github.requests("POST", "/pulls").len(), 0);

    // A retry runs it again, once GitHub answers.
    github.state.lock().expect("state").failures.clear();
    let (status, retried) = fleet
        .app
        .post_json(&format!("/v2/updates/{id}/retry"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    let run = fleet.wait(&id).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["repositories"][0]["status"], "opened", "{run:#}");
    let (status, _) = fleet
        .app
        .post_json(&format!("/v2/updates/{id}/retry"), &json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "an ended run may be retried (nothing is left to run)"
    );
}
