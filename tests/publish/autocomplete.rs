//! Autocomplete providers: Backstage's `github` against the fake GitHub
//! server (octocrab over real HTTP, the caller's token), and ours, `gitops`
//! `clusters`, against an infra-gitops repository on the local git host.

use std::path::Path;
use std::sync::Arc;

use scaffolder::scm::reader::UrlReader;
use scaffolder::service::{AutocompleteRequest, AutocompleteService, ServiceError, Suggestion};
use serde_json::{json, Map, Value};

use crate::publish::fake_github::FakeGithub;
use crate::publish::helpers::{bare_repo, git, integrations};

fn request(token: Option<&str>, context: Value) -> AutocompleteRequest {
    AutocompleteRequest {
        token: token.map(str::to_owned),
        context: context.as_object().cloned().unwrap_or_else(Map::new),
    }
}

fn ids(results: &[Suggestion]) -> Vec<&str> {
    results.iter().map(|s| s.id.as_str()).collect()
}

fn service(api_base: &str, local: &Path, cache: &Path) -> AutocompleteService {
    let integrations = integrations(api_base, Some("integration-token"), local);
    let reader = Arc::new(UrlReader::new(integrations.clone(), cache.to_owned()));
    AutocompleteService::new(integrations, reader)
}

fn input_error(result: Result<Vec<Suggestion>, ServiceError>) -> String {
    match result {
        Err(ServiceError::Input(message)) => message,
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[tokio::test]
async fn github_lists_repositories_branches_and_owners_with_the_callers_token() {
    let github = FakeGithub::start(Some("user-token"));
    github.add_repo("acme", "svc", false);
    github.add_repo("someone", "tool", false);
    let dir = tempfile::tempdir().expect("tempdir");
    let service = service(&github.api_base, dir.path(), &dir.path().join("cache"));
    let host = json!({"host": "github.example"});
    let token = Some("user-token");

    let repos = service
        .complete("github", "repositoriesWithOwner", &request(token, host.clone()))
        .await
        .expect("repositories");
    assert_eq!(ids(&repos), ["acme/svc", "someone/tool"]);
    let owners = service
        .complete("github", "owners", &request(token, host.clone()))
        .await
        .expect("owners");
    assert_eq!(ids(&owners), ["acme"]);
    let context = json!({"host": "github.example", "owner": "acme", "repository": "svc"});
    let branches = service
        .complete("github", "branches", &request(token, context))
        .await
        .expect("branches");
    assert_eq!(ids(&branches), ["main", "develop"]);
    assert!(branches.iter().all(|s| s.title.is_none()));
    // The caller's token, never the integration's.
    let listed = github.requests("GET", "/user/repos");
    assert!(!listed.is_empty());
    assert!(
        listed
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer user-token")),
        "{listed:?}"
    );

    // Backstage's input errors, word for word.
    let missing = service
        .complete(
            "github",
            "branches",
            &request(token, json!({"host": "github.example", "owner": "acme"})),
        )
        .await;
    assert_eq!(
        input_error(missing),
        "Missing owner and/or repository context parameter"
    );
    let invalid = service.complete("github", "forks", &request(token, host.clone())).await;
    assert_eq!(input_error(invalid), "Invalid resource: forks");
    let no_token = service.complete("github", "owners", &request(None, host.clone())).await;
    assert_eq!(input_error(no_token), "Missing token query parameter");
    let unknown = service
        .complete("bitbucket", "owners", &request(token, host.clone()))
        .await;
    assert_eq!(input_error(unknown), "Unsupported provider: bitbucket");
    let no_host = service
        .complete("github", "owners", &request(token, json!({"host": "ghe.example"})))
        .await;
    assert_eq!(input_error(no_host), "No integration for host ghe.example");

    // GitHub's refusal keeps its status (Backstage shows octokit's HttpError).
    match service
        .complete("github", "owners", &request(Some("wrong-token"), host))
        .await
    {
        Err(ServiceError::Upstream { status, message }) => {
            assert_eq!(status, Some(401));
            assert!(message.contains("Bad credentials"), "{message}");
        }
        other => panic!("expected GitHub's 401, got {other:?}"),
    }
}

/// An infra-gitops repository on the local git host with two clusters.
fn infra_gitops(local: &Path) {
    let bare = local.join("soft-yt").join("infra-gitops.git");
    bare_repo(&bare, false);
    let work = local.join("work");
    for path in [
        "clusters/yc-prod/cluster.yaml",
        "clusters/onprem-dev/cluster.yaml",
        "README.md",
    ] {
        let file = work.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("dirs");
        std::fs::write(&file, "name: x\n").expect("write");
    }
    let run = |args: &[&str]| {
        crate::common::git::git(&work, args);
    };
    run(&["init", "--quiet", "-b", "main"]);
    run(&["add", "."]);
    run(&["commit", "--quiet", "-m", "clusters"]);
    run(&["push", "--quiet", &bare.display().to_string(), "main"]);
    assert!(git(&bare, &["rev-parse", "main"]).trim().len() >= 40);
}

#[tokio::test]
async fn gitops_clusters_are_the_cluster_directories_of_the_infra_gitops_repository() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("git");
    infra_gitops(&local);
    let service = service("http://127.0.0.1:9/api/v3", &local, &dir.path().join("cache"));
    let context = json!({"repoUrl": "git.local?owner=soft-yt&repo=infra-gitops"});
    let clusters = service
        .complete("gitops", "clusters", &request(Some("user-token"), context))
        .await
        .expect("clusters");
    assert_eq!(ids(&clusters), ["onprem-dev", "yc-prod"]);

    let missing = service
        .complete("gitops", "clusters", &request(Some("t"), json!({})))
        .await;
    assert_eq!(input_error(missing), "Missing repoUrl context parameter");
    let other = service
        .complete(
            "gitops",
            "apps",
            &request(
                Some("t"),
                json!({"repoUrl": "git.local?owner=soft-yt&repo=infra-gitops"}),
            ),
        )
        .await;
    assert_eq!(input_error(other), "Invalid resource: apps");
    match service
        .complete(
            "gitops",
            "clusters",
            &request(Some("t"), json!({"repoUrl": "git.local?owner=soft-yt&repo=nope"})),
        )
        .await
    {
        Err(ServiceError::NotFound(message)) => assert!(message.contains("soft-yt/nope"), "{message}"),
        other => panic!("expected a missing repository, got {other:?}"),
    }
}
