//! `scaffolder run`: every step for real, without a server or a database.

use std::time::Duration;

use serde_json::json;

use crate::cli::helpers::{clone, git, run, scaffolder, spawn};

const SMALL: &str = "tests/cli/templates/publish-small";

#[tokio::test]
async fn run_publishes_a_template_to_the_local_git_host() {
    let data = tempfile::tempdir().unwrap();
    let out = run(data.path(), &["run", SMALL, "--set", "name=svc-one"]).await;
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);

    // One line per step, with the skipped wait, in plain mode (not a terminal).
    assert!(out.stderr.contains("▸ Render the skeleton"), "{}", out.stderr);
    assert!(out.stderr.contains("✓ Render the skeleton"), "{}", out.stderr);
    assert!(out.stderr.contains("✓ Publish"), "{}", out.stderr);
    assert!(out.stderr.contains("- Wait skipped"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("published svc-one"),
        "log lines only with --verbose"
    );

    // Where the repository is and how to clone it.
    let repo = data.path().join("git/acme/svc-one.git");
    let repo = repo.canonicalize().unwrap_or(repo);
    assert!(out.stdout.contains("Repository: file://"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("git clone {}", repo.display())),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Clone svc-one and push."), "{}", out.stdout);

    let work = clone(&repo, &data.path().join("clones/svc-one"));
    let readme = std::fs::read_to_string(work.join("README.md")).unwrap();
    // The owner comes from the schema's default.
    assert_eq!(readme, "# svc-one\n\nOwned by group:default/team-a.\n");
    let ci = std::fs::read_to_string(work.join(".github/workflows/ci.yml")).unwrap();
    assert!(ci.contains("${{ github.sha }}"), "{ci}");
    let log = git(&work, &["log", "--format=%s%n%b"]);
    assert!(log.starts_with("chore: scaffold svc-one"), "{log}");
    assert!(log.contains("Scaffolder-Task: "), "{log}");
}

#[tokio::test]
async fn run_verbose_shows_log_lines_and_keeps_the_workspace() {
    let data = tempfile::tempdir().unwrap();
    let workspace = data.path().join("ws");
    let out = run(
        data.path(),
        &[
            "run",
            SMALL,
            "--set",
            "name=svc-verbose",
            "--verbose",
            "--workspace",
            workspace.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains("    info: published svc-verbose"), "{}", out.stderr);
    assert!(workspace.join("README.md").is_file());
    assert!(out.stderr.contains("The workspace is kept in"), "{}", out.stderr);

    // A workspace that is not empty is refused before anything runs.
    let again = run(
        data.path(),
        &[
            "run",
            SMALL,
            "--set",
            "name=svc-x",
            "--workspace",
            workspace.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(again.code, Some(2), "{}", again.stderr);
    assert!(again.stderr.contains("is not empty"), "{}", again.stderr);
}

#[tokio::test]
async fn run_app_base_go_react_publishes_the_service_and_its_overlays() {
    let data = tempfile::tempdir().unwrap();
    let out = run(
        data.path(),
        &[
            "run",
            "templates/app-base-go-react",
            "--values",
            "examples/demo-values.yaml",
        ],
    )
    .await;
    assert_eq!(out.code, Some(0), "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    for step in [
        "✓ Render the skeleton",
        "✓ Publish the repository",
        "✓ Register the Argo CD overlays",
        "✓ Register in the catalog",
    ] {
        assert!(out.stderr.contains(step), "{step}:\n{}", out.stderr);
    }

    let service = data.path().join("git/soft-yt/demo-service.git");
    let gitops = data.path().join("git/soft-yt/infra-gitops.git");
    for repo in [&service, &gitops] {
        let shown = repo.canonicalize().unwrap_or(repo.clone());
        assert!(
            out.stdout.contains(&format!("git clone {}", shown.display())),
            "{}:\n{}",
            shown.display(),
            out.stdout
        );
    }
    assert!(out.stdout.contains("demo-service-onprem-dev"), "{}", out.stdout);

    // The service repository: rendered files, workflows copied verbatim.
    let work = clone(&service, &data.path().join("clones/demo-service"));
    for file in [
        "README.md",
        "Makefile",
        "catalog-info.yaml",
        "backend/go.mod",
        ".github/workflows/ci.yml",
    ] {
        assert!(work.join(file).is_file(), "{file} missing");
    }
    let catalog = std::fs::read_to_string(work.join("catalog-info.yaml")).unwrap();
    assert!(catalog.contains("demo-service"), "{catalog}");
    assert!(catalog.contains("group:default/team-a"), "{catalog}");
    assert!(!catalog.contains("${{"), "{catalog}");
    let ci = std::fs::read_to_string(work.join(".github/workflows/ci.yml")).unwrap();
    assert!(ci.contains("${{ github."), "{ci}");
    let log = git(&work, &["log", "--format=%s"]);
    assert!(
        log.contains("chore: scaffold demo-service from app-base-go-react"),
        "{log}"
    );

    // The GitOps repository: one overlay per chosen cluster.
    let infra = clone(&gitops, &data.path().join("clones/infra-gitops"));
    for cluster in ["onprem-dev", "yc-prod"] {
        let overlay = infra.join(format!("apps/demo-service/overlays/{cluster}/kustomization.yaml"));
        let text = std::fs::read_to_string(&overlay).unwrap_or_else(|e| panic!("{}: {e}", overlay.display()));
        assert!(text.contains("ghcr.io/soft-yt/demo-service-backend"), "{text}");
    }
    assert!(!infra.join("apps/demo-service/overlays/sber-prod").exists());
    let log = git(&infra, &["log", "--format=%s"]);
    assert!(
        log.contains("feat(demo-service): add demo-service to onprem-dev, yc-prod"),
        "{log}"
    );
}

#[tokio::test]
async fn run_output_json_prints_one_object() {
    let data = tempfile::tempdir().unwrap();
    let out = run(
        data.path(),
        &["run", SMALL, "--set", "name=svc-json", "--output", "json"],
    )
    .await;
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let report = out.json();
    assert_eq!(report["status"], "completed");
    assert!(report.get("error").is_none());
    let steps = report["steps"].as_array().unwrap();
    let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["fetch", "publish", "wait", "done"]);
    assert_eq!(steps[1]["status"], "completed");
    assert!(steps[1]["durationMs"].is_u64(), "{report}");
    assert_eq!(steps[2]["status"], "skipped");
    assert!(steps[2]["durationMs"].is_null());
    let url = report["output"]["links"][0]["url"].as_str().unwrap();
    assert!(
        url.starts_with("file://") && url.ends_with("acme/svc-json.git"),
        "{url}"
    );
}

#[tokio::test]
async fn run_failure_exits_1_with_the_error() {
    let data = tempfile::tempdir().unwrap();
    let args = [
        "run",
        "tests/templates/wait-and-fail",
        "--set",
        "seconds=0",
        "--set",
        "fail=true",
    ];
    let out = run(data.path(), &args).await;
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains("✗ Fail when asked"), "{}", out.stderr);
    assert!(out.stderr.contains("does-not:exist"), "{}", out.stderr);
    assert!(out.stderr.contains("- Say goodbye skipped"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    let mut json_args = args.to_vec();
    json_args.extend(["--output", "json"]);
    let out = run(data.path(), &json_args).await;
    assert_eq!(out.code, Some(1));
    let report = out.json();
    assert_eq!(report["status"], "failed");
    assert_eq!(report["error"]["name"], "NotFoundError");
    assert!(report["error"]["message"].as_str().unwrap().contains("does-not:exist"));
    let statuses: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["completed", "completed", "failed", "skipped"]);
}

#[tokio::test]
async fn invalid_values_exit_2_with_each_error_stack() {
    let data = tempfile::tempdir().unwrap();
    let out = run(data.path(), &["run", SMALL]).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("instance requires property \"name\""),
        "{}",
        out.stderr
    );
    assert!(!data.path().join("git").exists(), "nothing ran");

    let out = run(
        data.path(),
        &["run", SMALL, "--set", "name=Bad_Name", "--output", "json"],
    )
    .await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("instance.name does not match pattern"),
        "{}",
        out.stderr
    );
    let report = out.json();
    assert_eq!(report["status"], "invalid");
    assert_eq!(report["error"]["errors"][0]["name"], "pattern");

    let out = run(data.path(), &["run", SMALL, "--set", "novalue"]).await;
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("is not key=value"), "{}", out.stderr);

    // clap's own usage errors are 2 as well.
    let out = run(data.path(), &["run", SMALL, "--output", "yaml"]).await;
    assert_eq!(out.code, Some(2));
}

#[tokio::test]
async fn template_refs_are_found_in_the_configured_dirs() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("config.yaml");
    std::fs::write(&config, "templates:\n  dirs: [tests/templates]\n").unwrap();
    let config = config.to_str().unwrap();
    let out = run(
        data.path(),
        &[
            "run",
            "template:team/paged",
            "--config",
            config,
            "--set",
            "name=from-ref",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.json()["output"], json!({"name": "from-ref"}));

    // The hidden page's required value is not asked for; shown, it is.
    let out = run(
        data.path(),
        &[
            "run",
            "team/paged",
            "--config",
            config,
            "--set",
            "name=x",
            "--set",
            "advanced=true",
        ],
    )
    .await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("requires property \"replicas\""), "{}", out.stderr);

    let out = run(data.path(), &["run", "no-such-template", "--config", config]).await;
    assert_eq!(out.code, Some(3));
    assert!(
        out.stderr
            .contains("template:default/no-such-template not found; looked in tests/templates"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn ctrl_c_cancels_the_running_step_and_lists_what_was_published() {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = scaffolder(data.path());
    cmd.args(["run", SMALL, "--set", "name=svc-cancel", "--set", "wait=300"]);
    let mut running = spawn(cmd);
    running.wait_for_line("▸ Wait", Duration::from_secs(60)).await;
    let pid = running.pid().to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let out = running.finish(Duration::from_secs(20)).await;
    assert_eq!(out.code, Some(130), "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains("⊘ Wait cancelled"), "{}", out.stderr);
    assert!(out.stderr.contains("Cancelled after"), "{}", out.stderr);
    assert!(out.stderr.contains("Step wait has been cancelled."), "{}", out.stderr);
    // What was already published, with its URLs.
    assert!(out.stderr.contains("✓ Publish (publish)"), "{}", out.stderr);
    assert!(out.stderr.contains("remoteUrl: file://"), "{}", out.stderr);
    assert!(out.stderr.contains("git clone "), "{}", out.stderr);
    assert!(!out.stderr.contains("published svc-cancel"));
    assert!(data.path().join("git/acme/svc-cancel.git").is_dir());
}
