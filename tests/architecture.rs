//! The layering rule of ARCHITECTURE.md ("Layers"): every `crate::<module>`
//! path in a top-level module of `src/` names a module its row allows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The table under "## Layers": module → modules it may use.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let section = text
        .split("\n## Layers\n")
        .nth(1)
        .expect("a \"## Layers\" section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [module, uses] = cells[..] else {
            panic!("a row of two cells: {line}");
        };
        let names = |cell: &str| -> BTreeSet<String> {
            cell.split(',')
                .map(|n| n.trim().trim_matches('`').to_owned())
                .filter(|n| !n.is_empty() && n != "—")
                .collect()
        };
        let module = names(module).into_iter().next().expect("a module name");
        rows.insert(module, names(uses));
    }
    rows
}

/// Top-level modules declared in `src/lib.rs`.
fn modules() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).expect("src/lib.rs");
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_owned())
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(module used, file:line)` for every `crate::<name>` outside comments.
fn uses_in(path: &Path, modules: &BTreeSet<String>) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).expect("a source file");
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) {
                found.push((name, format!("{}:{}", path.display(), n + 1)));
            }
        }
    }
    found
}

#[test]
fn every_module_uses_only_what_its_layer_allows() {
    let allowed = allowed();
    let modules = modules();
    let unplaced: Vec<&String> = modules.iter().filter(|m| !allowed.contains_key(*m)).collect();
    assert!(
        unplaced.is_empty(),
        "modules without a row in ARCHITECTURE.md's Layers: {unplaced:?}"
    );
    let mut broken = Vec::new();
    for module in &modules {
        let dir = root().join("src").join(module);
        let mut files = Vec::new();
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        let file = root().join("src").join(format!("{module}.rs"));
        if file.is_file() {
            files.push(file);
        }
        for path in files {
            for (used, at) in uses_in(&path, &modules) {
                if used != *module && !allowed[module].contains(&used) {
                    broken.push(format!("{module} -> {used} at {at}"));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "edges ARCHITECTURE.md does not allow:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_layers_have_no_cycle() {
    let allowed = allowed();
    // Depth-first search for a path back to the start.
    fn reaches(
        from: &str,
        target: &str,
        allowed: &BTreeMap<String, BTreeSet<String>>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        allowed
            .get(from)
            .into_iter()
            .flatten()
            .any(|next| next == target || (seen.insert(next.clone()) && reaches(next, target, allowed, seen)))
    }
    for module in allowed.keys() {
        assert!(
            !reaches(module, module, &allowed, &mut BTreeSet::new()),
            "{module} depends on itself through the table"
        );
    }
}
