//! `fs:*` actions: delete, rename and list entries of the workspace. Every
//! path goes through [`crate::actions::workspace`], so none of them can reach
//! outside the workspace.

mod delete;
mod readdir;
mod rename;

pub use delete::FsDelete;
pub use readdir::FsReadDir;
pub use rename::FsRename;

/// Removes a file, a link (not its target) or a directory tree.
fn remove_entry(path: &std::path::Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use crate::actions::workspace::testing::assert_matches_backstage;

    #[test]
    fn fs_actions_match_backstages_listing_and_their_examples_parse() {
        assert_matches_backstage(&super::FsDelete);
        assert_matches_backstage(&super::FsRename);
        assert_matches_backstage(&super::FsReadDir);
    }
}
