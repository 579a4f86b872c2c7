//! The domain's vocabulary, below every other module: catalog entity
//! references, repository URLs and paths that must stay inside a directory.
//!
//! **Invariant:** no IO beyond inspecting paths, and no `use crate::…` of any
//! other module: everything else builds on these definitions.

pub mod entity_ref;
pub mod paths;
pub mod repo_url;
