//! Publishing to the local git host: bare repositories in a directory.

use std::sync::Arc;

use scaffolder::actions::publish::{PublishGit, PublishGithub, PublishGithubPullRequest};
use scaffolder::config::IntegrationSettings;
use scaffolder::scm::ScmIntegrations;
use serde_json::json;

use crate::publish::helpers::{git, Harness};

fn local_integrations(h: &Harness) -> Arc<ScmIntegrations> {
    let mut settings = IntegrationSettings::default();
    settings.local_git.dir = Some(h.dir.path().join("git"));
    Arc::new(ScmIntegrations::from_settings(&settings).expect("integrations"))
}

#[tokio::test]
async fn publish_creates_a_bare_repository_that_git_can_clone() {
    let h = Harness::new();
    h.write("README.md", "local\n");
    let scm = local_integrations(&h);
    let out = h
        .run(
            &PublishGithub::new(scm.clone()),
            json!({"repoUrl": "git.local?owner=acme&repo=svc", "defaultBranch": "main", "topics": ["x"]}),
        )
        .await
        .expect("published");
    let bare = h.dir.path().join("git/acme/svc.git");
    let remote = out["remoteUrl"].as_str().unwrap().to_owned();
    assert_eq!(remote, format!("file://{}", bare.display()));
    assert_eq!(out["repoContentsUrl"], json!(format!("{remote}/blob/main")));
    assert_eq!(out["commitHash"], json!(git(&bare, &["rev-parse", "main"]).trim()));
    assert!(h.log_text().contains("no settings for topics"), "{}", h.log_text());

    let clone = h.dir.path().join("clone");
    let status = std::process::Command::new("git")
        .args(["clone", "--quiet", &remote, clone.to_str().unwrap()])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(clone.join("README.md")).unwrap(), "local\n");

    // publish:git is the same action; the same task may publish again.
    h.run(
        &PublishGit::new(scm.clone()),
        json!({"repoUrl": "git.local?owner=acme&repo=svc", "defaultBranch": "main"}),
    )
    .await
    .expect("rerun adopts");
    let other = Harness::new();
    let err = other
        .run(
            &PublishGithub::new(scm),
            json!({"repoUrl": "git.local?owner=acme&repo=svc", "defaultBranch": "main"}),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("did not make"), "{err}");
}

#[tokio::test]
async fn unsafe_names_and_unknown_hosts_are_refused() {
    let h = Harness::new();
    let publish = PublishGithub::new(local_integrations(&h));
    for (url, needle) in [
        ("git.local?owner=..&repo=svc", "Invalid owner"),
        ("git.local?owner=acme&repo=.hidden", "Invalid repository name"),
        ("nowhere.example?owner=a&repo=b", "No matching integration"),
        ("git.local?repo=b", "missing owner"),
    ] {
        let err = h.run(&publish, json!({"repoUrl": url})).await.unwrap_err().to_string();
        assert!(err.contains(needle), "{url}: {err}");
    }
}

#[tokio::test]
async fn pull_requests_on_the_local_host_push_a_branch() {
    let h = Harness::new();
    h.write("README.md", "v1\n");
    let scm = local_integrations(&h);
    h.run(
        &PublishGithub::new(scm.clone()),
        json!({"repoUrl": "git.local?owner=acme&repo=svc"}),
    )
    .await
    .expect("published");
    h.write("README.md", "v2\n");
    let out = h
        .run(
            &PublishGithubPullRequest::new(scm),
            json!({"repoUrl": "git.local?owner=acme&repo=svc", "branchName": "change", "title": "Change", "description": "d"}),
        )
        .await
        .expect("branch pushed");
    let bare = h.dir.path().join("git/acme/svc.git");
    assert_eq!(out["targetBranchName"], json!("master"));
    assert_eq!(out["remoteUrl"], json!(format!("file://{}", bare.display())));
    assert!(out.get("pullRequestNumber").is_none());
    assert_eq!(git(&bare, &["show", "change:README.md"]), "v2\n");
    assert_eq!(git(&bare, &["show", "master:README.md"]), "v1\n");
    assert!(h.log_text().contains("has no pull requests"));
}
