//! Template versions and the answers file.
//!
//! A version of a directory template is its content: a canonical tar of the
//! directory (sorted paths, no timestamps or owners) named by its SHA-256
//! (`sha256:<hex>`). The same files always give the same version, so a
//! template that did not change between two tasks has one version.
//!
//! The answers file (`.scaffolder/answers.yaml`) is what a generated
//! repository remembers of its making: the template, the version, the values
//! (without secret fields) and the task. An update reads it back.

use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::LoadedTemplate;

/// Where a generated repository keeps its answers file.
pub const ANSWERS_PATH: &str = ".scaffolder/answers.yaml";

const ANSWERS_HEADER: &str = "# Written by the scaffolder when this repository was generated; template\n\
# updates (`scaffolder update`) read it. Edit `values` to change what the\n\
# next update renders with.\n";

#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("cannot read the template directory {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot unpack template version {digest}: {source}")]
    Unpack { digest: String, source: std::io::Error },
    #[error("invalid answers file: {0}")]
    Answers(String),
    #[error("invalid spec.updates.exclude pattern {pattern:?}: {message}")]
    Exclude { pattern: String, message: String },
}

/// One version of a template directory.
#[derive(Debug, Clone)]
pub struct TemplateSnapshot {
    /// `sha256:<hex>` of `archive`.
    pub digest: String,
    /// A tar of the directory, paths relative to it.
    pub archive: Vec<u8>,
}

/// Snapshots `dir` (every file under it, `.git` excluded).
pub fn snapshot_dir(dir: &Path) -> Result<TemplateSnapshot, VersionError> {
    let read = |source: std::io::Error| VersionError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    let walker = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git");
    for entry in walker {
        let entry = entry.map_err(|e| read(std::io::Error::other(e)))?;
        let Ok(relative) = entry.path().strip_prefix(dir) else {
            continue;
        };
        if relative.as_os_str().is_empty() || !entry.file_type().is_file() {
            continue;
        }
        builder.append_path_with_name(entry.path(), relative).map_err(read)?;
    }
    let archive = builder.into_inner().map_err(read)?;
    let digest = format!("sha256:{:x}", Sha256::digest(&archive));
    Ok(TemplateSnapshot { digest, archive })
}

/// Lays a snapshot out in `dest` (which must exist). The tar crate refuses
/// `..` and links that leave `dest`.
pub fn unpack(digest: &str, archive: &[u8], dest: &Path) -> Result<(), VersionError> {
    tar::Archive::new(std::io::Cursor::new(archive))
        .unpack(dest)
        .map_err(|source| VersionError::Unpack {
            digest: digest.to_owned(),
            source,
        })
}

/// The answers file of a generated repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answers {
    /// `template:<namespace>/<name>`.
    pub template: String,
    /// The template version the repository was rendered from.
    pub version: String,
    /// The task that generated (or last updated) the repository.
    pub task_id: String,
    /// The values, without secret fields.
    #[serde(default)]
    pub values: Map<String, Value>,
}

impl Answers {
    /// The answers of a task created from `template` with `values`: secret
    /// fields (see [`secret_fields`]) are left out.
    pub fn new(template: &LoadedTemplate, version: &str, task_id: &str, values: &Value) -> Answers {
        let secret = secret_fields(template);
        let values = values
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| !secret.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Answers {
            template: template.entity_ref.to_string(),
            version: version.to_owned(),
            task_id: task_id.to_owned(),
            values,
        }
    }

    /// The file's text.
    pub fn to_yaml(&self) -> String {
        // A struct of strings and JSON values always serializes.
        let body = serde_norway::to_string(self).unwrap_or_default();
        format!("{ANSWERS_HEADER}{body}")
    }

    pub fn parse(text: &str) -> Result<Answers, VersionError> {
        serde_norway::from_str(text).map_err(|e| VersionError::Answers(e.to_string()))
    }
}

/// Top-level parameters never written to the answers file: fields shown as
/// passwords (`ui:widget: password`) or secret pickers (`ui:field: Secret`).
/// `secrets` are never values in the first place.
pub fn secret_fields(template: &LoadedTemplate) -> Vec<String> {
    let mut out = Vec::new();
    for page in template.spec.parameter_pages() {
        let Some(properties) = page.get("properties").and_then(Value::as_object) else {
            continue;
        };
        for (name, schema) in properties {
            let widget = schema.get("ui:widget").and_then(Value::as_str);
            let field = schema.get("ui:field").and_then(Value::as_str);
            if widget == Some("password") || field == Some("Secret") {
                out.push(name.clone());
            }
        }
    }
    out
}

/// `values` completed with the `default` of every top-level parameter they
/// lack (parameters a newer version added), then `overrides` on top.
pub fn with_defaults(template: &LoadedTemplate, values: &Map<String, Value>, overrides: &Map<String, Value>) -> Value {
    let mut out = values.clone();
    for page in template.spec.parameter_pages() {
        let Some(properties) = page.get("properties").and_then(Value::as_object) else {
            continue;
        };
        for (name, schema) in properties {
            if let Some(default) = schema.get("default") {
                out.entry(name.clone()).or_insert_with(|| default.clone());
            }
        }
    }
    for (k, v) in overrides {
        out.insert(k.clone(), v.clone());
    }
    Value::Object(out)
}

/// Whether an update runs this step: only the steps that write the
/// repository's files (`fetch:*`, `fs:*`); publishing, registration and
/// every other side effect happened once, at creation.
pub fn runs_in_update(action: &str) -> bool {
    action.starts_with("fetch:") || action.starts_with("fs:")
}

/// `spec.updates.exclude`: globs (repository paths) an update never touches.
pub fn update_excludes(template: &LoadedTemplate) -> Result<GlobSet, VersionError> {
    let mut builder = GlobSetBuilder::new();
    let patterns = template
        .entity
        .pointer("/spec/updates/exclude")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for pattern in patterns {
        let Some(pattern) = pattern.as_str() else {
            return Err(VersionError::Exclude {
                pattern: pattern.to_string(),
                message: "not a string".into(),
            });
        };
        let glob = Glob::new(pattern).map_err(|e| VersionError::Exclude {
            pattern: pattern.to_owned(),
            message: e.to_string(),
        })?;
        builder.add(glob);
    }
    builder.build().map_err(|e| VersionError::Exclude {
        pattern: String::new(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use url::Url;

    fn template(parameters: Value) -> LoadedTemplate {
        let entity = json!({
            "apiVersion": crate::template::API_VERSION, "kind": "Template",
            "metadata": {"name": "t"},
            "spec": {"parameters": parameters, "steps": [], "updates": {"exclude": ["docs/**", "*.lock"]}},
        });
        LoadedTemplate::from_entity(entity, Url::parse("file:///t/template.yaml").unwrap(), None).unwrap()
    }

    #[test]
    fn a_directory_has_one_version_whatever_its_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("skeleton/.git")).unwrap();
        std::fs::write(dir.path().join("template.yaml"), "a").unwrap();
        std::fs::write(dir.path().join("skeleton/x"), "b").unwrap();
        std::fs::write(dir.path().join("skeleton/.git/HEAD"), "ignored").unwrap();
        let first = snapshot_dir(dir.path()).unwrap();
        std::fs::write(dir.path().join("skeleton/.git/HEAD"), "changed").unwrap();
        std::fs::write(dir.path().join("skeleton/x"), "b").unwrap();
        assert_eq!(snapshot_dir(dir.path()).unwrap().digest, first.digest);
        std::fs::write(dir.path().join("skeleton/x"), "c").unwrap();
        let second = snapshot_dir(dir.path()).unwrap();
        assert_ne!(second.digest, first.digest);

        let out = tempfile::tempdir().unwrap();
        unpack(&first.digest, &first.archive, out.path()).unwrap();
        assert_eq!(std::fs::read_to_string(out.path().join("skeleton/x")).unwrap(), "b");
        assert!(!out.path().join("skeleton/.git").exists());
    }

    #[test]
    fn answers_leave_secret_fields_out_and_read_back() {
        let t = template(json!([
            {"properties": {"name": {"type": "string"}, "pw": {"type": "string", "ui:widget": "password"}}},
            {"properties": {"token": {"type": "string", "ui:field": "Secret"}, "port": {"type": "number", "default": 8080}}},
        ]));
        let answers = Answers::new(
            &t,
            "sha256:1",
            "task",
            &json!({"name": "svc", "pw": "hunter2", "token": "t"}),
        );
        assert_eq!(answers.values, json!({"name": "svc"}).as_object().unwrap().clone());
        let text = answers.to_yaml();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(Answers::parse(&text).unwrap(), answers);
        let filled = with_defaults(&t, &answers.values, json!({"name": "other"}).as_object().unwrap());
        assert_eq!(filled, json!({"name": "other", "port": 8080}));
        let excludes = update_excludes(&t).unwrap();
        assert!(excludes.is_match("docs/a/b.md") && excludes.is_match("Cargo.lock"));
        assert!(!excludes.is_match("src/main.rs"));
        assert!(Answers::parse("template: [").is_err());
    }
}
