//! The platform's own template end to end through the HTTP API: a task of
//! `app-base-go-react` on the local git host publishes the service repository
//! and registers its overlays in `infra-gitops`.

use std::path::PathBuf;

use serde_json::json;

use crate::api::helpers::{spawn_app_with, step_statuses, LIMIT};
use crate::common::git::{clone, git};

#[tokio::test]
async fn a_task_creates_the_service_repository_and_its_gitops_overlays() {
    let data = tempfile::tempdir().unwrap();
    let git_dir = data.path().join("git");
    let templates = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates");
    let app = spawn_app_with(|s| {
        s.integrations.local_git.dir = Some(git_dir.clone());
        s.templates.dirs.push(templates);
    })
    .await;

    let id = app
        .create_task(
            "template:default/app-base-go-react",
            json!({
                "name": "orders-api",
                "description": "Orders service",
                "owner": "group:default/team-a",
                "repoUrl": "git.local?owner=soft-yt&repo=orders-api",
                "clusters": ["onprem-dev", "yc-prod"],
                "gitopsRepoUrl": "git.local?owner=soft-yt&repo=infra-gitops",
            }),
        )
        .await;
    let events = app.events_until_completion(&id, LIMIT * 4).await;
    let completion = events.last().unwrap();
    assert_eq!(
        completion["body"]["message"],
        "Run completed with status: completed",
        "{:#?}",
        step_statuses(&events)
    );
    let statuses = step_statuses(&events);
    for step in ["fetch", "publish", "gitops"] {
        assert!(
            statuses.contains(&(step.to_owned(), "completed".to_owned())),
            "{step}: {statuses:?}"
        );
    }

    // The service repository: rendered files, GitHub's own expressions intact.
    let work = tempfile::tempdir().unwrap();
    let service = clone(&git_dir.join("soft-yt/orders-api.git"), work.path());
    let go_mod = std::fs::read_to_string(service.join("backend/go.mod")).unwrap();
    assert!(go_mod.contains("github.com/soft-yt/orders-api/backend"), "{go_mod}");
    assert!(service.join("frontend/package-lock.json").is_file());
    let workflow = std::fs::read_to_string(service.join(".github/workflows/ci.yml")).unwrap();
    assert!(
        workflow.contains("${{ github.sha }}"),
        "GitHub expressions were rendered away"
    );
    let catalog = std::fs::read_to_string(service.join("catalog-info.yaml")).unwrap();
    assert!(catalog.contains("backstage.io/kubernetes-id: orders-api"), "{catalog}");
    assert!(!catalog.contains("${{"), "{catalog}");
    assert_eq!(git(&service, &["rev-list", "--count", "HEAD"]).trim(), "1");

    // infra-gitops: the vendored base and one overlay per chosen cluster.
    let gitops = clone(&git_dir.join("soft-yt/infra-gitops.git"), work.path());
    assert!(gitops.join("apps/orders-api/base/kustomization.yaml").is_file());
    for cluster in ["onprem-dev", "yc-prod"] {
        let overlay =
            std::fs::read_to_string(gitops.join(format!("apps/orders-api/overlays/{cluster}/kustomization.yaml")))
                .unwrap();
        assert!(overlay.contains("ghcr.io/soft-yt/orders-api-backend"), "{overlay}");
        assert!(gitops
            .join(format!("clusters/{cluster}/argocd/apps-appset.yaml"))
            .is_file());
    }
    assert!(!gitops.join("apps/orders-api/overlays/sber-prod").exists());

    // The task's output points at both.
    let output = &completion["body"]["output"];
    let links = output["links"].as_array().unwrap();
    let repo_link = links
        .iter()
        .find(|l| l["title"] == "Repository")
        .expect("repository link");
    assert!(repo_link["url"].as_str().unwrap().contains("orders-api"), "{repo_link}");
    let gitops_link = links
        .iter()
        .find(|l| l["title"] == "GitOps commit")
        .expect("gitops link");
    assert!(
        gitops_link["url"].as_str().unwrap().contains("infra-gitops"),
        "{gitops_link}"
    );
    let text = output["text"][0]["content"].as_str().unwrap();
    assert!(
        text.contains("orders-api-onprem-dev") && text.contains("orders-api-yc-prod"),
        "{text}"
    );
}

/// The same template on a GitHub host (the fake GitHub, which checks every
/// request against GitHub's REST description): the repository gets its
/// ruleset on main, a `dev` and a protected `prod` environment, and the
/// GitOps repository a webhook to Argo CD, kept single across services.
#[tokio::test]
async fn on_github_the_template_protects_main_adds_environments_and_the_argocd_webhook() {
    use scaffolder::config::GithubIntegrationSettings;

    use crate::publish::fake_github::FakeGithub;

    let github = FakeGithub::start(Some("ghp_platform"));
    github.add_org("soft-yt", "team-a", 4242);
    github.add_repo("soft-yt", "infra-gitops", true);
    let templates = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates");
    let api_base = github.api_base.clone();
    let app = spawn_app_with(|s| {
        s.integrations.github.push(GithubIntegrationSettings {
            host: "github.example".into(),
            api_base_url: Some(api_base),
            token: Some("ghp_platform".into()),
            app: None,
        });
        s.templates.dirs.push(templates);
    })
    .await;

    for (service, clusters) in [
        ("orders-api", json!(["onprem-dev", "yc-prod"])),
        ("billing", json!(["onprem-dev"])),
    ] {
        let id = app
            .create_task(
                "template:default/app-base-go-react",
                json!({
                    "name": service,
                    "owner": "group:default/team-a",
                    "repoUrl": format!("github.example?owner=soft-yt&repo={service}"),
                    "clusters": clusters,
                    "gitopsRepoUrl": "github.example?owner=soft-yt&repo=infra-gitops",
                    "argocdWebhookUrl": "https://argocd.example/api/webhook",
                }),
            )
            .await;
        let events = app.events_until_completion(&id, LIMIT * 4).await;
        let completion = events.last().unwrap();
        assert_eq!(
            completion["body"]["message"],
            "Run completed with status: completed",
            "{service}: {:#?}",
            step_statuses(&events)
        );
    }

    let state = github.state.lock().unwrap();
    let ruleset = &state.rulesets["soft-yt/orders-api"][0];
    assert_eq!(ruleset["name"], "main");
    assert_eq!(ruleset["conditions"]["ref_name"]["include"], json!(["~DEFAULT_BRANCH"]));
    assert!(state.environments.contains_key("soft-yt/orders-api#dev"));
    let prod = &state.environments["soft-yt/orders-api#prod"];
    assert_eq!(prod["reviewers"], json!([{"type": "Team", "id": 4242}]));
    assert_eq!(prod["prevent_self_review"], json!(true));
    assert_eq!(
        state.branch_policies["soft-yt/orders-api#prod"][0]["name"],
        json!("main")
    );
    // billing goes to a dev cluster only: no prod environment.
    assert!(state.environments.contains_key("soft-yt/billing#dev"));
    assert!(!state.environments.contains_key("soft-yt/billing#prod"));
    // One webhook on the GitOps repository for both services.
    let hooks = &state.hooks["soft-yt/infra-gitops"];
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["config"]["url"], json!("https://argocd.example/api/webhook"));
    assert_eq!(hooks[0]["config"]["content_type"], json!("json"));
    assert!(!state.hooks.contains_key("soft-yt/orders-api"));
}

/// A service's whole life through the API: `app-base-go-react` registers it
/// on two clusters (no signed-in user: the service's repository owns it, and
/// the ApplicationSets get an https URL, not the local host's path);
/// `decommission-service` removes it from one cluster, refuses a caller
/// naming another repository (naming the owner), then removes it everywhere.
#[tokio::test]
async fn a_service_is_decommissioned_with_the_template_by_its_owner_only() {
    let data = tempfile::tempdir().unwrap();
    let git_dir = data.path().join("git");
    let templates = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates");
    let app = spawn_app_with(|s| {
        s.integrations.local_git.dir = Some(git_dir.clone());
        s.templates.dirs.push(templates);
    })
    .await;
    let id = app
        .create_task(
            "template:default/app-base-go-react",
            json!({
                "name": "billing",
                "description": "Billing",
                "owner": "group:default/team-a",
                "repoUrl": "git.local?owner=soft-yt&repo=billing",
                "clusters": ["onprem-dev", "yc-prod"],
                "gitopsRepoUrl": "git.local?owner=soft-yt&repo=infra-gitops",
            }),
        )
        .await;
    let events = app.events_until_completion(&id, LIMIT * 4).await;
    assert_eq!(
        events.last().unwrap()["body"]["message"],
        "Run completed with status: completed",
        "{:#?}",
        step_statuses(&events)
    );
    let work = tempfile::tempdir().unwrap();
    let gitops = clone(&git_dir.join("soft-yt/infra-gitops.git"), work.path());
    let marker = std::fs::read_to_string(gitops.join("apps/billing/.scaffolder.yaml")).unwrap();
    assert!(
        marker.contains("owner: repository:git.local/soft-yt/billing"),
        "{marker}"
    );
    let appset = std::fs::read_to_string(gitops.join("clusters/yc-prod/argocd/apps-appset.yaml")).unwrap();
    assert!(
        appset.contains("repoURL: https://git.local/soft-yt/infra-gitops.git"),
        "{appset}"
    );
    assert!(!appset.contains("file:"), "{appset}");

    let decommission = |clusters: serde_json::Value, repo: &str| {
        json!({
            "name": "billing",
            "clusters": clusters,
            "repoUrl": repo,
            "gitopsRepoUrl": "git.local?owner=soft-yt&repo=infra-gitops",
        })
    };
    let run = |values: serde_json::Value| {
        let app = &app;
        async move {
            let id = app.create_task("template:default/decommission-service", values).await;
            app.events_until_completion(&id, LIMIT * 4).await
        }
    };

    let events = run(decommission(json!(["yc-prod"]), "git.local?owner=soft-yt&repo=billing")).await;
    assert_eq!(
        events.last().unwrap()["body"]["message"],
        "Run completed with status: completed",
        "{events:#?}"
    );
    git(&gitops, &["pull", "-q", "--rebase", "origin", "main"]);
    assert!(!gitops.join("apps/billing/overlays/yc-prod").exists());
    assert!(gitops
        .join("apps/billing/overlays/onprem-dev/kustomization.yaml")
        .is_file());

    let events = run(decommission(json!([]), "git.local?owner=someone&repo=else")).await;
    let failure = events.last().unwrap();
    assert_eq!(failure["body"]["message"], "Run completed with status: failed");
    let text = serde_json::to_string(&events).unwrap();
    assert!(text.contains("repository:git.local/soft-yt/billing"), "{text}");

    let events = run(decommission(json!([]), "git.local?owner=soft-yt&repo=billing")).await;
    assert_eq!(
        events.last().unwrap()["body"]["message"],
        "Run completed with status: completed",
        "{events:#?}"
    );
    git(&gitops, &["pull", "-q", "--rebase", "origin", "main"]);
    assert!(!gitops.join("apps/billing").exists());
    assert!(gitops.join("clusters/yc-prod/kustomization.yaml").is_file());
}
