//! Turning user-supplied relative paths into paths inside a directory (the
//! task workspace, or a `fetch:template` output directory).
//!
//! Every action resolves the paths it writes, moves, deletes or lists through
//! [`resolve_safe_child_path`]; it rejects what Backstage's
//! `resolveSafeChildPath` rejects (a path that resolves outside its parent,
//! also through symbolic links) and is stricter on absolute paths and NUL bytes.
//!
//! **Invariant:** a path returned by this module stays inside its base even
//! when followed through every symbolic link that exists at the time of the
//! check. Paths are returned unresolved (like Backstage), so a symbolic link
//! that is itself the target is renamed or deleted, not its destination.

use std::io;
use std::path::{Component, Path, PathBuf};

use super::ActionError;

/// Backstage's message (`NotAllowedError`) for any path that leaves its parent.
pub const OUTSIDE_PARENT: &str = "Relative path is not allowed to refer to a directory outside its parent";

/// Linux's `NAME_MAX` and `PATH_MAX`: longer names fail later with `ENAMETOOLONG`.
const MAX_NAME_BYTES: usize = 255;
const MAX_PATH_BYTES: usize = 4096;

/// How many symbolic links one resolution may follow (Linux's `MAXSYMLINKS`).
const MAX_SYMLINK_HOPS: u32 = 40;

/// Why a path was refused. Each message starts with Backstage's wording.
#[derive(Debug, thiserror::Error)]
pub enum UnsafePath {
    #[error("{OUTSIDE_PARENT}: '{path}' contains a NUL byte")]
    NulByte { path: String },
    #[error("{OUTSIDE_PARENT}: '{path}' is an absolute path; use a path relative to the workspace")]
    Absolute { path: String },
    #[error("{OUTSIDE_PARENT}: '{path}' leaves its parent directory")]
    Escapes { path: String },
    /// `..\\x` or `C:\\x`: harmless names on Unix, an escape once the
    /// repository is checked out on Windows.
    #[error("{OUTSIDE_PARENT}: '{path}' is a Windows path that leaves its parent directory")]
    WindowsPath { path: String },
    #[error("{OUTSIDE_PARENT}: '{path}' is too long (at most {MAX_NAME_BYTES} bytes a name, {MAX_PATH_BYTES} in all)")]
    TooLong { path: String },
    #[error("{OUTSIDE_PARENT}: '{path}' passes through the symbolic link '{link}', which points outside")]
    Symlink { path: String, link: String },
    #[error("{OUTSIDE_PARENT}: '{path}' has a chain of more than {MAX_SYMLINK_HOPS} symbolic links")]
    TooManyLinks { path: String },
    #[error("cannot inspect '{path}': {source}")]
    Io { path: String, source: io::Error },
}

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

/// Resolves `relative` (a user-supplied, `/`-separated path) against `base`
/// and checks that the result stays inside `base`, lexically and through
/// existing symbolic links. `""`, `"."` and `"./"` name `base` itself.
pub fn resolve_safe_child_path(base: &Path, relative: &str) -> Result<PathBuf, UnsafePath> {
    let normalized = normalize_relative(relative)?;
    // `base.join("")` would add a trailing separator.
    let joined = if normalized.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(&normalized)
    };
    ensure_inside(base, &joined, relative)?;
    Ok(joined)
}

/// Lexical normalisation of a relative path: drops `.` and empty segments,
/// applies `..`, refuses absolute paths, NUL bytes and `..` above the start.
pub fn normalize_relative(relative: &str) -> Result<PathBuf, UnsafePath> {
    if relative.contains('\0') {
        return Err(UnsafePath::NulByte {
            path: relative.replace('\0', "\\0"),
        });
    }
    if Path::new(relative).is_absolute() || relative.starts_with('/') {
        return Err(UnsafePath::Absolute { path: relative.into() });
    }
    if relative.len() > MAX_PATH_BYTES || relative.split('/').any(|name| name.len() > MAX_NAME_BYTES) {
        return Err(UnsafePath::TooLong {
            path: relative.chars().take(80).collect::<String>() + "…",
        });
    }
    let drive = relative.as_bytes();
    let has_drive = drive.len() >= 2 && drive[0].is_ascii_alphabetic() && drive[1] == b':';
    let backslash_up = |segment: &str| segment.contains('\\') && segment.split('\\').any(|part| part == "..");
    if has_drive || relative.starts_with('\\') || relative.split('/').any(backslash_up) {
        return Err(UnsafePath::WindowsPath { path: relative.into() });
    }
    let mut parts: Vec<&str> = Vec::new();
    for segment in relative.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(UnsafePath::Escapes { path: relative.into() });
                }
            }
            name => parts.push(name),
        }
    }
    Ok(parts.iter().collect())
}

/// Checks that `path` (absolute, or relative to the process) stays inside
/// `base` once every existing symbolic link on the way is followed. `shown`
/// is the path as the user wrote it, for the error message.
pub fn ensure_inside(base: &Path, path: &Path, shown: &str) -> Result<(), UnsafePath> {
    let io_err = |source: io::Error| UnsafePath::Io {
        path: shown.into(),
        source,
    };
    let root = real_path(base).map_err(io_err)?;
    let mut hops = 0;
    let mut first_link = None;
    let real = resolve_links(&absolute(path).map_err(io_err)?, &mut hops, &mut first_link).map_err(|e| {
        if e.kind() == io::ErrorKind::Other && hops > MAX_SYMLINK_HOPS {
            UnsafePath::TooManyLinks { path: shown.into() }
        } else {
            io_err(e)
        }
    })?;
    if real.starts_with(&root) {
        return Ok(());
    }
    match first_link {
        Some(link) => Err(UnsafePath::Symlink {
            path: shown.into(),
            link: link.display().to_string(),
        }),
        None => Err(UnsafePath::Escapes { path: shown.into() }),
    }
}

/// Whether a symbolic link at `link` with target `target` would point inside
/// `root` (used before recreating a link from a template in the workspace).
pub fn link_stays_inside(root: &Path, link: &Path, target: &Path) -> bool {
    let Some(parent) = link.parent() else { return false };
    let destination = if target.is_absolute() {
        target.to_path_buf()
    } else {
        parent.join(target)
    };
    ensure_inside(root, &destination, "").is_ok()
}

/// The canonical form of `path`, tolerating components that do not exist yet.
fn real_path(path: &Path) -> io::Result<PathBuf> {
    let mut hops = 0;
    resolve_links(&absolute(path)?, &mut hops, &mut None)
}

fn absolute(path: &Path) -> io::Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(path))
    }
}

/// `realpath` that keeps going past missing components (they cannot be links)
/// and follows dangling links lexically, so that a link to a file that does
/// not exist yet is judged by where a write through it would land.
fn resolve_links(path: &Path, hops: &mut u32, first_link: &mut Option<PathBuf>) -> io::Result<PathBuf> {
    let mut real = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => real.push(component.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                real.pop();
            }
            Component::Normal(name) => {
                let next = real.join(name);
                match std::fs::symlink_metadata(&next) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        *hops += 1;
                        if *hops > MAX_SYMLINK_HOPS {
                            return Err(io::Error::other("too many levels of symbolic links"));
                        }
                        if first_link.is_none() {
                            *first_link = Some(next.clone());
                        }
                        let target = std::fs::read_link(&next)?;
                        let destination = if target.is_absolute() {
                            target
                        } else {
                            real.join(target)
                        };
                        real = resolve_links(&destination, hops, first_link)?;
                    }
                    Ok(_) => real = next,
                    Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => real = next,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(real)
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
                outputs: Map::new(),
                limits: Default::default(),
                reader: None,
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
