//! `fs:rename`: moves files and directories within the workspace, with
//! fs-extra `move` rules (no overwrite unless asked, never into itself).

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use super::remove_entry;
use crate::actions::workspace::resolve_safe_child_path;
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};

pub struct FsRename;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// A list of file and directory names that will be renamed
    pub files: Vec<Rename>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rename {
    /// The source location of the file to be renamed
    pub from: String,
    /// The destination of the new file
    pub to: String,
    /// Overwrite existing file or directory, default is false
    pub overwrite: Option<bool>,
}

#[async_trait]
impl ActionHandler for FsRename {
    type Input = Input;
    const ID: &'static str = "fs:rename";
    const DESCRIPTION: &'static str = "Renames files and directories within the workspace";
    const SUPPORTS_DRY_RUN: bool = true;

    fn examples(&self) -> Vec<ActionExample> {
        vec![ActionExample {
            description: "Rename specified files ",
            example: "steps:\n  - action: fs:rename\n    id: renameFiles\n    name: Rename files\n    input:\n      files:\n        - from: file1.txt\n          to: file1Renamed.txt\n        - from: file2.txt\n          to: file2Renamed.txt\n        - from: file3.txt\n          to: file3Renamed.txt\n          overwrite: true\n",
        }]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        for file in &input.files {
            if ctx.cancel.is_cancelled() {
                return Err(ActionError::Cancelled);
            }
            if file.from.is_empty() || file.to.is_empty() {
                return Err(ActionError::InvalidInput(
                    "each file must have a from and to property".into(),
                ));
            }
            let source = resolve_safe_child_path(&ctx.workspace, &file.from)?;
            let dest = resolve_safe_child_path(&ctx.workspace, &file.to)?;
            let Ok(meta) = std::fs::symlink_metadata(&source) else {
                return Err(ActionError::Failed(format!(
                    "ENOENT: no such file or directory, stat '{}'",
                    source.display()
                )));
            };
            if source == ctx.workspace || dest == ctx.workspace {
                return Err(ActionError::InvalidInput(
                    "The workspace itself cannot be renamed or replaced".into(),
                ));
            }
            if source == dest {
                return Err(ActionError::Failed(
                    "Source and destination must not be the same.".into(),
                ));
            }
            if meta.is_dir() && dest.starts_with(&source) {
                return Err(ActionError::Failed(format!(
                    "Cannot move '{}' to a subdirectory of itself, '{}'.",
                    source.display(),
                    dest.display()
                )));
            }
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(ActionError::io(format!("cannot create directory {}", parent.display())))?;
            }
            if std::fs::symlink_metadata(&dest).is_ok() {
                if !file.overwrite.unwrap_or(false) {
                    return Err(ActionError::Failed("dest already exists.".into()));
                }
                remove_entry(&dest).map_err(ActionError::io(format!("cannot replace {}", dest.display())))?;
            }
            std::fs::rename(&source, &dest).map_err(ActionError::io(format!(
                "Failed to rename file {} to {}",
                source.display(),
                dest.display()
            )))?;
            ctx.logger
                .info(format!(
                    "File {} renamed to {} successfully",
                    source.display(),
                    dest.display()
                ))
                .await;
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
        t.workspace_file("a.txt", "a");
        t.workspace_file("b.txt", "b");
        t.workspace_file("dir/inner.txt", "inner");
        t
    }

    #[tokio::test]
    async fn renames_files_and_directories_creating_parents() {
        let t = workspace();
        t.run(
            &FsRename,
            json!({"files": [{"from": "a.txt", "to": "new/place/a2.txt"}, {"from": "dir", "to": "dir2"}]}),
        )
        .await
        .unwrap();
        assert_eq!(
            t.listing(),
            [
                "b.txt",
                "dir2/",
                "dir2/inner.txt",
                "new/",
                "new/place/",
                "new/place/a2.txt"
            ]
        );
        assert!(t.log_lines().contains(&format!(
            "File {} renamed to {} successfully",
            t.workspace.join("a.txt").display(),
            t.workspace.join("new/place/a2.txt").display()
        )));
    }

    #[tokio::test]
    async fn an_existing_destination_needs_overwrite() {
        let t = workspace();
        let err = t
            .run(&FsRename, json!({"files": [{"from": "a.txt", "to": "b.txt"}]}))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "dest already exists.");
        assert_eq!(t.read("b.txt"), "b");
        let err = t
            .run(
                &FsRename,
                json!({"files": [{"from": "a.txt", "to": "b.txt", "overwrite": false}]}),
            )
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "dest already exists.");

        t.run(
            &FsRename,
            json!({"files": [{"from": "a.txt", "to": "b.txt", "overwrite": true}]}),
        )
        .await
        .unwrap();
        assert_eq!(t.read("b.txt"), "a");
        assert!(!t.exists("a.txt"));

        t.run(
            &FsRename,
            json!({"files": [{"from": "b.txt", "to": "dir", "overwrite": true}]}),
        )
        .await
        .unwrap();
        assert_eq!(t.read("dir"), "a");
    }

    #[tokio::test]
    async fn invalid_moves_fail() {
        let t = workspace();
        let cases = [
            (
                json!({"from": "missing", "to": "x"}),
                "ENOENT: no such file or directory, stat",
            ),
            (
                json!({"from": "a.txt", "to": "./a.txt"}),
                "Source and destination must not be the same.",
            ),
            (json!({"from": "dir", "to": "dir/sub"}), "Cannot move"),
            (
                json!({"from": "", "to": "x"}),
                "each file must have a from and to property",
            ),
            (
                json!({"from": "a.txt", "to": ""}),
                "each file must have a from and to property",
            ),
            (json!({"from": ".", "to": "x"}), "The workspace itself"),
        ];
        for (file, expected) in cases {
            let err = t.run(&FsRename, json!({ "files": [file] })).await.unwrap_err();
            assert!(err.to_string().starts_with(expected), "{file}: {err}");
        }
        let err = t
            .run(&FsRename, json!({"files": [{"from": "a.txt"}]}))
            .await
            .unwrap_err();
        assert!(matches!(err, ActionError::InvalidInput(_)), "{err}");
    }

    #[tokio::test]
    async fn hostile_paths_are_refused() {
        let t = workspace();
        let outside = t.dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, t.workspace.join("link")).unwrap();
        for (from, to) in [
            ("a.txt", "../a.txt"),
            ("../template/template.yaml", "t.yaml"),
            ("a.txt", "/tmp/a.txt"),
            ("/etc/passwd", "p"),
            ("a.txt", "link/a.txt"),
            ("link/x", "x"),
        ] {
            let err = t
                .run(&FsRename, json!({"files": [{"from": from, "to": to}]}))
                .await
                .unwrap_err();
            assert!(
                err.to_string().starts_with("Relative path is not allowed"),
                "{from} -> {to}: {err}"
            );
        }
        assert!(t.exists("a.txt"));
        assert!(!outside.join("a.txt").exists());
    }
}
