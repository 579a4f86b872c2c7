//! `fetch:template:file`: renders one file with the template values into the
//! workspace (Backstage's `createTemplateFileActionHandler`).

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::copy::{ensure_regular, write_file};
use super::source::local_source;
use super::{render_context, renderer, with_values};
use crate::actions::workspace::resolve_safe_child_path;
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};

pub struct FetchTemplateFile;

/// Mode of a file Node's `outputFile` creates (before the umask).
const NEW_FILE_MODE: u32 = 0o666;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// Relative path or absolute URL pointing to the single file to fetch.
    pub url: String,
    /// Target path within the working directory to download the file as.
    pub target_path: String,
    /// Values to pass on to the templating engine
    // `default` keeps it optional despite `schema_with`; `skip_serializing_if`
    // keeps `"default": null` out of the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::values_schema")]
    pub values: Option<Map<String, Value>>,
    /// Enable features to maximise compatibility with templates built for fetch:cookiecutter
    pub cookiecutter_compat: Option<bool>,
    /// If set, replace file in targetPath instead of overwriting existing one.
    pub replace: Option<bool>,
    /// If set, the first newline after a block is removed (block, not variable tag).
    pub trim_blocks: Option<bool>,
    /// If set, leading spaces and tabs are stripped from the start of a line to a block.
    pub lstrip_blocks: Option<bool>,
    /// An optional token to use for authentication when reading the resources.
    pub token: Option<String>,
}

#[async_trait]
impl ActionHandler for FetchTemplateFile {
    type Input = Input;
    const ID: &'static str = "fetch:template:file";
    const DESCRIPTION: &'static str = "Downloads single file and places it in the workspace.";
    const SUPPORTS_DRY_RUN: bool = true;

    fn examples(&self) -> Vec<ActionExample> {
        vec![ActionExample {
            description: "Downloads a template file and fill it out with values.",
            example: "steps:\n  - action: fetch:template:file\n    id: fetch-template-file\n    name: Fetch template file\n    input:\n      url: ./skeleton.txt\n      targetPath: ./target/skeleton.txt\n      values:\n        name: test-project\n        count: 1234\n        itemList:\n          - first\n          - second\n          - third\n",
        }]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        ctx.logger.info("Fetching template file content from remote URL").await;
        let output = resolve_safe_child_path(&ctx.workspace, &input.target_path)?;
        if output.exists() && !input.replace.unwrap_or(false) {
            ctx.logger
                .info(format!(
                    "File {} already exists in workspace, not replacing.",
                    input.target_path
                ))
                .await;
            return Ok(());
        }
        let source = local_source(ctx, &input.url).await?;
        if source.is_dir() {
            return Err(ActionError::Failed(format!(
                "EISDIR: illegal operation on a directory, read '{}'",
                source.display()
            )));
        }
        ensure_regular(&source)?;

        let cookiecutter_compat = input.cookiecutter_compat.unwrap_or(false);
        let context = render_context(input.values.as_ref(), cookiecutter_compat);
        ctx.logger
            .info(with_values(
                "Processing template file with input values",
                input.values.as_ref(),
            ))
            .await;
        let renderer = renderer(
            ctx,
            cookiecutter_compat,
            input.trim_blocks.unwrap_or(false),
            input.lstrip_blocks.unwrap_or(false),
        );
        let bytes = std::fs::read(&source).map_err(ActionError::io(format!("cannot read {}", source.display())))?;
        let rendered = renderer
            .render_str(&String::from_utf8_lossy(&bytes), &context)
            .map_err(|e| ActionError::Render(format!("Failed to render {}: {e}", input.url)))?;
        write_file(&output, rendered.as_bytes(), NEW_FILE_MODE, &ctx.workspace)?;
        ctx.logger
            .info(format!("Template file has been written to {}", output.display()))
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::actions::workspace::testing::TestDirs;

    #[tokio::test]
    async fn renders_one_file_into_a_new_directory() {
        let t = TestDirs::new();
        t.template_file(
            "skeleton.txt",
            "name=${{ values.name }} items=${{ values.items | join(',') }}",
        );
        t.run(
            &FetchTemplateFile,
            json!({"url": "./skeleton.txt", "targetPath": "./target/skeleton.txt",
                   "values": {"name": "demo", "items": ["a", "b"]}}),
        )
        .await
        .unwrap();
        assert_eq!(t.read("target/skeleton.txt"), "name=demo items=a,b");
        assert!(t.log_lines().contains(
            &"Processing template file with input values {\"name\":\"demo\",\"items\":[\"a\",\"b\"]}".to_string()
        ));
    }

    #[tokio::test]
    async fn keeps_an_existing_file_unless_replace_is_set() {
        let t = TestDirs::new();
        t.template_file("f.txt", "new");
        t.workspace_file("out.txt", "old");
        t.run(&FetchTemplateFile, json!({"url": "f.txt", "targetPath": "out.txt"}))
            .await
            .unwrap();
        assert_eq!(t.read("out.txt"), "old");
        assert!(t
            .log_lines()
            .contains(&"File out.txt already exists in workspace, not replacing.".to_string()));
        t.run(
            &FetchTemplateFile,
            json!({"url": "f.txt", "targetPath": "out.txt", "replace": true}),
        )
        .await
        .unwrap();
        assert_eq!(t.read("out.txt"), "new");
    }

    #[tokio::test]
    async fn cookiecutter_compat_and_block_options() {
        let t = TestDirs::new();
        t.template_file(
            "f.txt",
            "{% if cookiecutter.on %}\n  {{ cookiecutter.name }}\n{% endif %}\n",
        );
        t.run(
            &FetchTemplateFile,
            json!({"url": "f.txt", "targetPath": "out.txt", "values": {"on": true, "name": "demo"},
                   "cookiecutterCompat": true, "trimBlocks": true}),
        )
        .await
        .unwrap();
        assert_eq!(t.read("out.txt"), "  demo\n");
    }

    #[tokio::test]
    async fn hostile_targets_and_missing_sources_fail() {
        let t = TestDirs::new();
        t.template_file("f.txt", "x");
        for target in ["../out.txt", "/tmp/out.txt", "a/../../out.txt"] {
            let err = t
                .run(&FetchTemplateFile, json!({"url": "f.txt", "targetPath": target}))
                .await
                .unwrap_err();
            assert!(
                err.to_string().starts_with("Relative path is not allowed"),
                "{target}: {err}"
            );
        }
        let err = t
            .run(&FetchTemplateFile, json!({"url": "missing.txt", "targetPath": "o.txt"}))
            .await
            .unwrap_err();
        assert!(
            err.to_string().starts_with("ENOENT: no such file or directory, lstat"),
            "{err}"
        );
    }
}
