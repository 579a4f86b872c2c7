//! Publishing against a fake GitHub REST server (octocrab talks to it over
//! real HTTP) whose clone URLs are real bare repositories, a fake catalog,
//! and the local git host; the scenarios run through the real `Runner`.

mod autocomplete;
mod catalog;
mod fake_catalog;
pub(crate) mod fake_github;
mod github;
mod github_actions;
pub(crate) mod github_openapi;
pub(crate) mod helpers;
mod local;
mod scenario;
