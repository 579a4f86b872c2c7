//! What a promotion writes, planned on the tip of the GitOps repository (no
//! IO): the overlay kustomization of every cluster of the stage pins the
//! bundle's images by digest (`images: [{name, newName, digest}]`) and
//! records the bundle in its `metadata.annotations`:
//!
//! ```yaml
//! metadata:
//!   annotations:
//!     promotion.soft-yt.dev/source-commit: 3f1c…
//!     promotion.soft-yt.dev/workflow-run: "9184467211"
//!     promotion.soft-yt.dev/promoted-at: 2026-12-06T01:30:00Z
//! ```
//!
//! Rules: the service must be registered (its marker names the owner a CI
//! caller must be); a stage after the first accepts only the bundle already
//! in the stage before it; an older workflow run never replaces a newer one
//! unless the promotion says it is a rollback.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::gitops::cluster::{ClusterConfig, Stage};
use crate::gitops::overlay::Marker;
use crate::gitops::plan::{Plan, RepoView};
use crate::gitops::{layout, GitopsError};

pub const SOURCE_COMMIT: &str = "promotion.soft-yt.dev/source-commit";
pub const WORKFLOW_RUN: &str = "promotion.soft-yt.dev/workflow-run";
pub const PROMOTED_AT: &str = "promotion.soft-yt.dev/promoted-at";
pub const ROLLBACK: &str = "promotion.soft-yt.dev/rollback";
pub const TASK: &str = "promotion.soft-yt.dev/task";

/// One image of a bundle: the image's name in its registry and its digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BundleImage {
    /// The image, e.g. `ghcr.io/acme/web-backend` (the overlay's `newName`)
    pub name: String,
    /// Its manifest digest, `sha256:…`
    pub digest: String,
}

/// What a build produced: the images (backend, frontend, …) of one source
/// commit, built by one workflow run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub images: Vec<BundleImage>,
    pub source_commit: String,
    /// The workflow run id (GitHub's run ids grow: a later run is newer).
    pub workflow_run: u64,
}

impl Bundle {
    fn same_images(&self, images: &[BundleImage]) -> bool {
        let mut mine = self.images.clone();
        let mut theirs = images.to_vec();
        mine.sort();
        theirs.sort();
        mine == theirs
    }
}

/// What one overlay runs, as recorded by the last promotion into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub cluster: String,
    pub images: Vec<BundleImage>,
    pub source_commit: Option<String>,
    pub workflow_run: Option<u64>,
    pub promoted_at: Option<String>,
}

/// One promotion to plan.
#[derive(Debug, Clone)]
pub struct Promotion {
    pub service: String,
    pub stage: Stage,
    pub bundle: Bundle,
    /// The owner a CI caller is (`repository:<host>/<owner>/<repo>`); `None`
    /// for operators, who may promote any service.
    pub owner: Option<String>,
    /// Promoting an older bundle on purpose.
    pub rollback: bool,
    /// Who approved it, for a stage that needs approval.
    pub approved_by: Option<String>,
    pub promoted_at: String,
    pub task_id: String,
}

/// A cluster of the service, with its settings.
#[derive(Debug, Clone)]
pub struct StageCluster {
    pub cluster: String,
    pub config: ClusterConfig,
}

/// The clusters of one stage, and the stage before it with its clusters.
pub type StageAndPrevious<'a> = (&'a [StageCluster], Option<(Stage, &'a [StageCluster])>);

/// Where the service runs, stage by stage.
#[derive(Debug, Clone)]
pub struct Stages {
    /// `(order, stage, clusters)`, ascending order.
    pub stages: Vec<(u32, Stage, Vec<StageCluster>)>,
}

impl Stages {
    /// The service's clusters (its overlays) grouped by stage.
    pub fn read(view: &dyn RepoView, service: &str) -> Result<Stages, GitopsError> {
        let mut by_stage: BTreeMap<(u32, &'static str), (Stage, Vec<StageCluster>)> = BTreeMap::new();
        let mut clusters = view.subdirs(&layout::overlays_dir(service));
        clusters.sort();
        for cluster in clusters {
            let config = ClusterConfig::load(view, &cluster, "argocd")?;
            by_stage
                .entry((config.promotion_order(), config.stage.as_str()))
                .or_insert_with(|| (config.stage, Vec::new()))
                .1
                .push(StageCluster { cluster, config });
        }
        Ok(Stages {
            stages: by_stage
                .into_iter()
                .map(|((order, _), (stage, clusters))| (order, stage, clusters))
                .collect(),
        })
    }

    fn position(&self, stage: Stage) -> Option<usize> {
        self.stages.iter().position(|(_, s, _)| *s == stage)
    }

    /// The clusters of `stage` and of the stage before it (if any).
    pub fn with_previous(&self, stage: Stage) -> Option<StageAndPrevious<'_>> {
        let at = self.position(stage)?;
        let previous = at
            .checked_sub(1)
            .and_then(|i| self.stages.get(i))
            .map(|(_, s, c)| (*s, c.as_slice()));
        Some((self.stages[at].2.as_slice(), previous))
    }
}

/// What a promotion did, besides the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub clusters: Vec<String>,
    /// The stage before this one, if any, and its clusters.
    pub previous_stage: Option<Stage>,
    pub previous_clusters: Vec<String>,
    /// The bundle replaced an older one with a newer run: `false`; with an
    /// older run (or the same) on purpose: `true`.
    pub rollback: bool,
    /// Every overlay already ran this bundle.
    pub unchanged: bool,
    /// Whether the stage waits for the previous stage's applications.
    pub wait_for_healthy: bool,
}

/// The overlay kustomization of `cluster`, parsed.
fn read_overlay(
    view: &dyn RepoView,
    service: &str,
    cluster: &str,
) -> Result<(String, Map<String, Value>), GitopsError> {
    let path = layout::overlay_path(service, cluster);
    let text = view
        .read(&path)
        .ok_or_else(|| GitopsError::Invalid(format!("{path} is missing")))?;
    let header: String = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let doc: Value =
        serde_norway::from_str(&text).map_err(|e| GitopsError::Invalid(format!("{path} is not valid YAML: {e}")))?;
    match doc {
        Value::Object(map) => Ok((header, map)),
        _ => Err(GitopsError::Invalid(format!("{path} is not a kustomization"))),
    }
}

fn annotations(doc: &Map<String, Value>) -> Map<String, Value> {
    doc.get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// What `cluster`'s overlay of `service` runs.
pub fn deployed(view: &dyn RepoView, service: &str, cluster: &str) -> Result<Deployed, GitopsError> {
    let (_, doc) = read_overlay(view, service, cluster)?;
    let notes = annotations(&doc);
    let note = |key: &str| notes.get(key).and_then(Value::as_str).map(str::to_owned);
    let images = doc
        .get("images")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|image| {
            let digest = image.get("digest")?.as_str()?;
            let name = image
                .get("newName")
                .or_else(|| image.get("name"))
                .and_then(Value::as_str)?;
            Some(BundleImage {
                name: name.to_owned(),
                digest: digest.to_owned(),
            })
        })
        .collect();
    Ok(Deployed {
        cluster: cluster.to_owned(),
        images,
        source_commit: note(SOURCE_COMMIT),
        workflow_run: note(WORKFLOW_RUN).and_then(|r| r.parse().ok()),
        promoted_at: note(PROMOTED_AT),
    })
}

/// Refuses a caller who does not own the service.
pub fn check_owner(view: &dyn RepoView, service: &str, owner: Option<&str>) -> Result<Marker, GitopsError> {
    let path = layout::marker_path(service);
    let text = view.read(&path).ok_or_else(|| {
        GitopsError::Invalid(format!(
            "Service {service} is not registered in the GitOps repository (no {path}); register it first (gitops:overlay:register)"
        ))
    })?;
    let marker: Marker =
        serde_norway::from_str(&text).map_err(|e| GitopsError::Conflict(format!("{path} cannot be read: {e}")))?;
    if let Some(owner) = owner {
        if marker.owner != owner {
            return Err(GitopsError::NotAllowed(format!(
                "{owner} may not promote {service}: the service is owned by {} ({path})",
                marker.owner
            )));
        }
    }
    Ok(marker)
}

/// Plans `promotion` on the repository `view`.
pub fn plan_promotion(view: &dyn RepoView, promotion: &Promotion) -> Result<(Plan, Planned), GitopsError> {
    let service = &promotion.service;
    layout::check_dns_label("service", service)?;
    check_owner(view, service, promotion.owner.as_deref())?;
    let stages = Stages::read(view, service)?;
    let stage = promotion.stage;
    let Some((clusters, previous)) = stages.with_previous(stage) else {
        return Err(GitopsError::Invalid(format!(
            "Service {service} has no overlay in stage {}; its stages are {}",
            stage.as_str(),
            stages
                .stages
                .iter()
                .map(|(_, s, _)| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let settings = |c: &StageCluster| c.config.promotion.clone().unwrap_or_default();
    if clusters.iter().any(|c| settings(c).requires_approval) && promotion.approved_by.is_none() {
        return Err(GitopsError::NeedsApproval {
            service: service.clone(),
            stage: stage.as_str().to_owned(),
        });
    }
    let bundle = &promotion.bundle;
    if !promotion.rollback {
        if let Some((previous_stage, previous_clusters)) = previous {
            for cluster in previous_clusters {
                let running = deployed(view, service, &cluster.cluster)?;
                if !bundle.same_images(&running.images) {
                    return Err(GitopsError::Conflict(format!(
                        "Stage {} accepts only the bundle running in {}: {} runs {} (source commit {}), not this bundle (source commit {}); promote it to {} first",
                        stage.as_str(),
                        previous_stage.as_str(),
                        cluster.cluster,
                        describe(&running.images),
                        running.source_commit.as_deref().unwrap_or("unknown"),
                        bundle.source_commit,
                        previous_stage.as_str()
                    )));
                }
            }
        }
    }
    let mut plan = Plan::default();
    let mut rollback = false;
    let mut unchanged = true;
    for cluster in clusters {
        let running = deployed(view, service, &cluster.cluster)?;
        let same =
            bundle.same_images(&running.images) && running.source_commit.as_deref() == Some(&bundle.source_commit);
        if same {
            continue;
        }
        unchanged = false;
        if let Some(run) = running.workflow_run {
            if run > bundle.workflow_run {
                if !promotion.rollback {
                    return Err(GitopsError::Conflict(format!(
                        "{} of {service} runs a newer build (workflow run {run}, source commit {}) than this one (workflow run {}, source commit {}); an older build never replaces a newer one unless the promotion is a rollback",
                        cluster.cluster,
                        running.source_commit.as_deref().unwrap_or("unknown"),
                        bundle.workflow_run,
                        bundle.source_commit
                    )));
                }
                rollback = true;
            }
        }
        let (header, mut doc) = read_overlay(view, service, &cluster.cluster)?;
        pin_images(
            &mut doc,
            &bundle.images,
            &layout::overlay_path(service, &cluster.cluster),
        )?;
        let mut notes = annotations(&doc);
        notes.insert(SOURCE_COMMIT.into(), json!(bundle.source_commit));
        notes.insert(WORKFLOW_RUN.into(), json!(bundle.workflow_run.to_string()));
        notes.insert(PROMOTED_AT.into(), json!(promotion.promoted_at));
        notes.insert(TASK.into(), json!(promotion.task_id));
        if promotion.rollback {
            notes.insert(ROLLBACK.into(), json!("true"));
        } else {
            notes.remove(ROLLBACK);
        }
        let metadata = doc.entry("metadata").or_insert_with(|| json!({}));
        if let Value::Object(m) = metadata {
            m.insert("annotations".into(), Value::Object(notes));
        }
        let body = serde_norway::to_string(&Value::Object(doc))
            .map_err(|e| GitopsError::Invalid(format!("cannot write YAML: {e}")))?;
        plan.files.insert(
            layout::overlay_path(service, &cluster.cluster),
            format!("{header}{body}").into_bytes(),
        );
    }
    Ok((
        plan,
        Planned {
            clusters: clusters.iter().map(|c| c.cluster.clone()).collect(),
            previous_stage: previous.map(|(s, _)| s),
            previous_clusters: previous
                .map(|(_, clusters)| clusters.iter().map(|c| c.cluster.clone()).collect())
                .unwrap_or_default(),
            rollback: rollback || (promotion.rollback && !unchanged),
            unchanged,
            wait_for_healthy: clusters.iter().any(|c| settings(c).wait_for_healthy),
        },
    ))
}

fn describe(images: &[BundleImage]) -> String {
    if images.is_empty() {
        return "no pinned digest".into();
    }
    images
        .iter()
        .map(|i| format!("{}@{}", i.name, i.digest))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sets the digest of every bundle image on the overlay's `images:` entry
/// whose `newName` (or `name`) is that image; a tag is dropped.
fn pin_images(doc: &mut Map<String, Value>, images: &[BundleImage], path: &str) -> Result<(), GitopsError> {
    let entries = doc.entry("images").or_insert_with(|| json!([]));
    let Value::Array(entries) = entries else {
        return Err(GitopsError::Invalid(format!("{path}: images is not a list")));
    };
    for image in images {
        let entry = entries.iter_mut().find(|e| {
            e.get("newName").and_then(Value::as_str) == Some(&image.name)
                || (e.get("newName").is_none() && e.get("name").and_then(Value::as_str) == Some(&image.name))
        });
        let Some(Value::Object(entry)) = entry else {
            let known: Vec<String> = entries
                .iter()
                .filter_map(|e| e.get("newName").or_else(|| e.get("name")).and_then(Value::as_str))
                .map(str::to_owned)
                .collect();
            return Err(GitopsError::Invalid(format!(
                "{path} has no image {} (its images: {}); the bundle must name the images the service was registered with",
                image.name,
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )));
        };
        entry.remove("newTag");
        entry.insert("digest".into(), json!(image.digest));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_replace_tags_on_the_matching_entry() {
        let mut doc: Map<String, Value> = serde_json::from_value(json!({
            "images": [
                {"name": "backend-image", "newName": "ghcr.io/acme/web-backend", "newTag": "latest"},
                {"name": "frontend-image", "newName": "ghcr.io/acme/web-frontend", "newTag": "latest"},
            ]
        }))
        .unwrap();
        let images = vec![BundleImage {
            name: "ghcr.io/acme/web-backend".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
        }];
        pin_images(&mut doc, &images, "k.yaml").unwrap();
        assert_eq!(
            doc["images"][0],
            json!({"name": "backend-image", "newName": "ghcr.io/acme/web-backend", "digest": format!("sha256:{}", "a".repeat(64))})
        );
        assert_eq!(doc["images"][1]["newTag"], "latest");
        let unknown = vec![BundleImage {
            name: "ghcr.io/acme/other".into(),
            digest: "sha256:00".into(),
        }];
        let err = pin_images(&mut doc, &unknown, "k.yaml").unwrap_err();
        assert!(err.to_string().contains("ghcr.io/acme/web-frontend"), "{err}");
    }
}
