//! Path resolution: whatever path comes in, and whatever symbolic links an
//! earlier step left in the workspace, a path that `resolve_safe_child_path`
//! accepts stays inside the workspace, and writing through it lands inside.
//!
//! Input: lines. `@name=target` first creates the link `ws/<name>` (name
//! reduced to ASCII alphanumerics) pointing at `target`; every other line is
//! a path to resolve. Accepted paths are written to (parents created), then
//! the directory beside the workspace must still be empty.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use scaffolder::actions::workspace::resolve_safe_child_path;

fn fixture(root: &Path) -> std::io::Result<()> {
    let ws = root.join("ws");
    std::fs::create_dir_all(ws.join("sub/deeper"))?;
    std::fs::create_dir_all(root.join("outside"))?;
    let links = [
        ("out-abs", root.join("outside").display().to_string()),
        ("out-rel", "../outside".into()),
        ("sub/dangling-out", "../../outside/new".into()),
        ("in-link", "sub".into()),
        ("loop-a", "loop-b".into()),
        ("loop-b", "loop-a".into()),
        ("root", "/".into()),
        ("up", "..".into()),
        ("tmp", "/tmp".into()),
    ];
    for (link, target) in links {
        std::os::unix::fs::symlink(target, ws.join(link))?;
    }
    Ok(())
}

/// Everything under `dir`, to show what escaped.
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(dir) = tempfile::tempdir() else { return };
    let root = dir.path();
    if fixture(root).is_err() {
        return;
    }
    let ws = root.join("ws");
    let Ok(real_ws) = ws.canonicalize() else { return };
    for line in text.split('\n').take(16) {
        if let Some(spec) = line.strip_prefix('@') {
            let Some((name, target)) = spec.split_once('=') else {
                continue;
            };
            let name: String = name.chars().filter(char::is_ascii_alphanumeric).take(32).collect();
            if name.is_empty() || target.is_empty() || target.contains('\0') {
                continue;
            }
            let _ = std::os::unix::fs::symlink(target, ws.join(name));
            continue;
        }
        let Ok(path) = resolve_safe_child_path(&ws, line) else {
            continue;
        };
        assert!(
            path.starts_with(&ws),
            "{line:?} resolved to {} outside the workspace",
            path.display()
        );
        if path == ws {
            continue;
        }
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if std::fs::write(&path, b"x").is_ok() {
            if let Ok(real) = path.canonicalize() {
                assert!(
                    real.starts_with(&real_ws),
                    "{line:?}: the write landed at {}",
                    real.display()
                );
            }
        }
        let outside = entries(&root.join("outside"));
        assert!(outside.is_empty(), "{line:?} wrote outside the workspace: {outside:?}");
    }
});
