//! `fs:readdir`: lists directories of the workspace into the step outputs
//! `files` and `folders`, as Node's `fs.readdir` with `withFileTypes`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::actions::workspace::resolve_safe_child_path;
use crate::actions::{schema_of, ActionContext, ActionError, ActionExample, ActionHandler};

pub struct FsReadDir;

// Backstage's input properties carry no descriptions, so these are not doc comments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    #[schemars(inner(length(min = 1)))]
    pub paths: Vec<String>,
    #[serde(default)]
    pub recursive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Content {
    /// Name of the file or directory
    pub name: String,
    /// path to the file or directory relative to the workspace
    pub path: String,
    /// full path to the file or directory
    pub full_path: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Output {
    pub files: Vec<Content>,
    pub folders: Vec<Content>,
}

/// Node's recursive `readdir`: breadth first, a directory's entries before
/// those of its subdirectories; links are listed as files, never followed.
/// Entries of one directory are sorted by name (Node keeps the OS order).
fn read_dir(workspace: &Path, dir: &Path, recursive: bool, output: &mut Output) -> Result<(), ActionError> {
    let mut queue = VecDeque::from([dir.to_path_buf()]);
    while let Some(current) = queue.pop_front() {
        let read = std::fs::read_dir(&current).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ActionError::Failed(format!(
                "ENOENT: no such file or directory, scandir '{}'",
                current.display()
            )),
            std::io::ErrorKind::NotADirectory => {
                ActionError::Failed(format!("ENOTDIR: not a directory, scandir '{}'", current.display()))
            }
            _ => ActionError::Io {
                context: format!("cannot read directory {}", current.display()),
                source: e,
            },
        })?;
        let mut entries = read
            .collect::<Result<Vec<_>, _>>()
            .map_err(ActionError::io(format!("cannot read directory {}", current.display())))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let full_path: PathBuf = entry.path();
            let is_dir = entry
                .file_type()
                .map_err(ActionError::io(format!("cannot read {}", full_path.display())))?
                .is_dir();
            let content = Content {
                name: entry.file_name().to_string_lossy().into_owned(),
                path: full_path
                    .strip_prefix(workspace)
                    .unwrap_or(&full_path)
                    .to_string_lossy()
                    .into_owned(),
                full_path: full_path.to_string_lossy().into_owned(),
            };
            if is_dir {
                output.folders.push(content);
                if recursive {
                    queue.push_back(full_path);
                }
            } else {
                output.files.push(content);
            }
        }
    }
    Ok(())
}

#[async_trait]
impl ActionHandler for FsReadDir {
    type Input = Input;
    const ID: &'static str = "fs:readdir";
    const DESCRIPTION: &'static str = "Reads files and directories from the workspace";
    const SUPPORTS_DRY_RUN: bool = true;

    fn output_schema(&self) -> Option<Value> {
        Some(schema_of::<Output>())
    }

    fn examples(&self) -> Vec<ActionExample> {
        vec![
            ActionExample {
                description: "Read complete content of workspace",
                example: "steps:\n  - action: fs:readdir\n    id: read-workdir\n    name: Read workspace directory\n    input:\n      paths:\n        - .\n",
            },
            ActionExample {
                description: "Get content of the docs folder",
                example: "steps:\n  - action: fs:readdir\n    id: read-workdir\n    name: Read workspace directory\n    input:\n      paths:\n        - docs\n      recursive: true\n",
            },
            ActionExample {
                description: "Get content of multiple folders",
                example: "steps:\n  - action: fs:readdir\n    id: read-workdir\n    name: Read workspace directory\n    input:\n      paths:\n        - foo\n        - bar\n      recursive: true\n",
            },
        ]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let mut output = Output {
            files: Vec::new(),
            folders: Vec::new(),
        };
        for path in &input.paths {
            if ctx.cancel.is_cancelled() {
                return Err(ActionError::Cancelled);
            }
            let dir = resolve_safe_child_path(&ctx.workspace, path)?;
            read_dir(&ctx.workspace, &dir, input.recursive, &mut output)?;
        }
        let to_json = |list: &[Content]| serde_json::to_value(list).unwrap_or(Value::Array(Vec::new()));
        ctx.output("files", to_json(&output.files));
        ctx.output("folders", to_json(&output.folders));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::actions::workspace::testing::TestDirs;

    fn entry(t: &TestDirs, relative: &str) -> Value {
        let full = t.workspace.join(relative);
        json!({
            "name": relative.rsplit('/').next().unwrap(),
            "path": relative,
            "fullPath": full.display().to_string(),
        })
    }

    fn workspace() -> TestDirs {
        let t = TestDirs::new();
        t.workspace_file("README.md", "r");
        t.workspace_file(".env", "e");
        t.workspace_file("docs/index.md", "i");
        t.workspace_file("docs/guide/start.md", "s");
        std::fs::create_dir_all(t.workspace.join("empty")).unwrap();
        std::os::unix::fs::symlink("docs", t.workspace.join("docs-link")).unwrap();
        t
    }

    #[tokio::test]
    async fn lists_the_top_level_of_the_workspace() {
        let t = workspace();
        let out = t.run(&FsReadDir, json!({"paths": ["."]})).await.unwrap();
        assert_eq!(
            out["files"],
            json!([entry(&t, ".env"), entry(&t, "README.md"), entry(&t, "docs-link")])
        );
        assert_eq!(out["folders"], json!([entry(&t, "docs"), entry(&t, "empty")]));
    }

    #[tokio::test]
    async fn lists_recursively_breadth_first_over_several_paths() {
        let t = workspace();
        let out = t
            .run(&FsReadDir, json!({"paths": ["docs", "empty"], "recursive": true}))
            .await
            .unwrap();
        assert_eq!(
            out["files"],
            json!([entry(&t, "docs/index.md"), entry(&t, "docs/guide/start.md")])
        );
        assert_eq!(out["folders"], json!([entry(&t, "docs/guide")]));
    }

    #[tokio::test]
    async fn refuses_paths_outside_and_missing_directories() {
        let t = workspace();
        std::os::unix::fs::symlink(t.dir.path(), t.workspace.join("escape")).unwrap();
        for path in ["..", "../template", "/etc", "escape", "docs/../../template"] {
            let err = t.run(&FsReadDir, json!({"paths": [path]})).await.unwrap_err();
            assert!(
                err.to_string().starts_with("Relative path is not allowed"),
                "{path}: {err}"
            );
        }
        let err = t.run(&FsReadDir, json!({"paths": ["nope"]})).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ENOENT: no such file or directory, scandir"),
            "{err}"
        );
        let err = t.run(&FsReadDir, json!({"paths": [""]})).await.unwrap_err();
        assert!(matches!(err, ActionError::InvalidInput(_)), "{err}");
    }
}
