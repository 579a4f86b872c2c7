//! What a change writes to the GitOps repository, computed from what is
//! there now (seen through [`RepoView`]) without touching anything.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::Deserialize;

use super::appset::{self, AppSetSource};
use super::base::{self, BaseFiles, BaseInfo};
use super::cluster::{ClusterConfig, ClusterInput};
use super::layout;
use super::overlay::{self, ImageSpec, OverlaySpec, ResourceSpec};
use super::platform;
use super::workload;
use super::GitopsError;

/// Read access to the repository's current tree (paths `/`-separated).
pub trait RepoView {
    fn read(&self, path: &str) -> Option<String>;
    fn exists(&self, path: &str) -> bool;
    /// The names of the subdirectories of `dir` (empty when it is missing).
    fn subdirs(&self, dir: &str) -> Vec<String>;
}

/// A repository with nothing in it (what a dry run plans against).
pub struct EmptyTree;

impl RepoView for EmptyTree {
    fn read(&self, _: &str) -> Option<String> {
        None
    }
    fn exists(&self, _: &str) -> bool {
        false
    }
    fn subdirs(&self, _: &str) -> Vec<String> {
        Vec::new()
    }
}

/// Writes to make: paths removed first, then directories replaced as a
/// whole, then files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Files or directories removed (with everything below them).
    pub remove: BTreeSet<String>,
    pub replace_dirs: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Plan {
    pub fn merge(&mut self, other: Plan) {
        self.remove.extend(other.remove);
        self.replace_dirs.extend(other.replace_dirs);
        self.files.extend(other.files);
    }

    /// Every path the plan writes (for logs).
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .replace_dirs
            .iter()
            .flat_map(|(dir, files)| files.keys().map(move |f| format!("{dir}/{f}")))
            .chain(self.files.keys().cloned())
            .collect();
        paths.sort();
        paths
    }

    /// Checks that every YAML file the plan writes parses.
    pub fn check_yaml(&self) -> Result<(), GitopsError> {
        for (path, bytes) in &self.files {
            if path.ends_with(".yaml") || path.ends_with(".yml") {
                base::parse_documents(path, bytes)?;
            }
        }
        Ok(())
    }
}

/// The cluster layout for `clusters`. `overwrite` (`gitops init`) rewrites
/// existing ApplicationSets, and `cluster.yaml` where `settings` name the
/// cluster or the file is not valid settings; otherwise only missing files
/// are written (a registration into a cluster nobody initialised).
pub fn plan_clusters(
    clusters: &[String],
    source: &AppSetSource,
    overwrite: bool,
    settings: &[ClusterInput],
    view: &dyn RepoView,
) -> Result<Plan, GitopsError> {
    for input in settings {
        if !clusters.contains(&input.name) {
            return Err(GitopsError::Invalid(format!(
                "Settings are given for the cluster {}, which is not in `clusters`",
                input.name
            )));
        }
    }
    let mut plan = Plan::default();
    let mut configs: BTreeMap<String, ClusterConfig> = BTreeMap::new();
    for cluster in clusters {
        layout::check_dns_label("cluster", cluster)?;
        let appset_path = layout::appset_path(cluster);
        if overwrite || !view.exists(&appset_path) {
            plan.files
                .insert(appset_path, appset::render_appset(cluster, source)?.into_bytes());
        }
        let cluster_file = layout::cluster_file(cluster);
        let input = settings.iter().find(|s| &s.name == cluster);
        let existing = view.read(&cluster_file);
        let parsed = existing.as_deref().map(|text| ClusterConfig::parse(cluster, text));
        let config = match parsed {
            Some(Ok(config)) if !(overwrite && input.is_some()) => config,
            Some(Err(e)) if !overwrite => return Err(e),
            _ => {
                let config = ClusterConfig::build(
                    cluster,
                    input.unwrap_or(&ClusterInput::default()),
                    &source.argocd_namespace,
                )?;
                plan.files.insert(cluster_file, config.render()?.into_bytes());
                config
            }
        };
        configs.insert(cluster.clone(), config.clone());
        let files = platform::cluster_files(&config)?;
        let mut wanted = vec![layout::APPSET_RELATIVE];
        for (relative, text) in &files {
            let path = format!("{}/{relative}", layout::cluster_dir(cluster));
            if overwrite || !view.exists(&path) {
                plan.files.insert(path, text.clone().into_bytes());
            }
            if platform::RESOURCES.contains(relative) {
                wanted.push(relative);
            }
        }
        // Init removes what the settings no longer ask for (a cluster that
        // lost its pull secret or age recipient); a registration leaves it.
        let mut unwanted = Vec::new();
        if overwrite {
            for relative in platform::MANAGED {
                if files.iter().any(|(p, _)| *p == relative) {
                    continue;
                }
                let path = format!("{}/{relative}", layout::cluster_dir(cluster));
                if view.exists(&path) {
                    plan.remove.insert(path);
                }
                if platform::RESOURCES.contains(&relative) {
                    unwanted.push(relative);
                }
            }
        }
        let kustomization = layout::cluster_kustomization(cluster);
        let existing = view.read(&kustomization);
        if let Some(text) = appset::cluster_kustomization(existing.as_deref(), &wanted, &unwanted)? {
            plan.files.insert(kustomization, text.into_bytes());
        }
    }
    // The SOPS rules cover every cluster of the repository, not only these.
    for other in view.subdirs(layout::CLUSTERS_DIR) {
        if configs.contains_key(&other) {
            continue;
        }
        if let Some(config) = view
            .read(&layout::cluster_file(&other))
            .and_then(|text| ClusterConfig::parse(&other, &text).ok())
        {
            configs.insert(other, config);
        }
    }
    let all: Vec<ClusterConfig> = configs.into_values().collect();
    let sops = super::cluster::render_sops(&all)?;
    let existing = view.read(layout::SOPS_FILE);
    if let Some(text) = sops {
        if existing.as_deref() != Some(text.as_str()) {
            plan.files.insert(layout::SOPS_FILE.to_owned(), text.into_bytes());
        }
    } else if overwrite && existing.is_some_and(|text| text.starts_with(super::cluster::SOPS_HEADER)) {
        // No cluster has a key any more: init removes the rules it wrote
        // (a hand-written file, without its header, stays).
        plan.remove.insert(layout::SOPS_FILE.to_owned());
    }
    Ok(plan)
}

/// What a registration does with overlays of clusters it no longer lists.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DroppedOverlays {
    /// Fail, naming the clusters (nothing is written).
    #[default]
    Refuse,
    /// Remove their overlays, so that Argo CD deletes those Applications.
    Remove,
}

/// A checked removal of a service from some or all of its clusters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unregistration {
    pub service: String,
    pub owner: String,
    /// `None`: every cluster (the whole `apps/<service>`).
    pub clusters: Option<Vec<String>>,
}

/// What an [`Unregistration`] removes from the current tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    pub plan: Plan,
    /// Clusters whose overlays go.
    pub clusters: Vec<String>,
    /// Clusters asked for that hold no overlay of the service.
    pub absent: Vec<String>,
    /// Whether the whole `apps/<service>` goes (no overlay is left).
    pub service_removed: bool,
}

impl Unregistration {
    pub fn new(service: &str, owner: &str, clusters: Option<&[String]>) -> Result<Unregistration, GitopsError> {
        layout::check_dns_label("service", service)?;
        check_owner_name(owner)?;
        let clusters = match clusters {
            None => None,
            Some([]) => {
                return Err(GitopsError::Invalid(
                    "Give at least one cluster, or none at all (omit `clusters`) to remove the service everywhere"
                        .into(),
                ))
            }
            Some(list) => {
                let mut names: Vec<String> = Vec::new();
                for cluster in list {
                    layout::check_dns_label("cluster", cluster)?;
                    if !names.contains(cluster) {
                        names.push(cluster.clone());
                    }
                }
                Some(names)
            }
        };
        Ok(Unregistration {
            service: service.to_owned(),
            owner: owner.to_owned(),
            clusters,
        })
    }

    /// The removals on the current tree. A service that is not there is
    /// nothing to remove (an empty plan); one without a marker or with
    /// another owner is refused, naming the owner.
    pub fn plan(&self, view: &dyn RepoView) -> Result<Removal, GitopsError> {
        let service_dir = layout::service_dir(&self.service);
        if !view.exists(&service_dir) {
            return Ok(Removal {
                absent: self.clusters.clone().unwrap_or_default(),
                ..Removal::default()
            });
        }
        let marker = view.read(&layout::marker_path(&self.service));
        if marker.is_none() {
            return Err(GitopsError::Conflict(format!(
                "{service_dir} was not registered by the scaffolder (no {}); refusing to remove it",
                layout::MARKER_FILE
            )));
        }
        overlay::check_owner(&self.service, &self.owner, marker.as_deref(), true)?;
        let mut present = view.subdirs(&layout::overlays_dir(&self.service));
        present.sort();
        let (clusters, absent): (Vec<String>, Vec<String>) = match &self.clusters {
            None => (present.clone(), Vec::new()),
            Some(asked) => asked.iter().cloned().partition(|c| present.contains(c)),
        };
        let service_removed = present.iter().all(|c| clusters.contains(c));
        let mut plan = Plan::default();
        if service_removed {
            plan.remove.insert(service_dir);
        } else {
            for cluster in &clusters {
                plan.remove.insert(layout::overlay_dir(&self.service, cluster));
            }
        }
        Ok(Removal {
            plan,
            clusters,
            absent,
            service_removed,
        })
    }
}

/// The overlay's files, each checked to parse.
fn check_overlay_files(
    service: &str,
    spec: &OverlaySpec,
    base: &BaseInfo,
    cluster: &ClusterConfig,
) -> Result<BTreeMap<String, Vec<u8>>, GitopsError> {
    let files = workload::overlay_files(service, spec, base, cluster)?;
    for (name, bytes) in &files {
        base::parse_documents(name, bytes)?;
    }
    Ok(files)
}

fn check_owner_name(owner: &str) -> Result<(), GitopsError> {
    if owner.trim().is_empty() || owner.contains('\n') {
        Err(GitopsError::Invalid("owner must be one non-empty line".into()))
    } else {
        Ok(())
    }
}

/// Per-cluster settings of a registration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterSettings {
    pub cluster: String,
    pub images: Vec<ImageSpec>,
    pub replicas: Option<u32>,
    pub resources: Option<ResourceSpec>,
}

/// A checked registration of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub service: String,
    pub owner: String,
    pub base: BaseFiles,
    pub base_info: BaseInfo,
    pub overlays: Vec<OverlaySpec>,
    marker: String,
}

impl Registration {
    /// Checks names, the base and every overlay. `clusters` and the
    /// clusters of `settings` together are the overlays written; `images`
    /// apply to all of them, under each cluster's own.
    pub fn new(
        service: &str,
        owner: &str,
        base: BaseFiles,
        clusters: &[String],
        images: &[ImageSpec],
        settings: &[ClusterSettings],
    ) -> Result<Registration, GitopsError> {
        layout::check_dns_label("service", service)?;
        check_owner_name(owner)?;
        let mut names: Vec<String> = Vec::new();
        for cluster in clusters.iter().chain(settings.iter().map(|s| &s.cluster)) {
            layout::check_app(service, cluster)?;
            if !names.contains(cluster) {
                names.push(cluster.clone());
            }
        }
        if names.is_empty() {
            return Err(GitopsError::Invalid("Give at least one cluster".into()));
        }
        for (i, s) in settings.iter().enumerate() {
            if settings[..i].iter().any(|o| o.cluster == s.cluster) {
                return Err(GitopsError::Invalid(format!(
                    "The cluster {} has two entries in `overlays`",
                    s.cluster
                )));
            }
        }
        let base_info = base::inspect(&base)?;
        let mut overlays = Vec::new();
        for cluster in names {
            let own = settings.iter().find(|s| s.cluster == cluster);
            let spec = OverlaySpec {
                images: overlay::merge_images(images, own.map_or(&[][..], |s| &s.images)),
                replicas: own.and_then(|s| s.replicas),
                resources: own.and_then(|s| s.resources.clone()),
                cluster,
                ..OverlaySpec::default()
            };
            // Checked now against the settings the cluster would get; the
            // plan renders it again with the repository's settings.
            let inferred = ClusterConfig::build(&spec.cluster, &ClusterInput::default(), "argocd")?;
            check_overlay_files(service, &spec, &base_info, &inferred)?;
            overlays.push(spec);
        }
        Ok(Registration {
            marker: overlay::render_marker(service, owner)?,
            service: service.to_owned(),
            owner: owner.to_owned(),
            base,
            base_info,
            overlays,
        })
    }

    pub fn clusters(&self) -> Vec<String> {
        self.overlays.iter().map(|o| o.cluster.clone()).collect()
    }

    pub fn applications(&self) -> Vec<String> {
        self.overlays
            .iter()
            .map(|o| layout::app_name(&self.service, &o.cluster))
            .collect()
    }

    pub fn overlay_paths(&self) -> Vec<String> {
        self.overlays
            .iter()
            .map(|o| layout::overlay_dir(&self.service, &o.cluster))
            .collect()
    }

    /// The overlays on the current tree that this registration no longer
    /// lists (their clusters, sorted).
    pub fn dropped(&self, view: &dyn RepoView) -> Vec<String> {
        let mut dropped: Vec<String> = view
            .subdirs(&layout::overlays_dir(&self.service))
            .into_iter()
            .filter(|c| !self.overlays.iter().any(|o| &o.cluster == c))
            .collect();
        dropped.sort();
        dropped
    }

    /// The writes of this registration onto the current tree; refuses a
    /// service registered by another owner, and overlays of clusters no
    /// longer listed unless `dropped` says to remove them.
    pub fn plan(&self, view: &dyn RepoView, dropped: DroppedOverlays) -> Result<Plan, GitopsError> {
        let marker = view.read(&layout::marker_path(&self.service));
        overlay::check_owner(
            &self.service,
            &self.owner,
            marker.as_deref(),
            view.exists(&layout::service_dir(&self.service)),
        )?;
        let mut plan = Plan::default();
        let gone = self.dropped(view);
        if !gone.is_empty() {
            match dropped {
                DroppedOverlays::Refuse => {
                    return Err(GitopsError::Conflict(format!(
                        "{} is deployed on {} too, which this registration no longer lists; refusing to leave those overlays behind. List them again, or set `droppedOverlays: remove` to remove {} (Argo CD then prunes {})",
                        self.service,
                        gone.join(", "),
                        gone.iter()
                            .map(|c| layout::overlay_dir(&self.service, c))
                            .collect::<Vec<_>>()
                            .join(", "),
                        gone.iter()
                            .map(|c| layout::app_name(&self.service, c))
                            .collect::<Vec<_>>()
                            .join(", "),
                    )))
                }
                DroppedOverlays::Remove => {
                    for cluster in &gone {
                        plan.remove.insert(layout::overlay_dir(&self.service, cluster));
                    }
                }
            }
        }
        plan.replace_dirs
            .insert(layout::base_dir(&self.service), self.base.files.clone());
        plan.files
            .insert(layout::marker_path(&self.service), self.marker.clone().into_bytes());
        for spec in &self.overlays {
            let cluster = ClusterConfig::load(view, &spec.cluster, "argocd")?;
            let files = check_overlay_files(&self.service, spec, &self.base_info, &cluster)?;
            plan.replace_dirs
                .insert(layout::overlay_dir(&self.service, &spec.cluster), files);
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[derive(Default)]
    struct Tree(BTreeMap<String, String>);

    impl RepoView for Tree {
        fn read(&self, path: &str) -> Option<String> {
            self.0.get(path).cloned()
        }
        fn exists(&self, path: &str) -> bool {
            self.0.keys().any(|k| k == path || k.starts_with(&format!("{path}/")))
        }
        fn subdirs(&self, dir: &str) -> Vec<String> {
            let prefix = format!("{dir}/");
            let names: BTreeSet<String> = self
                .0
                .keys()
                .filter_map(|k| k.strip_prefix(&prefix))
                .filter_map(|rest| rest.split_once('/').map(|(name, _)| name.to_owned()))
                .collect();
            names.into_iter().collect()
        }
    }

    fn base() -> BaseFiles {
        let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: app-image\n";
        BaseFiles {
            files: [
                ("kustomization.yaml".to_owned(), b"resources: [deploy.yaml]\n".to_vec()),
                ("deploy.yaml".to_owned(), deploy.as_bytes().to_vec()),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn image(tag: &str) -> ImageSpec {
        ImageSpec {
            name: "app-image".into(),
            new_name: Some("ghcr.io/acme/web".into()),
            new_tag: Some(tag.into()),
            digest: None,
        }
    }

    #[test]
    fn a_registration_writes_base_marker_and_overlays() {
        let settings = [ClusterSettings {
            cluster: "yc-prod".into(),
            images: vec![image("v2")],
            replicas: Some(2),
            resources: None,
        }];
        let reg = Registration::new(
            "web",
            "team-a",
            base(),
            &["onprem-dev".into()],
            &[image("v1")],
            &settings,
        )
        .unwrap();
        assert_eq!(reg.applications(), ["web-onprem-dev", "web-yc-prod"]);
        let plan = reg.plan(&Tree::default(), DroppedOverlays::Refuse).unwrap();
        plan.check_yaml().unwrap();
        let paths: BTreeSet<String> = plan.paths().into_iter().collect();
        for p in [
            "apps/web/.scaffolder.yaml",
            "apps/web/base/deploy.yaml",
            "apps/web/overlays/onprem-dev/kustomization.yaml",
            "apps/web/overlays/yc-prod/kustomization.yaml",
        ] {
            assert!(paths.contains(p), "{p} in {paths:?}");
        }
        let prod_dir = &plan.replace_dirs["apps/web/overlays/yc-prod"];
        let prod = String::from_utf8(prod_dir["kustomization.yaml"].clone()).unwrap();
        assert!(prod.contains("newTag: v2"), "{prod}");
        // yc-prod is a prod cluster: autoscaled (no disruption budget: this
        // base's Deployment has no selector to give it).
        assert!(prod_dir.contains_key("hpa.yaml") && !prod_dir.contains_key("pdb.yaml"));
        let dev_dir = &plan.replace_dirs["apps/web/overlays/onprem-dev"];
        // The test base has no Service: no route and no ServiceMonitor.
        assert_eq!(
            dev_dir.keys().collect::<Vec<_>>(),
            ["external-secret.yaml", "kustomization.yaml"]
        );
    }

    #[test]
    fn refusals() {
        let clusters = ["c".to_owned()];
        assert!(Registration::new("../x", "o", base(), &clusters, &[], &[]).is_err());
        assert!(Registration::new("web", "o", base(), &["C".to_owned()], &[], &[]).is_err());
        assert!(Registration::new("web", "o", base(), &[], &[], &[]).is_err());
        let reg = Registration::new("web", "team-a", base(), &clusters, &[image("v1")], &[]).unwrap();
        let mut tree = Tree::default();
        tree.0.insert("apps/web/base/x.yaml".into(), "{}".into());
        assert!(matches!(
            reg.plan(&tree, DroppedOverlays::Refuse),
            Err(GitopsError::Conflict(_))
        ));
        tree.0.insert(
            "apps/web/.scaffolder.yaml".into(),
            overlay::render_marker("web", "team-b").unwrap(),
        );
        assert!(matches!(
            reg.plan(&tree, DroppedOverlays::Refuse),
            Err(GitopsError::Conflict(_))
        ));
    }

    #[test]
    fn clusters_are_written_when_missing() {
        let source = AppSetSource {
            repo_url: "file:///r.git".into(),
            revision: "main".into(),
            argocd_namespace: "argocd".into(),
        };
        let plan = plan_clusters(&["a".into()], &source, false, &[], &Tree::default()).unwrap();
        // ApplicationSet, cluster.yaml, kustomization and four platform
        // files (the pull secret's ExternalSecret among them).
        assert_eq!(plan.files.len(), 7);
        assert!(plan.files.contains_key("clusters/a/platform/pull-secret.yaml"));
        let mut tree = Tree::default();
        for (k, v) in &plan.files {
            tree.0.insert(k.clone(), String::from_utf8(v.clone()).unwrap());
        }
        assert!(plan_clusters(&["a".into()], &source, false, &[], &tree)
            .unwrap()
            .files
            .is_empty());
        assert_eq!(
            plan_clusters(&["a".into()], &source, true, &[], &tree)
                .unwrap()
                .files
                .len(),
            5,
            "init rewrites the managed files only"
        );
        // Settings given to init rewrite cluster.yaml; settings of a cluster
        // not initialised are refused.
        let input = ClusterInput {
            name: "a".into(),
            stage: Some(crate::gitops::cluster::Stage::Prod),
            ..ClusterInput::default()
        };
        let plan = plan_clusters(&["a".into()], &source, true, std::slice::from_ref(&input), &tree).unwrap();
        let text = String::from_utf8(plan.files["clusters/a/cluster.yaml"].clone()).unwrap();
        assert!(text.contains("stage: prod"), "{text}");
        assert!(plan_clusters(&["b".into()], &source, true, &[input], &tree).is_err());

        // An age recipient brings the SOPS key and the KSOPS component;
        // taking it away again removes them and their kustomization entry.
        let with_key = ClusterInput {
            name: "a".into(),
            age_recipient: Some("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into()),
            ..ClusterInput::default()
        };
        let plan = plan_clusters(&["a".into()], &source, true, &[with_key], &tree).unwrap();
        for (k, v) in &plan.files {
            tree.0.insert(k.clone(), String::from_utf8(v.clone()).unwrap());
        }
        assert!(tree.0.contains_key("clusters/a/argocd/ksops/kustomization.yaml"));
        assert!(tree.0["clusters/a/kustomization.yaml"].contains("platform/sops-age.yaml"));
        assert!(tree.0[".sops.yaml"].contains("clusters/a/"));
        let without = ClusterInput {
            name: "a".into(),
            ..ClusterInput::default()
        };
        let plan = plan_clusters(&["a".into()], &source, true, &[without], &tree).unwrap();
        assert!(plan.remove.contains("clusters/a/platform/sops-age.yaml"));
        assert!(plan.remove.contains("clusters/a/argocd/ksops/kustomization.yaml"));
        let kustomization = String::from_utf8(plan.files["clusters/a/kustomization.yaml"].clone()).unwrap();
        assert!(!kustomization.contains("sops-age"), "{kustomization}");
        assert!(plan.remove.contains(".sops.yaml"), "no key is left: the rules go");
    }

    fn tree_of(plan: &Plan) -> Tree {
        let mut tree = Tree::default();
        for (dir, files) in &plan.replace_dirs {
            for (f, v) in files {
                tree.0
                    .insert(format!("{dir}/{f}"), String::from_utf8_lossy(v).into_owned());
            }
        }
        for (k, v) in &plan.files {
            tree.0.insert(k.clone(), String::from_utf8_lossy(v).into_owned());
        }
        tree
    }

    #[test]
    fn dropped_overlays_are_refused_or_removed() {
        let both = ["a".to_owned(), "b".to_owned()];
        let first = Registration::new("web", "team-a", base(), &both, &[image("v1")], &[]).unwrap();
        let tree = tree_of(&first.plan(&Tree::default(), DroppedOverlays::Refuse).unwrap());
        let fewer = Registration::new("web", "team-a", base(), &["a".to_owned()], &[image("v1")], &[]).unwrap();
        assert_eq!(fewer.dropped(&tree), ["b"]);
        let Err(GitopsError::Conflict(message)) = fewer.plan(&tree, DroppedOverlays::Refuse) else {
            panic!("not refused");
        };
        assert!(
            message.contains("apps/web/overlays/b") && message.contains("web-b"),
            "{message}"
        );
        let plan = fewer.plan(&tree, DroppedOverlays::Remove).unwrap();
        assert_eq!(plan.remove.iter().collect::<Vec<_>>(), ["apps/web/overlays/b"]);
        assert!(first.plan(&tree, DroppedOverlays::Refuse).unwrap().remove.is_empty());
    }

    #[test]
    fn unregistrations() {
        let clusters = ["a".to_owned(), "b".to_owned()];
        let reg = Registration::new("web", "team-a", base(), &clusters, &[image("v1")], &[]).unwrap();
        let tree = tree_of(&reg.plan(&Tree::default(), DroppedOverlays::Refuse).unwrap());

        let one = Unregistration::new("web", "team-a", Some(&["a".to_owned(), "z".to_owned()])).unwrap();
        let removal = one.plan(&tree).unwrap();
        assert_eq!(removal.clusters, ["a"]);
        assert_eq!(removal.absent, ["z"]);
        assert!(!removal.service_removed);
        assert_eq!(removal.plan.remove.iter().collect::<Vec<_>>(), ["apps/web/overlays/a"]);

        let all = Unregistration::new("web", "team-a", None).unwrap().plan(&tree).unwrap();
        assert!(all.service_removed);
        assert_eq!(all.plan.remove.iter().collect::<Vec<_>>(), ["apps/web"]);

        let Err(GitopsError::Conflict(message)) = Unregistration::new("web", "team-b", None).unwrap().plan(&tree)
        else {
            panic!("another owner was not refused");
        };
        assert!(message.contains("team-a"), "{message}");
        assert!(Unregistration::new("web", "team-a", Some(&[])).is_err());
        assert!(Unregistration::new("web", "", None).is_err());
        assert!(Unregistration::new("../web", "team-a", None).is_err());
        let gone = Unregistration::new("gone", "team-a", None)
            .unwrap()
            .plan(&tree)
            .unwrap();
        assert!(gone.plan.remove.is_empty());
        let mut unmarked = Tree::default();
        unmarked
            .0
            .insert("apps/web/overlays/a/kustomization.yaml".into(), "{}".into());
        assert!(Unregistration::new("web", "team-a", None)
            .unwrap()
            .plan(&unmarked)
            .is_err());
    }
}
