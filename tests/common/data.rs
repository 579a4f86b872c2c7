//! Where tests find their data.
//!
//! `tests/data/` holds what is ours: the exchanges captured from Backstage
//! for the API contract and the compatibility templates (see its README). It
//! is in every clone. The reference material that is not ours (public
//! third-party templates and Backstage's dry-runs of them, the compatibility
//! suite, the benchmark backend) stays outside the repository, in `../shared`
//! or `SHARED_DIR`: a test that needs it asks [`outside_dir`], which skips
//! the test with one line when it is absent, or fails it when
//! `SCAFFOLDER_REQUIRE_SHARED` is set, as CI does, so nothing is skipped there
//! unnoticed.

use std::io::Write;
use std::path::{Path, PathBuf};

/// `tests/data` of this checkout.
pub fn test_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The JSON file `relative` under `tests/data`.
pub fn test_data_json(relative: &str) -> serde_json::Value {
    let path = test_data_dir().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The reference material outside the repository: `SHARED_DIR`, else
/// `../shared` beside the checkout.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("SHARED_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    }
}

/// Whether a missing outside directory fails the test instead of skipping it.
fn shared_required() -> bool {
    std::env::var_os("SCAFFOLDER_REQUIRE_SHARED").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The directory `relative` of the outside reference material (e.g.
/// `fixtures/dry-run`) when it exists. When it does not, prints one line
/// starting with `skipped:` that names the test, what is missing and how to
/// get it, and returns `None` for the test to return early; under
/// `SCAFFOLDER_REQUIRE_SHARED` it panics with that line instead.
pub fn outside_dir(relative: &str) -> Option<PathBuf> {
    let dir = shared_dir().join(relative);
    if dir.is_dir() {
        return Some(dir);
    }
    let what = format!(
        "{}needs ../shared/{relative} (not found at {}): put the reference material beside the \
         repository or set SHARED_DIR to it; see tests/data/README.md",
        current_test(),
        dir.display()
    );
    skip_or_fail(&what);
    None
}

/// The running test's name and a space (libtest names each test's thread
/// after the test, unless it runs on `main`).
pub fn current_test() -> String {
    std::thread::current()
        .name()
        .filter(|name| *name != "main")
        .map(|name| format!("{name} "))
        .unwrap_or_default()
}

/// Prints `skipped: WHAT` for a test that returns early; under
/// `SCAFFOLDER_REQUIRE_SHARED` (CI, where nothing may be skipped) panics with
/// it instead.
pub fn skip_or_fail(what: &str) {
    if shared_required() {
        panic!("missing: {what} (SCAFFOLDER_REQUIRE_SHARED is set, so this fails instead of skipping)");
    }
    // libtest captures `eprintln!` of passing tests; the skip must show, so
    // this writes to the process's stderr directly.
    let _ = writeln!(std::io::stderr().lock(), "skipped: {what}");
}
