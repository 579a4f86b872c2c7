//! A workspace shipped to a bridge that does not share our file system: a
//! tar of the tree going out, the tree the action left coming back. Both
//! ways are bounded by `limits.workspace_bytes`; unpacking refuses `..` and
//! link escapes (the `tar` crate's `unpack`).

use std::path::Path;

use crate::actions::ActionError;

/// The workspace as a tar (symbolic links kept as links, never followed).
pub(super) fn pack(dir: &Path, limit: u64) -> Result<Vec<u8>, ActionError> {
    let mut size = 0u64;
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry.map_err(|e| ActionError::Failed(format!("cannot read the workspace to ship it: {e}")))?;
        if entry.file_type().is_file() {
            size = size.saturating_add(entry.metadata().map(|m| m.len()).unwrap_or(0));
        }
    }
    if size > limit {
        return Err(ActionError::Failed(format!(
            "The workspace holds {size} bytes, more than limits.workspace_bytes ({limit}) allows to ship to an action bridge"
        )));
    }
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder
        .append_dir_all(".", dir)
        .map_err(ActionError::io("cannot pack the workspace for the action bridge"))?;
    builder
        .into_inner()
        .map_err(ActionError::io("cannot pack the workspace for the action bridge"))
}

/// Makes `dir` hold exactly the tree of `archive`: what the action deleted
/// is gone, what it wrote is there.
pub(super) fn replace(dir: &Path, archive: &[u8], limit: u64) -> Result<(), ActionError> {
    // A tar's size bounds what it unpacks to (headers come on top).
    if archive.len() as u64 > limit.saturating_add(limit / 2).saturating_add(1 << 20) {
        return Err(ActionError::Failed(format!(
            "The action bridge sent back a workspace of {} bytes, more than limits.workspace_bytes ({limit}) allows",
            archive.len()
        )));
    }
    let staging = tempfile::Builder::new()
        .prefix(".bridge-return-")
        .tempdir_in(dir.parent().unwrap_or(dir))
        .map_err(ActionError::io(
            "cannot stage the workspace the action bridge sent back",
        ))?;
    if !archive.is_empty() {
        let mut unpacker = tar::Archive::new(archive);
        unpacker.set_preserve_permissions(true);
        unpacker.unpack(staging.path()).map_err(ActionError::io(
            "cannot unpack the workspace the action bridge sent back",
        ))?;
    }
    clear(dir)?;
    for entry in std::fs::read_dir(staging.path()).map_err(ActionError::io("cannot read the returned workspace"))? {
        let entry = entry.map_err(ActionError::io("cannot read the returned workspace"))?;
        std::fs::rename(entry.path(), dir.join(entry.file_name()))
            .map_err(ActionError::io("cannot move the returned workspace into place"))?;
    }
    Ok(())
}

fn clear(dir: &Path) -> Result<(), ActionError> {
    for entry in std::fs::read_dir(dir).map_err(ActionError::io("cannot read the workspace"))? {
        let entry = entry.map_err(ActionError::io("cannot read the workspace"))?;
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
        .map_err(ActionError::io(format!("cannot replace {}", path.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shipped_tree_comes_back_with_deletions_and_new_files() {
        let ws = tempfile::tempdir().unwrap();
        std::fs::create_dir(ws.path().join("src")).unwrap();
        std::fs::write(ws.path().join("src/keep.txt"), "keep").unwrap();
        std::fs::write(ws.path().join("gone.txt"), "gone").unwrap();
        let packed = pack(ws.path(), 1 << 20).unwrap();

        // What the bridge does: unpack, change, pack again.
        let remote = tempfile::tempdir().unwrap();
        tar::Archive::new(packed.as_slice()).unpack(remote.path()).unwrap();
        std::fs::remove_file(remote.path().join("gone.txt")).unwrap();
        std::fs::write(remote.path().join("new.txt"), "new").unwrap();
        let back = pack(remote.path(), 1 << 20).unwrap();

        replace(ws.path(), &back, 1 << 20).unwrap();
        assert_eq!(std::fs::read_to_string(ws.path().join("src/keep.txt")).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(ws.path().join("new.txt")).unwrap(), "new");
        assert!(!ws.path().join("gone.txt").exists());
    }

    #[test]
    fn a_workspace_over_the_limit_is_not_shipped() {
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join("big"), vec![0u8; 2048]).unwrap();
        let err = pack(ws.path(), 1024).unwrap_err();
        assert!(err.to_string().contains("limits.workspace_bytes"), "{err}");
    }
}
