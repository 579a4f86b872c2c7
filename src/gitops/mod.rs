//! The GitOps repository (`infra-gitops`) the scaffolder registers services
//! in, and how it is laid out:
//!
//! ```text
//! clusters/<cluster>/{cluster.yaml, kustomization.yaml, argocd/apps-appset.yaml}
//! apps/<service>/.scaffolder.yaml                      who registered the service
//! apps/<service>/base/                                 vendored kustomize base
//! apps/<service>/overlays/<cluster>/kustomization.yaml one overlay per cluster
//! ```
//!
//! `layout` (names and paths), `base` (inspecting and validating a base),
//! `overlay` (the overlay and marker files), `appset` (the per-cluster Argo
//! CD ApplicationSet) and `plan` (the set of file writes) are pure: they
//! never touch a disk or a network. `repo` applies a plan to a clone made
//! with `scm::git` and pushes it, retrying when others pushed first; `cli`
//! is `scaffolder gitops …`. See docs/gitops.md for the contract.

pub mod appset;
pub mod base;
pub mod cluster;
pub mod layout;
pub mod overlay;
pub mod plan;
pub mod platform;
pub mod repo;
pub mod service;
pub mod workload;

/// Why a GitOps change was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GitopsError {
    /// A name, an image or a base that is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// A path that would leave its directory.
    #[error("{0}")]
    NotAllowed(String),
    /// The repository holds something this change may not overwrite.
    #[error("{0}")]
    Conflict(String),
    /// A promotion into a stage whose clusters ask for an approval
    /// (`promotion.requiresApproval`) that it does not carry.
    #[error("Stage {stage} needs an approval before {service} is promoted into it (clusters/<cluster>/cluster.yaml: promotion.requiresApproval), and this promotion has none")]
    NeedsApproval { service: String, stage: String },
}
