//! `publish:github` and `publish:github:pull-request` against the fake
//! GitHub: repositories, settings, the pushed commit, idempotency, rate
//! limits and errors.

use std::time::{Duration, Instant};

use scaffolder::actions::publish::{PublishGithub, PublishGithubPullRequest};
use serde_json::{json, Value};

use crate::publish::fake_github::{Failure, FakeGithub};
use crate::publish::helpers::{git, integrations, Harness};

const TOKEN: &str = "ghp_test";

fn setup() -> (FakeGithub, Harness, PublishGithub, PublishGithubPullRequest) {
    let github = FakeGithub::start(Some(TOKEN));
    let h = Harness::new();
    h.write("README.md", "# svc\n");
    h.write("src/main.rs", "fn main() {}\n");
    h.write(".gitignore", "*.log\n");
    h.write("debug.log", "not published\n");
    let scm = integrations(&github.api_base, Some(TOKEN), &h.dir.path().join("local"));
    (
        github,
        h,
        PublishGithub::new(scm.clone()),
        PublishGithubPullRequest::new(scm),
    )
}

fn publish_input(repo: &str) -> Value {
    json!({
        "repoUrl": format!("github.example?owner=acme&repo={repo}"),
        "description": "A service",
        "defaultBranch": "main",
        "repoVisibility": "internal",
        "topics": ["Rust", "backstage"],
        "collaborators": [{"user": "alice", "access": "push"}, {"team": "acme/devs", "access": "admin"}],
        "requireCodeOwnerReviews": true,
        "requiredStatusCheckContexts": ["ci/build"],
        "gitCommitMessage": "Initial import",
        "gitAuthorName": "Jane Doe",
        "gitAuthorEmail": "jane@example.com",
    })
}

#[tokio::test]
async fn publish_creates_the_repository_and_pushes_the_workspace_in_one_commit() {
    let (github, h, publish, _) = setup();
    let out = h.run(&publish, publish_input("svc")).await.expect("publish succeeds");
    let bare = github.bare("acme", "svc");

    assert_eq!(out["remoteUrl"], json!(format!("file://{}", bare.display())));
    assert_eq!(
        out["repoContentsUrl"],
        json!("https://github.example/acme/svc/blob/main")
    );
    let head = git(&bare, &["rev-parse", "refs/heads/main"]);
    assert_eq!(out["commitHash"], json!(head.trim()));

    // One commit with the workspace (minus ignored files), message, author and trailer.
    assert_eq!(git(&bare, &["rev-list", "--count", "main"]).trim(), "1");
    let files = git(&bare, &["ls-tree", "-r", "--name-only", "main"]);
    assert_eq!(
        files.lines().collect::<Vec<_>>(),
        vec![".gitignore", "README.md", "src/main.rs"]
    );
    assert_eq!(git(&bare, &["show", "main:src/main.rs"]), "fn main() {}\n");
    let message = git(&bare, &["log", "-1", "--format=%B", "main"]);
    assert!(message.starts_with("Initial import\n"), "{message}");
    assert!(
        message.contains(&format!("Scaffolder-Task: {}", h.task_id)),
        "{message}"
    );
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%an <%ae>", "main"]).trim(),
        "Jane Doe <jane@example.com>"
    );

    // Repository settings went through the REST API with the token.
    let created = github.requests("POST", "/orgs/acme/repos");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].authorization.as_deref(), Some("Bearer ghp_test"));
    assert_eq!(created[0].body["visibility"], json!("internal"));
    assert_eq!(created[0].body["description"], json!("A service"));
    let state = github.state.lock().unwrap();
    assert_eq!(state.topics["acme/svc"], vec!["rust", "backstage"]);
    assert_eq!(
        state.collaborators["acme/svc"],
        vec![("alice".to_string(), "push".to_string())]
    );
    assert_eq!(state.teams["acme/svc"], vec![("devs".to_string(), "admin".to_string())]);
    let protection = &state.protection["acme/svc#main"];
    assert_eq!(protection["required_status_checks"]["contexts"], json!(["ci/build"]));
    assert_eq!(
        protection["required_pull_request_reviews"]["require_code_owner_reviews"],
        json!(true)
    );
    assert_eq!(protection["enforce_admins"], json!(true));
}

#[tokio::test]
async fn a_user_owner_gets_a_user_repository() {
    let (github, h, publish, _) = setup();
    h.run(
        &publish,
        json!({"repoUrl": "github.example?owner=me&repo=tool", "protectDefaultBranch": false}),
    )
    .await
    .expect("publish succeeds");
    assert_eq!(github.requests("POST", "/user/repos").len(), 1);
    // Backstage's default branch is master.
    let bare = github.bare("me", "tool");
    git(&bare, &["rev-parse", "refs/heads/master"]);
    assert!(github.requests("PUT", "/protection").is_empty());
}

#[tokio::test]
async fn a_rerun_of_the_same_task_adopts_its_repository() {
    let (github, h, publish, _) = setup();
    let first = h.run(&publish, publish_input("svc")).await.expect("first run");
    h.write("later.txt", "changed before the retry\n");
    let second = h
        .run(&publish, publish_input("svc"))
        .await
        .expect("the rerun adopts the repository");
    assert_ne!(first["commitHash"], second["commitHash"]);
    let bare = github.bare("acme", "svc");
    assert_eq!(
        git(&bare, &["rev-list", "--count", "main"]).trim(),
        "1",
        "the commit is replaced"
    );
    assert!(git(&bare, &["ls-tree", "-r", "--name-only", "main"]).contains("later.txt"));
    assert!(h.log_text().contains("Adopted acme/svc"), "{}", h.log_text());

    // A crash between creating and pushing left an empty repository: adopted too.
    github.add_repo("acme", "empty", false);
    let out = h
        .run(&publish, publish_input("empty"))
        .await
        .expect("empty repos are adopted");
    assert_eq!(
        out["remoteUrl"],
        json!(format!("file://{}", github.bare("acme", "empty").display()))
    );
}

#[tokio::test]
async fn a_foreign_repository_is_refused_clearly() {
    let (github, h, publish, _) = setup();
    github.add_repo("acme", "taken", true);
    let err = h.run(&publish, publish_input("taken")).await.unwrap_err().to_string();
    assert!(err.contains("acme/taken") && err.contains("did not make"), "{err}");
    // Nothing was changed on the foreign repository.
    let bare = github.bare("acme", "taken");
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%s", "main"]).trim(),
        "someone else's work"
    );
    assert!(github.requests("PUT", "/topics").is_empty());

    // Another task cannot take over a repository this task published either.
    h.run(&publish, publish_input("mine")).await.expect("published");
    let other = Harness::new();
    other.write("x", "y");
    let err = other
        .run(&publish, publish_input("mine"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("did not make"), "{err}");
}

#[tokio::test]
async fn rate_limits_are_waited_out_with_their_hints() {
    let (github, h, publish, _) = setup();
    github.fail(Failure {
        method: "POST",
        path_suffix: "/orgs/acme/repos".into(),
        status: 403,
        headers: vec![("retry-after", "1".into())],
        body: json!({"message": "You have exceeded a secondary rate limit"}),
        times: 1,
    });
    github.fail(Failure {
        method: "GET",
        path_suffix: "/users/acme".into(),
        status: 429,
        headers: vec![("retry-after", "1".into())],
        body: json!({"message": "Too many requests"}),
        times: 1,
    });
    let reset = chrono::Utc::now().timestamp() + 1;
    github.fail(Failure {
        method: "PUT",
        path_suffix: "/topics".into(),
        status: 403,
        headers: vec![
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset", reset.to_string()),
        ],
        body: json!({"message": "API rate limit exceeded"}),
        times: 1,
    });
    let started = Instant::now();
    h.run(&publish, publish_input("svc"))
        .await
        .expect("publish succeeds after waiting");
    assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(github.requests("POST", "/orgs/acme/repos").len(), 2);
    assert_eq!(github.requests("GET", "/users/acme").len(), 2);
    assert_eq!(github.requests("PUT", "/topics").len(), 2);
    assert_eq!(
        github.state.lock().unwrap().topics["acme/svc"],
        vec!["rust", "backstage"]
    );
}

#[tokio::test]
async fn a_rate_limit_beyond_the_longest_wait_fails_at_once() {
    let (github, h, publish, _) = setup();
    github.fail(Failure {
        method: "GET",
        path_suffix: "/users/acme".into(),
        status: 429,
        headers: vec![("retry-after", "3600".into())],
        body: json!({"message": "Too many requests"}),
        times: 5,
    });
    let err = h.run(&publish, publish_input("svc")).await.unwrap_err().to_string();
    assert!(err.contains("rate limit exceeded") && err.contains("3600"), "{err}");
    // Given up at the first answer: no wait, no second request.
    assert_eq!(github.requests("GET", "/users/acme").len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let (github, h, publish, _) = setup();
    github.fail(Failure {
        method: "POST",
        path_suffix: "/orgs/acme/repos".into(),
        status: 502,
        headers: vec![],
        body: json!({"message": "Bad Gateway"}),
        times: 2,
    });
    h.run(&publish, publish_input("svc"))
        .await
        .expect("the third attempt succeeds");
    assert_eq!(github.requests("POST", "/orgs/acme/repos").len(), 3);

    github.fail(Failure {
        method: "POST",
        path_suffix: "/orgs/acme/repos".into(),
        status: 503,
        headers: vec![],
        body: json!({"message": "Service Unavailable"}),
        times: 10,
    });
    let err = h.run(&publish, publish_input("other")).await.unwrap_err().to_string();
    assert!(
        err.contains("answered 503") && err.contains("Service Unavailable"),
        "{err}"
    );
    assert_eq!(
        github.requests("POST", "/orgs/acme/repos").len(),
        6,
        "3 more attempts, then it gives up"
    );
}

#[tokio::test]
async fn a_repository_answer_without_clone_url_fails_naming_the_field() {
    let (github, h, publish, _) = setup();
    github.fail(Failure {
        method: "POST",
        path_suffix: "/orgs/acme/repos".into(),
        status: 201,
        headers: vec![],
        body: json!({"name": "svc", "html_url": "https://github.example/acme/svc", "default_branch": "main"}),
        times: 1,
    });
    let err = h.run(&publish, publish_input("svc")).await.unwrap_err().to_string();
    assert!(
        err.contains("unexpected body") && err.contains("missing field `clone_url`"),
        "{err}"
    );
    // Nothing was pushed to an empty URL.
    assert!(github.requests("PUT", "/topics").is_empty());
}

#[tokio::test]
async fn bad_credentials_fail_with_a_clear_message() {
    let (_github, h, publish, _) = setup();
    let mut input = publish_input("svc");
    input["token"] = json!("wrong");
    let err = h.run(&publish, input).await.unwrap_err().to_string();
    assert!(
        err.contains("rejected the credentials") && err.contains("Bad credentials"),
        "{err}"
    );
}

#[tokio::test]
async fn pull_requests_push_one_branch_and_update_an_existing_request() {
    let (github, h, publish, pr) = setup();
    h.run(&publish, publish_input("svc")).await.expect("published");
    h.write("docs/index.md", "# Docs\n");
    h.write("docs/run.sh", "#!/bin/sh\n");
    let executable = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(h.workspace.join("docs/run.sh"), executable).unwrap();
    let input = json!({
        "repoUrl": "github.example?owner=acme&repo=svc",
        "branchName": "add-docs",
        "title": "Add docs",
        "description": "Adds the docs",
        "sourcePath": "docs",
        "targetPath": "documentation",
        "reviewers": ["bob"],
        "teamReviewers": ["devs"],
        "draft": true,
    });
    let out = h.run(&pr, input.clone()).await.expect("pull request");
    assert_eq!(out["pullRequestNumber"], json!(1));
    assert_eq!(out["remoteUrl"], json!("https://github.example/acme/svc/pull/1"));
    assert_eq!(out["targetBranchName"], json!("main"));

    let bare = github.bare("acme", "svc");
    let files = git(&bare, &["ls-tree", "-r", "add-docs"]);
    assert!(
        files.contains("100755 blob") && files.contains("documentation/run.sh"),
        "{files}"
    );
    assert!(
        files.contains("documentation/index.md") && files.contains("README.md"),
        "{files}"
    );
    assert_eq!(git(&bare, &["rev-list", "--count", "main..add-docs"]).trim(), "1");
    assert_eq!(git(&bare, &["log", "-1", "--format=%s", "add-docs"]).trim(), "Add docs");
    {
        let state = github.state.lock().unwrap();
        let pull = &state.pulls["acme/svc"][0];
        assert_eq!(pull["base"]["ref"], json!("main"));
        assert_eq!(pull["draft"], json!(true));
        assert_eq!(
            state.reviewers["acme/svc#1"],
            json!({"reviewers": ["bob"], "team_reviewers": ["devs"]})
        );
    }

    // Running again (same task) reuses the pull request; `update` rewrites it.
    h.write("docs/index.md", "# Docs v2\n");
    let again = h.run(&pr, input.clone()).await.expect("rerun");
    assert_eq!(again["pullRequestNumber"], json!(1));
    let mut update = input.clone();
    update["update"] = json!(true);
    update["title"] = json!("Add docs (v2)");
    let other = Harness::new();
    other.write("docs/index.md", "# Docs v3\n");
    let updated = other.run(&pr, update).await.expect("update");
    assert_eq!(updated["pullRequestNumber"], json!(1));
    assert_eq!(git(&bare, &["show", "add-docs:documentation/index.md"]), "# Docs v3\n");
    assert_eq!(
        github.state.lock().unwrap().pulls["acme/svc"][0]["title"],
        json!("Add docs (v2)")
    );
    assert_eq!(github.requests("POST", "/pulls").len(), 1);

    // Without `update`, another task's open pull request is left alone.
    let third = Harness::new();
    third.write("docs/index.md", "nope\n");
    let err = third.run(&pr, input).await.unwrap_err().to_string();
    assert!(err.contains("update: true"), "{err}");
}

#[tokio::test]
async fn pull_request_dry_run_touches_nothing() {
    let (github, h, _, pr) = setup();
    let input =
        json!({"repoUrl": "github.example?owner=acme&repo=svc", "branchName": "b", "title": "t", "description": "d"});
    let out = h.run_with(&pr, input, true).await.expect("dry run");
    assert_eq!(out["pullRequestNumber"], json!(43));
    assert_eq!(out["targetBranchName"], json!("b"));
    assert_eq!(out["remoteUrl"], json!("github.example?owner=acme&repo=svc"));
    assert!(github.state.lock().unwrap().requests.is_empty());
}
