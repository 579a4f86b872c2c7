//! Many tasks registering different services into one repository at once,
//! spread over several simulated replicas: tasks of one replica take turns,
//! replicas race each other's pushes and retry.

use std::sync::Arc;
use std::time::Instant;

use scaffolder::actions::gitops::GitopsOverlayRegister;
use scaffolder::gitops::repo::RepoLocks;
use serde_json::json;

use crate::gitops::helpers::{commit_count, export, git, git_ok, integrations, local_repo, Task, LOCAL_URL};
use crate::gitops::register::kustomize;

const SERVICES: usize = 50;
const REPLICAS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_registrations_all_land_on_a_linear_main() {
    if !crate::common::tools::tool("kubectl", "`kubectl kustomize` renders the overlays") {
        return;
    }
    let hosts = tempfile::tempdir().unwrap();
    let repo = local_repo(hosts.path());
    crate::gitops::helpers::bare_repo(&repo, true);
    let replicas: Vec<Arc<GitopsOverlayRegister>> = (0..REPLICAS)
        .map(|_| {
            Arc::new(
                GitopsOverlayRegister::new(integrations(hosts.path(), None)).with_locks(Arc::new(RepoLocks::default())),
            )
        })
        .collect();
    let started = Instant::now();
    let mut handles = Vec::new();
    for i in 0..SERVICES {
        let action = replicas[i % REPLICAS].clone();
        handles.push(tokio::spawn(async move {
            let service = format!("svc-{i:02}");
            let task = Task::new();
            let cluster = ["onprem-dev", "yc-prod", "sber-prod", "vk-prod"][i % 4];
            let input = json!({
                "repoUrl": LOCAL_URL,
                "service": service,
                "basePath": task.base(&service),
                "clusters": [cluster],
                "images": [
                    {"name": "app-image", "newName": format!("ghcr.io/acme/{service}"), "newTag": format!("t{i}")},
                    {"name": "sidecar-image", "newName": "ghcr.io/acme/sidecar", "newTag": "1.0.0"},
                ],
            });
            let out = task
                .run(action.as_ref(), input)
                .await
                .unwrap_or_else(|e| panic!("{service}: {e}\n{}", task.log_text()));
            let attempts: u32 = task
                .log_text()
                .split("after ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            (service, cluster, out, attempts)
        }));
    }
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.expect("task"));
    }
    let elapsed = started.elapsed();

    let head = git(&repo, &["rev-parse", "main"]).trim().to_owned();
    assert!(
        git(&repo, &["rev-list", "--merges", "main"]).trim().is_empty(),
        "history is linear"
    );
    assert_eq!(commit_count(&repo, "main"), SERVICES + 1, "one commit per service");
    for (service, _, out, _) in &results {
        let commit = out["commitHash"].as_str().expect("commitHash");
        assert_eq!(out["changed"], json!(true), "{service}");
        assert!(
            git_ok(&repo, &["merge-base", "--is-ancestor", commit, &head]),
            "{service}'s commit {commit} is on main"
        );
    }
    let listed = git(&repo, &["ls-tree", "--name-only", "main", "apps/"]);
    assert_eq!(listed.lines().count(), SERVICES, "{listed}");

    // Every overlay renders with its own tag.
    let tree = export(&repo, "main");
    for (i, (service, cluster, _, _)) in results.iter().enumerate() {
        let docs = kustomize(&tree.path().join(format!("apps/{service}/overlays/{cluster}")));
        let deploy = docs
            .iter()
            .find(|d| d["kind"].as_str() == Some("Deployment"))
            .expect("a Deployment");
        let image = deploy["spec"]["template"]["spec"]["containers"][0]["image"].as_str();
        assert_eq!(image, Some(format!("ghcr.io/acme/{service}:t{i}").as_str()));
    }
    let attempts: Vec<u32> = results.iter().map(|r| r.3).collect();
    assert!(
        attempts.iter().all(|a| *a >= 1),
        "every registration logged its attempts: {attempts:?}"
    );
    eprintln!(
        "{SERVICES} concurrent registrations ({REPLICAS} replicas) landed in {:.1}s ({} push attempts in all, at most {} for one)",
        elapsed.as_secs_f64(),
        attempts.iter().sum::<u32>(),
        attempts.iter().max().copied().unwrap_or(0)
    );
}
