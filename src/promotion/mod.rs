//! Promotion: built images reach the clusters through `infra-gitops`,
//! signed digests only, stage by stage (docs/gitops.md, "Promotion").
//!
//! `oci` reads registries (the OCI distribution API), `cosign` verifies an
//! image digest's cosign signature against the configured trust (a public
//! key, or a keyless certificate chaining to a trust root and naming the
//! expected workflow).

pub mod cosign;
pub mod oci;
