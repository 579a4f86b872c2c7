//! The files a registration writes for one service: its overlays (one per
//! cluster) and its ownership marker.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::base::BaseInfo;
use super::layout::{self, DESTINATION_NAMESPACE};
use super::GitopsError;

/// One `images:` entry of an overlay (kustomize's image transformer).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageSpec {
    /// The image name used in the base's manifests (a placeholder such as `backend-image`)
    pub name: String,
    /// The image to use instead, e.g. `ghcr.io/acme/webapp-backend`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    /// The tag to use
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_tag: Option<String>,
    /// The digest to use instead of a tag, e.g. `sha256:…`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Container resources set on every container of every Deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    /// e.g. `{cpu: 100m, memory: 128Mi}`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, String>>,
    /// e.g. `{cpu: "1", memory: 256Mi}`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<BTreeMap<String, String>>,
}

/// Everything one overlay says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverlaySpec {
    pub cluster: String,
    pub images: Vec<ImageSpec>,
    pub replicas: Option<u32>,
    pub resources: Option<ResourceSpec>,
    /// `imagePullSecrets` of every Deployment's pods.
    pub pull_secret: Option<String>,
    /// Files of the overlay directory listed after `../../base`.
    pub extra_resources: Vec<String>,
    /// `(deployment, secret)`: the Secret's keys become environment
    /// variables of the Deployment's first container (optional: the pods
    /// start before External Secrets has synced it).
    pub secret_env: Option<(String, String)>,
    /// Environment variables set on one container (merged by name with
    /// the base's own).
    pub env: Option<ContainerEnv>,
}

/// Environment variables of one container of one Deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerEnv {
    pub deployment: String,
    pub container: String,
    pub vars: Vec<(String, String)>,
}

fn regex(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).unwrap_or_else(|e| panic!("invalid built-in pattern {pattern}: {e}")))
}

fn image_ref_re() -> &'static Regex {
    static CELL: OnceLock<Regex> = OnceLock::new();
    regex(&CELL, r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,254}$")
}
fn tag_re() -> &'static Regex {
    static CELL: OnceLock<Regex> = OnceLock::new();
    regex(&CELL, r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
}
fn digest_re() -> &'static Regex {
    static CELL: OnceLock<Regex> = OnceLock::new();
    regex(&CELL, r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,}$")
}
fn quantity_re() -> &'static Regex {
    static CELL: OnceLock<Regex> = OnceLock::new();
    regex(&CELL, r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$")
}
fn resource_name_re() -> &'static Regex {
    static CELL: OnceLock<Regex> = OnceLock::new();
    regex(
        &CELL,
        r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)?$",
    )
}

/// Checks one image entry's syntax.
pub fn check_image(image: &ImageSpec) -> Result<(), GitopsError> {
    let bad = |what: &str, value: &str| {
        Err(GitopsError::Invalid(format!(
            "Invalid {what} {value:?} in the image entry {:?}",
            image.name
        )))
    };
    if !image_ref_re().is_match(&image.name) {
        return bad("name", &image.name);
    }
    if let Some(new_name) = &image.new_name {
        if !image_ref_re().is_match(new_name) {
            return bad("newName", new_name);
        }
    }
    if let Some(tag) = &image.new_tag {
        if !tag_re().is_match(tag) {
            return bad("newTag", tag);
        }
    }
    if let Some(digest) = &image.digest {
        if !digest_re().is_match(digest) {
            return bad("digest", digest);
        }
    }
    if image.new_tag.is_some() && image.digest.is_some() {
        return Err(GitopsError::Invalid(format!(
            "The image entry {:?} sets both newTag and digest; set one",
            image.name
        )));
    }
    if image.new_name.is_none() && image.new_tag.is_none() && image.digest.is_none() {
        return Err(GitopsError::Invalid(format!(
            "The image entry {:?} sets nothing: give newName, newTag or digest",
            image.name
        )));
    }
    Ok(())
}

pub fn check_resources(resources: &ResourceSpec) -> Result<(), GitopsError> {
    for (kind, map) in [("requests", &resources.requests), ("limits", &resources.limits)] {
        for (name, quantity) in map.iter().flatten() {
            if !resource_name_re().is_match(name) || !quantity_re().is_match(quantity) {
                return Err(GitopsError::Invalid(format!(
                    "Invalid resource {kind}.{name}: {quantity:?} (use a Kubernetes quantity such as 100m or 128Mi)"
                )));
            }
        }
    }
    Ok(())
}

/// Per-cluster images override the shared ones with the same name.
pub fn merge_images(shared: &[ImageSpec], specific: &[ImageSpec]) -> Vec<ImageSpec> {
    let mut merged: Vec<ImageSpec> = shared
        .iter()
        .filter(|i| !specific.iter().any(|s| s.name == i.name))
        .cloned()
        .collect();
    merged.extend(specific.iter().cloned());
    merged.sort_by(|a, b| a.name.cmp(&b.name));
    merged
}

fn to_yaml(header: &str, value: &Value) -> Result<String, GitopsError> {
    let body = serde_norway::to_string(value).map_err(|e| GitopsError::Invalid(format!("cannot write YAML: {e}")))?;
    Ok(format!("{header}{body}"))
}

/// `header`, then each of `docs` as a YAML document after a `---` line.
pub(crate) fn yaml_documents(header: &str, docs: &[Value]) -> Result<String, GitopsError> {
    let mut text = header.to_owned();
    for doc in docs {
        text.push_str("---\n");
        text.push_str(&to_yaml("", doc)?);
    }
    Ok(text)
}

/// The overlay's `kustomization.yaml`. Every image entry must name an image
/// the base uses.
pub fn render_overlay(service: &str, spec: &OverlaySpec, base: &BaseInfo) -> Result<String, GitopsError> {
    layout::check_app(service, &spec.cluster)?;
    let mut seen = std::collections::BTreeSet::new();
    for image in &spec.images {
        check_image(image)?;
        if !seen.insert(image.name.as_str()) {
            return Err(GitopsError::Invalid(format!(
                "The image {:?} is listed twice for cluster {}",
                image.name, spec.cluster
            )));
        }
        if !base.images.contains(&image.name) {
            let known: Vec<&str> = base.images.iter().map(String::as_str).collect();
            return Err(GitopsError::Invalid(format!(
                "The overlay for {} sets the image {:?}, which no container of the base uses (the base uses: {})",
                spec.cluster,
                image.name,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    let mut doc = Map::new();
    doc.insert("apiVersion".into(), json!("kustomize.config.k8s.io/v1beta1"));
    doc.insert("kind".into(), json!("Kustomization"));
    doc.insert("namespace".into(), json!(DESTINATION_NAMESPACE));
    let mut resources = vec![json!("../../base")];
    resources.extend(spec.extra_resources.iter().map(|r| json!(r)));
    doc.insert("resources".into(), Value::Array(resources));
    doc.insert(
        "labels".into(),
        json!([{"pairs": {"backstage.io/kubernetes-id": service}, "includeTemplates": true}]),
    );
    if !spec.images.is_empty() {
        doc.insert(
            "images".into(),
            serde_json::to_value(&spec.images).unwrap_or(Value::Null),
        );
    }
    let mut patches = Vec::new();
    if let Some(replicas) = spec.replicas {
        patches.push(json!({
            "target": {"kind": "Deployment"},
            "patch": format!("- op: add\n  path: /spec/replicas\n  value: {replicas}\n"),
        }));
    }
    if let Some(secret) = &spec.pull_secret {
        layout::check_dns_label("image pull secret", secret)?;
        patches.push(json!({
            "target": {"kind": "Deployment"},
            "patch": format!("- op: add\n  path: /spec/template/spec/imagePullSecrets\n  value:\n    - name: {secret}\n"),
        }));
    }
    if let Some((deployment, secret)) = &spec.secret_env {
        layout::check_dns_label("secret", secret)?;
        patches.push(json!({
            "target": {"kind": "Deployment", "name": deployment},
            "patch": format!("- op: add\n  path: /spec/template/spec/containers/0/envFrom\n  value:\n    - secretRef:\n        name: {secret}\n        optional: true\n"),
        }));
    }
    if let Some(env) = &spec.env {
        let vars: Vec<Value> = env
            .vars
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        let patch = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": env.deployment},
            "spec": {"template": {"spec": {"containers": [{"name": env.container, "env": vars}]}}},
        });
        patches.push(json!({
            "target": {"kind": "Deployment", "name": env.deployment},
            "patch": to_yaml("", &patch)?,
        }));
    }
    if let Some(resources) = &spec.resources {
        check_resources(resources)?;
        let value = serde_json::to_value(resources).unwrap_or(Value::Null);
        for (deployment, containers) in &base.deployments {
            let containers: Vec<Value> = containers
                .iter()
                .map(|c| json!({"name": c, "resources": value}))
                .collect();
            let patch = json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": deployment},
                "spec": {"template": {"spec": {"containers": containers}}},
            });
            patches.push(json!({
                "target": {"kind": "Deployment", "name": deployment},
                "patch": to_yaml("", &patch)?,
            }));
        }
    }
    if !patches.is_empty() {
        doc.insert("patches".into(), Value::Array(patches));
    }
    let header = format!(
        "# {} on {}: Argo CD application {}.\n# Written by the scaffolder (gitops:overlay:register); CI may bump the image tags.\n",
        service,
        spec.cluster,
        layout::app_name(service, &spec.cluster)
    );
    to_yaml(&header, &Value::Object(doc))
}

/// Who registered a service (`apps/<service>/.scaffolder.yaml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Marker {
    pub service: String,
    pub owner: String,
}

pub fn render_marker(service: &str, owner: &str) -> Result<String, GitopsError> {
    to_yaml(
        "# Registered by the scaffolder (gitops:overlay:register). Registrations of this\n# service by another owner are refused; change `owner` to hand it over.\n",
        &json!({"service": service, "owner": owner}),
    )
}

/// Refuses to touch a service registered by someone else, or a service
/// directory the scaffolder did not create. `marker` is the marker file's
/// text, `dir_exists` whether `apps/<service>/` exists at all.
pub fn check_owner(service: &str, owner: &str, marker: Option<&str>, dir_exists: bool) -> Result<(), GitopsError> {
    match marker {
        None if dir_exists => Err(GitopsError::Conflict(format!(
            "{} already exists in the GitOps repository but was not registered by the scaffolder (no {}); refusing to overwrite it",
            layout::service_dir(service),
            layout::MARKER_FILE
        ))),
        None => Ok(()),
        Some(text) => {
            let marker: Marker = serde_norway::from_str(text).map_err(|e| {
                GitopsError::Conflict(format!(
                    "{} cannot be read ({e}); refusing to overwrite {}",
                    layout::marker_path(service),
                    layout::service_dir(service)
                ))
            })?;
            if marker.owner == owner {
                Ok(())
            } else {
                Err(GitopsError::Conflict(format!(
                    "Service {service} is already registered in the GitOps repository by {} (not {owner}); refusing to overwrite its overlays. Choose another service name, or have {} hand it over by changing `owner` in {}",
                    marker.owner,
                    marker.owner,
                    layout::marker_path(service)
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> BaseInfo {
        BaseInfo {
            images: ["app-image".to_owned()].into_iter().collect(),
            deployments: vec![("web".into(), vec!["app".into()])],
            ..BaseInfo::default()
        }
    }

    fn image(name: &str, tag: &str) -> ImageSpec {
        ImageSpec {
            name: name.into(),
            new_name: Some("ghcr.io/acme/web".into()),
            new_tag: Some(tag.into()),
            digest: None,
        }
    }

    #[test]
    fn renders_a_complete_overlay() {
        let spec = OverlaySpec {
            cluster: "yc-prod".into(),
            images: vec![image("app-image", "v1")],
            replicas: Some(3),
            resources: Some(ResourceSpec {
                requests: Some([("cpu".to_owned(), "100m".to_owned())].into_iter().collect()),
                limits: None,
            }),
            ..OverlaySpec::default()
        };
        let text = render_overlay("web", &spec, &info()).unwrap();
        let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(doc["resources"][0], serde_norway::Value::from("../../base"));
        assert_eq!(doc["images"][0]["newTag"], serde_norway::Value::from("v1"));
        assert_eq!(
            doc["labels"][0]["pairs"]["backstage.io/kubernetes-id"],
            serde_norway::Value::from("web")
        );
        assert_eq!(doc["patches"].as_sequence().map(Vec::len), Some(2));
        assert!(
            text.starts_with("# web on yc-prod: Argo CD application web-yc-prod."),
            "{text}"
        );
        // Deterministic: the same spec gives the same bytes.
        assert_eq!(text, render_overlay("web", &spec, &info()).unwrap());
    }

    #[test]
    fn refuses_unknown_or_malformed_images() {
        let mut spec = OverlaySpec {
            cluster: "c".into(),
            images: vec![image("other-image", "v1")],
            ..OverlaySpec::default()
        };
        let err = render_overlay("web", &spec, &info()).unwrap_err();
        assert!(err.to_string().contains("no container of the base uses"), "{err}");
        for bad in ["v1\nx: y", "", "-x"] {
            spec.images = vec![image("app-image", bad)];
            assert!(render_overlay("web", &spec, &info()).is_err(), "{bad:?}");
        }
        spec.images = vec![ImageSpec {
            digest: Some("sha256:0123456789abcdef0123456789abcdef".into()),
            ..image("app-image", "v1")
        }];
        assert!(render_overlay("web", &spec, &info())
            .unwrap_err()
            .to_string()
            .contains("both"));
    }

    #[test]
    fn per_cluster_images_win() {
        let merged = merge_images(&[image("a", "1"), image("b", "1")], &[image("b", "2")]);
        assert_eq!(merged, vec![image("a", "1"), image("b", "2")]);
    }

    #[test]
    fn ownership() {
        let marker = render_marker("web", "group:default/a").unwrap();
        assert!(check_owner("web", "group:default/a", Some(&marker), true).is_ok());
        let err = check_owner("web", "group:default/b", Some(&marker), true).unwrap_err();
        assert!(err.to_string().contains("already registered"), "{err}");
        assert!(check_owner("web", "x", None, false).is_ok());
        assert!(check_owner("web", "x", None, true).is_err());
    }
}
