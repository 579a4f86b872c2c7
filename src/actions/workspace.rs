//! Paths inside the task workspace, for actions: the rules live in
//! [`crate::domain::paths`] (shared with the GitOps layout); this module adds
//! their conversion into [`ActionError`] and the actions' test harness.

pub use crate::domain::paths::*;

use super::ActionError;

impl From<UnsafePath> for ActionError {
    fn from(e: UnsafePath) -> ActionError {
        match e {
            UnsafePath::Io { path, source } => ActionError::Io {
                context: format!("cannot inspect '{path}'"),
                source,
            },
            other => ActionError::NotAllowed(other.to_string()),
        }
    }
}

/// Helpers for action tests: a temporary workspace and template directory,
/// and an [`ActionContext`](crate::actions::ActionContext) whose log lines are
/// collected.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use serde_json::{json, Map, Value};
    use tokio_util::sync::CancellationToken;
    use url::Url;

    use crate::actions::{Action, ActionContext, ActionError, LogSink, StepLogger};

    #[derive(Default)]
    pub struct CollectedLog(Mutex<Vec<String>>);

    #[async_trait]
    impl LogSink for CollectedLog {
        async fn log(&self, _step_id: &str, message: String) {
            if let Ok(mut lines) = self.0.lock() {
                lines.push(message);
            }
        }
    }

    /// A temporary directory with `workspace/` and `template/` (holding a
    /// `template.yaml`, the base of relative fetch URLs).
    pub struct TestDirs {
        pub dir: tempfile::TempDir,
        pub workspace: PathBuf,
        pub template_dir: PathBuf,
        pub log: Arc<CollectedLog>,
    }

    impl TestDirs {
        pub fn new() -> TestDirs {
            let dir = tempfile::tempdir().expect("temp dir");
            let workspace = dir.path().join("workspace");
            let template_dir = dir.path().join("template");
            std::fs::create_dir_all(&workspace).expect("workspace");
            std::fs::create_dir_all(&template_dir).expect("template dir");
            std::fs::write(template_dir.join("template.yaml"), "kind: Template\n").expect("template.yaml");
            TestDirs {
                dir,
                workspace,
                template_dir,
                log: Arc::default(),
            }
        }

        /// Writes a file under the template directory, creating parents.
        pub fn template_file(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
            write_file(&self.template_dir.join(relative), contents)
        }

        /// Writes a file under the workspace, creating parents.
        pub fn workspace_file(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
            write_file(&self.workspace.join(relative), contents)
        }

        pub fn read(&self, relative: &str) -> String {
            std::fs::read_to_string(self.workspace.join(relative))
                .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
        }

        pub fn exists(&self, relative: &str) -> bool {
            self.workspace.join(relative).symlink_metadata().is_ok()
        }

        /// Every file, link and directory of the workspace, relative, sorted;
        /// directories end with `/`.
        pub fn listing(&self) -> Vec<String> {
            let mut entries: Vec<String> = walkdir::WalkDir::new(&self.workspace)
                .min_depth(1)
                .into_iter()
                .filter_map(Result::ok)
                .map(|e| {
                    let relative = e.path().strip_prefix(&self.workspace).unwrap_or(e.path());
                    let mut s = relative.to_string_lossy().into_owned();
                    if e.file_type().is_dir() {
                        s.push('/');
                    }
                    s
                })
                .collect();
            entries.sort();
            entries
        }

        pub fn context(&self) -> ActionContext {
            let base = Url::from_file_path(self.template_dir.join("template.yaml")).expect("file URL");
            ActionContext {
                task_id: "task".into(),
                step_id: "step".into(),
                workspace: self.workspace.clone(),
                template_base: base,
                raw_input: json!({}),
                logger: StepLogger::new(self.log.clone(), "step"),
                secrets: Map::new(),
                user: json!({}),
                dry_run: false,
                cancel: CancellationToken::new(),
                integrations: Default::default(),
                extensions: Default::default(),
                outputs: Map::new(),
                limits: Default::default(),
                reader: None,
                run: Default::default(),
                approval: None,
            }
        }

        /// Runs `action` with `input` through [`Action::run`] (schema
        /// validation included) and returns the step's outputs.
        pub async fn run(&self, action: &dyn Action, input: Value) -> Result<Map<String, Value>, ActionError> {
            let mut ctx = self.context();
            ctx.raw_input = input.clone();
            action.run(&mut ctx, input).await?;
            Ok(ctx.into_outputs())
        }

        /// Log lines without the `info: ` / `warn: ` prefix and colours.
        pub fn log_lines(&self) -> Vec<String> {
            let lines = self.log.0.lock().map(|l| l.clone()).unwrap_or_default();
            lines
                .into_iter()
                .map(|l| match l.split_once("\u{1b}[39m: ") {
                    Some((_, rest)) => rest.to_string(),
                    None => l,
                })
                .collect()
        }
    }

    pub fn write_file(path: &Path, contents: impl AsRef<[u8]>) -> PathBuf {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent dir");
        }
        std::fs::write(path, contents).expect("write file");
        path.to_path_buf()
    }

    /// `id` as Backstage 4.3.0 lists it in `GET /v2/actions` (captured in `tests/data`).
    pub fn golden_action(id: &str) -> Value {
        let golden = crate::test_data::test_data_json("api-golden/actions-list.json");
        golden["response"]["body"]
            .as_array()
            .and_then(|list| list.iter().find(|a| a["id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("{id} is not in the golden action list"))
    }

    /// schemars keeps `required` in a sorted set; Backstage lists it in
    /// declaration order. The order carries no meaning, so it is ignored.
    fn sort_required(mut schema: Value) -> Value {
        match &mut schema {
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    if key == "required" {
                        if let Value::Array(items) = value {
                            items.sort_by_key(|v| v.to_string());
                        }
                    } else {
                        *value = sort_required(value.take());
                    }
                }
            }
            Value::Array(items) => {
                for item in items.iter_mut() {
                    *item = sort_required(item.take());
                }
            }
            _ => {}
        }
        schema
    }

    /// Checks id, description, examples and schemas against Backstage's
    /// `GET /v2/actions`, and that every example parses and names the action.
    pub fn assert_matches_backstage(action: &dyn Action) {
        let id = action.id();
        let golden = golden_action(id);
        assert_eq!(action.description(), golden["description"], "{id} description");
        assert_eq!(
            sort_required(action.input_schema()),
            sort_required(golden["schema"]["input"].clone()),
            "{id} input schema"
        );
        assert_eq!(
            action.output_schema().map(sort_required),
            golden["schema"].get("output").cloned().map(sort_required),
            "{id} output schema"
        );
        assert_eq!(
            serde_json::to_value(action.examples()).expect("examples serialise"),
            golden["examples"],
            "{id} examples"
        );
        assert!(action.supports_dry_run(), "{id} supports dry-run");
        for example in action.examples() {
            let parsed: serde_norway::Value = serde_norway::from_str(example.example)
                .unwrap_or_else(|e| panic!("{id} example {:?} does not parse: {e}", example.description));
            let steps = parsed["steps"].as_sequence().expect("example has steps");
            assert!(
                steps.iter().any(|s| s["action"].as_str() == Some(id)),
                "{id} example {:?} does not use the action",
                example.description
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn hostile_relative_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("ws");
        std::fs::create_dir_all(base.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), base.join("out-abs")).unwrap();
        std::os::unix::fs::symlink("../outside", base.join("out-rel")).unwrap();
        std::os::unix::fs::symlink("../../outside/new-file", base.join("sub/dangling-out")).unwrap();
        std::os::unix::fs::symlink("sub", base.join("in-link")).unwrap();
        std::os::unix::fs::symlink("deeper", base.join("sub/in-rel")).unwrap();
        std::os::unix::fs::symlink("missing-in-ws", base.join("dangling-in")).unwrap();
        std::os::unix::fs::symlink("loop-b", base.join("loop-a")).unwrap();
        std::os::unix::fs::symlink("loop-a", base.join("loop-b")).unwrap();
        std::os::unix::fs::symlink("out-rel", base.join("chain-out")).unwrap();
        std::os::unix::fs::symlink("/", base.join("root-link")).unwrap();
        std::os::unix::fs::symlink(".", base.join("self-link")).unwrap();
        std::os::unix::fs::symlink("..", base.join("parent-link")).unwrap();

        let refused = [
            "/etc/passwd",
            "/",
            "//double",
            "..",
            "../",
            "../ws/x",
            "../../../etc/passwd",
            "a/../../b",
            "sub/../..",
            "sub/deeper/../../../x",
            "./../x",
            "a\0b",
            "\0",
            "out-abs",
            "out-abs/file",
            "out-rel/file",
            "sub/dangling-out",
            "chain-out/file",
            "root-link/etc",
            "parent-link",
            "parent-link/other",
            "loop-a",
            "loop-a/x",
            "a\\..\\..\\b",
            "..\\x",
            "C:\\Windows\\x",
            "c:/x",
            "\\\\server\\share",
        ];
        for path in refused {
            let result = resolve_safe_child_path(&base, path);
            let err = result.expect_err(path);
            assert!(
                err.to_string().starts_with(OUTSIDE_PARENT),
                "{path}: unexpected message {err}"
            );
        }

        let allowed = [
            ("", ""),
            (".", ""),
            ("./", ""),
            ("a", "a"),
            ("./a/b", "a/b"),
            ("a//b/", "a/b"),
            ("a/../b", "b"),
            ("sub/deeper/../x", "sub/x"),
            ("..a", "..a"),
            ("a..", "a.."),
            ("...", "..."),
            ("in-link/file", "in-link/file"),
            ("sub/in-rel/file", "sub/in-rel/file"),
            ("dangling-in", "dangling-in"),
            ("self-link/x", "self-link/x"),
            // `..` applies lexically first, as Node's `path.resolve`.
            ("out-rel/../sub", "sub"),
            // Leaves through a link and comes back: judged by where it lands.
            ("parent-link/ws/x", "parent-link/ws/x"),
            ("a\\b", "a\\b"),
            ("ab:c", "ab:c"),
            ("${{ values.x }}", "${{ values.x }}"),
        ];
        for (path, expected) in allowed {
            let resolved = resolve_safe_child_path(&base, path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(resolved, base.join(expected), "{path}");
        }
    }

    #[test]
    fn the_kind_of_refusal_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::os::unix::fs::symlink("/", base.join("root")).unwrap();
        assert!(matches!(
            resolve_safe_child_path(base, "/x"),
            Err(UnsafePath::Absolute { .. })
        ));
        assert!(matches!(
            resolve_safe_child_path(base, "../x"),
            Err(UnsafePath::Escapes { .. })
        ));
        assert!(matches!(
            resolve_safe_child_path(base, "x\0"),
            Err(UnsafePath::NulByte { .. })
        ));
        let err = resolve_safe_child_path(base, "root/etc").unwrap_err();
        assert!(matches!(err, UnsafePath::Symlink { .. }), "{err}");
        assert!(err.to_string().contains("passes through the symbolic link"), "{err}");
    }

    #[test]
    fn a_base_reached_through_a_symlink_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("real/ws")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("alias")).unwrap();
        let base = dir.path().join("alias/ws");
        assert_eq!(resolve_safe_child_path(&base, "f").unwrap(), base.join("f"));
        assert!(resolve_safe_child_path(&base, "../f").is_err());
    }

    #[test]
    fn links_are_judged_from_where_they_would_be_created() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("a")).unwrap();
        assert!(link_stays_inside(&root, &root.join("a/link"), Path::new("../b")));
        assert!(link_stays_inside(&root, &root.join("a/link"), Path::new("x/y")));
        assert!(!link_stays_inside(&root, &root.join("a/link"), Path::new("../../b")));
        assert!(!link_stays_inside(
            &root,
            &root.join("a/link"),
            Path::new("/etc/passwd")
        ));
        assert!(link_stays_inside(&root, &root.join("a/link"), &root.join("a/x")));
    }
}
