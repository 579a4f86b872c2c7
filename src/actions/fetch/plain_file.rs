//! `fetch:plain:file`: copies one file into the workspace as is.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use super::copy::copy_file;
use super::source::local_source;
use crate::actions::workspace::resolve_safe_child_path;
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};

pub struct FetchPlainFile;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// Relative path or absolute URL pointing to the single file to fetch.
    pub url: String,
    /// Target path within the working directory to download the file as.
    pub target_path: String,
    /// An optional token to use for authentication when reading the resources.
    pub token: Option<String>,
}

#[async_trait]
impl ActionHandler for FetchPlainFile {
    type Input = Input;
    const ID: &'static str = "fetch:plain:file";
    const DESCRIPTION: &'static str = "Downloads single file and places it in the workspace.";
    const SUPPORTS_DRY_RUN: bool = true;

    fn examples(&self) -> Vec<ActionExample> {
        vec![ActionExample {
            description: "Downloads a file and places it in the workspace.",
            example: "steps:\n  - action: fetch:plain:file\n    id: fetch-plain-file\n    name: Fetch plain file\n    input:\n      url: https://github.com/backstage/community/tree/main/backstage-community-sessions/assets/Backstage%20Community%20Sessions.png\n      targetPath: target-path\n",
        }]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        ctx.logger.info("Fetching plain content from remote URL").await;
        let output = resolve_safe_child_path(&ctx.workspace, &input.target_path)?;
        let source = local_source(ctx, &input.url).await?;
        if source.is_dir() {
            return Err(ActionError::Failed(format!(
                "EISDIR: illegal operation on a directory, copyfile '{}' -> '{}'",
                source.display(),
                output.display()
            )));
        }
        copy_file(&source, &output, &ctx.workspace)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::actions::workspace::testing::TestDirs;

    #[tokio::test]
    async fn copies_one_file_untouched() {
        let t = TestDirs::new();
        let bytes = [0x89u8, b'P', b'N', b'G', 0, 1, 2, 0xff];
        t.template_file("files/logo.png", bytes);
        t.run(
            &FetchPlainFile,
            json!({"url": "./files/logo.png", "targetPath": "img/logo.png"}),
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read(t.workspace.join("img/logo.png")).unwrap(), bytes);
    }

    #[tokio::test]
    async fn refuses_directories_missing_files_and_hostile_targets() {
        let t = TestDirs::new();
        t.template_file("files/a.txt", "a");
        let err = t
            .run(&FetchPlainFile, json!({"url": "./files", "targetPath": "x"}))
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("EISDIR"), "{err}");
        let err = t
            .run(&FetchPlainFile, json!({"url": "./files/b.txt", "targetPath": "x"}))
            .await
            .unwrap_err();
        assert!(
            err.to_string().starts_with("ENOENT: no such file or directory, lstat"),
            "{err}"
        );
        for target in ["../x", "/x", "", "."] {
            let result = t
                .run(&FetchPlainFile, json!({"url": "./files/a.txt", "targetPath": target}))
                .await;
            assert!(result.is_err(), "{target}");
        }
        let err = t
            .run(&FetchPlainFile, json!({"url": "./files/a.txt"}))
            .await
            .unwrap_err();
        assert!(matches!(err, ActionError::InvalidInput(_)), "{err}");
    }
}
