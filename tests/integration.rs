//! The integration tests, one binary: the crate is linked once, not once per
//! area. Each area keeps its directory and its own helpers; `common` is what
//! they share (the test data, the database probe).
//!
//! - `api`: the HTTP API in-process against a fresh database per test
//! - `auth`: Backstage user tokens, static tokens, anonymous access
//! - `bridge`: the action bridge (Backstage modules in Node) as a real process
//! - `cli`: the `scaffolder` command line as a real process
//! - `engine`: `scaffolder serve` replicas, kills, the store's lifecycle
//! - `governance`: approval gates and the audit trail
//! - `gitops`: the GitOps actions against real bare repositories
//! - `promotion`: signed image digests promoted through infra-gitops (a real registry)
//! - `publish`: publishing against a fake GitHub and a fake catalog
//! - `updates`: template versions and fleet updates against real git repositories

mod common;

mod api;
mod auth;
mod bridge;
mod cli;
mod engine;
mod gitops;
mod governance;
mod promotion;
mod publish;
mod updates;
