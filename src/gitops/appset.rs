//! Per-cluster files: the Argo CD ApplicationSet that turns every
//! `apps/*/overlays/<cluster>` directory into an Application, the cluster's
//! kustomization and its descriptor.

use serde_json::{json, Value};

use super::layout::{self, DESTINATION_NAMESPACE, IN_CLUSTER};
use super::GitopsError;

/// Where the ApplicationSet reads from and where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSetSource {
    /// The clone URL Argo CD uses for the GitOps repository.
    pub repo_url: String,
    /// The branch the generator and the Applications follow.
    pub revision: String,
    /// The namespace of Argo CD (where ApplicationSets and Applications live).
    pub argocd_namespace: String,
}

/// The ApplicationSet of `cluster` as a JSON value.
pub fn appset(cluster: &str, source: &AppSetSource) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {
            "name": format!("apps-{cluster}"),
            "namespace": source.argocd_namespace,
            "labels": {"app.kubernetes.io/managed-by": "scaffolder"},
        },
        "spec": {
            "goTemplate": true,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [{
                "git": {
                    "repoURL": source.repo_url,
                    "revision": source.revision,
                    "directories": [{"path": layout::overlays_glob(cluster)}],
                },
            }],
            "syncPolicy": {"preserveResourcesOnDeletion": true},
            "template": {
                "metadata": {
                    "name": "{{ index .path.segments 1 }}-{{ .path.basename }}",
                    "namespace": source.argocd_namespace,
                    "labels": {"backstage.io/kubernetes-id": "{{ index .path.segments 1 }}"},
                },
                "spec": {
                    "project": "default",
                    "source": {
                        "repoURL": source.repo_url,
                        "targetRevision": source.revision,
                        "path": "{{ .path.path }}",
                    },
                    "destination": {"server": IN_CLUSTER, "namespace": DESTINATION_NAMESPACE},
                    "syncPolicy": {
                        "automated": {"prune": true, "selfHeal": true},
                        "syncOptions": ["CreateNamespace=true"],
                    },
                },
            },
        },
    })
}

fn yaml(header: &str, value: &Value) -> Result<String, GitopsError> {
    serde_norway::to_string(value)
        .map(|body| format!("{header}{body}"))
        .map_err(|e| GitopsError::Invalid(format!("cannot write YAML: {e}")))
}

/// `clusters/<cluster>/argocd/apps-appset.yaml`.
pub fn render_appset(cluster: &str, source: &AppSetSource) -> Result<String, GitopsError> {
    layout::check_dns_label("cluster", cluster)?;
    yaml(
        &format!(
            "# One Argo CD Application <service>-{cluster} per apps/<service>/overlays/{cluster}.\n# Written by `scaffolder gitops init`; edits are overwritten.\n"
        ),
        &appset(cluster, source),
    )
}

/// `clusters/<cluster>/cluster.yaml`: what the layout knows of the cluster.
pub fn render_cluster_file(cluster: &str, source: &AppSetSource) -> Result<String, GitopsError> {
    layout::check_dns_label("cluster", cluster)?;
    yaml(
        "# Written by `scaffolder gitops init` when missing; yours to extend.\n",
        &json!({
            "name": cluster,
            "overlays": layout::overlays_glob(cluster),
            "applicationSet": format!("apps-{cluster}"),
            "argocdNamespace": source.argocd_namespace,
            "destination": {"server": IN_CLUSTER, "namespace": DESTINATION_NAMESPACE},
        }),
    )
}

/// `clusters/<cluster>/kustomization.yaml`: a new one listing `wanted`
/// (the ApplicationSet and the platform files), or `existing` with those it
/// lacks added to `resources` and the `unwanted` ones (platform files the
/// settings no longer ask for) taken out (`None` when nothing changes).
pub fn cluster_kustomization(
    existing: Option<&str>,
    wanted: &[&str],
    unwanted: &[&str],
) -> Result<Option<String>, GitopsError> {
    let header = "# Apply to the cluster's Argo CD: kubectl apply -k clusters/<cluster>\n";
    let Some(text) = existing else {
        return yaml(
            header,
            &json!({
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": wanted,
            }),
        )
        .map(Some);
    };
    let mut doc: Value = serde_norway::from_str(text)
        .map_err(|e| GitopsError::Invalid(format!("the cluster's kustomization.yaml is not valid YAML: {e}")))?;
    let Some(map) = doc.as_object_mut() else {
        return Err(GitopsError::Invalid(
            "the cluster's kustomization.yaml is not a mapping".into(),
        ));
    };
    let resources = map.entry("resources").or_insert_with(|| json!([]));
    let Some(list) = resources.as_array_mut() else {
        return Err(GitopsError::Invalid(
            "the cluster's kustomization.yaml has `resources` that is not a list".into(),
        ));
    };
    let before = list.len();
    list.retain(|r| {
        !r.as_str()
            .is_some_and(|r| unwanted.contains(&r.trim_start_matches("./")))
    });
    let mut added = list.len() != before;
    for resource in wanted {
        let listed = list
            .iter()
            .filter_map(Value::as_str)
            .any(|r| r.trim_start_matches("./") == *resource);
        if !listed {
            list.push(json!(resource));
            added = true;
        }
    }
    if !added {
        return Ok(None);
    }
    yaml(header, &doc).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitops::layout::APPSET_RELATIVE;

    fn source() -> AppSetSource {
        AppSetSource {
            repo_url: "https://github.com/acme/infra-gitops.git".into(),
            revision: "main".into(),
            argocd_namespace: "argocd".into(),
        }
    }

    #[test]
    fn the_appset_watches_the_clusters_overlays() {
        let text = render_appset("yc-prod", &source()).unwrap();
        let doc: Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(
            doc.pointer("/spec/generators/0/git/directories/0/path"),
            Some(&json!("apps/*/overlays/yc-prod"))
        );
        assert_eq!(doc.pointer("/spec/goTemplate"), Some(&json!(true)));
        assert!(render_appset("Bad", &source()).is_err());
    }

    #[test]
    fn the_cluster_kustomization_is_created_or_extended() {
        let wanted = [APPSET_RELATIVE];
        let fresh = cluster_kustomization(None, &wanted, &[]).unwrap().unwrap();
        assert_eq!(cluster_kustomization(Some(&fresh), &wanted, &[]).unwrap(), None);
        let extended = cluster_kustomization(Some("resources:\n  - ingress.yaml\n"), &wanted, &[])
            .unwrap()
            .unwrap();
        let doc: Value = serde_norway::from_str(&extended).unwrap();
        assert_eq!(doc["resources"], json!(["ingress.yaml", APPSET_RELATIVE]));
        assert!(cluster_kustomization(Some("resources: 3\n"), &wanted, &[]).is_err());
        // A platform file the settings dropped leaves the list; yours stay.
        let shrunk = cluster_kustomization(
            Some("resources:\n  - mine.yaml\n  - ./platform/sops-age.yaml\n  - argocd/apps-appset.yaml\n"),
            &wanted,
            &["platform/sops-age.yaml"],
        )
        .unwrap()
        .unwrap();
        let doc: Value = serde_norway::from_str(&shrunk).unwrap();
        assert_eq!(doc["resources"], json!(["mine.yaml", APPSET_RELATIVE]));
    }
}
