//! The edges a new user hits first: closed pipes, exit codes, values that
//! are wrong or misspelt, paths told from references, error messages
//! without backtraces.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::helpers::{isolate, run, scaffolder, Server, ServerSetup};

const SMALL: &str = "tests/cli/templates/publish-small";

/// `scaffolder ARGS | head -c 10`: the reader takes a few bytes and goes.
async fn read_a_little_then_close(mut cmd: tokio::process::Command) -> (Option<i32>, String) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the scaffolder binary starts");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let mut first = [0u8; 10];
    stdout.read_exact(&mut first).await.expect("some output first");
    drop(stdout);
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the command ends once its reader is gone")
        .expect("waiting for the process");
    let mut err = String::new();
    let _ = stderr.read_to_string(&mut err).await;
    (status.code(), err)
}

#[tokio::test]
async fn a_closed_pipe_ends_the_command_quietly() {
    let server = Server::start().await;
    // Far more than a pipe holds (64 KiB), so the writer must see the close.
    let id = server.create("chatty", json!({"lines": 3000})).await;
    server.wait_for_status(&id, "completed").await;

    let mut logs = scaffolder(server.data.path());
    logs.arg("--server").arg(&server.url).args(["tasks", "logs", &id]);
    let (code, stderr) = read_a_little_then_close(logs).await;
    assert_eq!(code, Some(141), "stderr:\n{stderr}");
    assert!(stderr.is_empty(), "nothing is said:\n{stderr}");

    // Following the event stream: the same, without waiting for the end.
    let mut follow = scaffolder(server.data.path());
    follow
        .arg("--server")
        .arg(&server.url)
        .args(["tasks", "logs", &id, "--follow"]);
    let (code, stderr) = read_a_little_then_close(follow).await;
    assert_eq!(code, Some(141), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn retry_output_json_prints_the_task() {
    let server = Server::start().await;
    let id = server
        .create("wait-and-fail", json!({"seconds": 0, "fail": true}))
        .await;
    server.wait_for_status(&id, "failed").await;
    let out = server.cli(&["tasks", "retry", &id, "--output", "json"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let task = out.json();
    assert_eq!(task["id"], id.as_str());
    assert_eq!(
        task["spec"]["templateInfo"]["entityRef"],
        "template:default/wait-and-fail"
    );
    // Re-opened: whatever the worker has made of it since, not the old failure
    // unless the new attempt already failed too.
    let status = task["status"].as_str().unwrap_or_default();
    assert!(["open", "processing", "failed"].contains(&status), "{task}");
    let shown = server.cli(&["tasks", "show", &id, "--output", "json"]).await.json();
    assert_eq!(shown["id"], task["id"]);
}

#[tokio::test]
async fn not_found_exits_3_in_every_command() {
    let server = Server::start().await;
    let missing = uuid::Uuid::new_v4().to_string();
    for args in [
        vec!["create", "nope"],
        vec!["templates", "show", "nope"],
        vec!["tasks", "show", missing.as_str()],
        vec!["tasks", "logs", missing.as_str(), "--follow"],
        vec!["tasks", "retry", missing.as_str()],
    ] {
        let out = server.cli(&args).await;
        assert_eq!(out.code, Some(3), "{args:?}:\n{}", out.stderr);
        assert!(
            out.stderr.contains("not found") || out.stderr.contains("No task with id"),
            "{args:?}:\n{}",
            out.stderr
        );
    }
    let data = tempfile::tempdir().unwrap();
    for args in [
        vec!["run", "templates/nope"],
        vec!["run", "nope"],
        vec!["dry-run", "templates/nope"],
    ] {
        let out = run(data.path(), &args).await;
        assert_eq!(out.code, Some(3), "{args:?}:\n{}", out.stderr);
    }
    // Nobody listens here: 4, not 1 or 3.
    let out = run(
        data.path(),
        &["--server", "http://127.0.0.1:9", "tasks", "show", &missing],
    )
    .await;
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert!(out.stderr.contains("cannot reach"), "{}", out.stderr);
}

#[tokio::test]
async fn run_tells_paths_from_references() {
    let data = tempfile::tempdir().unwrap();
    // `templates` is a directory here: a path, not the reference template:templates/nope.
    let out = run(data.path(), &["run", "templates/nope"]).await;
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(out.stderr.contains("templates/nope does not exist"), "{}", out.stderr);
    assert!(!out.stderr.contains("template:"), "{}", out.stderr);

    let out = run(data.path(), &["run", "./tests"]).await;
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(out.stderr.contains("no template.yaml in ./tests"), "{}", out.stderr);

    let config = data.path().join("config.yaml");
    std::fs::write(&config, "templates:\n  dirs: [tests/templates]\n").unwrap();
    let out = run(data.path(), &["run", "default/x", "--config", config.to_str().unwrap()]).await;
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("template:default/x not found; looked in tests/templates (templates.dirs)"),
        "{}",
        out.stderr
    );
    // --output json says so on stdout too.
    let out = run(data.path(), &["run", "templates/nope", "--output", "json"]).await;
    assert_eq!(out.code, Some(3));
    assert_eq!(out.json()["status"], "not-found");
}

#[tokio::test]
async fn unknown_set_keys_are_refused_listing_the_known_ones() {
    let data = tempfile::tempdir().unwrap();
    let out = run(data.path(), &["run", SMALL, "--set", "nmae=svc-typo"]).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--set nmae: the template has no parameter 'nmae' (did you mean 'name'?)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("its parameters are: name, owner, wait"),
        "{}",
        out.stderr
    );
    assert!(!data.path().join("git").exists(), "nothing ran");
    let out = run(
        data.path(),
        &["dry-run", SMALL, "--set", "name=svc", "--set", "onwer=x"],
    )
    .await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean 'owner'?"), "{}", out.stderr);

    let server = Server::start().await;
    let out = server
        .cli(&["create", "wait-and-fail", "--set", "seconds=0", "--set", "fial=true"])
        .await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean 'fail'?"), "{}", out.stderr);
    let tasks: Value = server
        .http
        .get(server.api("tasks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tasks["totalTasks"], 0, "no task was created");
}

#[tokio::test]
async fn invalid_values_of_every_page_are_reported_at_once() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("config.yaml");
    std::fs::write(&config, "templates:\n  dirs: [tests/templates]\n").unwrap();
    let config = config.to_str().unwrap();
    // Page 1: a bad name; page 2 (shown): replicas missing.
    let args = [
        "run",
        "team/paged",
        "--config",
        config,
        "--set",
        "name=Bad_Name",
        "--set",
        "advanced=true",
    ];
    let out = run(data.path(), &args).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("instance.name does not match pattern"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("instance requires property \"replicas\""),
        "{}",
        out.stderr
    );

    let server = Server::start().await;
    let out = server
        .cli(&[
            "create",
            "team/paged",
            "--set",
            "name=Bad_Name",
            "--set",
            "advanced=true",
        ])
        .await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("instance.name does not match pattern"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("instance requires property \"replicas\""),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn task_errors_carry_no_backtrace() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("config.yaml");
    // A GitHub host nobody answers for: octocrab's error, whose Display
    // appends a backtrace when RUST_BACKTRACE is set.
    std::fs::write(
        &config,
        "integrations:\n  github:\n    - host: ghe.test\n      api_base_url: http://127.0.0.1:9/api/v3\n      token: t\n",
    )
    .unwrap();
    let server = Server::start_with(ServerSetup {
        env: vec![
            ("RUST_BACKTRACE", "1".into()),
            ("RUST_LIB_BACKTRACE", "1".into()),
            ("SCAFFOLDER_CONFIG", config.display().to_string()),
        ],
        templates: vec!["tests/cli/templates"],
    })
    .await;
    let id = server.create("publish-ghe", json!({"name": "svc"})).await;
    server.wait_for_status(&id, "failed").await;
    let events: Value = server
        .http
        .get(server.api(&format!("tasks/{id}/events")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let messages: Vec<String> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["body"]["error"]["message"].as_str().map(str::to_owned))
        .collect();
    assert!(!messages.is_empty(), "{events}");
    for message in &messages {
        assert!(message.contains("ghe.test"), "{message}");
        assert!(!message.contains("Found at"), "{message}");
        assert!(!message.contains("backtrace"), "{message}");
        assert!(message.lines().count() <= 2, "{message}");
    }
}

/// Reads a process's output until it holds `needle`.
async fn read_until(out: &mut tokio::process::ChildStdout, seen: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        match tokio::time::timeout_at(deadline, out.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => panic!("no {needle:?} in the output; so far:\n{seen}"),
        }
    }
}

/// On a terminal (a pseudo-terminal from util-linux `script`), a required
/// value with a default is asked for, its default offered, Enter keeping it.
#[tokio::test]
async fn a_terminal_is_asked_every_required_value_with_defaults_offered() {
    let data = tempfile::tempdir().unwrap();
    let inner = format!(
        "{} run tests/cli/templates/required-defaults --output json",
        env!("CARGO_BIN_EXE_scaffolder")
    );
    // `script` runs the command on a pseudo-terminal and relays our pipe to it.
    let mut script = tokio::process::Command::new("script");
    script.args(["-q", "-e", "-c", &inner, "/dev/null"]);
    isolate(&mut script, data.path());
    script
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = script.spawn().expect("util-linux script runs");
    let mut input = child.stdin.take().expect("piped stdin");
    let mut output = child.stdout.take().expect("piped stdout");
    let mut seen = String::new();

    read_until(&mut output, &mut seen, "Name (name)").await;
    input.write_all(b"svc-pty\n").await.unwrap();
    read_until(
        &mut output,
        &mut seen,
        "[github.com?owner=acme&repo=infra-gitops] (Enter keeps it)",
    )
    .await;
    input.write_all(b"\n").await.unwrap();
    read_until(&mut output, &mut seen, "\"status\"").await;
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the run ends")
        .expect("waiting for script");
    let mut rest = String::new();
    let _ = output.read_to_string(&mut rest).await;
    seen.push_str(&rest);
    assert_eq!(status.code(), Some(0), "{seen}");
    // Optional values with a default are not asked.
    assert!(!seen.contains("Replicas (replicas)"), "{seen}");
    let report = seen
        .lines()
        .find(|l| l.trim_start().starts_with("{\"status\""))
        .unwrap_or_else(|| panic!("no JSON report:\n{seen}"));
    let report: Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(
        report["output"],
        json!({"name": "svc-pty", "gitopsRepoUrl": "github.com?owner=acme&repo=infra-gitops", "replicas": 2})
    );
}
