//! Backstage's official scaffolder modules, unchanged, in the bridge:
//! `GET /v2/actions` lists the 52 actions of a stock installation with the
//! reference's schemas, `fetch:cookiecutter` runs for real (the `cookiecutter`
//! CLI from PyPI) and our `publish:git` publishes its files, GitLab's
//! actions are skipped in dry-runs as Backstage skips them, and a real
//! template that answered 404 "not registered" answers like Backstage.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::helpers::{app_with_bridge, bridge_dir, write, Bridge, Modules};
use crate::api::dry_run::{compare, post, read, truncate};
use crate::api::helpers::{golden, LIMIT};
use crate::common::data::{current_test, outside_dir, skip_or_fail};
use crate::common::git::git;

/// Where `.ci/run` installs the pinned `cookiecutter` (a venv), or
/// `SCAFFOLDER_COOKIECUTTER_BIN`: the directory holding the executable.
fn cookiecutter_bin() -> Option<PathBuf> {
    let dir = match std::env::var_os("SCAFFOLDER_COOKIECUTTER_BIN") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".cache/scaffolder/cookiecutter-venv/bin"),
    };
    if dir.join("cookiecutter").is_file() {
        return Some(dir);
    }
    skip_or_fail(&format!(
        "{}needs the `cookiecutter` CLI: `python3 -m venv ~/.cache/scaffolder/cookiecutter-venv && \
         ~/.cache/scaffolder/cookiecutter-venv/bin/pip install cookiecutter==2.6.0` (.ci/run does) or set \
         SCAFFOLDER_COOKIECUTTER_BIN to the directory holding it",
        current_test()
    ));
    None
}

#[tokio::test]
async fn the_actions_of_a_stock_installation_are_listed_with_the_reference_schemas() {
    let Some(dir) = bridge_dir() else { return };
    let bridge = Bridge::start(&dir, Modules::Official).await;
    let scratch = tempfile::tempdir().unwrap();
    let app = app_with_bridge(&bridge, true, scratch.path(), &scratch.path().join("git")).await;
    let (status, listed) = app.get_json("/v2/actions").await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<Value> = listed.as_array().cloned().unwrap_or_default();
    let reference = golden("actions-list-modules")["response"]["body"].clone();
    let reference = reference.as_array().expect("a list");
    assert_eq!(reference.len(), 52);
    let mut missing = Vec::new();
    let mut different = Vec::new();
    for expected in reference {
        let id = expected["id"].as_str().unwrap();
        let Some(ours) = listed.iter().find(|a| a["id"] == id) else {
            missing.push(id.to_owned());
            continue;
        };
        // The built-in GitHub actions keep their own descriptions (a unit
        // test compares their schemas); every bridged one is Backstage's own.
        let native = id.starts_with("github:") || id.starts_with("publish:github");
        if !native && ours != expected {
            different.push(format!("{id}:\n ours {}\n ref  {}", truncate(ours), truncate(expected)));
        }
    }
    assert!(missing.is_empty(), "not listed: {missing:?}");
    assert!(different.is_empty(), "{}", different.join("\n"));
    for id in [
        "publish:gitlab",
        "gitlab:repo:push",
        "fetch:cookiecutter",
        "notification:send",
    ] {
        assert!(listed.iter().any(|a| a["id"] == id), "{id}");
    }
}

#[tokio::test]
async fn gitlab_actions_are_skipped_in_a_dry_run_as_backstage_skips_them() {
    let Some(dir) = bridge_dir() else { return };
    let bridge = Bridge::start(&dir, Modules::Official).await;
    let scratch = tempfile::tempdir().unwrap();
    let app = app_with_bridge(&bridge, true, scratch.path(), &scratch.path().join("git")).await;
    let template = json!({
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "kind": "Template",
        "metadata": {"name": "gitlab-dry"},
        "spec": {
            "steps": [
                {"id": "publish", "name": "Publish", "action": "publish:gitlab",
                 "input": {"repoUrl": "gitlab.com?owner=acme&repo=svc"}},
                {"id": "push", "action": "gitlab:repo:push",
                 "input": {"repoUrl": "gitlab.com?owner=acme&repo=svc", "branchName": "main", "commitMessage": "m"}},
                {"id": "log", "action": "debug:log",
                 "input": {"message": "${{ steps.publish.output.remoteUrl }}"}},
            ],
        },
    });
    let (code, body) = post(
        &app,
        &json!({"template": template, "values": {}, "directoryContents": []}),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let log: Vec<(String, String)> = body["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["body"]["status"].as_str().unwrap_or("").to_owned(),
                e["body"]["message"].as_str()?.to_owned(),
            ))
        })
        .collect();
    for action in ["publish:gitlab", "gitlab:repo:push"] {
        let message = format!("Skipping because {action} does not support dry-run");
        assert!(
            log.iter().any(|(status, m)| status == "skipped" && *m == message),
            "{log:#?}"
        );
    }
    // The skipped step's output is faked from its output schema, as in Backstage.
    assert!(log.iter().any(|(_, m)| m.contains("<example>")), "{log:#?}");
}

/// The templates `api::dry_run` lists as needing actions we do not ship
/// (`NOT_INSTALLED`): with the bridge they answer as Backstage did.
#[tokio::test]
async fn the_templates_that_were_not_registered_now_answer_like_backstage() {
    let Some(root) = outside_dir("fixtures/dry-run") else {
        return;
    };
    let Some(dir) = bridge_dir() else { return };
    let bridge = Bridge::start(&dir, Modules::Official).await;
    let scratch = tempfile::tempdir().unwrap();
    let app = app_with_bridge(&bridge, true, scratch.path(), &scratch.path().join("git")).await;
    let mut problems = Vec::new();
    for name in [
        "backstage__software-templates__docs-template-cookiecutter",
        "backstage__software-templates__rails-demo",
    ] {
        let request = read(&root.join(name).join("request.json")).expect("request.json");
        let expected = read(&root.join(name).join("response.json")).expect("response.json");
        let (status, body) = post(&app, &request).await;
        if let Some(problem) = compare(
            expected["status"].as_u64().unwrap_or(0),
            &expected["body"],
            status,
            &body,
        ) {
            problems.push(format!("{name}: {problem}\nours: {}", truncate(&body)));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn fetch_cookiecutter_runs_for_real_and_publish_git_publishes_its_files() {
    let Some(dir) = bridge_dir() else { return };
    let Some(cookiecutter) = cookiecutter_bin() else { return };
    let bridge = Bridge::start_with(&dir, Modules::Official, Some(cookiecutter), super::helpers::free_port()).await;
    let scratch = tempfile::tempdir().unwrap();
    let templates = scratch.path().join("templates");
    write(
        &templates.join("cookie/template.yaml"),
        r#"apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: cookie
spec:
  parameters:
    - properties:
        name: {type: string}
  steps:
    - id: fetch
      action: fetch:cookiecutter
      input:
        url: ./skeleton
        values:
          name: ${{ parameters.name }}
          description: Made by cookiecutter
    - id: publish
      action: publish:git
      input:
        repoUrl: git.local?owner=team&repo=${{ parameters.name }}
        defaultBranch: main
  output:
    remoteUrl: ${{ steps.publish.output.remoteUrl }}
"#,
    );
    write(
        &templates.join("cookie/skeleton/cookiecutter.json"),
        "{\n  \"name\": \"\",\n  \"description\": \"\"\n}\n",
    );
    write(
        // Backstage's cookiecutter action makes the skeleton itself the
        // project directory (`{{cookiecutter and 'contents'}}`).
        &templates.join("cookie/skeleton/README.md"),
        "# {{ cookiecutter.name }}\n\n{{ cookiecutter.description }}\n",
    );
    let app = app_with_bridge(&bridge, true, &templates, &scratch.path().join("git")).await;
    let id = app.create_task("cookie", json!({"name": "baked"})).await;
    let events = app.events_until_completion(&id, LIMIT).await;
    let log: Vec<&str> = events.iter().filter_map(|e| e["body"]["message"].as_str()).collect();
    assert_eq!(app.task(&id).await["status"], "completed", "{log:#?}\n{}", bridge.log());
    let bare = scratch.path().join("git/team/baked.git");
    let files = git(&bare, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(files.lines().any(|f| f == "README.md"), "{files}\n{log:#?}");
    assert_eq!(
        git(&bare, &["show", "main:README.md"]),
        "# baked\n\nMade by cookiecutter\n"
    );
}
