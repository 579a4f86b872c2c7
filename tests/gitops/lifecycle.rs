//! A service's life in the GitOps repository after its first registration:
//! fewer clusters (refused or removed), `gitops:overlay:unregister` from some
//! clusters and everywhere, ownership from the caller and the clone URL the
//! ApplicationSets get on the local git host.

use scaffolder::actions::gitops::{GitopsInit, GitopsOverlayRegister, GitopsOverlayUnregister};
use serde_json::{json, Value};

use crate::gitops::helpers::{export, git, git_ok, integrations, local_repo, Task, LOCAL_URL};
use crate::publish::fake_github::FakeGithub;

fn images(service: &str) -> Value {
    json!([
        {"name": "app-image", "newName": format!("ghcr.io/acme/{service}"), "newTag": "main"},
        {"name": "sidecar-image", "newName": "ghcr.io/acme/sidecar", "newTag": "1.0.0"},
    ])
}

fn register_input(task: &Task, service: &str, clusters: &[&str]) -> Value {
    json!({"repoUrl": LOCAL_URL, "service": service, "basePath": task.base(service),
           "clusters": clusters, "images": images(service)})
}

fn overlays(repo: &std::path::Path, service: &str) -> Vec<String> {
    let tree = export(repo, "main");
    let dir = tree.path().join("apps").join(service).join("overlays");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn fewer_clusters_are_refused_by_default_and_removed_when_asked() {
    let hosts = tempfile::tempdir().unwrap();
    let action = GitopsOverlayRegister::new(integrations(hosts.path(), None));
    let task = Task::new();
    task.run(
        &action,
        register_input(&task, "shop", &["onprem-dev", "yc-prod", "vk-prod"]),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", task.log_text()));
    let repo = local_repo(hosts.path());
    let head = git(&repo, &["rev-parse", "main"]);

    // Dropping yc-prod and vk-prod without saying so: refused, naming them.
    let err = task
        .run(&action, register_input(&task, "shop", &["onprem-dev"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("vk-prod, yc-prod"), "{err}");
    assert!(err.contains("droppedOverlays: remove"), "{err}");
    assert!(err.contains("shop-vk-prod, shop-yc-prod"), "{err}");
    assert_eq!(git(&repo, &["rev-parse", "main"]), head, "nothing was pushed");

    // Asked to remove them: the overlays go, the others stay.
    let mut input = register_input(&task, "shop", &["onprem-dev"]);
    input["droppedOverlays"] = json!("remove");
    let out = task
        .run(&action, input.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", task.log_text()));
    assert_eq!(out["changed"], json!(true));
    assert_eq!(out["removedApplications"], json!(["shop-vk-prod", "shop-yc-prod"]));
    assert_eq!(overlays(&repo, "shop"), ["onprem-dev"]);
    // The cluster layout stays: other services may still use those clusters.
    let tree = export(&repo, "main");
    assert!(tree.path().join("clusters/yc-prod/argocd/apps-appset.yaml").is_file());

    // The same again changes nothing and removes nothing.
    let again = task.run(&action, input).await.unwrap();
    assert_eq!(again["changed"], json!(false));
    assert_eq!(again["removedApplications"], json!([]));
}

#[tokio::test]
async fn unregister_removes_chosen_clusters_then_the_whole_service() {
    let hosts = tempfile::tempdir().unwrap();
    let integrations = integrations(hosts.path(), None);
    let register = GitopsOverlayRegister::new(integrations.clone());
    let unregister = GitopsOverlayUnregister::new(integrations);
    let task = Task::new();
    task.run(
        &register,
        register_input(&task, "shop", &["onprem-dev", "yc-prod", "vk-prod"]),
    )
    .await
    .unwrap();
    task.run(&register, register_input(&task, "other", &["yc-prod"]))
        .await
        .unwrap();
    let repo = local_repo(hosts.path());

    // A dry run reads nothing and pushes nothing.
    let head = git(&repo, &["rev-parse", "main"]);
    let dry = task
        .run_with(
            &unregister,
            json!({"repoUrl": LOCAL_URL, "service": "shop", "clusters": ["yc-prod"]}),
            true,
        )
        .await
        .unwrap();
    assert_eq!(dry["commitHash"], json!("dry-run"));
    assert_eq!(dry["removedApplications"], json!(["shop-yc-prod"]));
    assert_eq!(git(&repo, &["rev-parse", "main"]), head);

    // One cluster, and one the service is not on (reported, not an error).
    let out = task
        .run(
            &unregister,
            json!({"repoUrl": LOCAL_URL, "service": "shop", "clusters": ["yc-prod", "sber-prod"],
                   "commitMessage": "chore(shop): leave yc-prod"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", task.log_text()));
    assert_eq!(out["changed"], json!(true));
    assert_eq!(out["removedApplications"], json!(["shop-yc-prod"]));
    assert_eq!(out["serviceRemoved"], json!(false));
    assert!(
        task.log_text().contains("no overlay on sber-prod"),
        "{}",
        task.log_text()
    );
    assert_eq!(overlays(&repo, "shop"), ["onprem-dev", "vk-prod"]);
    let message = git(&repo, &["log", "-1", "--format=%B", "main"]);
    assert!(message.starts_with("chore(shop): leave yc-prod"), "{message}");
    assert!(
        message.contains(&format!("Scaffolder-Task: {}", task.task_id)),
        "{message}"
    );

    // Everywhere: apps/shop goes; the other service and the clusters stay.
    let out = task
        .run(&unregister, json!({"repoUrl": LOCAL_URL, "service": "shop"}))
        .await
        .unwrap();
    assert_eq!(out["removedApplications"], json!(["shop-onprem-dev", "shop-vk-prod"]));
    assert_eq!(out["serviceRemoved"], json!(true));
    let tree = export(&repo, "main");
    assert!(!tree.path().join("apps/shop").exists());
    assert!(tree
        .path()
        .join("apps/other/overlays/yc-prod/kustomization.yaml")
        .is_file());
    assert!(tree.path().join("clusters/vk-prod/kustomization.yaml").is_file());

    // Nothing left to remove: no commit.
    let head = git(&repo, &["rev-parse", "main"]);
    let out = task
        .run(&unregister, json!({"repoUrl": LOCAL_URL, "service": "shop"}))
        .await
        .unwrap();
    assert_eq!(out["changed"], json!(false));
    assert_eq!(git(&repo, &["rev-parse", "main"]), head);

    // Removing the last overlay by name removes the service too.
    let out = task
        .run(
            &unregister,
            json!({"repoUrl": LOCAL_URL, "service": "other", "clusters": ["yc-prod"]}),
        )
        .await
        .unwrap();
    assert_eq!(out["serviceRemoved"], json!(true));
    assert!(!export(&repo, "main").path().join("apps/other").exists());
}

#[tokio::test]
async fn a_takeover_is_refused_naming_the_owner_and_there_is_no_shared_default() {
    let hosts = tempfile::tempdir().unwrap();
    let integrations = integrations(hosts.path(), None);
    let register = GitopsOverlayRegister::new(integrations.clone());
    let unregister = GitopsOverlayUnregister::new(integrations);
    let repo = local_repo(hosts.path());

    // An anonymous run with no owner and no repository is refused.
    let mut anonymous = Task::new();
    anonymous.user = json!({});
    let err = anonymous
        .run(&register, register_input(&anonymous, "shop", &["yc-prod"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("No owner"), "{err}");
    assert!(!repo.exists(), "nothing was created");

    // Anonymous with the service's repository: the repository owns it.
    let mut input = register_input(&anonymous, "shop", &["yc-prod"]);
    input["sourceRepoUrl"] = json!("git.local?owner=acme&repo=shop");
    anonymous.run(&register, input).await.unwrap();
    let marker = std::fs::read_to_string(export(&repo, "main").path().join("apps/shop/.scaffolder.yaml")).unwrap();
    assert!(marker.contains("owner: repository:git.local/acme/shop"), "{marker}");
    let head = git(&repo, &["rev-parse", "main"]);

    // Another repository, a signed-in user: both refused, naming the owner.
    let mut intruder = Task::new();
    intruder.user = json!({});
    let mut input = register_input(&intruder, "shop", &["yc-prod"]);
    input["sourceRepoUrl"] = json!("git.local?owner=evil&repo=shop");
    let err = intruder.run(&register, input).await.unwrap_err().to_string();
    assert!(err.contains("repository:git.local/acme/shop"), "{err}");
    let user = Task::new();
    let err = user
        .run(&register, register_input(&user, "shop", &["yc-prod"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already registered")
            && err.contains("repository:git.local/acme/shop")
            && err.contains("user:default/tester"),
        "{err}"
    );
    let err = user
        .run(&unregister, json!({"repoUrl": LOCAL_URL, "service": "shop"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("repository:git.local/acme/shop"), "{err}");
    assert_eq!(git(&repo, &["rev-parse", "main"]), head, "nothing was pushed");

    // The owner may remove it.
    let out = anonymous
        .run(
            &unregister,
            json!({"repoUrl": LOCAL_URL, "service": "shop", "sourceRepoUrl": "git.local?owner=acme&repo=shop"}),
        )
        .await
        .unwrap();
    assert_eq!(out["serviceRemoved"], json!(true));
}

#[tokio::test]
async fn application_sets_of_a_local_run_get_a_url_argo_cd_can_clone() {
    let hosts = tempfile::tempdir().unwrap();
    let integrations = integrations(hosts.path(), None);
    let task = Task::new();
    let repo = local_repo(hosts.path());

    // No setting: the local host's https URL, for init and for the clusters
    // a later registration adds.
    let init = GitopsInit::new(integrations.clone());
    task.run(&init, json!({"repoUrl": LOCAL_URL, "clusters": ["onprem-dev"]}))
        .await
        .unwrap();
    let register = GitopsOverlayRegister::new(integrations.clone());
    task.run(&register, register_input(&task, "shop", &["onprem-dev", "vk-prod"]))
        .await
        .unwrap();
    let tree = export(&repo, "main");
    for cluster in ["onprem-dev", "vk-prod"] {
        let appset =
            std::fs::read_to_string(tree.path().join(format!("clusters/{cluster}/argocd/apps-appset.yaml"))).unwrap();
        assert!(
            appset.contains("repoURL: https://git.local/acme/infra-gitops.git"),
            "{appset}"
        );
        assert!(!appset.contains("file:"), "{appset}");
    }

    // The installation's setting wins over the https URL.
    let init =
        GitopsInit::new(integrations.clone()).with_argocd_repo_url(Some("git@github.com:acme/infra-gitops.git".into()));
    task.run(&init, json!({"repoUrl": LOCAL_URL, "clusters": ["onprem-dev"]}))
        .await
        .unwrap();
    let appset = std::fs::read_to_string(
        export(&repo, "main")
            .path()
            .join("clusters/onprem-dev/argocd/apps-appset.yaml"),
    )
    .unwrap();
    assert!(
        appset.contains("repoURL: git@github.com:acme/infra-gitops.git"),
        "{appset}"
    );

    // A file URL is refused before anything is written.
    let head = git(&repo, &["rev-parse", "main"]);
    let err = task
        .run(
            &init,
            json!({"repoUrl": LOCAL_URL, "clusters": ["onprem-dev"], "argocdRepoUrl": format!("file://{}", repo.display())}),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Argo CD cannot clone"), "{err}");
    assert_eq!(git(&repo, &["rev-parse", "main"]), head);
}

/// In pull-request mode a removal goes to `scaffolder-unregister/<service>`
/// (built on main, which stays as it is); on the local git host the branch
/// is reported, on GitHub one pull request is opened and found again.
#[tokio::test]
async fn unregister_in_pull_request_mode_pushes_a_branch_and_opens_one_pull_request() {
    let hosts = tempfile::tempdir().unwrap();
    let integrations_ = integrations(hosts.path(), None);
    let register = GitopsOverlayRegister::new(integrations_.clone());
    let unregister = GitopsOverlayUnregister::new(integrations_);
    let task = Task::new();
    task.run(&register, register_input(&task, "shop", &["onprem-dev", "yc-prod"]))
        .await
        .unwrap();
    let repo = local_repo(hosts.path());
    let main = git(&repo, &["rev-parse", "main"]);
    let input = json!({"repoUrl": LOCAL_URL, "service": "shop", "clusters": ["yc-prod"], "mode": "pull-request"});
    let out = task
        .run(&unregister, input.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", task.log_text()));
    assert_eq!(out["branch"], json!("scaffolder-unregister/shop"));
    assert_eq!(out["changed"], json!(true));
    assert_eq!(out["removedApplications"], json!(["shop-yc-prod"]));
    assert!(out.get("pullRequestUrl").is_none());
    assert_eq!(git(&repo, &["rev-parse", "main"]), main, "main is untouched");
    let branch = git(&repo, &["rev-parse", "scaffolder-unregister/shop"])
        .trim()
        .to_owned();
    assert_eq!(out["commitHash"], json!(branch));
    assert!(git_ok(&repo, &["merge-base", "--is-ancestor", main.trim(), &branch]));
    let tree = export(&repo, "scaffolder-unregister/shop");
    assert!(!tree.path().join("apps/shop/overlays/yc-prod").exists());
    assert!(tree
        .path()
        .join("apps/shop/overlays/onprem-dev/kustomization.yaml")
        .is_file());
    assert_eq!(
        overlays(&repo, "shop"),
        ["onprem-dev", "yc-prod"],
        "main still has both"
    );
    assert!(task.log_text().contains("no pull requests"), "{}", task.log_text());
    // Again: the branch already holds the removal.
    let again = task.run(&unregister, input.clone()).await.unwrap();
    assert_eq!(again["changed"], json!(false));
    assert_eq!(again["commitHash"], json!(branch));
    // Another owner may not replace the removal branch (nor remove the service).
    let mut theirs = input;
    theirs["owner"] = json!("group:default/other-team");
    let err = task.run(&unregister, theirs).await.unwrap_err().to_string();
    assert!(err.contains("user:default/tester"), "{err}");
    assert_eq!(
        git(&repo, &["rev-parse", "scaffolder-unregister/shop"]).trim(),
        branch.as_str()
    );

    // On GitHub: one pull request, found again on a re-run.
    let fake = FakeGithub::start(Some("t0ken"));
    let hosts = tempfile::tempdir().unwrap();
    fake.add_repo("acme", "infra-gitops", true);
    let integrations_ = integrations(hosts.path(), Some(&fake.api_base));
    let register = GitopsOverlayRegister::new(integrations_.clone());
    let unregister = GitopsOverlayUnregister::new(integrations_);
    let url = "github.example?owner=acme&repo=infra-gitops";
    let mut input = register_input(&task, "shop", &["yc-prod", "vk-prod"]);
    input["repoUrl"] = json!(url);
    task.run(&register, input)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", task.log_text()));
    let input = json!({"repoUrl": url, "service": "shop", "mode": "pull-request",
                       "commitMessage": "chore(shop): decommission"});
    let out = task
        .run(&unregister, input.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", task.log_text()));
    assert_eq!(out["serviceRemoved"], json!(true));
    assert_eq!(
        out["pullRequestUrl"],
        json!("https://github.example/acme/infra-gitops/pull/1")
    );
    let created = fake.requests("POST", "/repos/acme/infra-gitops/pulls");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].body["head"], json!("scaffolder-unregister/shop"));
    assert_eq!(created[0].body["base"], json!("main"));
    assert_eq!(created[0].body["title"], json!("chore(shop): decommission"));
    let bare = fake.bare("acme", "infra-gitops");
    assert!(!export(&bare, "scaffolder-unregister/shop")
        .path()
        .join("apps/shop")
        .exists());
    assert!(export(&bare, "main").path().join("apps/shop").exists());
    let again = task.run(&unregister, input).await.unwrap();
    assert_eq!(again["changed"], json!(false));
    assert_eq!(again["pullRequestUrl"], out["pullRequestUrl"]);
    assert_eq!(fake.requests("POST", "/repos/acme/infra-gitops/pulls").len(), 1);
}
