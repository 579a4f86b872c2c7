//! The GitOps actions against real bare repositories (the local git host in
//! a temporary directory) and the fake GitHub server of the publishing
//! tests; overlays are rendered with `kubectl kustomize` and the
//! ApplicationSets checked against a JSON Schema of the Argo CD CRD.

mod appset;
mod concurrency;
mod helpers;
mod lifecycle;
mod register;
