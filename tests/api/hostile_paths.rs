//! `POST /v2/dry-run` with hostile upload paths and steps that write out of
//! the dry-run workspace: each is refused with a clear message and nothing
//! lands outside the dry-run's scratch directory.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::helpers::spawn_app_with;

fn file(path: &str) -> Value {
    json!({ "path": path, "base64Content": base64::engine::general_purpose::STANDARD.encode("x") })
}

fn template(steps: Value) -> Value {
    json!({
        "apiVersion": "scaffolder.backstage.io/v1beta3", "kind": "Template", "metadata": {"name": "hostile"},
        "spec": {"steps": steps}
    })
}

/// Every entry under `dir`, sorted.
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut all: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.path().display().to_string())
        .collect();
    all.sort();
    all
}

#[tokio::test]
async fn hostile_dry_run_paths_are_refused_and_nothing_lands_outside() {
    let root = tempfile::tempdir().expect("temp dir");
    let work = root.path().join("work");
    let canary = root.path().join("canary");
    std::fs::create_dir_all(&work).expect("work dir");
    std::fs::create_dir_all(&canary).expect("canary");
    std::fs::write(canary.join("keep"), "canary").expect("canary file");
    let work_dir = work.clone();
    let app = spawn_app_with(move |s| s.worker.work_dir = Some(work_dir)).await;
    let before = listing(&canary);
    let abs = canary.join("pwned").display().to_string();

    // Uploads: refused before anything runs. Outside the template's
    // directory is Backstage's `resolveSafeChildPath` refusal (403).
    for path in [abs.as_str(), "/etc/x", "../x", "a/../../x"] {
        let body = json!({"template": template(json!([])), "values": {}, "directoryContents": [file(path)]});
        let (status, answer) = app.post_json("/v2/dry-run", &body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path:?}: {answer}");
        assert_eq!(answer["error"]["name"], "NotAllowedError", "{path:?}");
        assert_eq!(
            answer["error"]["message"], "Relative path is not allowed to refer to a directory outside its parent",
            "{path:?}"
        );
    }
    let uploads = ["a\u{0}b", "", ".", "a/.."];
    for path in uploads {
        let body = json!({"template": template(json!([])), "values": {}, "directoryContents": [file(path)]});
        let (status, answer) = app.post_json("/v2/dry-run", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path:?}: {answer}");
        assert_eq!(answer["error"]["name"], "InputError", "{path:?}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("is not a relative file path"), "{path:?}: {message}");
    }

    // Steps: the files are in, the step tries to write out.
    let targets = [
        "../../../canary/pwned",
        abs.as_str(),
        "a\u{0}b",
        "..\\..\\canary",
        "C:\\x",
    ];
    let mut steps_refused = 0;
    for target in targets {
        let steps =
            json!([{"id": "out", "action": "fetch:plain", "input": {"url": "./skeleton", "targetPath": target}}]);
        let body = json!({
            "template": template(steps), "values": {},
            "directoryContents": [file("template.yaml"), file("skeleton/f.txt")]
        });
        let (status, answer) = app.post_json("/v2/dry-run", &body).await;
        let text = answer.to_string();
        assert!(
            text.contains("Relative path is not allowed to refer to a directory outside its parent"),
            "{target:?}: {status} {text}"
        );
        steps_refused += 1;
    }
    assert_eq!(steps_refused, targets.len());
    assert_eq!(listing(&canary), before, "the canary changed");
    let beside: Vec<String> = std::fs::read_dir(root.path())
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    let mut beside = beside;
    beside.sort();
    assert_eq!(
        beside,
        ["canary", "work"],
        "something was written beside the work directory"
    );
}
