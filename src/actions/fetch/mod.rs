//! `fetch:*` actions: copy a directory or a file from beside the template into
//! the workspace, plain or rendered with the template values.
//!
//! Sources are located by [`resolve_fetch_url`]; remote sources are not
//! available yet, so that function is the one place to extend for them.

mod binary;
mod copy;
mod plain;
mod plain_file;
mod source;
mod template;
mod template_file;

use schemars::gen::SchemaGenerator;
use schemars::schema::{InstanceType, ObjectValidation, Schema, SchemaObject, SingleOrVec};
use serde_json::{Map, Value};

use crate::actions::ActionContext;
use crate::templating::{RenderOptions, Renderer};

pub use plain::FetchPlain;
pub use plain_file::FetchPlainFile;
pub use source::{resolve_fetch_url, FetchLocation};
pub use template::FetchTemplate;
pub use template_file::FetchTemplateFile;

/// `values`: any object (Backstage's `{"type": "object", "additionalProperties": {}}`).
fn values_schema(_: &mut SchemaGenerator) -> Schema {
    SchemaObject {
        instance_type: Some(InstanceType::Object.into()),
        object: Some(Box::new(ObjectValidation {
            additional_properties: Some(Box::new(Schema::Object(SchemaObject::default()))),
            ..Default::default()
        })),
        ..Default::default()
    }
    .into()
}

/// `templateFileExtension`: `{"type": ["string", "boolean"]}`.
fn string_or_bool_schema(_: &mut SchemaGenerator) -> Schema {
    SchemaObject {
        instance_type: Some(SingleOrVec::Vec(vec![InstanceType::String, InstanceType::Boolean])),
        ..Default::default()
    }
    .into()
}

/// The rendering context of template files: the values under `values`, or
/// under `cookiecutter` in cookiecutter compatibility mode (as Backstage).
fn render_context(values: Option<&Map<String, Value>>, cookiecutter_compat: bool) -> Value {
    let key = if cookiecutter_compat { "cookiecutter" } else { "values" };
    let mut context = Map::new();
    if let Some(values) = values {
        context.insert(key.to_string(), Value::Object(values.clone()));
    }
    Value::Object(context)
}

/// Backstage logs the values as winston metadata, which prints as JSON after
/// the message.
fn with_values(message: &str, values: Option<&Map<String, Value>>) -> String {
    match values.and_then(|v| serde_json::to_string(v).ok()) {
        Some(json) => format!("{message} {json}"),
        None => message.to_string(),
    }
}

fn renderer(ctx: &ActionContext, cookiecutter_compat: bool, trim_blocks: bool, lstrip_blocks: bool) -> Renderer {
    Renderer::builder()
        .options(RenderOptions {
            cookiecutter_compat,
            trim_blocks,
            lstrip_blocks,
        })
        .integrations(ctx.integrations.clone())
        .extensions(ctx.extensions.clone())
        .fuel(ctx.limits.template_fuel)
        .output_limit(ctx.limits.template_output_bytes)
        .build()
}

#[cfg(test)]
mod tests {
    use crate::actions::workspace::testing::assert_matches_backstage;

    #[test]
    fn fetch_actions_match_backstages_listing_and_their_examples_parse() {
        assert_matches_backstage(&super::FetchTemplate);
        assert_matches_backstage(&super::FetchTemplateFile);
        assert_matches_backstage(&super::FetchPlain);
        assert_matches_backstage(&super::FetchPlainFile);
    }
}

/// Replays the `fetch:*` steps of Backstage's recorded dry-runs (the
/// successful ones whose files all come from fetch steps) and compares the
/// files with Backstage's: same paths, same bytes, same executable flags.
#[cfg(test)]
mod dry_run_fixtures {
    use std::os::unix::fs::PermissionsExt;

    use base64::Engine;
    use serde_json::{json, Value};

    use crate::actions::workspace::testing::{write_file, TestDirs};
    use crate::actions::Action;
    use crate::templating::Renderer;

    fn read_json(path: &std::path::Path) -> Value {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text).expect("fixture is JSON")
    }

    fn action(id: &str) -> Option<&'static dyn Action> {
        match id {
            "fetch:template" => Some(&super::FetchTemplate),
            "fetch:template:file" => Some(&super::FetchTemplateFile),
            "fetch:plain" => Some(&super::FetchPlain),
            "fetch:plain:file" => Some(&super::FetchPlainFile),
            _ => None,
        }
    }

    /// Actions that write no files (or are skipped in a dry-run).
    fn writes_nothing(id: &str) -> bool {
        id == "debug:log" || id.starts_with("publish:") || id == "catalog:register" || id == "fetch:cookiecutter"
    }

    async fn replay(request: &Value) -> Vec<(String, Vec<u8>, bool)> {
        let t = TestDirs::new();
        for file in request["directoryContents"].as_array().expect("directoryContents") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(file["base64Content"].as_str().expect("base64Content"))
                .expect("base64");
            let path = file["path"].as_str().expect("path");
            write_file(&t.template_dir.join(path), bytes);
        }
        let renderer = Renderer::new();
        let context = json!({"parameters": request["values"], "user": {}, "secrets": {}, "steps": {}});
        for step in request["template"]["spec"]["steps"].as_array().expect("steps") {
            let id = step["action"].as_str().expect("action");
            let Some(action) = action(id) else { continue };
            assert!(
                step.get("if").is_none() && step.get("each").is_none(),
                "unsupported step {step}"
            );
            let input = renderer.render_value(&step["input"], &context).unwrap_or(json!({}));
            t.run(action, input)
                .await
                .unwrap_or_else(|e| panic!("{id} failed: {e}"));
        }
        let mut files = Vec::new();
        for entry in walkdir::WalkDir::new(&t.workspace).sort_by_file_name() {
            let entry = entry.expect("walk");
            if entry.file_type().is_dir() {
                continue;
            }
            let relative = entry
                .path()
                .strip_prefix(&t.workspace)
                .expect("inside")
                .to_string_lossy()
                .into_owned();
            let mode = entry.metadata().expect("metadata").permissions().mode();
            files.push((relative, std::fs::read(entry.path()).expect("read"), mode & 0o100 != 0));
        }
        files.sort();
        files
    }

    #[tokio::test]
    async fn fetch_template_reproduces_backstages_dry_run_files() {
        let Some(fixtures) = crate::test_data::outside_dir("fixtures/dry-run") else {
            return;
        };
        let mut compared = 0;
        let mut dirs: Vec<_> = std::fs::read_dir(fixtures)
            .expect("dry-run fixtures")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            for (request, response) in [
                ("request.json", "response.json"),
                ("render-request.json", "render-response.json"),
                ("render-request.json", "render-nunjucks-response.json"),
            ] {
                let response_path = dir.join(response);
                if !response_path.exists() {
                    continue;
                }
                let response = read_json(&response_path);
                let request = read_json(&dir.join(request));
                let steps = request["template"]["spec"]["steps"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let replayable = response["status"] == 200
                    && steps.iter().all(|s| {
                        let id = s["action"].as_str().unwrap_or("");
                        (action(id).is_some() && s.get("if").is_none() && s.get("each").is_none()) || writes_nothing(id)
                    });
                if !replayable {
                    continue;
                }
                let mut expected: Vec<(String, Vec<u8>, bool)> = response["body"]["directoryContents"]
                    .as_array()
                    .expect("files")
                    .iter()
                    .map(|f| {
                        (
                            f["path"].as_str().expect("path").to_string(),
                            base64::engine::general_purpose::STANDARD
                                .decode(f["base64Content"].as_str().expect("content"))
                                .expect("base64"),
                            f["executable"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect();
                expected.sort();
                let actual = replay(&request).await;
                let name = format!(
                    "{}/{}",
                    dir.file_name().unwrap_or_default().to_string_lossy(),
                    response_path.display()
                );
                let paths = |files: &[(String, Vec<u8>, bool)]| files.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
                assert_eq!(paths(&actual), paths(&expected), "{name}: paths");
                for (mine, theirs) in actual.iter().zip(&expected) {
                    assert_eq!(
                        String::from_utf8_lossy(&mine.1),
                        String::from_utf8_lossy(&theirs.1),
                        "{name}: {}",
                        mine.0
                    );
                    assert_eq!(mine.1, theirs.1, "{name}: bytes of {}", mine.0);
                    assert_eq!(mine.2, theirs.2, "{name}: executable flag of {}", mine.0);
                }
                compared += 1;
            }
        }
        assert!(compared >= 15, "only {compared} dry-runs were compared");
    }
}
