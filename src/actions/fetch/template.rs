//! `fetch:template`: copies a skeleton directory into the workspace, rendering
//! file contents and file and directory names with the template values
//! (Backstage's `createTemplateActionHandler`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::binary::is_binary_file;
use super::copy::{copy_file, copy_link, create_dir, ensure_regular, write_file};
use super::source::local_source;
use super::{render_context, renderer, with_values};
use crate::actions::workspace::resolve_safe_child_path;
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::templating::Renderer;

pub struct FetchTemplate;

/// `templateFileExtension`: `true` for `.njk`, or the extension itself.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TemplateFileExtension {
    Flag(bool),
    Extension(String),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// Relative path or absolute URL pointing to the directory tree to fetch
    pub url: String,
    /// Target path within the working directory to download the contents to. Defaults to the working directory root.
    pub target_path: Option<String>,
    /// Values to pass on to the templating engine
    // `default` keeps it optional despite `schema_with`; `skip_serializing_if`
    // keeps `"default": null` out of the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::values_schema")]
    pub values: Option<Map<String, Value>>,
    /// An array of glob patterns. Any files or directories which match are copied without being processed as templates.
    pub copy_without_render: Option<Vec<String>>,
    /// An array of glob patterns. Contents of matched files or directories are copied without being processed, but paths are subject to rendering.
    pub copy_without_templating: Option<Vec<String>>,
    /// Enable features to maximise compatibility with templates built for fetch:cookiecutter
    pub cookiecutter_compat: Option<bool>,
    /// If set, only files with the given extension will be templated. If set to `true`, the default extension `.njk` is used.
    #[serde(default)]
    #[schemars(schema_with = "super::string_or_bool_schema")]
    pub template_file_extension: Option<TemplateFileExtension>,
    /// If set, replace files in targetPath instead of skipping existing ones.
    pub replace: Option<bool>,
    /// If set, the first newline after a block is removed (block, not variable tag).
    pub trim_blocks: Option<bool>,
    /// If set, leading spaces and tabs are stripped from the start of a line to a block.
    pub lstrip_blocks: Option<bool>,
    /// An optional token to use for authentication when reading the resources.
    pub token: Option<String>,
}

/// How the entries of the skeleton are treated, from the input.
struct Settings {
    output_dir: PathBuf,
    copy_only: Vec<String>,
    /// `copyWithoutTemplating` renders the names of the entries it copies;
    /// the deprecated `copyWithoutRender` does not.
    render_filename: bool,
    extension: Option<String>,
}

fn settings(ctx: &ActionContext, input: &Input) -> Result<Settings, ActionError> {
    let output_dir = resolve_safe_child_path(&ctx.workspace, input.target_path.as_deref().unwrap_or("./"))?;
    if input.copy_without_render.is_some() && input.copy_without_templating.is_some() {
        return Err(ActionError::InvalidInput(
            "Fetch action input copyWithoutRender and copyWithoutTemplating can not be used at the same time".into(),
        ));
    }
    let (copy_only, render_filename) = match (&input.copy_without_render, &input.copy_without_templating) {
        (Some(patterns), _) => (Some(patterns.clone()), false),
        (None, patterns) => (patterns.clone(), true),
    };
    // JavaScript truthiness: `false` and `""` mean no extension.
    let extension = match &input.template_file_extension {
        Some(TemplateFileExtension::Flag(true)) => Some(".njk".to_string()),
        Some(TemplateFileExtension::Extension(e)) if !e.is_empty() => {
            Some(if e.starts_with('.') { e.clone() } else { format!(".{e}") })
        }
        _ => None,
    };
    if extension.is_some() && (copy_only.is_some() || input.cookiecutter_compat.unwrap_or(false)) {
        return Err(ActionError::InvalidInput(
            "Fetch action input extension incompatible with copyWithoutRender/copyWithoutTemplating and cookiecutterCompat"
                .into(),
        ));
    }
    Ok(Settings {
        output_dir,
        copy_only: copy_only.unwrap_or_default(),
        render_filename,
        extension,
    })
}

/// One file, link or directory of the skeleton.
struct Entry {
    /// `/`-separated path relative to the skeleton; directories end with `/`
    /// (globby's `markDirectories`).
    location: String,
    path: PathBuf,
    is_dir: bool,
}

/// globby `**/*` with `dot: true, onlyFiles: false, followSymbolicLinks: false`.
fn list_entries(root: &Path) -> Result<Vec<Entry>, ActionError> {
    let mut entries = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| ActionError::Failed(format!("cannot list {}: {e}", root.display())))?;
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let Some(relative) = relative.to_str() else {
            return Err(ActionError::Failed(format!(
                "The template file name {} is not valid UTF-8",
                relative.display()
            )));
        };
        let is_dir = entry.file_type().is_dir();
        let location = if is_dir {
            format!("{relative}/")
        } else {
            relative.to_string()
        };
        entries.push(Entry {
            location,
            path: entry.into_path(),
            is_dir,
        });
    }
    Ok(entries)
}

/// The skeleton entries that `copyWithoutTemplating`/`copyWithoutRender`
/// select, matched as globby does: `*` stays within a segment, dot files
/// match, `!pattern` excludes, and a pattern naming a directory selects
/// everything below it (`expandDirectories`).
struct CopyOnly {
    include: GlobSet,
    exclude: GlobSet,
}

impl CopyOnly {
    fn new(patterns: &[String], root: &Path) -> Result<CopyOnly, ActionError> {
        let mut include = GlobSetBuilder::new();
        let mut exclude = GlobSetBuilder::new();
        for pattern in patterns {
            let (negated, body) = match pattern.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, pattern.as_str()),
            };
            let body = body.strip_prefix("./").unwrap_or(body).trim_end_matches('/');
            if body.is_empty() {
                continue;
            }
            let expanded = if root.join(body).is_dir() {
                format!("{body}/**")
            } else {
                body.to_string()
            };
            let glob = GlobBuilder::new(&expanded)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| ActionError::InvalidInput(format!("Invalid glob pattern {pattern:?}: {e}")))?;
            if negated {
                exclude.add(glob);
            } else {
                include.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| ActionError::InvalidInput(format!("Invalid glob patterns: {e}")))
        };
        Ok(CopyOnly {
            include: build(include)?,
            exclude: build(exclude)?,
        })
    }

    fn matches(&self, location: &str) -> bool {
        let path = location.trim_end_matches('/');
        self.include.is_match(path) && !self.exclude.is_match(path)
    }
}

/// Node's `path.extname` of a `/`-separated path.
fn extname(location: &str) -> &str {
    let name = location.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    match name.rfind('.') {
        Some(0) | None => "",
        Some(i) => &name[i..],
    }
}

/// Backstage skips an entry whose rendered path is empty (a file whose name
/// renders empty), starts with `/` (a top-level directory whose name renders
/// empty) or contains `//` (a directory below it whose name renders empty).
fn contains_skipped_content(path: &str) -> bool {
    path.is_empty() || path.starts_with('/') || path.contains("//")
}

fn render(renderer: &Renderer, template: &str, context: &Value, what: &str) -> Result<String, ActionError> {
    renderer
        .render_str(template, context)
        .map_err(|e| ActionError::Render(format!("Failed to render {what}: {e}")))
}

#[async_trait]
impl ActionHandler for FetchTemplate {
    type Input = Input;
    const ID: &'static str = "fetch:template";
    const DESCRIPTION: &'static str = "Downloads a skeleton, templates variables into file and directory names and content, and places the result in the workspace, or optionally in a subdirectory specified by the `targetPath` input option.";
    const SUPPORTS_DRY_RUN: bool = true;

    fn examples(&self) -> Vec<ActionExample> {
        vec![ActionExample {
            description: "Downloads a skeleton directory that lives alongside the template file and fill it out with values.",
            example: "steps:\n  - action: fetch:template\n    id: fetch-template\n    name: Fetch template\n    input:\n      url: ./skeleton\n      targetPath: ./target\n      values:\n        name: test-project\n        count: 1234\n        itemList:\n          - first\n          - second\n          - third\n        showDummyFile: false\n",
        }]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let settings = settings(ctx, &input)?;
        if input.copy_without_render.is_some() {
            ctx.logger
                .warn("[Deprecated] copyWithoutRender is deprecated Please use copyWithoutTemplating instead.")
                .await;
        }

        ctx.logger.info("Fetching template content from remote URL").await;
        let template_dir = local_source(ctx, &input.url).await?;
        if !template_dir.is_dir() {
            return Err(ActionError::Failed(format!(
                "ENOTDIR: not a directory, scandir '{}'",
                template_dir.display()
            )));
        }
        if settings.output_dir.starts_with(&template_dir) {
            return Err(ActionError::InvalidInput(
                "targetPath must not be within template path".into(),
            ));
        }

        ctx.logger.info("Listing files and directories in template").await;
        let entries = crate::actions::blocking(|| list_entries(&template_dir))?;
        let copy_only = CopyOnly::new(&settings.copy_only, &template_dir)?;

        let cookiecutter_compat = input.cookiecutter_compat.unwrap_or(false);
        let context = render_context(input.values.as_ref(), cookiecutter_compat);
        ctx.logger
            .info(with_values(
                &format!(
                    "Processing {} template files/directories with input values",
                    entries.len()
                ),
                input.values.as_ref(),
            ))
            .await;
        let renderer = renderer(
            ctx,
            cookiecutter_compat,
            input.trim_blocks.unwrap_or(false),
            input.lstrip_blocks.unwrap_or(false),
        );
        let replace = input.replace.unwrap_or(false);

        for entry in &entries {
            if ctx.cancel.is_cancelled() {
                return Err(ActionError::Cancelled);
            }
            let location = entry.location.as_str();
            let (render_contents, output_path) = match &settings.extension {
                Some(extension) => {
                    let render_contents = !entry.is_dir && extname(location) == extension;
                    let stripped = if render_contents {
                        &location[..location.len() - extension.len()]
                    } else {
                        location
                    };
                    // The extension excludes copy-only patterns, so names always render.
                    (render_contents, render(&renderer, stripped, &context, location)?)
                }
                None => {
                    let render_contents = !copy_only.matches(location);
                    let output = if settings.render_filename || render_contents {
                        render(&renderer, location, &context, location)?
                    } else {
                        location.to_string()
                    };
                    (render_contents, output)
                }
            };

            if contains_skipped_content(&output_path) {
                continue;
            }
            let output = resolve_safe_child_path(&settings.output_dir, &output_path)?;
            if output.exists() && !replace {
                continue;
            }
            if !render_contents && settings.extension.is_none() {
                ctx.logger
                    .info(format!("Copying file/directory {location} without processing."))
                    .await;
            }

            if entry.is_dir {
                ctx.logger
                    .info(format!("Writing directory {location} to template output path."))
                    .await;
                create_dir(&output, &ctx.workspace)?;
                continue;
            }
            let link_meta = std::fs::symlink_metadata(&entry.path)
                .map_err(ActionError::io(format!("cannot read {}", entry.path.display())))?;
            let is_link = link_meta.file_type().is_symlink();
            if !is_link {
                ensure_regular(&entry.path)?;
            }
            let binary = !is_link
                && is_binary_file(&entry.path)
                    .map_err(ActionError::io(format!("cannot read {}", entry.path.display())))?;
            if is_link || binary {
                ctx.logger
                    .info(format!(
                        "Copying file binary or symbolic link at {location}, to template output path."
                    ))
                    .await;
                if is_link {
                    if !copy_link(&entry.path, &output, &ctx.workspace)? {
                        ctx.logger
                            .warn(format!(
                                "Skipping symbolic link {location}: it points outside the workspace."
                            ))
                            .await;
                    }
                } else {
                    copy_file(&entry.path, &output, &ctx.workspace)?;
                }
                continue;
            }
            let mode = link_meta.mode();
            ctx.logger
                .info(format!(
                    "Writing file {location} to template output path with mode {mode}."
                ))
                .await;
            crate::actions::blocking(|| {
                let bytes = std::fs::read(&entry.path)
                    .map_err(ActionError::io(format!("cannot read {}", entry.path.display())))?;
                // Node reads with 'utf-8', replacing invalid sequences.
                let contents = String::from_utf8_lossy(&bytes);
                let contents = if render_contents {
                    render(&renderer, &contents, &context, location)?
                } else {
                    contents.into_owned()
                };
                write_file(&output, contents.as_bytes(), mode, &ctx.workspace)
            })?;
        }

        ctx.logger
            .info(format!("Template result written to {}", settings.output_dir.display()))
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use serde_json::json;

    use super::*;
    use crate::actions::workspace::testing::TestDirs;

    #[test]
    fn extname_is_nodes() {
        assert_eq!(extname("a/b.txt.njk"), ".njk");
        assert_eq!(extname(".gitignore"), "");
        assert_eq!(extname("dir/.env.njk"), ".njk");
        assert_eq!(extname("noext"), "");
        assert_eq!(extname("dir.d/noext"), "");
        assert_eq!(extname("trailing."), ".");
    }

    #[test]
    fn copy_only_patterns_follow_globby() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".github/workflows")).unwrap();
        let set = |patterns: &[&str]| {
            CopyOnly::new(&patterns.iter().map(|s| s.to_string()).collect::<Vec<_>>(), dir.path()).unwrap()
        };
        let workflows = set(&[".github/workflows/"]);
        assert!(workflows.matches(".github/workflows/ci.yaml"));
        assert!(workflows.matches(".github/workflows/nested/x.yaml"));
        assert!(!workflows.matches(".github/workflows/"));
        assert!(!workflows.matches(".github/"));

        let star = set(&[".github/workflows/*"]);
        assert!(star.matches(".github/workflows/ci.yaml"));
        assert!(!star.matches(".github/workflows/nested/x.yaml"));

        let txt = set(&["*.txt"]);
        assert!(txt.matches("a.txt"));
        assert!(txt.matches(".hidden.txt"));
        assert!(!txt.matches("dir/a.txt"));

        let deep = set(&["**/*.png", "!skip/**"]);
        assert!(deep.matches("a.png"));
        assert!(deep.matches("x/y/a.png"));
        assert!(!deep.matches("skip/a.png"));
        assert!(set(&["./docs/*"]).matches("docs/a.md"));
        assert!(set(&["{a,b}.md"]).matches("b.md"));
    }

    #[tokio::test]
    async fn renders_names_and_contents_and_skips_names_that_render_empty() {
        let t = TestDirs::new();
        t.template_file("skeleton/README.md", "# ${{ values.name }}\n");
        t.template_file("skeleton/src/${{ values.name }}.txt", "count=${{ values.count }}");
        t.template_file(
            "skeleton/{% if values.enableCi %}ci{% endif %}/pipeline.yml",
            "name: ${{ values.name }}",
        );
        t.template_file("skeleton/{% if values.enableDocs %}docs{% endif %}/index.md", "docs");
        t.template_file(
            "skeleton/nested/{% if values.enableDocs %}docs{% endif %}/deep/x.md",
            "x",
        );
        t.template_file("skeleton/{% if values.enableDocs %}DOCS.md{% endif %}", "docs");
        t.template_file("skeleton/.hidden/${{ values.name }}.env", "A=1");

        t.run(
            &FetchTemplate,
            json!({"url": "./skeleton", "values": {"name": "demo", "count": 3, "enableCi": true, "enableDocs": false}}),
        )
        .await
        .unwrap();

        assert_eq!(
            t.listing(),
            [
                ".hidden/",
                ".hidden/demo.env",
                "README.md",
                "ci/",
                "ci/pipeline.yml",
                "nested/",
                "src/",
                "src/demo.txt"
            ]
        );
        assert_eq!(t.read("README.md"), "# demo\n");
        assert_eq!(t.read("src/demo.txt"), "count=3");
        assert_eq!(t.read("ci/pipeline.yml"), "name: demo");
        let log = t.log_lines();
        assert!(log.contains(&"Listing files and directories in template".to_string()));
        assert!(log
            .iter()
            .any(|l| l.starts_with("Processing 14 template files/directories with input values {\"name\":\"demo\"")));
        assert!(log.contains(&"Writing file README.md to template output path with mode 33188.".to_string()));
        assert!(log.contains(&"Writing directory src/ to template output path.".to_string()));
        assert!(log
            .last()
            .is_some_and(|l| l == &format!("Template result written to {}", t.workspace.display())));
    }

    #[tokio::test]
    async fn keeps_the_executable_bit_and_copies_binary_files_untouched() {
        let t = TestDirs::new();
        let script = t.template_file("skeleton/run.sh", "#!/bin/sh\necho ${{ values.name }}\n");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let png = [
            0x89u8, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, b'$', b'{', b'{',
        ];
        t.template_file("skeleton/logo.png", png);

        t.run(
            &FetchTemplate,
            json!({"url": "./skeleton", "targetPath": "out", "values": {"name": "x"}}),
        )
        .await
        .unwrap();

        assert_eq!(t.read("out/run.sh"), "#!/bin/sh\necho x\n");
        let mode = std::fs::metadata(t.workspace.join("out/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "mode {mode:o}");
        assert_eq!(std::fs::read(t.workspace.join("out/logo.png")).unwrap(), png);
        let log = t.log_lines();
        assert!(log.contains(&"Writing file run.sh to template output path with mode 33261.".to_string()));
        assert!(log.contains(&"Copying file binary or symbolic link at logo.png, to template output path.".to_string()));
    }

    #[tokio::test]
    async fn copy_without_templating_renders_names_but_not_contents() {
        let t = TestDirs::new();
        t.template_file("skeleton/.github/workflows/ci.yaml", "run: ${{ github.sha }}");
        t.template_file("skeleton/raw/${{ values.name }}.txt", "${{ values.name }}");
        t.template_file("skeleton/other.txt", "${{ values.name }}");

        t.run(
            &FetchTemplate,
            json!({"url": "./skeleton", "values": {"name": "demo"},
                   "copyWithoutTemplating": [".github/workflows/", "raw/*"]}),
        )
        .await
        .unwrap();

        assert_eq!(t.read(".github/workflows/ci.yaml"), "run: ${{ github.sha }}");
        assert_eq!(t.read("raw/demo.txt"), "${{ values.name }}");
        assert_eq!(t.read("other.txt"), "demo");
        let log = t.log_lines();
        assert!(log.contains(&"Copying file/directory .github/workflows/ci.yaml without processing.".to_string()));
        assert!(!log
            .iter()
            .any(|l| l.contains("Copying file/directory .github/workflows/ without")));
    }

    #[tokio::test]
    async fn copy_without_render_keeps_names_unrendered_and_warns() {
        let t = TestDirs::new();
        t.template_file("skeleton/raw/${{ values.name }}.txt", "${{ values.name }}");
        t.run(
            &FetchTemplate,
            json!({"url": "./skeleton", "values": {"name": "demo"}, "copyWithoutRender": ["raw/*"]}),
        )
        .await
        .unwrap();
        assert_eq!(t.read("raw/${{ values.name }}.txt"), "${{ values.name }}");
        assert!(t
            .log_lines()
            .iter()
            .any(|l| l.starts_with("[Deprecated] copyWithoutRender")));

        let err = t
            .run(
                &FetchTemplate,
                json!({"url": "./skeleton", "copyWithoutRender": ["a"], "copyWithoutTemplating": ["b"]}),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ActionError::InvalidInput(_)), "{err}");
    }

    #[tokio::test]
    async fn template_file_extension_renders_only_those_files_and_strips_it() {
        let t = TestDirs::new();
        t.template_file("skeleton/${{ values.name }}.md.njk", "# ${{ values.name }}");
        t.template_file("skeleton/plain.md", "${{ values.name }}");
        t.template_file("skeleton/custom.tpl", "${{ values.name }}");

        t.run(
            &FetchTemplate,
            json!({"url": "./skeleton", "targetPath": "a", "values": {"name": "demo"}, "templateFileExtension": true}),
        )
        .await
        .unwrap();
        assert_eq!(t.read("a/demo.md"), "# demo");
        assert_eq!(t.read("a/plain.md"), "${{ values.name }}");
        assert_eq!(t.read("a/custom.tpl"), "${{ values.name }}");

        t.run(
            &FetchTemplate,
            json!({"url": "./skeleton", "targetPath": "b", "values": {"name": "demo"}, "templateFileExtension": "tpl"}),
        )
        .await
        .unwrap();
        assert_eq!(t.read("b/custom"), "demo");
        assert_eq!(t.read("b/demo.md.njk"), "# ${{ values.name }}");

        for incompatible in [
            json!({"copyWithoutTemplating": ["x"]}),
            json!({"cookiecutterCompat": true}),
        ] {
            let mut input = json!({"url": "./skeleton", "templateFileExtension": ".njk"});
            input
                .as_object_mut()
                .unwrap()
                .extend(incompatible.as_object().unwrap().clone());
            let err = t.run(&FetchTemplate, input).await.unwrap_err();
            assert!(err.to_string().contains("extension incompatible"), "{err}");
        }
    }

    #[tokio::test]
    async fn cookiecutter_compat_uses_the_cookiecutter_namespace() {
        let t = TestDirs::new();
        t.template_file("skeleton/{{ cookiecutter.name }}.txt", "hello {{ cookiecutter.name }}");
        t.run(
            &FetchTemplate,
            json!({"url": "./skeleton", "values": {"name": "demo"}, "cookiecutterCompat": true}),
        )
        .await
        .unwrap();
        assert_eq!(t.read("demo.txt"), "hello demo");
    }

    #[tokio::test]
    async fn trim_and_lstrip_blocks_are_passed_on() {
        let t = TestDirs::new();
        t.template_file("skeleton/a.txt", "x\n  {% if values.on %}\non\n  {% endif %}\ny\n");
        t.run(
            &FetchTemplate,
            json!({"url": "./skeleton", "targetPath": "plain", "values": {"on": true}}),
        )
        .await
        .unwrap();
        assert_eq!(t.read("plain/a.txt"), "x\n  \non\n  \ny\n");
        t.run(
            &FetchTemplate,
            json!({"url": "./skeleton", "targetPath": "trimmed", "values": {"on": true},
                   "trimBlocks": true, "lstripBlocks": true}),
        )
        .await
        .unwrap();
        assert_eq!(t.read("trimmed/a.txt"), "x\non\ny\n");
    }

    #[tokio::test]
    async fn existing_files_are_kept_unless_replace_is_set() {
        let t = TestDirs::new();
        t.template_file("skeleton/a.txt", "new ${{ values.n }}");
        t.template_file("skeleton/b.txt", "b");
        t.workspace_file("a.txt", "old");

        t.run(&FetchTemplate, json!({"url": "./skeleton", "values": {"n": 1}}))
            .await
            .unwrap();
        assert_eq!(t.read("a.txt"), "old");
        assert_eq!(t.read("b.txt"), "b");

        t.run(
            &FetchTemplate,
            json!({"url": "./skeleton", "values": {"n": 2}, "replace": true}),
        )
        .await
        .unwrap();
        assert_eq!(t.read("a.txt"), "new 2");
    }

    #[tokio::test]
    async fn hostile_target_paths_and_rendered_names_are_refused() {
        let t = TestDirs::new();
        t.template_file("skeleton/a.txt", "a");
        std::os::unix::fs::symlink(t.dir.path(), t.workspace.join("escape")).unwrap();
        for target in ["..", "../x", "/tmp", "escape", "escape/deeper", "x/../../y", "nul\0"] {
            let err = t
                .run(&FetchTemplate, json!({"url": "./skeleton", "targetPath": target}))
                .await
                .unwrap_err();
            assert!(
                err.to_string().starts_with("Relative path is not allowed"),
                "{target:?}: {err}"
            );
        }

        let t = TestDirs::new();
        t.template_file("skeleton/${{ values.name }}", "pwned");
        for name in ["../../evil", "../evil", "a/../../evil"] {
            let err = t
                .run(&FetchTemplate, json!({"url": "./skeleton", "values": {"name": name}}))
                .await
                .unwrap_err();
            assert!(
                err.to_string().starts_with("Relative path is not allowed"),
                "{name}: {err}"
            );
        }
        assert!(!t.dir.path().join("evil").exists());
        // A name rendering to an absolute path is skipped, as in Backstage.
        t.run(
            &FetchTemplate,
            json!({"url": "./skeleton", "values": {"name": "/etc/evil"}}),
        )
        .await
        .unwrap();
        assert!(t.listing().is_empty());
    }

    #[tokio::test]
    async fn symbolic_links_are_copied_only_when_they_stay_inside() {
        let t = TestDirs::new();
        t.template_file("skeleton/real.txt", "r");
        std::os::unix::fs::symlink("real.txt", t.template_dir.join("skeleton/inside")).unwrap();
        std::os::unix::fs::symlink("../../../../etc/passwd", t.template_dir.join("skeleton/outside")).unwrap();
        std::os::unix::fs::symlink("/etc", t.template_dir.join("skeleton/absolute")).unwrap();
        t.run(&FetchTemplate, json!({"url": "./skeleton"})).await.unwrap();
        assert_eq!(t.listing(), ["inside", "real.txt"]);
        assert_eq!(
            std::fs::read_link(t.workspace.join("inside")).unwrap().to_str(),
            Some("real.txt")
        );
        assert_eq!(
            t.log_lines()
                .iter()
                .filter(|l| l.starts_with("Skipping symbolic link"))
                .count(),
            2
        );
    }

    #[tokio::test]
    async fn sources_above_the_template_or_absolute_are_not_allowed() {
        let t = TestDirs::new();
        let shared = t.dir.path().join("skeletons/ci");
        crate::actions::workspace::testing::write_file(&shared.join("CI.md"), "${{ values.name }}");
        let err = t
            .run(&FetchTemplate, json!({"url": "../skeletons/ci/", "targetPath": "a"}))
            .await
            .unwrap_err();
        assert_eq!(err.name(), "NotAllowedError", "{err}");
        let url = url::Url::from_directory_path(&shared).unwrap().to_string();
        let err = t
            .run(&FetchTemplate, json!({"url": url, "targetPath": "b"}))
            .await
            .unwrap_err();
        assert_eq!(err.name(), "NotAllowedError", "{err}");
        assert!(!t.exists("a") && !t.exists("b"));
    }

    #[tokio::test]
    async fn render_errors_fail_the_step() {
        let t = TestDirs::new();
        t.template_file("skeleton/a.txt", "${{ values.name | noSuchFilter }}");
        let err = t
            .run(&FetchTemplate, json!({"url": "./skeleton", "values": {"name": "x"}}))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("a.txt"), "{err}");
        assert_eq!(err.name(), "TemplateRenderError");
    }

    #[tokio::test]
    async fn unknown_inputs_are_rejected_by_the_schema() {
        let t = TestDirs::new();
        let err = t
            .run(&FetchTemplate, json!({"url": "./skeleton", "bogus": 1}))
            .await
            .unwrap_err();
        assert!(matches!(err, ActionError::InvalidInput(_)), "{err}");
    }
}
