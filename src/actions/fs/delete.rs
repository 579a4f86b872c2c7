//! `fs:delete`: deletes files and directories of the workspace, named by
//! paths or glob patterns (dot files included).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use globset::GlobBuilder;
use schemars::JsonSchema;
use serde::Deserialize;

use super::remove_entry;
use crate::actions::workspace::{ensure_inside, resolve_safe_child_path};
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};

pub struct FsDelete;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// A list of files and directories that will be deleted
    pub files: Vec<String>,
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

/// Workspace entries (relative, `/`-separated) matching `pattern`, parents
/// before their children. Links are matched, never followed.
fn glob_matches(workspace: &Path, pattern: &str) -> Result<Vec<PathBuf>, ActionError> {
    let glob = GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| ActionError::InvalidInput(format!("Invalid glob pattern {pattern:?}: {e}")))?
        .compile_matcher();
    let mut matches = Vec::new();
    for entry in walkdir::WalkDir::new(workspace)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| ActionError::Failed(format!("cannot list the workspace: {e}")))?;
        let relative = entry.path().strip_prefix(workspace).unwrap_or(entry.path());
        if relative.to_str().is_some_and(|r| glob.is_match(r)) {
            matches.push(entry.into_path());
        }
    }
    Ok(matches)
}

#[async_trait]
impl ActionHandler for FsDelete {
    type Input = Input;
    const ID: &'static str = "fs:delete";
    const DESCRIPTION: &'static str = "Deletes files and directories from the workspace";
    const SUPPORTS_DRY_RUN: bool = true;

    fn examples(&self) -> Vec<ActionExample> {
        vec![
            ActionExample {
                description: "Delete specified files",
                example: "steps:\n  - action: fs:delete\n    id: deleteFiles\n    name: Delete files\n    input:\n      files:\n        - file1.txt\n        - file2.txt\n",
            },
            ActionExample {
                description: "Delete files with wildcard",
                example: "steps:\n  - action: fs:delete\n    id: deleteFiles\n    name: Delete files\n    input:\n      files:\n        - \"*.txt\"\n",
            },
            ActionExample {
                description: "Delete all files in workspace",
                example: "steps:\n  - action: fs:delete\n    id: deleteFiles\n    name: Delete files\n    input:\n      files:\n        - \"**\"\n",
            },
        ]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        for file in &input.files {
            if ctx.cancel.is_cancelled() {
                return Err(ActionError::Cancelled);
            }
            // Windows-style separators are accepted, as Backstage's tests show.
            let pattern = file.replace('\\', "/");
            // The pattern as a path must stay inside: `../**` or `/etc/*` are refused
            // before anything is matched.
            let literal = resolve_safe_child_path(&ctx.workspace, &pattern)?;
            let targets = if is_glob(&pattern) {
                let normalized = pattern.trim_start_matches("./");
                glob_matches(&ctx.workspace, normalized)?
            } else {
                if literal == ctx.workspace {
                    return Err(ActionError::InvalidInput(format!(
                        "Refusing to delete the workspace itself ({file:?})"
                    )));
                }
                vec![literal]
            };
            for target in targets {
                // Gone already when a parent directory matched first.
                if std::fs::symlink_metadata(&target).is_err() {
                    continue;
                }
                ensure_inside(&ctx.workspace, target.parent().unwrap_or(&target), file)?;
                remove_entry(&target)
                    .map_err(ActionError::io(format!("Failed to delete file {}", target.display())))?;
                ctx.logger
                    .info(format!("File {} deleted successfully", target.display()))
                    .await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::actions::workspace::testing::TestDirs;

    fn workspace() -> TestDirs {
        let t = TestDirs::new();
        t.workspace_file("unit-test-a.js", "a");
        t.workspace_file("unit-test-b.js", "b");
        t.workspace_file("a-folder/unit-test-in-a-folder.js2", "c");
        t.workspace_file("a-folder/deep/x.txt", "d");
        t.workspace_file(".env", "e");
        t.workspace_file("notes.txt", "f");
        t
    }

    #[tokio::test]
    async fn deletes_named_files_and_directories() {
        let t = workspace();
        t.run(
            &FsDelete,
            json!({"files": ["unit-test-a.js", "a-folder", "does-not-exist"]}),
        )
        .await
        .unwrap();
        assert_eq!(t.listing(), [".env", "notes.txt", "unit-test-b.js"]);
        assert!(t.log_lines().contains(&format!(
            "File {} deleted successfully",
            t.workspace.join("unit-test-a.js").display()
        )));
    }

    #[tokio::test]
    async fn globs_match_within_a_segment_and_include_dot_files() {
        let t = workspace();
        t.run(&FsDelete, json!({"files": ["unit-*.js", "*.env"]}))
            .await
            .unwrap();
        assert_eq!(
            t.listing(),
            [
                "a-folder/",
                "a-folder/deep/",
                "a-folder/deep/x.txt",
                "a-folder/unit-test-in-a-folder.js2",
                "notes.txt"
            ]
        );
        t.run(&FsDelete, json!({"files": ["**/*.txt"]})).await.unwrap();
        assert_eq!(
            t.listing(),
            ["a-folder/", "a-folder/deep/", "a-folder/unit-test-in-a-folder.js2"]
        );
    }

    #[tokio::test]
    async fn double_star_empties_the_workspace_but_keeps_it() {
        let t = workspace();
        t.run(&FsDelete, json!({"files": ["**"]})).await.unwrap();
        assert!(t.listing().is_empty());
        assert!(t.workspace.is_dir());
    }

    #[tokio::test]
    async fn windows_style_paths_work() {
        let t = workspace();
        t.run(&FsDelete, json!({"files": [".\\unit-test-a.js", ".\\a-folder\\deep"]}))
            .await
            .unwrap();
        assert!(!t.exists("unit-test-a.js"));
        assert!(!t.exists("a-folder/deep"));
        assert!(t.exists("a-folder/unit-test-in-a-folder.js2"));
    }

    #[tokio::test]
    async fn links_are_deleted_not_their_targets() {
        let t = workspace();
        let outside = t.dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("precious"), "keep").unwrap();
        std::os::unix::fs::symlink(&outside, t.workspace.join("link")).unwrap();
        t.run(&FsDelete, json!({"files": ["li*"]})).await.unwrap();
        assert!(!t.exists("link"));
        assert!(outside.join("precious").exists());
    }

    #[tokio::test]
    async fn paths_outside_the_workspace_are_refused() {
        let t = workspace();
        let outside = t.dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("precious"), "keep").unwrap();
        std::os::unix::fs::symlink(&outside, t.workspace.join("link")).unwrap();
        for file in [
            "/foo/../../../index.js",
            "../../../index.js",
            "../../../**/index.js",
            "../outside/precious",
            "link/precious",
            "link/*",
            "..\\outside\\precious",
        ] {
            let err = t.run(&FsDelete, json!({"files": [file]})).await.unwrap_err();
            assert!(
                err.to_string()
                    .contains("Relative path is not allowed to refer to a directory outside its parent"),
                "{file}: {err}"
            );
        }
        assert!(outside.join("precious").exists());
        let err = t.run(&FsDelete, json!({"files": ["."]})).await.unwrap_err();
        assert!(matches!(err, ActionError::InvalidInput(_)));
        assert!(t.workspace.is_dir());
    }
}
