//! The `github:*` actions against the fake GitHub (which checks every
//! request against GitHub's REST description): what each one leaves on
//! GitHub, that a re-run of the same step neither fails nor duplicates,
//! and their errors.

use std::sync::Arc;

use scaffolder::actions::github;
use scaffolder::actions::publish::PublishGithubPullRequest;
use scaffolder::actions::{Action, ActionError};
use scaffolder::scm::ScmIntegrations;
use serde_json::{json, Map, Value};

use crate::publish::fake_github::FakeGithub;
use crate::publish::helpers::{git, integrations, Harness};

const TOKEN: &str = "ghp_actions";
const REPO_URL: &str = "github.example?owner=acme&repo=svc";

struct Setup {
    github: FakeGithub,
    h: Harness,
    scm: Arc<ScmIntegrations>,
}

fn setup() -> Setup {
    let github = FakeGithub::start(Some(TOKEN));
    let h = Harness::new();
    h.write("README.md", "# svc\n");
    let scm = integrations(&github.api_base, Some(TOKEN), &h.dir.path().join("local"));
    Setup { github, h, scm }
}

impl Setup {
    fn action(&self, id: &str) -> Arc<dyn Action> {
        github::actions(&self.scm)
            .into_iter()
            .find(|a| a.id() == id)
            .unwrap_or_else(|| panic!("{id} is registered"))
    }

    /// Runs `id` twice with the same input, as a retried step does; both
    /// runs must succeed with the same outputs.
    async fn run_twice(&self, id: &str, input: Value) -> Map<String, Value> {
        let action = self.action(id);
        let first = self.h.run(action.as_ref(), input.clone()).await.expect("first run");
        let second = self.h.run(action.as_ref(), input).await.expect("re-run");
        assert_eq!(first, second, "{id}: a re-run answers the same outputs");
        first
    }

    async fn fails(&self, id: &str, input: Value) -> String {
        let action = self.action(id);
        match self.h.run(action.as_ref(), input).await {
            Ok(out) => panic!("{id} should fail, answered {out:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn state<T>(&self, read: impl FnOnce(&crate::publish::fake_github::State) -> T) -> T {
        read(&self.github.state.lock().expect("state"))
    }
}

#[tokio::test]
async fn environment_with_policies_reviewers_variables_and_sealed_secrets() {
    let s = setup();
    s.github.add_repo("acme", "svc", true);
    let input = json!({
        "repoUrl": REPO_URL,
        "name": "production",
        "deploymentBranchPolicy": {"protected_branches": false, "custom_branch_policies": true},
        "customBranchPolicyNames": ["main"],
        "customTagPolicyNames": ["v*"],
        "waitTimer": 5,
        "preventSelfReview": true,
        "reviewers": ["user:default/alice", "group:default/platform", "user:default/ghost"],
        "environmentVariables": {"CLUSTER": "prod-eu"},
        "secrets": {"DEPLOY_TOKEN": "s3cr3t"},
    });
    s.run_twice("github:environment:create", input).await;
    let key = "acme/svc#production";
    let environment = s.state(|st| st.environments[key].clone());
    assert_eq!(environment["wait_timer"], json!(5));
    assert_eq!(environment["prevent_self_review"], json!(true));
    assert_eq!(
        environment["reviewers"],
        json!([{"type": "User", "id": 1001}, {"type": "Team", "id": 2001}])
    );
    assert_eq!(
        environment["deployment_branch_policy"],
        json!({"protected_branches": false, "custom_branch_policies": true})
    );
    let policies = s.state(|st| st.branch_policies[key].clone());
    assert_eq!(
        policies
            .iter()
            .map(|p| (p["name"].clone(), p["type"].clone()))
            .collect::<Vec<_>>(),
        [(json!("main"), json!("branch")), (json!("v*"), json!("tag"))],
        "the re-run added no second policy"
    );
    assert_eq!(s.state(|st| st.variables[key]["CLUSTER"].clone()), "prod-eu");
    // The fake opened the sealed box with its private key.
    assert_eq!(s.state(|st| st.secrets[key]["DEPLOY_TOKEN"].clone()), "s3cr3t");
    assert!(
        s.h.log_text().contains("user:default/ghost was not found"),
        "{}",
        s.h.log_text()
    );

    // A re-run with a changed variable updates it.
    s.h.run(
        s.action("github:environment:create").as_ref(),
        json!({"repoUrl": REPO_URL, "name": "production", "environmentVariables": {"CLUSTER": "prod-us"}}),
    )
    .await
    .expect("update");
    assert_eq!(s.state(|st| st.variables[key]["CLUSTER"].clone()), "prod-us");

    let err = s
        .fails(
            "github:environment:create",
            json!({"repoUrl": REPO_URL, "name": "x", "deploymentBranchPolicy": {"protected_branches": true, "custom_branch_policies": true}}),
        )
        .await;
    assert!(err.contains("exactly one"), "{err}");
    let err = s
        .fails(
            "github:environment:create",
            json!({"repoUrl": REPO_URL, "name": "x", "waitTimer": 1.5}),
        )
        .await;
    assert!(err.contains("waitTimer"), "{err}");
    let err = s
        .fails(
            "github:environment:create",
            json!({"repoUrl": "github.example?owner=acme&repo=nope", "name": "x"}),
        )
        .await;
    assert!(err.contains("404"), "{err}");
}

#[tokio::test]
async fn webhook_is_created_once_and_updated_on_a_rerun() {
    let s = setup();
    s.github.add_repo("acme", "svc", true);
    let input = json!({
        "repoUrl": REPO_URL,
        "webhookUrl": "https://argocd.example.com/api/webhook",
        "webhookSecret": "hush",
        "contentType": "json",
    });
    s.run_twice("github:webhook", input).await;
    let hooks = s.state(|st| st.hooks["acme/svc"].clone());
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["events"], json!(["push"]));
    assert_eq!(hooks[0]["active"], json!(true));
    assert_eq!(hooks[0]["config"]["content_type"], json!("json"));
    assert_eq!(hooks[0]["config"]["insecure_ssl"], json!("0"));
    let id = hooks[0]["id"].clone();
    assert_eq!(
        s.state(|st| st.settings[&format!("acme/svc#hook{id}-secret")].clone()),
        json!("hush")
    );

    s.h.run(
        s.action("github:webhook").as_ref(),
        json!({"repoUrl": REPO_URL, "webhookUrl": "https://argocd.example.com/api/webhook", "events": ["push", "pull_request"], "active": false, "insecureSsl": true}),
    )
    .await
    .expect("update");
    let hooks = s.state(|st| st.hooks["acme/svc"].clone());
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["events"], json!(["push", "pull_request"]));
    assert_eq!(hooks[0]["active"], json!(false));
    assert_eq!(hooks[0]["config"]["content_type"], json!("form"));
    assert_eq!(hooks[0]["config"]["insecure_ssl"], json!("1"));

    let err = s
        .fails(
            "github:webhook",
            json!({"repoUrl": REPO_URL, "webhookUrl": "https://x.example", "events": ["nonsense"]}),
        )
        .await;
    assert!(err.contains("Invalid input"), "{err}");
}

#[tokio::test]
async fn deploy_key_and_its_private_key_secret() {
    let s = setup();
    s.github.add_repo("acme", "svc", true);
    let out = s
        .run_twice(
            "github:deployKey:create",
            json!({
                "repoUrl": REPO_URL,
                "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGitOpsKey gitops@example",
                "privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n",
                "deployKeyName": "gitops deploy",
            }),
        )
        .await;
    assert_eq!(out["privateKeySecretName"], json!("GITOPS_DEPLOY_PRIVATE_KEY"));
    let keys = s.state(|st| st.keys["acme/svc"].clone());
    assert_eq!(keys.len(), 1, "the re-run found the key: {keys:?}");
    assert_eq!(keys[0]["title"], json!("gitops deploy"));
    assert!(s
        .state(|st| st.secrets["acme/svc"]["GITOPS_DEPLOY_PRIVATE_KEY"].clone())
        .contains("abc"));

    let out = s
        .h
        .run(
            s.action("github:deployKey:create").as_ref(),
            json!({"repoUrl": REPO_URL, "publicKey": "ssh-ed25519 AAAAOther", "privateKey": "k", "deployKeyName": "other", "privateKeySecretName": "MY_KEY"}),
        )
        .await
        .expect("second key");
    assert_eq!(out["privateKeySecretName"], json!("MY_KEY"));
    assert_eq!(s.state(|st| st.keys["acme/svc"].len()), 2);
}

#[tokio::test]
async fn autolinks_branch_protection_and_rulesets() {
    let s = setup();
    s.github.add_repo("acme", "svc", true);
    s.run_twice(
        "github:autolinks:create",
        json!({"repoUrl": REPO_URL, "keyPrefix": "TICKET-", "urlTemplate": "https://tracker.example/TICKET-<num>"}),
    )
    .await;
    let links = s.state(|st| st.autolinks["acme/svc"].clone());
    assert_eq!(links.len(), 1);
    assert_eq!(links[0]["is_alphanumeric"], json!(true));
    let err = s
        .fails(
            "github:autolinks:create",
            json!({"repoUrl": REPO_URL, "keyPrefix": "X-", "urlTemplate": "https://tracker.example/"}),
        )
        .await;
    assert!(err.contains("<num>"), "{err}");

    // The default branch comes from the repository (`main`).
    s.run_twice(
        "github:branch-protection:create",
        json!({"repoUrl": REPO_URL, "requiredApprovingReviewCount": 2, "requiredStatusCheckContexts": ["ci"], "requiredCommitSigning": true}),
    )
    .await;
    let protection = s.state(|st| st.protection["acme/svc#main"].clone());
    assert_eq!(
        protection["required_pull_request_reviews"]["required_approving_review_count"],
        json!(2)
    );
    assert_eq!(protection["block_creations"], json!(false));
    assert!(s.state(|st| st.signatures.contains("acme/svc#main")));

    let input = json!({
        "repoUrl": REPO_URL,
        "name": "main",
        "conditions": {"ref_name": {"include": ["~DEFAULT_BRANCH"], "exclude": []}},
        "rules": [{"type": "deletion"}, {"type": "pull_request", "parameters": {
            "required_approving_review_count": 1, "dismiss_stale_reviews_on_push": true,
            "require_code_owner_review": false, "require_last_push_approval": false,
            "required_review_thread_resolution": false}}],
        "bypassActors": [{"actor_id": 5, "actor_type": "RepositoryRole", "bypass_mode": "always"}],
    });
    let out = s.run_twice("github:repo:rulesets:create", input).await;
    let rulesets = s.state(|st| st.rulesets["acme/svc"].clone());
    assert_eq!(rulesets.len(), 1, "the re-run updated the ruleset");
    assert_eq!(out["id"], rulesets[0]["id"]);
    assert_eq!(rulesets[0]["enforcement"], json!("active"));
    assert_eq!(rulesets[0]["target"], json!("branch"));

    // A rule GitHub does not know is refused by GitHub's description.
    let err = s
        .fails(
            "github:repo:rulesets:create",
            json!({"repoUrl": REPO_URL, "name": "bad", "rules": [{"type": "no_such_rule"}]}),
        )
        .await;
    assert!(err.contains("400"), "{err}");
    s.github.forget_violations();
}

#[tokio::test]
async fn issues_labels_pages_and_workflow_dispatch() {
    let s = setup();
    s.github.add_repo("acme", "svc", true);
    let out = s
        .h
        .run(
            s.action("github:issues:create").as_ref(),
            json!({"repoUrl": REPO_URL, "title": "Set up alerts", "body": "Please", "labels": ["onboarding"], "assignees": ["alice"], "milestone": 3}),
        )
        .await
        .expect("issue");
    assert_eq!(out["issueNumber"], json!(1));
    assert_eq!(out["issueUrl"], json!("https://github.example/acme/svc/issues/1"));
    assert_eq!(s.state(|st| st.issues["acme/svc"][0]["milestone"].clone()), json!(3));

    s.run_twice(
        "github:issues:label",
        json!({"repoUrl": REPO_URL, "number": 1, "labels": ["scaffolded", "onboarding"]}),
    )
    .await;
    assert_eq!(
        s.state(|st| st.labels["acme/svc#1"].clone()),
        ["scaffolded", "onboarding"]
    );
    // Labelling is a nicety: a missing issue is a warning, as in Backstage.
    s.h.run(
        s.action("github:issues:label").as_ref(),
        json!({"repoUrl": REPO_URL, "number": 99, "labels": ["x"]}),
    )
    .await
    .expect("a warning only");
    assert!(s.h.log_text().contains("Failed: adding labels to issue: '99'"));

    s.run_twice(
        "github:pages:enable",
        json!({"repoUrl": REPO_URL, "sourcePath": "/docs"}),
    )
    .await;
    assert_eq!(
        s.state(|st| st.pages["acme/svc"].clone()),
        json!({"build_type": "workflow", "source": {"branch": "main", "path": "/docs"}})
    );

    let out = s
        .h
        .run(
            s.action("github:actions:dispatch").as_ref(),
            json!({"repoUrl": REPO_URL, "workflowId": "deploy.yaml", "branchOrTagName": "main", "workflowInputs": {"env": "staging"}, "returnWorkflowRunDetails": true}),
        )
        .await
        .expect("dispatch");
    assert_eq!(out["workflowRunId"], json!(7001));
    assert_eq!(
        out["workflowRunHtmlUrl"],
        json!("https://github.example/acme/svc/actions/runs/7001")
    );
    let out =
        s.h.run(
            s.action("github:actions:dispatch").as_ref(),
            json!({"repoUrl": REPO_URL, "workflowId": "ci.yaml", "branchOrTagName": "main"}),
        )
        .await
        .expect("dispatch without details");
    assert!(out.is_empty());
    let dispatches = s.state(|st| st.dispatches.clone());
    assert_eq!(
        dispatches[0].1,
        json!({"ref": "main", "inputs": {"env": "staging"}, "return_run_details": true})
    );
    assert_eq!(dispatches[1].1, json!({"ref": "main"}));
    let err = s
        .fails(
            "github:actions:dispatch",
            json!({"repoUrl": REPO_URL, "workflowId": "missing.yaml", "branchOrTagName": "main"}),
        )
        .await;
    assert!(err.contains("404"), "{err}");
}

#[tokio::test]
async fn repo_create_then_repo_push_and_their_reruns() {
    let s = setup();
    let create = json!({
        "repoUrl": REPO_URL,
        "repoVisibility": "internal",
        "description": "Payments",
        "topics": ["Go"],
        "repoVariables": {"SERVICE": "svc"},
        "secrets": {"API_KEY": "k3y"},
        "workflowAccess": "organization",
        "customProperties": {"tier": "1", "owners": ["a", "b"]},
    });
    let out = s.run_twice("github:repo:create", create).await;
    let bare = s.github.bare("acme", "svc");
    assert_eq!(out["remoteUrl"], json!(format!("file://{}", bare.display())));
    assert_eq!(
        out["repoContentsUrl"],
        json!("https://github.example/acme/svc/blob/main")
    );
    assert_eq!(
        s.state(|st| st.repos["acme/svc"]["visibility"].clone()),
        json!("internal")
    );
    assert_eq!(s.state(|st| st.secrets["acme/svc"]["API_KEY"].clone()), "k3y");
    assert_eq!(s.state(|st| st.variables["acme/svc"]["SERVICE"].clone()), "svc");
    assert_eq!(
        s.state(|st| st.settings["acme/svc#actions/permissions/access"].clone()),
        json!({"access_level": "organization"})
    );
    assert_eq!(s.state(|st| st.topics["acme/svc"].clone()), ["go"]);

    let push = json!({"repoUrl": REPO_URL, "defaultBranch": "main", "gitCommitMessage": "Skeleton"});
    let first =
        s.h.run(s.action("github:repo:push").as_ref(), push.clone())
            .await
            .expect("push");
    let head = git(&bare, &["rev-parse", "refs/heads/main"]);
    assert_eq!(first["commitHash"], json!(head.trim()));
    assert_eq!(
        first["repoContentsUrl"],
        json!("https://github.example/acme/svc/blob/main")
    );
    assert!(s.state(|st| st.protection.contains_key("acme/svc#main")));
    // A retried push replaces the commit of its earlier attempt.
    let second =
        s.h.run(s.action("github:repo:push").as_ref(), push.clone())
            .await
            .expect("re-push");
    assert_eq!(git(&bare, &["rev-list", "--count", "main"]).trim(), "1");
    assert_eq!(second["remoteUrl"], first["remoteUrl"]);
    // Another task cannot push over it.
    let other = Harness::new();
    other.write("x", "y");
    let err = other
        .run(s.action("github:repo:push").as_ref(), push)
        .await
        .expect_err("foreign commits are refused")
        .to_string();
    assert!(err.contains("did not make"), "{err}");
}

#[tokio::test]
async fn the_actions_refuse_the_local_git_host_and_unknown_hosts() {
    let s = setup();
    for (url, needle) in [
        ("git.local?owner=o&repo=r", "local git host"),
        ("elsewhere.example?owner=o&repo=r", "No matching integration"),
        ("github.example?repo=r", "missing owner"),
    ] {
        let err = s
            .fails("github:issues:create", json!({"repoUrl": url, "title": "t"}))
            .await;
        assert!(err.contains(needle), "{url}: {err}");
    }
    let err =
        s.h.run_with(
            s.action("github:webhook").as_ref(),
            json!({"repoUrl": REPO_URL, "webhookUrl": 3}),
            false,
        )
        .await
        .expect_err("schema");
    assert!(matches!(err, ActionError::InvalidInput(_)), "{err}");
}

#[tokio::test]
async fn pull_requests_delete_files_to_delete_in_their_commit() {
    let s = setup();
    s.github.add_repo("acme", "svc", false);
    let bare = s.github.bare("acme", "svc");
    // A first commit on main with two files.
    let seed = Harness::new();
    seed.write("old.txt", "old\n");
    seed.write("docs/a.md", "a\n");
    seed.write("keep.txt", "keep\n");
    let push = s.action("github:repo:push");
    seed.run(
        push.as_ref(),
        json!({"repoUrl": REPO_URL, "defaultBranch": "main", "protectDefaultBranch": false}),
    )
    .await
    .expect("seed");

    let pr = PublishGithubPullRequest::new(s.scm.clone());
    s.h.write("new.txt", "new\n");
    let out =
        s.h.run(
            &pr,
            json!({"repoUrl": REPO_URL, "branchName": "cleanup", "title": "Clean up", "description": "d",
                   "filesToDelete": ["old.txt", "docs", "never-existed.txt"], "assignees": ["alice"]}),
        )
        .await
        .expect("pull request");
    assert_eq!(out["pullRequestNumber"], json!(1));
    assert_eq!(
        s.state(|st| st.pulls["acme/svc"][0]["assignees"].clone()),
        json!(["alice"])
    );
    let files = git(&bare, &["ls-tree", "-r", "--name-only", "cleanup"]);
    assert_eq!(files.lines().collect::<Vec<_>>(), ["README.md", "keep.txt", "new.txt"]);
    let err = s
        .h
        .run(
            &pr,
            json!({"repoUrl": REPO_URL, "branchName": "cleanup2", "title": "t", "description": "d", "filesToDelete": ["../outside"]}),
        )
        .await
        .expect_err("escapes are refused")
        .to_string();
    assert!(err.contains("outside"), "{err}");
}

#[tokio::test]
async fn a_missing_repository_fails_each_action_clearly() {
    let s = setup();
    let missing = "github.example?owner=acme&repo=nope";
    for (id, input) in [
        ("github:branch-protection:create", json!({"repoUrl": missing})),
        (
            "github:deployKey:create",
            json!({"repoUrl": missing, "publicKey": "ssh-ed25519 AAAA", "privateKey": "k", "deployKeyName": "k"}),
        ),
        ("github:pages:enable", json!({"repoUrl": missing})),
        ("github:issues:create", json!({"repoUrl": missing, "title": "t"})),
        ("github:repo:push", json!({"repoUrl": missing})),
        (
            "github:webhook",
            json!({"repoUrl": missing, "webhookUrl": "https://x.example/h"}),
        ),
        (
            "github:autolinks:create",
            json!({"repoUrl": missing, "keyPrefix": "T-", "urlTemplate": "https://t.example/<num>"}),
        ),
        (
            "github:repo:rulesets:create",
            json!({"repoUrl": missing, "name": "main"}),
        ),
        (
            "github:actions:dispatch",
            json!({"repoUrl": missing, "workflowId": "ci.yaml", "branchOrTagName": "main"}),
        ),
    ] {
        let err = s.fails(id, input).await;
        assert!(err.contains("404") || err.contains("not found"), "{id}: {err}");
    }
}
