//! Tests that need a program or root say so: when the machine lacks it they
//! are skipped with one `skipped:` line naming what is missing, or fail under
//! `SCAFFOLDER_REQUIRE_SHARED` (CI has every tool and runs as root).

use std::path::Path;

use super::data::{current_test, skip_or_fail};

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let candidate = dir.join(program);
            Path::new(&candidate).is_file()
        })
    })
}

/// Whether `program` is on `PATH`; `purpose` says what the test uses it for.
pub fn tool(program: &str, purpose: &str) -> bool {
    if on_path(program) {
        return true;
    }
    skip_or_fail(&format!(
        "{}needs `{program}` on PATH ({purpose}): install it (CI does)",
        current_test()
    ));
    false
}

/// Whether the tests run as root; `purpose` says what needs it.
pub fn root(purpose: &str) -> bool {
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    if uid == "0" {
        return true;
    }
    skip_or_fail(&format!(
        "{}needs root ({purpose}): run the tests as root (CI does)",
        current_test()
    ));
    false
}
