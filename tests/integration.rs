//! The integration tests, one binary: the crate is linked once, not once per
//! area. Each area keeps its directory and its own helpers; `common` is what
//! they share (the test data, the database probe).
//!
//! - `api`: the HTTP API in-process against a fresh database per test
//! - `auth`: Backstage user tokens, static tokens, anonymous access
//! - `cli`: the `scaffolder` command line as a real process
//! - `engine`: `scaffolder serve` replicas, kills, the store's lifecycle
//! - `gitops`: the GitOps actions against real bare repositories
//! - `promotion`: signed image digests promoted through infra-gitops (a real registry)
//! - `publish`: publishing against a fake GitHub and a fake catalog

mod common;

mod api;
mod auth;
mod cli;
mod engine;
mod gitops;
mod promotion;
mod publish;
