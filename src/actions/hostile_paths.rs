//! Workspace isolation through the real actions: a table of hostile paths
//! (from inputs, from rendered file names, from the skeleton itself), each
//! run on a fresh workspace holding links that point out, with a canary
//! directory beside the workspace. Every case must fail with a clear
//! message, and the canary and everything beside the workspace must be
//! untouched.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use super::catalog::CatalogWrite;
use super::fetch::{FetchPlain, FetchPlainFile, FetchTemplate, FetchTemplateFile};
use super::fs::{FsDelete, FsReadDir, FsRename};
use super::publish::PublishGit;
use super::workspace::testing::TestDirs;
use super::workspace::OUTSIDE_PARENT;
use super::Action;
use crate::scm::integrations::{LocalGitHost, ScmIntegrations};

/// Everything under `dir` (files with their contents), sorted.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let mut all: Vec<(PathBuf, Option<Vec<u8>>)> = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| {
            let contents = e
                .file_type()
                .is_file()
                .then(|| std::fs::read(e.path()).unwrap_or_default());
            (e.path().to_path_buf(), contents)
        })
        .collect();
    all.sort();
    all
}

/// A workspace with an ordinary file and directory, links out (absolute,
/// relative, through the parent), and a template directory whose skeletons
/// hold a link out, a FIFO, a device and a name that renders to `..`.
fn hostile_dirs() -> (TestDirs, PathBuf) {
    let t = TestDirs::new();
    let canary = t.dir.path().join("canary");
    std::fs::create_dir_all(&canary).expect("canary");
    std::fs::write(canary.join("keep"), "canary").expect("canary file");
    t.workspace_file("ok.txt", "ok");
    t.workspace_file("dir/inner.txt", "inner");
    let ws = &t.workspace;
    let link = |target: &Path, at: PathBuf| std::os::unix::fs::symlink(target, at).expect("symlink");
    link(&canary, ws.join("ws-out"));
    link(Path::new("../canary"), ws.join("ws-out-rel"));
    link(Path::new(".."), ws.join("parent-link"));
    link(Path::new("../../canary"), ws.join("dir/up-link"));

    t.template_file("skeleton/readme.md", "hello ${{ values.name }}");
    t.template_file("named/${{ values.name }}.txt", "x");
    t.template_file("named-dir/${{ values.name }}/f.txt", "x");
    t.template_file("single.txt", "single");
    t.template_file("with-link-parent/sub/.keep", "");
    link(&canary, t.template_dir.join("skeleton-link"));
    link(&canary.join("keep"), t.template_dir.join("file-link"));
    // The destination `sub` of this skeleton is a link out in the workspace.
    link(&canary, ws.join("sub"));
    let fifo = t.template_dir.join("fifo-skel/pipe");
    std::fs::create_dir_all(t.template_dir.join("fifo-skel")).expect("fifo dir");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo failed");
    std::fs::create_dir_all(t.template_dir.join("dev-skel")).expect("dev dir");
    // A device node needs root (CI and the development machines run as root).
    let dev = std::process::Command::new("mknod")
        .arg(t.template_dir.join("dev-skel/zero"))
        .args(["c", "1", "5"])
        .status()
        .expect("mknod runs");
    assert!(dev.success(), "mknod failed: the device case needs root");
    (t, canary)
}

fn publish_git(git_dir: &Path) -> PublishGit {
    PublishGit::new(Arc::new(ScmIntegrations::new(
        Vec::new(),
        Some(LocalGitHost {
            host: "git.local".into(),
            dir: git_dir.to_path_buf(),
        }),
    )))
}

struct Case {
    name: &'static str,
    action: &'static str,
    input: Value,
    /// A part of the error message the user must see.
    message: &'static str,
}

fn case(name: &'static str, action: &'static str, input: Value, message: &'static str) -> Case {
    Case {
        name,
        action,
        input,
        message,
    }
}

fn cases(canary: &Path) -> Vec<Case> {
    let abs = canary.join("written").display().to_string();
    let long = "a".repeat(300);
    let publish = |source: &str| json!({"repoUrl": "git.local?owner=o&repo=r", "sourcePath": source});
    vec![
        // fetch:plain — the target path
        case(
            "plain: ..",
            "fetch:plain",
            json!({"url": "./skeleton", "targetPath": "../escape"}),
            OUTSIDE_PARENT,
        ),
        case(
            "plain: absolute",
            "fetch:plain",
            json!({"url": "./skeleton", "targetPath": abs}),
            "absolute path",
        ),
        case(
            "plain: a/../..",
            "fetch:plain",
            json!({"url": "./skeleton", "targetPath": "a/../../x"}),
            OUTSIDE_PARENT,
        ),
        case(
            "plain: link out (absolute)",
            "fetch:plain",
            json!({"url": "./skeleton", "targetPath": "ws-out"}),
            "symbolic link",
        ),
        case(
            "plain: link out (relative), below it",
            "fetch:plain",
            json!({"url": "./skeleton", "targetPath": "ws-out-rel/deeper"}),
            "symbolic link",
        ),
        case(
            "plain: link to the parent",
            "fetch:plain",
            json!({"url": "./skeleton", "targetPath": "parent-link/canary"}),
            "symbolic link",
        ),
        case(
            "plain: symlinked parent directory",
            "fetch:plain",
            json!({"url": "./skeleton", "targetPath": "dir/up-link/x"}),
            "symbolic link",
        ),
        case(
            "plain: NUL byte",
            "fetch:plain",
            json!({"url": "./skeleton", "targetPath": "a\u{0}b"}),
            "NUL byte",
        ),
        case(
            "plain: Windows ..\\",
            "fetch:plain",
            json!({"url": "./skeleton", "targetPath": "..\\..\\canary"}),
            "Windows path",
        ),
        case(
            "plain: drive prefix",
            "fetch:plain",
            json!({"url": "./skeleton", "targetPath": "C:\\Windows"}),
            "Windows path",
        ),
        case(
            "plain: over-long name",
            "fetch:plain",
            json!({"url": "./skeleton", "targetPath": long}),
            "too long",
        ),
        // fetch:plain — the source
        case(
            "plain: source above the template",
            "fetch:plain",
            json!({"url": "../canary"}),
            OUTSIDE_PARENT,
        ),
        case(
            "plain: file: URL",
            "fetch:plain",
            json!({"url": format!("file://{}", canary.display())}),
            "absolute file location",
        ),
        case(
            "plain: skeleton is a link out",
            "fetch:plain",
            json!({"url": "./skeleton-link"}),
            "symbolic link",
        ),
        case(
            "plain: skeleton holds a FIFO",
            "fetch:plain",
            json!({"url": "./fifo-skel", "targetPath": "f"}),
            "FIFO",
        ),
        case(
            "plain: skeleton holds a device",
            "fetch:plain",
            json!({"url": "./dev-skel", "targetPath": "d"}),
            "device",
        ),
        case(
            "plain: into a link made by an earlier step",
            "fetch:plain",
            json!({"url": "./with-link-parent"}),
            "symbolic link",
        ),
        // fetch:template
        case(
            "template: ..",
            "fetch:template",
            json!({"url": "./skeleton", "targetPath": "../escape", "values": {}}),
            OUTSIDE_PARENT,
        ),
        case(
            "template: link out",
            "fetch:template",
            json!({"url": "./skeleton", "targetPath": "ws-out-rel", "values": {}}),
            "symbolic link",
        ),
        case(
            "template: rendered file name ..",
            "fetch:template",
            json!({"url": "./named", "values": {"name": "../../canary/pwned"}}),
            OUTSIDE_PARENT,
        ),
        // A rendered name starting with `/` is skipped, as Backstage does
        // (`containsSkippedContent`); one that climbs out is refused.
        case(
            "template: rendered name climbs out",
            "fetch:template",
            json!({"url": "./named", "values": {"name": "x/../../y"}}),
            OUTSIDE_PARENT,
        ),
        case(
            "template: rendered dir name through a link",
            "fetch:template",
            json!({"url": "./named-dir", "values": {"name": "ws-out"}}),
            "symbolic link",
        ),
        case(
            "template: rendered name with NUL",
            "fetch:template",
            json!({"url": "./named", "values": {"name": "a\u{0}b"}}),
            "NUL byte",
        ),
        case(
            "template: rendered Windows name",
            "fetch:template",
            json!({"url": "./named", "values": {"name": "..\\..\\x"}}),
            "Windows path",
        ),
        case(
            "template: skeleton holds a FIFO",
            "fetch:template",
            json!({"url": "./fifo-skel", "targetPath": "f", "values": {}}),
            "FIFO",
        ),
        case(
            "template: skeleton is a link out",
            "fetch:template",
            json!({"url": "./skeleton-link", "values": {}}),
            "symbolic link",
        ),
        // fetch:plain:file and fetch:template:file
        case(
            "plain:file: ..",
            "fetch:plain:file",
            json!({"url": "./single.txt", "targetPath": "../x.txt"}),
            OUTSIDE_PARENT,
        ),
        case(
            "plain:file: through a link",
            "fetch:plain:file",
            json!({"url": "./single.txt", "targetPath": "ws-out/x.txt"}),
            "symbolic link",
        ),
        case(
            "plain:file: source links out",
            "fetch:plain:file",
            json!({"url": "./file-link", "targetPath": "x.txt"}),
            "symbolic link",
        ),
        case(
            "plain:file: device",
            "fetch:plain:file",
            json!({"url": "./dev-skel/zero", "targetPath": "zero"}),
            "device",
        ),
        case(
            "template:file: absolute",
            "fetch:template:file",
            json!({"url": "./single.txt", "targetPath": abs}),
            "absolute path",
        ),
        case(
            "template:file: through a relative link",
            "fetch:template:file",
            json!({"url": "./single.txt", "targetPath": "ws-out-rel/x"}),
            "symbolic link",
        ),
        case(
            "template:file: FIFO",
            "fetch:template:file",
            json!({"url": "./fifo-skel/pipe", "targetPath": "p"}),
            "FIFO",
        ),
        // fs:rename
        case(
            "rename: to ..",
            "fs:rename",
            json!({"files": [{"from": "ok.txt", "to": "../moved"}]}),
            OUTSIDE_PARENT,
        ),
        case(
            "rename: into a link",
            "fs:rename",
            json!({"files": [{"from": "ok.txt", "to": "ws-out/moved"}]}),
            "symbolic link",
        ),
        case(
            "rename: from outside",
            "fs:rename",
            json!({"files": [{"from": "../canary/keep", "to": "stolen"}]}),
            OUTSIDE_PARENT,
        ),
        case(
            "rename: Windows",
            "fs:rename",
            json!({"files": [{"from": "ok.txt", "to": "..\\moved"}]}),
            "Windows path",
        ),
        // fs:delete
        case(
            "delete: ..",
            "fs:delete",
            json!({"files": ["../canary/keep"]}),
            OUTSIDE_PARENT,
        ),
        case(
            "delete: through a link",
            "fs:delete",
            json!({"files": ["ws-out/keep"]}),
            "symbolic link",
        ),
        case(
            "delete: absolute",
            "fs:delete",
            json!({"files": [canary.join("keep").display().to_string()]}),
            "absolute path",
        ),
        case(
            "delete: glob above",
            "fs:delete",
            json!({"files": ["../canary/*"]}),
            OUTSIDE_PARENT,
        ),
        case(
            "delete: glob through a link",
            "fs:delete",
            json!({"files": ["ws-out/*"]}),
            "symbolic link",
        ),
        case(
            "delete: Windows",
            "fs:delete",
            json!({"files": ["..\\canary\\keep"]}),
            OUTSIDE_PARENT,
        ),
        // fs:readdir
        case(
            "readdir: ..",
            "fs:readdir",
            json!({"paths": ["../canary"]}),
            OUTSIDE_PARENT,
        ),
        case(
            "readdir: link",
            "fs:readdir",
            json!({"paths": ["ws-out"]}),
            "symbolic link",
        ),
        // catalog:write
        case(
            "catalog:write: ..",
            "catalog:write",
            json!({"entity": {"kind": "Component"}, "filePath": "../catalog-info.yaml"}),
            OUTSIDE_PARENT,
        ),
        case(
            "catalog:write: link",
            "catalog:write",
            json!({"entity": {"kind": "Component"}, "filePath": "ws-out/c.yaml"}),
            "symbolic link",
        ),
        // publish sourcePath
        case(
            "publish: sourcePath ..",
            "publish:git",
            publish("../canary"),
            OUTSIDE_PARENT,
        ),
        case(
            "publish: sourcePath link",
            "publish:git",
            publish("ws-out"),
            "symbolic link",
        ),
        case(
            "publish: sourcePath absolute",
            "publish:git",
            publish(&canary.display().to_string()),
            "absolute path",
        ),
    ]
}

#[tokio::test]
async fn hostile_paths_are_refused_by_every_action() {
    let (probe, probe_canary) = hostile_dirs();
    let table = cases(&probe_canary);
    drop(probe);
    let count = table.len();
    assert!(count >= 30, "only {count} cases");
    let mut problems = Vec::new();
    for case in table {
        let (t, canary) = hostile_dirs();
        // The same table, with paths pointing at this run's canary.
        let input = serde_json::to_string(&case.input)
            .expect("input serialises")
            .replace(&probe_canary.display().to_string(), &canary.display().to_string());
        let input: Value = serde_json::from_str(&input).expect("input parses");
        let git = t.dir.path().join("git");
        let action: Box<dyn Action> = match case.action {
            "fetch:plain" => Box::new(FetchPlain),
            "fetch:template" => Box::new(FetchTemplate),
            "fetch:plain:file" => Box::new(FetchPlainFile),
            "fetch:template:file" => Box::new(FetchTemplateFile),
            "fs:rename" => Box::new(FsRename),
            "fs:delete" => Box::new(FsDelete),
            "fs:readdir" => Box::new(FsReadDir),
            "catalog:write" => Box::new(CatalogWrite),
            "publish:git" => Box::new(publish_git(&git)),
            other => panic!("no action {other} in the table"),
        };
        let beside: Vec<PathBuf> = std::fs::read_dir(t.dir.path())
            .expect("list")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        let before = snapshot(&canary);
        let run = tokio::time::timeout(std::time::Duration::from_secs(20), t.run(action.as_ref(), input)).await;
        let outcome = match run {
            Err(_) => Err("hung (a FIFO or device was read?)".to_owned()),
            Ok(Ok(outputs)) => Err(format!("succeeded with outputs {outputs:?}")),
            Ok(Err(e)) if e.to_string().contains(case.message) => Ok(()),
            Ok(Err(e)) => Err(format!("refused, but the message does not say {:?}: {e}", case.message)),
        };
        if let Err(problem) = outcome {
            problems.push(format!("{}: {problem}", case.name));
        }
        if snapshot(&canary) != before {
            problems.push(format!("{}: the canary directory changed", case.name));
        }
        let mut now: Vec<PathBuf> = std::fs::read_dir(t.dir.path())
            .expect("list")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| *p != git)
            .collect();
        now.sort();
        let mut expected = beside.clone();
        expected.sort();
        if now != expected {
            problems.push(format!(
                "{}: something was written beside the workspace: {now:?}",
                case.name
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {count} cases failed:\n{}",
        problems.len(),
        problems.join("\n")
    );
    println!("{count} hostile path cases refused");
}
