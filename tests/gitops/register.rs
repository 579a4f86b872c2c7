//! `gitops:overlay:register`: what it writes, that kustomize renders it,
//! idempotency, ownership, refusals, dry-run and pull requests.

use std::path::Path;
use std::process::Command;

use scaffolder::actions::gitops::GitopsOverlayRegister;
use serde_json::{json, Value};

use crate::gitops::helpers::{commit_count, export, git, git_ok, integrations, local_repo, Task, LOCAL_URL};
use crate::publish::fake_github::FakeGithub;

const DIGEST: &str = "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945";

fn images(service: &str, tag: &str) -> Value {
    json!([
        {"name": "app-image", "newName": format!("ghcr.io/acme/{service}"), "newTag": tag},
        {"name": "sidecar-image", "newName": "ghcr.io/acme/sidecar", "newTag": "1.0.0"},
    ])
}

/// `kubectl kustomize DIR` as YAML documents (callers first check
/// `common::tools::tool("kubectl", …)`, which skips visibly without it).
pub fn kustomize(dir: &Path) -> Vec<serde_norway::Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("kubectl must be installed to check the overlays: {e}"));
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| <serde_norway::Value as serde::Deserialize>::deserialize(d).expect("kustomize output parses"))
        .collect()
}

fn deployment<'a>(docs: &'a [serde_norway::Value], name: &str) -> &'a serde_norway::Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some("Deployment") && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no Deployment {name} in {docs:?}"))
}

fn container<'a>(deployment: &'a serde_norway::Value, name: &str) -> &'a serde_norway::Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .and_then(|c| c.iter().find(|c| c["name"].as_str() == Some(name)))
        .unwrap_or_else(|| panic!("no container {name}"))
}

#[tokio::test]
async fn registers_a_service_and_every_overlay_renders_with_kustomize() {
    if !crate::common::tools::tool("kubectl", "`kubectl kustomize` renders the overlays") {
        return;
    }
    let hosts = tempfile::tempdir().unwrap();
    let action = GitopsOverlayRegister::new(integrations(hosts.path(), None));
    let task = Task::new();
    let base_path = task.base("webapp");
    let out = task
        .run(
            &action,
            json!({
                "repoUrl": LOCAL_URL,
                "service": "webapp",
                "basePath": base_path,
                "clusters": ["onprem-dev", "yc-prod"],
                "images": images("webapp", "main"),
                "overlays": [
                    {"cluster": "yc-prod", "replicas": 3,
                     "images": [{"name": "app-image", "newName": "ghcr.io/acme/webapp", "newTag": "v1.2.3"}],
                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}},
                    {"cluster": "sber-prod",
                     "images": [
                        {"name": "app-image", "newName": "ghcr.io/acme/webapp", "digest": DIGEST},
                        {"name": "sidecar-image", "newName": "ghcr.io/acme/sidecar", "newTag": "2.0.0"}]},
                ],
                "commitMessage": "feat(webapp): deploy",
            }),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", task.log_text()));

    // The repository was created on the local host and main holds one commit.
    let repo = local_repo(hosts.path());
    let head = git(&repo, &["rev-parse", "main"]).trim().to_owned();
    assert_eq!(out["commitHash"], json!(head));
    assert_eq!(out["changed"], json!(true));
    let commit_url = out["commitUrl"].as_str().unwrap();
    assert!(
        commit_url.starts_with("file:///") && commit_url.ends_with(&format!("acme/infra-gitops.git/commit/{head}")),
        "{commit_url}"
    );
    assert_eq!(
        out["applications"],
        json!(["webapp-onprem-dev", "webapp-yc-prod", "webapp-sber-prod"])
    );
    assert_eq!(
        out["overlayPaths"],
        json!([
            "apps/webapp/overlays/onprem-dev",
            "apps/webapp/overlays/yc-prod",
            "apps/webapp/overlays/sber-prod"
        ])
    );
    let message = git(&repo, &["log", "-1", "--format=%B", "main"]);
    assert!(message.starts_with("feat(webapp): deploy"), "{message}");
    assert!(
        message.contains(&format!("Scaffolder-Task: {}", task.task_id)),
        "{message}"
    );

    let tree = export(&repo, "main");
    let root = tree.path();
    for file in [
        "apps/webapp/.scaffolder.yaml",
        "apps/webapp/base/kustomization.yaml",
        "apps/webapp/base/deployment.yaml",
        "apps/webapp/base/service.yaml",
        "clusters/yc-prod/cluster.yaml",
        "clusters/yc-prod/kustomization.yaml",
        "clusters/yc-prod/argocd/apps-appset.yaml",
        "clusters/sber-prod/argocd/apps-appset.yaml",
    ] {
        assert!(root.join(file).is_file(), "{file} missing");
    }
    let base_kustomization = std::fs::read_to_string(root.join("apps/webapp/base/kustomization.yaml")).unwrap();
    assert!(!base_kustomization.contains("images:"));

    // Every overlay renders, with its own image, replicas and resources:
    // the registration's where it sets them, else its cluster's stage's
    // (one replica on dev, three on prod).
    let expected = [
        (
            "onprem-dev",
            "ghcr.io/acme/webapp:main",
            "ghcr.io/acme/sidecar:1.0.0",
            1,
        ),
        ("yc-prod", "ghcr.io/acme/webapp:v1.2.3", "ghcr.io/acme/sidecar:1.0.0", 3),
        (
            "sber-prod",
            &format!("ghcr.io/acme/webapp@{DIGEST}"),
            "ghcr.io/acme/sidecar:2.0.0",
            3,
        ),
    ];
    for (cluster, app, sidecar, replicas) in expected {
        let docs = kustomize(&root.join(format!("apps/webapp/overlays/{cluster}")));
        let deploy = deployment(&docs, "webapp");
        assert_eq!(container(deploy, "app")["image"].as_str(), Some(app), "{cluster}");
        assert_eq!(
            container(deploy, "sidecar")["image"].as_str(),
            Some(sidecar),
            "{cluster}"
        );
        assert_eq!(deploy["spec"]["replicas"].as_u64(), Some(replicas), "{cluster}");
        assert_eq!(deploy["metadata"]["namespace"].as_str(), Some("default"));
        for labels in [
            &deploy["metadata"]["labels"],
            &deploy["spec"]["template"]["metadata"]["labels"],
        ] {
            assert_eq!(
                labels["backstage.io/kubernetes-id"].as_str(),
                Some("webapp"),
                "{cluster}"
            );
        }
        // Selectors stay as the base has them (they are immutable).
        assert!(deploy["spec"]["selector"]["matchLabels"]["backstage.io/kubernetes-id"].is_null());
    }
    let prod = kustomize(&root.join("apps/webapp/overlays/yc-prod"));
    let app = container(deployment(&prod, "webapp"), "app");
    assert_eq!(app["resources"]["requests"]["memory"].as_str(), Some("128Mi"));
    assert_eq!(app["resources"]["limits"]["memory"].as_str(), Some("256Mi"));
    // Prod gets a disruption budget and an autoscaler per Deployment, dev
    // neither; both pull with the cluster's registry secret.
    let kinds = |docs: &[serde_norway::Value]| -> Vec<String> {
        let mut kinds: Vec<String> = docs
            .iter()
            .filter_map(|d| d["kind"].as_str().map(str::to_owned))
            .collect();
        kinds.sort();
        kinds
    };
    // Both get the per-service resources for their cluster's ingress
    // flavour (Gateway API on yc-prod, Traefik on onprem-dev).
    assert_eq!(
        kinds(&prod),
        [
            "ConfigMap",
            "Deployment",
            "ExternalSecret",
            "HTTPRoute",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "Service",
            "ServiceMonitor"
        ]
    );
    let dev = kustomize(&root.join("apps/webapp/overlays/onprem-dev"));
    assert_eq!(
        kinds(&dev),
        [
            "ConfigMap",
            "Deployment",
            "ExternalSecret",
            "Ingress",
            "Service",
            "ServiceMonitor"
        ]
    );
    let route = dev.iter().find(|d| d["kind"].as_str() == Some("Ingress")).unwrap();
    assert_eq!(
        route["spec"]["rules"][0]["host"].as_str(),
        Some("webapp.onprem-dev.apps.soft-yt.internal")
    );
    let env_from = &container(deployment(&dev, "webapp"), "app")["envFrom"][0]["secretRef"]["name"];
    assert_eq!(env_from.as_str(), Some("webapp-env"));
    let pull = &deployment(&dev, "webapp")["spec"]["template"]["spec"]["imagePullSecrets"][0]["name"];
    assert_eq!(pull.as_str(), Some("ghcr-pull"));
    let dev_app = container(deployment(&dev, "webapp"), "app");
    assert_eq!(dev_app["resources"]["limits"]["memory"].as_str(), Some("128Mi"));
    // The backend gets the cluster's collector, the route ExternalDNS's host.
    let env = &dev_app["env"];
    assert!(
        env.as_sequence().is_some_and(|vars| vars
            .iter()
            .any(|v| v["name"].as_str() == Some("OTEL_EXPORTER_OTLP_ENDPOINT")
                && v["value"].as_str() == Some("http://otel-collector.observability.svc.cluster.local:4318"))),
        "{env:?}"
    );
    assert_eq!(
        route["metadata"]["annotations"]["external-dns.alpha.kubernetes.io/hostname"].as_str(),
        Some("webapp.onprem-dev.apps.soft-yt.internal")
    );
    // The cluster kustomization renders the ApplicationSet and the platform
    // resources of a Gateway API cluster, the pull Secret's ExternalSecret
    // among them.
    let cluster = kustomize(&root.join("clusters/yc-prod"));
    assert_eq!(
        kinds(&cluster),
        [
            "ApplicationSet",
            "Certificate",
            "ClusterPolicy",
            "ClusterSecretStore",
            "ExternalSecret",
            "Gateway"
        ]
    );
}

#[tokio::test]
async fn the_same_registration_twice_is_a_no_op_with_the_existing_commit() {
    let hosts = tempfile::tempdir().unwrap();
    let action = GitopsOverlayRegister::new(integrations(hosts.path(), None));
    let input = |base: &str| {
        json!({"repoUrl": LOCAL_URL, "service": "api", "basePath": base,
               "clusters": ["onprem-dev"], "images": images("api", "main")})
    };
    let first_task = Task::new();
    let first = first_task.run(&action, input(&first_task.base("api"))).await.unwrap();
    let repo = local_repo(hosts.path());
    let commits = commit_count(&repo, "main");

    // Another service lands in between: the re-run still reports its own commit.
    let other = Task::new();
    other
        .run(
            &action,
            json!({"repoUrl": LOCAL_URL, "service": "other", "basePath": other.base("other"),
                   "clusters": ["onprem-dev"], "images": images("other", "main")}),
        )
        .await
        .unwrap();

    let again = Task::new();
    let second = again.run(&action, input(&again.base("api"))).await.unwrap();
    assert_eq!(second["changed"], json!(false));
    assert_eq!(second["commitHash"], first["commitHash"]);
    assert_eq!(second["applications"], json!(["api-onprem-dev"]));
    assert_eq!(commit_count(&repo, "main"), commits + 1, "no empty commit");
    assert!(again.log_text().contains("already registered with this content"));

    // A changed tag is a new commit.
    let bump = Task::new();
    let mut changed = input(&bump.base("api"));
    changed["images"] = images("api", "abc123");
    let third = bump.run(&action, changed).await.unwrap();
    assert_eq!(third["changed"], json!(true));
    assert_ne!(third["commitHash"], first["commitHash"]);
    assert_eq!(commit_count(&repo, "main"), commits + 2);
}

#[tokio::test]
async fn a_service_of_another_owner_is_refused() {
    let hosts = tempfile::tempdir().unwrap();
    let action = GitopsOverlayRegister::new(integrations(hosts.path(), None));
    let alice = Task::new();
    alice
        .run(
            &action,
            json!({"repoUrl": LOCAL_URL, "service": "billing", "basePath": alice.base("billing"),
                   "clusters": ["yc-prod"], "images": images("billing", "main"), "owner": "group:default/team-a"}),
        )
        .await
        .unwrap();
    let repo = local_repo(hosts.path());
    let head = git(&repo, &["rev-parse", "main"]);

    let bob = Task::new();
    let err = bob
        .run(
            &action,
            json!({"repoUrl": LOCAL_URL, "service": "billing", "basePath": bob.base("billing"),
                   "clusters": ["vk-prod"], "images": images("billing", "v2"), "owner": "group:default/team-b"}),
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("already registered") && text.contains("group:default/team-a"),
        "{text}"
    );
    // The default owner is the task's user: a different user is refused too.
    let carol = Task::new();
    let err = carol
        .run(
            &action,
            json!({"repoUrl": LOCAL_URL, "service": "billing", "basePath": carol.base("billing"),
                   "clusters": ["yc-prod"], "images": images("billing", "main")}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already registered"), "{err}");
    assert_eq!(git(&repo, &["rev-parse", "main"]), head, "nothing was pushed");

    // A directory nobody registered through the scaffolder is not overwritten.
    let dave = Task::new();
    dave.write("manual/apps/legacy/base/kustomization.yaml", "resources: []\n");
    let work = tempfile::tempdir().unwrap();
    let clone = work.path().join("clone");
    let status = Command::new("git")
        .args(["clone", "--quiet"])
        .arg(&repo)
        .arg(&clone)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::create_dir_all(clone.join("apps/legacy")).unwrap();
    std::fs::write(clone.join("apps/legacy/kustomization.yaml"), "resources: []\n").unwrap();
    let run = |args: &[&str]| {
        let ok = Command::new("git")
            .arg("-C")
            .arg(&clone)
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "h")
            .env("GIT_AUTHOR_EMAIL", "h@x")
            .env("GIT_COMMITTER_NAME", "h")
            .env("GIT_COMMITTER_EMAIL", "h@x")
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    };
    run(&["add", "-A"]);
    run(&["commit", "--quiet", "-m", "hand-written legacy app"]);
    run(&["push", "--quiet", "origin", "HEAD:main"]);
    let err = dave
        .run(
            &action,
            json!({"repoUrl": LOCAL_URL, "service": "legacy", "basePath": dave.base("legacy"),
                   "clusters": ["yc-prod"], "images": images("legacy", "main")}),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("was not registered by the scaffolder"),
        "{err}"
    );
}

#[tokio::test]
async fn hostile_names_paths_and_bases_are_refused_before_anything_is_pushed() {
    let hosts = tempfile::tempdir().unwrap();
    let action = GitopsOverlayRegister::new(integrations(hosts.path(), None));
    let task = Task::new();
    let base = task.base("web");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.yaml"), "kind: Secret\n").unwrap();
    std::os::unix::fs::symlink(outside.path(), task.workspace.join("escape")).unwrap();
    task.write("linked/base/kustomization.yaml", "resources: [secret.yaml]\n");
    std::os::unix::fs::symlink(
        outside.path().join("secret.yaml"),
        task.workspace.join("linked/base/secret.yaml"),
    )
    .unwrap();
    task.write(
        "withimages/base/kustomization.yaml",
        "resources: [d.yaml]\nimages:\n  - name: app-image\n    newTag: x\n",
    );
    task.write("withimages/base/d.yaml", "kind: Deployment\n");
    task.write("broken/base/kustomization.yaml", "resources: [d.yaml]\n");
    task.write("broken/base/d.yaml", "kind: [Deployment\n");
    task.write("escaping/base/kustomization.yaml", "resources: [../../../etc/passwd]\n");

    let ok = json!({"repoUrl": LOCAL_URL, "service": "web", "basePath": base,
                    "clusters": ["yc-prod"], "images": images("web", "main")});
    let with = |key: &str, value: Value| {
        let mut input = ok.clone();
        input[key] = value;
        input
    };
    let cases = [
        (with("service", json!("../etc")), "Invalid service name"),
        (with("service", json!("Web")), "Invalid service name"),
        (with("service", json!("web_app")), "Invalid service name"),
        (with("service", json!("x".repeat(64))), "Invalid service name"),
        (with("clusters", json!(["yc-prod/../../x"])), "Invalid cluster name"),
        (with("clusters", json!(["Prod"])), "Invalid cluster name"),
        (
            with("clusters", json!([format!("c{}", "x".repeat(60))])),
            "longer than 63",
        ),
        (with("clusters", json!([])), "at least one cluster"),
        (with("basePath", json!("../outside")), "outside its parent"),
        (with("basePath", json!("/etc")), "absolute"),
        (with("basePath", json!("escape")), "symbolic link"),
        (with("basePath", json!("linked/base")), "not a regular file"),
        (with("basePath", json!("withimages/base")), "sets `images:`"),
        (with("basePath", json!("broken/base")), "not valid YAML"),
        (with("basePath", json!("escaping/base")), "outside the base"),
        (with("basePath", json!("missing")), "not a directory"),
        (
            with(
                "images",
                json!([{"name": "other-image", "newName": "x/y", "newTag": "1"}]),
            ),
            "no container of the base uses",
        ),
        (
            with(
                "images",
                json!([{"name": "app-image", "newName": "x/y", "newTag": "1\nkind: Secret"}]),
            ),
            "Invalid newTag",
        ),
        (
            with(
                "overlays",
                json!([{"cluster": "yc-prod", "resources": {"limits": {"cpu": "lots"}}}]),
            ),
            "Invalid resource",
        ),
        (with("repoUrl", json!("git.local?owner=..&repo=x")), "Invalid owner"),
        (with("mode", json!("force-push")), "mode"),
    ];
    for (input, needle) in cases {
        let err = task.run(&action, input.clone()).await.unwrap_err();
        assert!(err.to_string().contains(needle), "{input}: {err} (wanted {needle:?})");
    }
    assert!(
        !local_repo(hosts.path()).exists(),
        "a refused registration creates and pushes nothing"
    );
    // The same input without the hostile part goes through.
    task.run(&action, ok).await.unwrap();
}

#[tokio::test]
async fn dry_run_validates_and_pushes_nothing() {
    let hosts = tempfile::tempdir().unwrap();
    let action = GitopsOverlayRegister::new(integrations(hosts.path(), None));
    let task = Task::new();
    let input = json!({"repoUrl": LOCAL_URL, "service": "web", "basePath": task.base("web"),
                       "clusters": ["onprem-dev", "yc-prod"], "images": images("web", "main")});
    let out = task.run_with(&action, input.clone(), true).await.unwrap();
    assert_eq!(out["commitHash"], json!("dry-run"));
    assert_eq!(out["applications"], json!(["web-onprem-dev", "web-yc-prod"]));
    assert!(out["commitUrl"].as_str().unwrap().ends_with("/commit/dry-run"));
    assert!(task
        .log_text()
        .contains("Would write apps/web/overlays/yc-prod/kustomization.yaml"));
    assert!(!hosts.path().join("acme").exists(), "dry-run creates no repository");
    let mut bad = input;
    bad["images"] = json!([{"name": "nope", "newName": "x/y", "newTag": "1"}]);
    assert!(task.run_with(&action, bad, true).await.is_err(), "dry-run validates");
}

#[tokio::test]
async fn pull_request_mode_on_the_local_host_pushes_a_branch() {
    let hosts = tempfile::tempdir().unwrap();
    let action = GitopsOverlayRegister::new(integrations(hosts.path(), None));
    let repo = local_repo(hosts.path());
    crate::gitops::helpers::bare_repo(&repo, true);
    let main = git(&repo, &["rev-parse", "main"]);
    let task = Task::new();
    let input = json!({"repoUrl": LOCAL_URL, "service": "web", "basePath": task.base("web"),
                       "clusters": ["yc-prod"], "images": images("web", "main"), "mode": "pull-request"});
    let out = task.run(&action, input.clone()).await.unwrap();
    assert_eq!(out["branch"], json!("scaffolder/web"));
    assert!(out.get("pullRequestUrl").is_none());
    assert_eq!(git(&repo, &["rev-parse", "main"]), main, "main is untouched");
    let branch = git(&repo, &["rev-parse", "scaffolder/web"]).trim().to_owned();
    assert_eq!(out["commitHash"], json!(branch));
    assert!(git_ok(&repo, &["merge-base", "--is-ancestor", main.trim(), &branch]));
    assert!(task.log_text().contains("no pull requests"));
    // Again: the branch already holds it.
    let again = task.run(&action, input).await.unwrap();
    assert_eq!(again["changed"], json!(false));
    assert_eq!(again["commitHash"], json!(branch));
}

#[tokio::test]
async fn pull_request_mode_on_github_opens_one_pull_request() {
    let fake = FakeGithub::start(Some("t0ken"));
    let hosts = tempfile::tempdir().unwrap();
    fake.add_repo("acme", "infra-gitops", true);
    let action = GitopsOverlayRegister::new(integrations(hosts.path(), Some(&fake.api_base)));
    let task = Task::new();
    let input = json!({"repoUrl": "github.example?owner=acme&repo=infra-gitops", "service": "web",
                       "basePath": task.base("web"), "clusters": ["yc-prod", "vk-prod"],
                       "images": images("web", "main"), "mode": "pull-request",
                       "commitMessage": "feat(web): deploy to yc-prod, vk-prod"});
    let out = task
        .run(&action, input.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", task.log_text()));
    let bare = fake.bare("acme", "infra-gitops");
    let head = git(&bare, &["rev-parse", "scaffolder/web"]).trim().to_owned();
    assert_eq!(out["commitHash"], json!(head));
    assert_eq!(
        out["commitUrl"],
        json!(format!("https://github.example/acme/infra-gitops/commit/{head}"))
    );
    assert_eq!(
        out["pullRequestUrl"],
        json!("https://github.example/acme/infra-gitops/pull/1")
    );
    let created = fake.requests("POST", "/repos/acme/infra-gitops/pulls");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].body["head"], json!("scaffolder/web"));
    assert_eq!(created[0].body["base"], json!("main"));
    assert_eq!(created[0].body["title"], json!("feat(web): deploy to yc-prod, vk-prod"));
    assert_eq!(created[0].authorization.as_deref(), Some("Bearer t0ken"));
    // The ApplicationSet written for a new cluster points at the https
    // clone URL (the fake's clone_url is a file URL Argo CD could not use).
    let tree = export(&bare, "scaffolder/web");
    let appset = std::fs::read_to_string(tree.path().join("clusters/vk-prod/argocd/apps-appset.yaml")).unwrap();
    assert!(
        appset.contains("repoURL: https://github.example/acme/infra-gitops.git"),
        "{appset}"
    );
    assert!(!appset.contains("file:"), "{appset}");

    // Re-running finds the branch and the pull request as they are.
    let again = task.run(&action, input).await.unwrap();
    assert_eq!(again["changed"], json!(false));
    assert_eq!(again["pullRequestUrl"], out["pullRequestUrl"]);
    assert_eq!(fake.requests("POST", "/repos/acme/infra-gitops/pulls").len(), 1);
}
