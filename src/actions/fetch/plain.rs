//! `fetch:plain`: copies a directory (or a file) into the workspace as is.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use super::copy::copy_tree;
use super::source::local_source;
use crate::actions::workspace::resolve_safe_child_path;
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};

pub struct FetchPlain;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// Relative path or absolute URL pointing to the directory tree to fetch
    pub url: String,
    /// Target path within the working directory to download the contents to.
    pub target_path: Option<String>,
    /// An optional token to use for authentication when reading the resources.
    pub token: Option<String>,
}

#[async_trait]
impl ActionHandler for FetchPlain {
    type Input = Input;
    const ID: &'static str = "fetch:plain";
    const DESCRIPTION: &'static str = "Downloads content and places it in the workspace, or optionally in a subdirectory specified by the `targetPath` input option.";
    const SUPPORTS_DRY_RUN: bool = true;

    fn examples(&self) -> Vec<ActionExample> {
        vec![
            ActionExample {
                description: "Downloads content and places it in the workspace.",
                example: "steps:\n  - action: fetch:plain\n    id: fetch-plain\n    name: Fetch plain\n    input:\n      url: https://github.com/backstage/community/tree/main/backstage-community-sessions/assets\n",
            },
            ActionExample {
                description: "Optionally, if you would prefer the data to be downloaded to a subdirectory in the workspace you may specify the \u{2018}targetPath\u{2019} input option.",
                example: "steps:\n  - action: fetch:plain\n    id: fetch-plain\n    name: Fetch plain\n    input:\n      url: https://github.com/backstage/community/tree/main/backstage-community-sessions/assets\n      targetPath: fetched-data\n",
            },
        ]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        ctx.logger.info("Fetching plain content from remote URL").await;
        let output = resolve_safe_child_path(&ctx.workspace, input.target_path.as_deref().unwrap_or("./"))?;
        let source = local_source(ctx, &input.url).await?;
        let skipped = copy_tree(&source, &output, &ctx.workspace, &ctx.cancel)?;
        for link in skipped {
            ctx.logger
                .warn(format!(
                    "Skipping symbolic link {link}: it points outside the workspace."
                ))
                .await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use serde_json::json;

    use super::*;
    use crate::actions::workspace::testing::TestDirs;

    #[tokio::test]
    async fn copies_a_directory_with_modes_and_inner_links() {
        let t = TestDirs::new();
        t.template_file("assets/a.txt", "${{ values.untouched }}");
        let script = t.template_file("assets/bin/run.sh", "#!/bin/sh\n");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        t.template_file("assets/.hidden", "dot");
        std::os::unix::fs::symlink("a.txt", t.template_dir.join("assets/inner-link")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.template_dir.join("assets/outer-link")).unwrap();

        t.run(&FetchPlain, json!({"url": "./assets", "targetPath": "out"}))
            .await
            .unwrap();

        assert_eq!(
            t.listing(),
            [
                "out/",
                "out/.hidden",
                "out/a.txt",
                "out/bin/",
                "out/bin/run.sh",
                "out/inner-link"
            ]
        );
        assert_eq!(t.read("out/a.txt"), "${{ values.untouched }}");
        let mode = std::fs::metadata(t.workspace.join("out/bin/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        assert_eq!(
            std::fs::read_link(t.workspace.join("out/inner-link")).unwrap().to_str(),
            Some("a.txt")
        );
        assert!(t
            .log_lines()
            .iter()
            .any(|l| l.contains("Skipping symbolic link outer-link")));
    }

    #[tokio::test]
    async fn copies_into_the_workspace_root_and_replaces_files() {
        let t = TestDirs::new();
        t.template_file("assets/a.txt", "new");
        t.workspace_file("a.txt", "old");
        t.workspace_file("keep.txt", "kept");
        t.run(&FetchPlain, json!({"url": "assets"})).await.unwrap();
        assert_eq!(t.read("a.txt"), "new");
        assert_eq!(t.read("keep.txt"), "kept");
    }

    #[tokio::test]
    async fn missing_sources_fail_like_backstage() {
        let t = TestDirs::new();
        let err = t.run(&FetchPlain, json!({"url": "./nope"})).await.unwrap_err();
        let expected = format!(
            "ENOENT: no such file or directory, lstat '{}'",
            t.template_dir.join("nope").display()
        );
        assert_eq!(err.to_string(), expected);
    }

    #[tokio::test]
    async fn remote_urls_of_unknown_hosts_are_refused_clearly() {
        let t = TestDirs::new();
        let err = t
            .run(&FetchPlain, json!({"url": "https://unknown.invalid/o/r/tree/main/x"}))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Cannot fetch"), "{err}");
    }

    #[tokio::test]
    async fn hostile_target_paths_are_refused() {
        let t = TestDirs::new();
        t.template_file("assets/a.txt", "x");
        std::os::unix::fs::symlink(t.dir.path(), t.workspace.join("escape")).unwrap();
        for target in ["../out", "/tmp/out", "escape", "escape/sub", "a/../../b"] {
            let err = t
                .run(&FetchPlain, json!({"url": "./assets", "targetPath": target}))
                .await
                .unwrap_err();
            assert!(
                err.to_string().starts_with("Relative path is not allowed"),
                "{target}: {err}"
            );
        }
        assert!(!t.dir.path().join("out").exists());
        assert!(!t.dir.path().join("a.txt").exists());
    }

    #[tokio::test]
    async fn an_existing_link_inside_the_target_cannot_redirect_writes() {
        let t = TestDirs::new();
        t.template_file("assets/sub/a.txt", "x");
        let outside = t.dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(t.workspace.join("out")).unwrap();
        std::os::unix::fs::symlink(&outside, t.workspace.join("out/sub")).unwrap();
        let err = t
            .run(&FetchPlain, json!({"url": "./assets", "targetPath": "out"}))
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("Relative path is not allowed"), "{err}");
        assert!(!outside.join("a.txt").exists());
    }
}
