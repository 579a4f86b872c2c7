//! A service's kustomize base, as read from the workspace: its files are
//! checked (every YAML parses, no `images:`, every referenced path stays
//! inside) and its manifests tell which image names overlays may set.

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;

use super::GitopsError;
use crate::domain::paths::normalize_relative;

/// The files of a base: `/`-separated paths relative to the base directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseFiles {
    pub files: BTreeMap<String, Vec<u8>>,
}

/// What overlays need to know about a base.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseInfo {
    /// Image names (without tag or digest) used by the manifests' containers.
    pub images: BTreeSet<String>,
    /// Deployments and their container names (for resources patches).
    pub deployments: Vec<(String, Vec<String>)>,
    /// `spec.selector.matchLabels` of each Deployment that has them (for
    /// the PodDisruptionBudgets of the overlays).
    pub selectors: BTreeMap<String, BTreeMap<String, String>>,
    /// Services with their first port (number and name, if any), for the
    /// routes and the ServiceMonitor of the overlays.
    pub services: Vec<ServicePort>,
    /// `(kind, metadata.name)` of every resource the base declares: an
    /// overlay never adds one of these again (kustomize refuses a resource
    /// id twice), so a base that brings its own PodDisruptionBudget,
    /// ServiceMonitor or ExternalSecret keeps it.
    pub declared: BTreeSet<(String, String)>,
}

impl BaseInfo {
    /// Whether the base already declares `kind`/`name`.
    pub fn declares(&self, kind: &str, name: &str) -> bool {
        self.declared.contains(&(kind.to_owned(), name.to_owned()))
    }
}

/// A Service of the base and its first port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub service: String,
    pub port: u64,
    pub port_name: Option<String>,
    /// `metadata.labels` as the base writes them.
    pub labels: BTreeMap<String, String>,
}

const KUSTOMIZATION_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

fn is_yaml(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml") || file_name(path) == "Kustomization"
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// Every document of a YAML file.
pub fn parse_documents(path: &str, bytes: &[u8]) -> Result<Vec<Value>, GitopsError> {
    let text = std::str::from_utf8(bytes).map_err(|_| GitopsError::Invalid(format!("{path} is not UTF-8 text")))?;
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = <Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| GitopsError::Invalid(format!("{path} is not valid YAML: {e}")))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// The name part of an image reference: without `@digest` and `:tag`.
pub fn image_name(reference: &str) -> &str {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    match (without_digest.rfind(':'), without_digest.rfind('/')) {
        (Some(colon), Some(slash)) if colon > slash => &without_digest[..colon],
        (Some(colon), None) => &without_digest[..colon],
        _ => without_digest,
    }
}

/// Checks a base and describes it.
pub fn inspect(base: &BaseFiles) -> Result<BaseInfo, GitopsError> {
    if base.files.is_empty() {
        return Err(GitopsError::Invalid("The base directory is empty".into()));
    }
    if !KUSTOMIZATION_NAMES.iter().any(|n| base.files.contains_key(*n)) {
        return Err(GitopsError::Invalid(
            "The base has no kustomization.yaml at its root".into(),
        ));
    }
    let mut info = BaseInfo::default();
    for (path, bytes) in &base.files {
        if !is_yaml(path) {
            continue;
        }
        let docs = parse_documents(path, bytes)?;
        if KUSTOMIZATION_NAMES.contains(&file_name(path)) {
            for doc in &docs {
                check_kustomization(base, path, doc)?;
            }
            continue;
        }
        for doc in &docs {
            collect_images(doc, &mut info.images);
            let kind = doc.get("kind").and_then(Value::as_str);
            let name = doc.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str);
            if let (Some(kind), Some(name)) = (kind, name) {
                info.declared.insert((kind.to_owned(), name.to_owned()));
            }
            if doc.get("kind").and_then(Value::as_str) == Some("Service") {
                let name = doc.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str);
                let port = doc
                    .get("spec")
                    .and_then(|s| s.get("ports"))
                    .and_then(Value::as_sequence)
                    .and_then(|ports| ports.first());
                if let (Some(name), Some(port)) = (name, port) {
                    if let Some(number) = port.get("port").and_then(Value::as_u64) {
                        info.services.push(ServicePort {
                            service: name.to_owned(),
                            port: number,
                            port_name: port.get("name").and_then(Value::as_str).map(str::to_owned),
                            labels: doc
                                .get("metadata")
                                .and_then(|m| m.get("labels"))
                                .and_then(Value::as_mapping)
                                .map(|m| {
                                    m.iter()
                                        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                                        .collect()
                                })
                                .unwrap_or_default(),
                        });
                    }
                }
            }
            if doc.get("kind").and_then(Value::as_str) == Some("Deployment") {
                if let Some(name) = doc.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str) {
                    let containers = doc
                        .get("spec")
                        .and_then(|s| s.get("template"))
                        .and_then(|t| t.get("spec"))
                        .and_then(|s| s.get("containers"))
                        .and_then(Value::as_sequence)
                        .map(|list| {
                            list.iter()
                                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    let labels: BTreeMap<String, String> = doc
                        .get("spec")
                        .and_then(|s| s.get("selector"))
                        .and_then(|s| s.get("matchLabels"))
                        .and_then(Value::as_mapping)
                        .map(|m| {
                            m.iter()
                                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                                .collect()
                        })
                        .unwrap_or_default();
                    if !labels.is_empty() {
                        info.selectors.insert(name.to_owned(), labels);
                    }
                    info.deployments.push((name.to_owned(), containers));
                }
            }
        }
    }
    Ok(info)
}

/// A base kustomization sets no images (the overlays do) and refers only to
/// files inside the base.
fn check_kustomization(base: &BaseFiles, path: &str, doc: &Value) -> Result<(), GitopsError> {
    if doc.get("images").is_some() {
        return Err(GitopsError::Invalid(format!(
            "The base's {path} sets `images:`; a base keeps placeholder image names and the overlays set the images"
        )));
    }
    let dir = parent(path);
    let mut refs: Vec<&str> = Vec::new();
    for key in ["resources", "components", "crds", "patchesStrategicMerge"] {
        if let Some(list) = doc.get(key).and_then(Value::as_sequence) {
            refs.extend(list.iter().filter_map(Value::as_str));
        }
    }
    for key in ["patches", "patchesJson6902"] {
        if let Some(list) = doc.get(key).and_then(Value::as_sequence) {
            refs.extend(list.iter().filter_map(|p| p.get("path")).filter_map(Value::as_str));
        }
    }
    for key in ["configMapGenerator", "secretGenerator"] {
        for generator in doc.get(key).and_then(Value::as_sequence).into_iter().flatten() {
            for field in ["files", "envs"] {
                for entry in generator.get(field).and_then(Value::as_sequence).into_iter().flatten() {
                    if let Some(entry) = entry.as_str() {
                        // `key=path` names the key of a file.
                        refs.push(entry.split_once('=').map_or(entry, |(_, p)| p));
                    }
                }
            }
            if let Some(env) = generator.get("env").and_then(Value::as_str) {
                refs.push(env);
            }
        }
    }
    for reference in refs {
        if reference.contains("://") || reference.starts_with("git@") || reference.starts_with("github.com/") {
            return Err(GitopsError::NotAllowed(format!(
                "The base's {path} refers to the remote {reference:?}; a vendored base must be self-contained"
            )));
        }
        let joined = if dir.is_empty() {
            reference.to_owned()
        } else {
            format!("{dir}/{reference}")
        };
        let normalized = normalize_relative(&joined).map_err(|_| {
            GitopsError::NotAllowed(format!(
                "The base's {path} refers to {reference:?}, which is outside the base"
            ))
        })?;
        let normalized = normalized.to_string_lossy().replace('\\', "/");
        let exists =
            base.files.contains_key(&normalized) || base.files.keys().any(|f| f.starts_with(&format!("{normalized}/")));
        if !exists {
            return Err(GitopsError::Invalid(format!(
                "The base's {path} refers to {reference:?}, which is not in the base"
            )));
        }
    }
    Ok(())
}

/// Image names of every `containers`/`initContainers`/`ephemeralContainers`
/// entry anywhere in a document.
fn collect_images(value: &Value, images: &mut BTreeSet<String>) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                let is_containers = matches!(
                    key.as_str(),
                    Some("containers" | "initContainers" | "ephemeralContainers")
                );
                if is_containers {
                    for container in child.as_sequence().into_iter().flatten() {
                        if let Some(image) = container.get("image").and_then(Value::as_str) {
                            images.insert(image_name(image).to_owned());
                        }
                    }
                }
                collect_images(child, images);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|v| collect_images(v, images)),
        Value::Tagged(tagged) => collect_images(&tagged.value, images),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(files: &[(&str, &str)]) -> BaseFiles {
        BaseFiles {
            files: files
                .iter()
                .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
                .collect(),
        }
    }

    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      initContainers:\n        - name: init\n          image: busybox:1.36\n      containers:\n        - name: app\n          image: app-image\n        - name: side\n          image: registry:5000/team/side@sha256:abc\n";

    #[test]
    fn image_names_drop_tags_and_digests() {
        assert_eq!(image_name("app-image"), "app-image");
        assert_eq!(image_name("nginx:1.25"), "nginx");
        assert_eq!(image_name("registry:5000/a/b"), "registry:5000/a/b");
        assert_eq!(image_name("registry:5000/a/b:v1@sha256:x"), "registry:5000/a/b");
    }

    #[test]
    fn inspects_images_and_deployments() {
        let info = inspect(&base(&[
            ("kustomization.yaml", "resources:\n  - deploy.yaml\n"),
            ("deploy.yaml", DEPLOY),
        ]))
        .unwrap();
        assert_eq!(
            info.images.iter().map(String::as_str).collect::<Vec<_>>(),
            ["app-image", "busybox", "registry:5000/team/side"]
        );
        assert_eq!(
            info.deployments,
            vec![("web".into(), vec!["app".into(), "side".into()])]
        );
    }

    #[test]
    fn refuses_bad_bases() {
        for (files, needle) in [
            (vec![("deploy.yaml", DEPLOY)], "no kustomization.yaml"),
            (
                vec![
                    ("kustomization.yaml", "resources: [deploy.yaml]\nimages:\n  - name: a\n"),
                    ("deploy.yaml", DEPLOY),
                ],
                "sets `images:`",
            ),
            (
                vec![("kustomization.yaml", "resources: [../../secrets]\n")],
                "outside the base",
            ),
            (
                vec![("kustomization.yaml", "resources: [missing.yaml]\n")],
                "not in the base",
            ),
            (
                vec![("kustomization.yaml", "resources: [https://example.com/x.yaml]\n")],
                "remote",
            ),
            (
                vec![("kustomization.yaml", "resources: [a.yaml]\n"), ("a.yaml", "a: [\n")],
                "not valid YAML",
            ),
        ] {
            let err = inspect(&base(&files)).unwrap_err();
            assert!(err.to_string().contains(needle), "{err} (wanted {needle})");
        }
    }
}
