//! Promotions end to end with real processes: the scaffolder in-process on
//! a fresh database, a local `infra-gitops` (a bare repository of the local
//! git host), a real registry with images pushed by skopeo and signed in
//! cosign's format, and workflow tokens from a test OIDC issuer.

use std::path::{Path, PathBuf};

use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePublicKey, LineEnding};
use reqwest::StatusCode;
use scaffolder::config::GithubActionsAuthSettings;
use serde_json::{json, Value};

use super::issuer::{Issuer, AUDIENCE};
use super::registry::{payload, signed_layer, Registry};
use crate::auth::helpers::{spawn_app_with, TestApp};
use crate::common::git::{git, git_bare};

const WORKFLOW: &str = ".github/workflows/ci.yml";
const MAIN: &str = "refs/heads/main";

pub struct Fixture {
    pub app: TestApp,
    pub registry: Registry,
    pub issuer: Issuer,
    key: SigningKey,
    pub repo: PathBuf,
    _dirs: Vec<tempfile::TempDir>,
}

fn overlay(image: &str) -> String {
    format!(
        "# written by the test as registration would\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\nimages:\n  - name: backend-image\n    newName: {image}\n    newTag: latest\n"
    )
}

/// `infra-gitops` with `services` registered (owner: their repository
/// `acme/<service>`) on `onprem-dev` and `onprem-prod`, every service's
/// backend being the image `image(service)`.
fn infra_gitops(root: &Path, services: &[String], image: &dyn Fn(&str) -> String) -> PathBuf {
    let bare = root.join("acme/infra-gitops.git");
    std::fs::create_dir_all(&bare).expect("dir");
    git_bare(&bare, &["init", "--quiet", "--bare", "--initial-branch=main"]);
    let work = tempfile::tempdir().expect("tempdir");
    let tree = work.path().join("tree");
    git(work.path(), &["clone", "-q", &bare.to_string_lossy(), "tree"]);
    for service in services {
        let dir = tree.join("apps").join(service);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join(".scaffolder.yaml"),
            format!("service: {service}\nowner: repository:github.com/acme/{service}\n"),
        )
        .expect("marker");
        for cluster in ["onprem-dev", "onprem-prod"] {
            let overlay_dir = dir.join("overlays").join(cluster);
            std::fs::create_dir_all(&overlay_dir).expect("dir");
            std::fs::write(overlay_dir.join("kustomization.yaml"), overlay(&image(service))).expect("overlay");
        }
    }
    git(&tree, &["checkout", "-q", "-b", "main"]);
    git(&tree, &["add", "-A"]);
    git(&tree, &["commit", "-q", "-m", "registered"]);
    git(&tree, &["push", "-q", "origin", "main"]);
    bare
}

impl Fixture {
    pub async fn start(services: &[String], image: &dyn Fn(&str, &str) -> String) -> Fixture {
        Fixture::start_with(services, image, |_| {}).await
    }

    pub async fn start_with(
        services: &[String],
        image: &dyn Fn(&str, &str) -> String,
        configure: impl FnOnce(&mut scaffolder::config::Settings) + 'static,
    ) -> Fixture {
        let registry = Registry::start().await;
        let issuer = Issuer::start();
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let dir = tempfile::tempdir().expect("tempdir");
        let key_file = dir.path().join("cosign.pub");
        std::fs::write(
            &key_file,
            key.verifying_key().to_public_key_pem(LineEnding::LF).expect("pem"),
        )
        .expect("key file");
        let git_dir = dir.path().join("git");
        let host = registry.host.clone();
        let repo = infra_gitops(&git_dir, services, &|s| image(&host, s));
        let issuer_url = issuer.url().to_owned();
        let registry_host = registry.host.clone();
        let app = spawn_app_with(move |s| {
            s.integrations.local_git.dir = Some(git_dir);
            s.auth.allow_anonymous = Some(true);
            s.auth.github_actions = Some(GithubActionsAuthSettings {
                issuer: issuer_url,
                audience: AUDIENCE.into(),
                jwks_url: None,
                host: "github.com".into(),
                jwks_min_refresh_seconds: 30,
            });
            s.promotion.repo_url = Some("git.local?owner=acme&repo=infra-gitops".into());
            s.promotion.public_key_files = vec![key_file];
            s.promotion.insecure_registries = vec![registry_host];
            s.worker.concurrency = 4;
            s.database.max_connections = 20;
            configure(s);
        })
        .await;
        Fixture {
            app,
            registry,
            issuer,
            key,
            repo,
            _dirs: vec![dir],
        }
    }

    /// Pushes an image to `repository` and signs it; returns its digest.
    pub async fn build(&self, repository: &str, seed: &str) -> String {
        let digest = self.registry.push_image(repository, seed, seed).await;
        let image = format!("{}/{repository}", self.registry.host);
        self.registry
            .push_signatures(
                repository,
                &digest,
                &[signed_layer(&self.key, payload(&image, &digest), None)],
            )
            .await;
        digest
    }

    pub fn token(&self, repository: &str, run: u64) -> String {
        self.issuer.token(repository, WORKFLOW, MAIN, run)
    }

    pub fn body(&self, service: &str, stage: &str, image: &str, digest: &str, commit: &str) -> Value {
        json!({
            "service": service, "stage": stage,
            "bundle": {"images": [{"name": image, "digest": digest}], "sourceCommit": commit},
        })
    }

    /// Starts a promotion; returns the task id.
    pub async fn promote(&self, token: Option<&str>, body: &Value) -> String {
        let (status, answer) = self.app.post("/v2/promotions", token, body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        answer["id"].as_str().expect("id").to_owned()
    }

    /// The task's final status and its log.
    pub async fn finish(&self, id: &str) -> (String, String) {
        let task = self.app.wait_finished(id, None).await;
        let (_, events) = self.app.get(&format!("/v2/tasks/{id}/events"), None).await;
        let log = events
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["body"]["message"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        (task["status"].as_str().unwrap_or_default().to_owned(), log)
    }

    /// Commits `contents` at `path` on main, as an operator would.
    pub fn commit_file(&self, path: &str, contents: &str) {
        let work = tempfile::tempdir().expect("tempdir");
        git(work.path(), &["clone", "-q", &self.repo.to_string_lossy(), "tree"]);
        let tree = work.path().join("tree");
        let file = tree.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("dir");
        std::fs::write(&file, contents).expect("write");
        git(&tree, &["add", "-A"]);
        git(&tree, &["commit", "-q", "-m", &format!("edit {path}")]);
        git(&tree, &["push", "-q", "origin", "HEAD:main"]);
    }

    /// The overlay of `service` on `cluster` at `rev`.
    pub fn overlay(&self, rev: &str, service: &str, cluster: &str) -> Value {
        let text = git_bare(
            &self.repo,
            &[
                "show",
                &format!("{rev}:apps/{service}/overlays/{cluster}/kustomization.yaml"),
            ],
        );
        serde_norway::from_str(&text).expect("yaml")
    }
}

fn backend(host: &str, service: &str) -> String {
    format!("{host}/acme/{service}-backend")
}

#[tokio::test]
async fn a_bundle_goes_from_dev_to_prod_and_back_and_the_history_says_so() {
    if !(super::registry::available() && super::issuer::available()) {
        return;
    }
    let f = Fixture::start(&["web".to_owned()], &backend).await;
    let image = backend(&f.registry.host, "web");
    let v1 = f.build("acme/web-backend", "v1").await;

    // Dev, from the workflow's token: committed to main.
    let token = f.token("acme/web", 100);
    let id = f
        .promote(Some(&token), &f.body("web", "dev", &image, &v1, "c0ffee1"))
        .await;
    let (status, log) = f.finish(&id).await;
    assert_eq!(status, "completed", "{log}");
    assert!(log.contains("signed by configured key #1"), "{log}");
    let dev = f.overlay("main", "web", "onprem-dev");
    assert_eq!(
        dev["images"][0],
        json!({"name": "backend-image", "newName": image, "digest": v1})
    );
    let notes = &dev["metadata"]["annotations"];
    assert_eq!(notes["promotion.soft-yt.dev/source-commit"], "c0ffee1");
    assert_eq!(notes["promotion.soft-yt.dev/workflow-run"], "100");
    assert_eq!(f.overlay("main", "web", "onprem-prod")["images"][0]["newTag"], "latest");

    // Prod accepts the bundle dev runs, on a branch to merge.
    let id = f
        .promote(Some(&token), &f.body("web", "prod", &image, &v1, "c0ffee1"))
        .await;
    let (status, log) = f.finish(&id).await;
    assert_eq!(status, "completed", "{log}");
    assert!(log.contains("branch promote/web-prod"), "{log}");
    if std::env::var_os("PROMOTION_TRANSCRIPT").is_some() {
        eprintln!(
            "--- prod promotion {id} ---\n{log}\n--- onprem-prod overlay on promote/web-prod ---\n{}",
            git_bare(
                &f.repo,
                &[
                    "show",
                    "promote/web-prod:apps/web/overlays/onprem-prod/kustomization.yaml"
                ]
            )
        );
    }
    assert_eq!(f.overlay("main", "web", "onprem-prod")["images"][0]["newTag"], "latest");
    assert_eq!(
        f.overlay("promote/web-prod", "web", "onprem-prod")["images"][0]["digest"],
        v1
    );
    let merged = git_bare(&f.repo, &["rev-parse", "promote/web-prod"]);
    git_bare(&f.repo, &["update-ref", "refs/heads/main", merged.trim()]);

    // A newer build cannot skip dev.
    let v2 = f.build("acme/web-backend", "v2").await;
    let token2 = f.token("acme/web", 101);
    let id = f
        .promote(Some(&token2), &f.body("web", "prod", &image, &v2, "c0ffee2"))
        .await;
    let (status, log) = f.finish(&id).await;
    assert_eq!(status, "failed", "{log}");
    assert!(log.contains("accepts only the bundle running in dev"), "{log}");

    let id = f
        .promote(Some(&token2), &f.body("web", "dev", &image, &v2, "c0ffee2"))
        .await;
    assert_eq!(f.finish(&id).await.0, "completed");

    // The older build does not come back by accident...
    let id = f
        .promote(Some(&token), &f.body("web", "dev", &image, &v1, "c0ffee1"))
        .await;
    let (status, log) = f.finish(&id).await;
    assert_eq!(status, "failed", "{log}");
    assert!(log.contains("never replaces a newer one"), "{log}");
    assert_eq!(f.overlay("main", "web", "onprem-dev")["images"][0]["digest"], v2);

    // ...but an operator rolls back on purpose, with the command line: the
    // bundle of the first dev promotion, promoted again.
    let (_, history) = f.app.get("/v2/promotions?service=web&stage=dev", None).await;
    let first_dev = history["promotions"]
        .as_array()
        .and_then(|l| l.last())
        .and_then(|p| p["taskId"].as_str())
        .expect("the first dev promotion")
        .to_owned();
    // The server runs on this test's runtime: the binary is awaited, never blocked on.
    let cli = |args: Vec<String>| {
        let address = f.app.address.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scaffolder"))
                .args(&args)
                .args(["--server", &address])
                .env_remove("SCAFFOLDER_TOKEN")
                .output()
                .await
                .expect("scaffolder runs");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let args = |list: &[&str]| list.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    let (code, stdout, stderr) = cli(args(&["promotions", "rollback", &first_dev, "--follow"])).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("Rolling web back on dev"), "{stderr}");
    let (code, stdout, _) = cli(args(&["promotions", "list", "--service", "web"])).await;
    assert_eq!(code, Some(0));
    assert!(
        stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("(rollback)") && l.contains("c0ffee1")),
        "{stdout}"
    );
    let (code, stdout, _) = cli(args(&["promotions", "show", &first_dev])).await;
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("Source commit c0ffee1") && stdout.contains(&v1),
        "{stdout}"
    );
    let dev = f.overlay("main", "web", "onprem-dev");
    assert_eq!(dev["images"][0]["digest"], v1);
    assert_eq!(dev["metadata"]["annotations"]["promotion.soft-yt.dev/rollback"], "true");

    // The history, newest first.
    let (status, history) = f.app.get("/v2/promotions?service=web", None).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let list = history["promotions"].as_array().expect("list");
    let summary: Vec<(String, String, bool)> = list
        .iter()
        .map(|p| {
            (
                p["stage"].as_str().unwrap_or_default().to_owned(),
                p["status"].as_str().unwrap_or_default().to_owned(),
                p["rollback"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("dev".into(), "completed".into(), true),
            ("dev".into(), "failed".into(), false),
            ("dev".into(), "completed".into(), false),
            ("prod".into(), "failed".into(), false),
            ("prod".into(), "completed".into(), false),
            ("dev".into(), "completed".into(), false),
        ]
    );
    assert_eq!(list[4]["branch"], "promote/web-prod");
    assert_eq!(list[4]["sourceCommit"], "c0ffee1");
    assert_eq!(list[4]["workflowRun"], 100);
    assert_eq!(list[4]["createdBy"], "repository:github.com/acme/web");
    assert_eq!(list[4]["clusters"], json!(["onprem-prod"]));

    // A workflow sees only its repository's promotions.
    let (_, own) = f.app.get("/v2/promotions", Some(&f.token("acme/other", 1))).await;
    assert_eq!(own["promotions"], json!([]));

    // Every promotion that landed is in the audit trail (newest first), with
    // where it went; the refused ones wrote none.
    let (status, audit) = f.app.get("/v2/audit?event=promotion:create", None).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let events = audit["events"].as_array().expect("events");
    let landed: Vec<(Value, Value)> = events
        .iter()
        .map(|e| (e["meta"]["branch"].clone(), e["meta"]["rollback"].clone()))
        .collect();
    assert_eq!(
        landed,
        vec![
            (json!("main"), json!(true)),
            (json!("main"), json!(false)),
            (json!("promote/web-prod"), json!(false)),
            (json!("main"), json!(false)),
        ],
        "{audit}"
    );
    assert!(events.iter().all(|e| e["severityLevel"] == "high"), "{audit}");
}

#[tokio::test]
async fn promotions_are_refused_for_foreign_services_unsigned_images_and_other_workflows() {
    if !(super::registry::available() && super::issuer::available()) {
        return;
    }
    let f = Fixture::start(&["web".to_owned()], &backend).await;
    let image = backend(&f.registry.host, "web");
    let signed = f.build("acme/web-backend", "v1").await;

    // Another repository's workflow.
    let id = f
        .promote(
            Some(&f.token("acme/intruder", 7)),
            &f.body("web", "dev", &image, &signed, "bad"),
        )
        .await;
    let (status, log) = f.finish(&id).await;
    assert_eq!(status, "failed", "{log}");
    assert!(
        log.contains("repository:github.com/acme/intruder may not promote web: the service is owned by repository:github.com/acme/web"),
        "{log}"
    );

    // An unsigned image: the verify step names it.
    let unsigned = f.registry.push_image("acme/web-backend", "unsigned", "unsigned").await;
    let id = f
        .promote(
            Some(&f.token("acme/web", 8)),
            &f.body("web", "dev", &image, &unsigned, "c1"),
        )
        .await;
    let (status, log) = f.finish(&id).await;
    assert_eq!(status, "failed", "{log}");
    assert!(
        log.contains(&format!("{image}@{unsigned} is refused: it has no cosign signature")),
        "{log}"
    );
    assert_eq!(f.overlay("main", "web", "onprem-dev")["images"][0]["newTag"], "latest");

    // Another ref, another workflow file: refused before any task.
    let branch_token = f.issuer.token("acme/web", WORKFLOW, "refs/heads/feature", 9);
    let (status, body) = f
        .app
        .post(
            "/v2/promotions",
            Some(&branch_token),
            &f.body("web", "dev", &image, &signed, "c1"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("refs/heads/feature"),
        "{body}"
    );
    let other_workflow = f.issuer.token("acme/web", ".github/workflows/release.yml", MAIN, 10);
    let (status, body) = f
        .app
        .post(
            "/v2/promotions",
            Some(&other_workflow),
            &f.body("web", "dev", &image, &signed, "c1"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // The built-in template is not a back door.
    let (status, body) = f
        .app
        .post(
            "/v2/tasks",
            None,
            &json!({"templateRef": "template:default/scaffolder-promotion", "values": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn fifty_services_promoted_at_once_all_land_and_one_service_keeps_its_newest_build() {
    if !(super::registry::available() && super::issuer::available()) {
        return;
    }
    let services: Vec<String> = (0..50).map(|i| format!("svc-{i:02}")).collect();
    // Every service runs the same shared image: the registry work is one
    // push, the GitOps writes are fifty.
    let f = Fixture::start(&services, &|host, _| format!("{host}/acme/shared-backend")).await;
    let image = format!("{}/acme/shared-backend", f.registry.host);
    let digest = f.build("acme/shared-backend", "shared").await;
    let mut ids = Vec::new();
    for (i, service) in services.iter().enumerate() {
        let token = f
            .issuer
            .token(&format!("acme/{service}"), WORKFLOW, MAIN, 1000 + i as u64);
        ids.push(
            f.promote(Some(&token), &f.body(service, "dev", &image, &digest, service))
                .await,
        );
    }
    for id in &ids {
        let (status, log) = f.finish(id).await;
        assert_eq!(status, "completed", "{log}");
    }
    for service in &services {
        let overlay = f.overlay("main", service, "onprem-dev");
        assert_eq!(overlay["images"][0]["digest"], json!(digest), "{service}");
        assert_eq!(
            overlay["metadata"]["annotations"]["promotion.soft-yt.dev/source-commit"],
            json!(service)
        );
    }

    // Two builds of one service at once: whichever lands first, the newer
    // build is what stays.
    let older = f.build("acme/shared-backend", "older").await;
    let newer = f.build("acme/shared-backend", "newer").await;
    let token_old = f.issuer.token("acme/svc-00", WORKFLOW, MAIN, 2000);
    let token_new = f.issuer.token("acme/svc-00", WORKFLOW, MAIN, 2001);
    let (body_new, body_old) = (
        f.body("svc-00", "dev", &image, &newer, "new"),
        f.body("svc-00", "dev", &image, &older, "old"),
    );
    let (a, b) = tokio::join!(
        f.promote(Some(&token_new), &body_new),
        f.promote(Some(&token_old), &body_old),
    );
    let (new_status, new_log) = f.finish(&a).await;
    let (old_status, old_log) = f.finish(&b).await;
    assert_eq!(new_status, "completed", "{new_log}");
    assert!(
        old_status == "completed" || old_log.contains("never replaces a newer one"),
        "{old_status}: {old_log}"
    );
    let overlay = f.overlay("main", "svc-00", "onprem-dev");
    assert_eq!(overlay["images"][0]["digest"], json!(newer));
    assert_eq!(
        overlay["metadata"]["annotations"]["promotion.soft-yt.dev/workflow-run"],
        "2001"
    );
}

#[tokio::test]
async fn stage_settings_gate_production_on_approval_and_on_argo_cd_health() {
    use scaffolder::gitops::cluster::{ClusterConfig, ClusterInput, PromotionSettings};

    if !(super::registry::available() && super::issuer::available()) {
        return;
    }
    let argocd = crate::auth::helpers::FakeServer::start(Default::default());
    let argocd_url = argocd.url.clone();
    // Approvers sign in with Backstage tokens.
    let key = crate::auth::helpers::TestKey::new("k1");
    let jwks = crate::auth::helpers::jwks_server(&[&key]);
    let jwks_url = jwks.url.clone();
    let f = Fixture::start_with(&["web".to_owned()], &backend, move |s| {
        s.promotion.argocd_url = Some(argocd_url);
        s.promotion.health_timeout_seconds = 1;
        s.auth.backstage = Some(scaffolder::config::BackstageAuthSettings {
            base_url: jwks_url,
            jwks_url: None,
            issuer: None,
            audience: None,
            jwks_min_refresh_seconds: 30,
        });
    })
    .await;
    let lead = key.token_in_groups("user:default/lead", &["group:default/platform"]);
    let dev = key.token_in_groups("user:default/dev", &["group:default/web"]);
    let image = backend(&f.registry.host, "web");
    let v1 = f.build("acme/web-backend", "v1").await;
    let token = f.token("acme/web", 300);
    let id = f.promote(Some(&token), &f.body("web", "dev", &image, &v1, "c1")).await;
    assert_eq!(f.finish(&id).await.0, "completed");

    let mut prod = ClusterConfig::build("onprem-prod", &ClusterInput::default(), "argocd").expect("settings");
    prod.promotion = Some(PromotionSettings {
        order: None,
        requires_approval: true,
        wait_for_healthy: false,
    });
    f.commit_file("clusters/onprem-prod/cluster.yaml", &prod.render().expect("yaml"));
    // The promotion waits at a gate for the configured approvers
    // (promotion.approvers: group:default/platform by default), holding no
    // worker, and nothing reaches prod meanwhile.
    let id = f.promote(Some(&token), &f.body("web", "prod", &image, &v1, "c1")).await;
    let seen =
        crate::governance::wait_for_message_as(&f.app, &id, None, "waiting for approval by group:default/platform")
            .await;
    assert!(seen.iter().any(|m| m.contains("Promote web to prod")), "{seen:?}");
    let (_, task) = f.app.get(&format!("/v2/tasks/{id}"), Some(&lead)).await;
    assert_eq!(task["status"], "processing", "{task}");
    // The workflow that asked cannot approve it, nor can someone outside the group.
    for who in [&token, &dev] {
        let (status, body) = f
            .app
            .post(&format!("/v2/tasks/{id}/approve"), Some(who), &json!({}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let (status, body) = f
        .app
        .post(
            &format!("/v2/tasks/{id}/approve"),
            Some(&lead),
            &json!({"comment": "release window"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, log) = f.finish(&id).await;
    assert_eq!(status, "completed", "{log}");
    assert!(log.contains("Approved by user:default/lead: release window"), "{log}");
    assert!(log.contains("Promoted web to prod"), "{log}");

    // A rejected one fails with the approver's word.
    let v2 = f.build("acme/web-backend", "v2").await;
    let id = f.promote(Some(&token), &f.body("web", "dev", &image, &v2, "c2")).await;
    assert_eq!(f.finish(&id).await.0, "completed");
    let id = f.promote(Some(&token), &f.body("web", "prod", &image, &v2, "c2")).await;
    crate::governance::wait_for_message_as(&f.app, &id, None, "waiting for approval").await;
    let (status, body) = f
        .app
        .post(
            &format!("/v2/tasks/{id}/reject"),
            Some(&lead),
            &json!({"comment": "freeze"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, log) = f.finish(&id).await;
    assert_eq!(status, "failed", "{log}");
    assert!(log.contains("Rejected by user:default/lead: freeze"), "{log}");

    prod.promotion = Some(PromotionSettings {
        order: None,
        requires_approval: false,
        wait_for_healthy: true,
    });
    f.commit_file("clusters/onprem-prod/cluster.yaml", &prod.render().expect("yaml"));
    let app = "/api/v1/applications/web-onprem-dev";
    argocd.set(app, json!({"metadata": {"name": "web-onprem-dev"}, "status": {"sync": {"status": "OutOfSync"}, "health": {"status": "Progressing"}}}));
    let id = f.promote(Some(&token), &f.body("web", "prod", &image, &v2, "c2")).await;
    let (status, log) = f.finish(&id).await;
    assert_eq!(status, "failed", "{log}");
    assert!(log.contains("web-onprem-dev in dev is OutOfSync/Progressing"), "{log}");

    argocd.set(app, json!({"metadata": {"name": "web-onprem-dev"}, "status": {"sync": {"status": "Synced"}, "health": {"status": "Healthy"}}}));
    let id = f.promote(Some(&token), &f.body("web", "prod", &image, &v2, "c2")).await;
    let (status, log) = f.finish(&id).await;
    assert_eq!(status, "completed", "{log}");
    assert!(log.contains("web-onprem-dev is Synced and Healthy"), "{log}");
    assert_eq!(
        f.overlay("promote/web-prod", "web", "onprem-prod")["images"][0]["digest"],
        v2
    );
}
