//! `debug:log`: writes a message and/or the workspace listing into the log.

use std::path::Path;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};

pub struct DebugLog;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ListWorkspace {
    Flag(bool),
    Mode(ListMode),
}

#[derive(Debug, Deserialize, JsonSchema, PartialEq, Eq)]
pub enum ListMode {
    #[serde(rename = "with-filenames")]
    WithFilenames,
    #[serde(rename = "with-contents")]
    WithContents,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// Message to output.
    pub message: Option<String>,
    /// List all files in the workspace. If used with "with-contents", also the file contents are listed.
    pub list_workspace: Option<ListWorkspace>,
}

#[async_trait]
impl ActionHandler for DebugLog {
    type Input = Input;
    const ID: &'static str = "debug:log";
    const DESCRIPTION: &'static str = "Writes a message into the log and/or lists all files in the workspace.";
    const SUPPORTS_DRY_RUN: bool = true;

    fn examples(&self) -> Vec<ActionExample> {
        vec![
            ActionExample {
                description: "Write a debug message",
                example: "steps:\n  - action: debug:log\n    id: write-debug-line\n    name: Write \"Hello Backstage!\" log line\n    input:\n      message: Hello Backstage!\n",
            },
            ActionExample {
                description: "List the workspace directory",
                example: "steps:\n  - action: debug:log\n    id: write-workspace-directory\n    name: List the workspace directory\n    input:\n      listWorkspace: true\n",
            },
            ActionExample {
                description: "List the workspace directory with file contents",
                example: "steps:\n  - action: debug:log\n    id: write-workspace-directory\n    name: List the workspace directory with file contents\n    input:\n      listWorkspace: with-contents\n",
            },
        ]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        // Backstage logs the whole input first, pretty-printed.
        let dump = serde_json::to_string_pretty(&ctx.raw_input).unwrap_or_default();
        ctx.logger.info(dump).await;
        if let Some(message) = &input.message {
            ctx.logger.info(message).await;
        }
        let mode = match input.list_workspace {
            None | Some(ListWorkspace::Flag(false)) => None,
            Some(ListWorkspace::Flag(true)) | Some(ListWorkspace::Mode(ListMode::WithFilenames)) => {
                Some(ListMode::WithFilenames)
            }
            Some(ListWorkspace::Mode(ListMode::WithContents)) => Some(ListMode::WithContents),
        };
        if let Some(mode) = mode {
            let listing = list_workspace(&ctx.workspace, mode == ListMode::WithContents)?;
            ctx.logger.info(format!("Workspace:\n{listing}")).await;
        }
        Ok(())
    }
}

fn list_workspace(root: &Path, with_contents: bool) -> Result<String, ActionError> {
    let mut lines = Vec::new();
    let mut files: Vec<_> = walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    for file in files {
        let relative = file.strip_prefix(root).unwrap_or(&file).display().to_string();
        if with_contents {
            let content = std::fs::read(&file).map_err(ActionError::io(format!("cannot read {relative}")))?;
            lines.push(format!("  - {relative}:\n{}", String::from_utf8_lossy(&content)));
        } else {
            lines.push(format!("  - {relative}"));
        }
    }
    Ok(lines.join("\n"))
}
