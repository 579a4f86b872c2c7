//! Git and GitHub plumbing for the publish actions: the configured SCM
//! integrations, the `git` command line and the GitHub REST client.
//!
//! **Invariant:** only this module talks to git hosts (processes and HTTP);
//! actions call it with their cancellation token.

pub mod git;
pub mod github;
pub mod integrations;
pub mod merge;
pub mod reader;

pub use integrations::{IntegrationError, LocalGitHost, ScmIntegrations, ScmTarget};
