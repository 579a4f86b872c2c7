//! An overlay shaped by its cluster's settings: the stage's replicas and
//! resources where the registration sets none, the registry pull secret,
//! and a PodDisruptionBudget and HorizontalPodAutoscaler per Deployment
//! where the stage asks for them. Pure.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::base::BaseInfo;
use super::cluster::ClusterConfig;
use super::overlay::{self, OverlaySpec};
use super::GitopsError;

pub const KUSTOMIZATION: &str = "kustomization.yaml";
pub const PDB_FILE: &str = "pdb.yaml";
pub const HPA_FILE: &str = "hpa.yaml";

fn documents(docs: &[Value]) -> Result<String, GitopsError> {
    super::overlay::yaml_documents("", docs)
}

/// The files of `apps/<service>/overlays/<cluster>/` (names relative to it).
pub fn overlay_files(
    service: &str,
    spec: &OverlaySpec,
    base: &BaseInfo,
    cluster: &ClusterConfig,
) -> Result<BTreeMap<String, Vec<u8>>, GitopsError> {
    let defaults = &cluster.workloads;
    let mut spec = spec.clone();
    spec.replicas = spec.replicas.or(Some(defaults.replicas));
    spec.resources = spec.resources.or(Some(defaults.resources.clone()));
    spec.pull_secret = cluster.registry_pull_secret.clone();
    let mut files = BTreeMap::new();

    if defaults.pod_disruption_budget {
        let pdbs: Vec<Value> = base
            .deployments
            .iter()
            .filter(|(name, _)| !base.declares("PodDisruptionBudget", name))
            .filter_map(|(name, _)| base.selectors.get(name).map(|labels| (name, labels)))
            .map(|(name, labels)| {
                json!({
                    "apiVersion": "policy/v1",
                    "kind": "PodDisruptionBudget",
                    "metadata": {"name": name},
                    "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
                })
            })
            .collect();
        if !pdbs.is_empty() {
            files.insert(PDB_FILE.to_owned(), documents(&pdbs)?.into_bytes());
            spec.extra_resources.push(PDB_FILE.to_owned());
        }
    }
    if let Some(scaling) = &defaults.autoscaling {
        // The HPA owns the replica count from here on; the Deployment starts
        // at its minimum.
        spec.replicas = Some(spec.replicas.unwrap_or(scaling.min_replicas).max(scaling.min_replicas));
        let hpas: Vec<Value> = base
            .deployments
            .iter()
            .filter(|(name, _)| !base.declares("HorizontalPodAutoscaler", name))
            .map(|(name, _)| {
                json!({
                    "apiVersion": "autoscaling/v2",
                    "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": name},
                    "spec": {
                        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                        "minReplicas": scaling.min_replicas,
                        "maxReplicas": scaling.max_replicas,
                        "metrics": [{
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": scaling.cpu_utilization},
                            },
                        }],
                    },
                })
            })
            .collect();
        if !hpas.is_empty() {
            files.insert(HPA_FILE.to_owned(), documents(&hpas)?.into_bytes());
            spec.extra_resources.push(HPA_FILE.to_owned());
        }
    }
    let extras = super::service::service_resources(service, base, cluster)?;
    for (name, text) in extras.files {
        spec.extra_resources.push(name.clone());
        files.insert(name, text.into_bytes());
    }
    spec.secret_env = extras.secret_env;
    spec.env = extras.env;
    let text = overlay::render_overlay(service, &spec, base)?;
    files.insert(KUSTOMIZATION.to_owned(), text.into_bytes());
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitops::cluster::ClusterInput;

    fn base() -> BaseInfo {
        BaseInfo {
            images: ["app-image".to_owned()].into(),
            deployments: vec![("web".into(), vec!["app".into()])],
            selectors: [("web".to_owned(), [("app".to_owned(), "web".to_owned())].into())].into(),
            services: vec![crate::gitops::base::ServicePort {
                service: "web".into(),
                port: 80,
                port_name: Some("http".into()),
                labels: [("app".to_owned(), "web".to_owned())].into(),
            }],
            declared: Default::default(),
        }
    }

    fn files(cluster: &str, spec: OverlaySpec) -> BTreeMap<String, String> {
        let config = ClusterConfig::build(cluster, &ClusterInput::default(), "argocd").unwrap();
        overlay_files("web", &spec, &base(), &config)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
            .collect()
    }

    /// A base that brings its own PodDisruptionBudget, ServiceMonitor and
    /// ExternalSecret (the scaffolder's own, deploy/kustomize) keeps them:
    /// the overlay adds none of the same kind and name, which kustomize
    /// would refuse, and no `envFrom` for a secret it does not make.
    #[test]
    fn what_the_base_declares_is_not_added_again() {
        let mut base = base();
        base.declared = [
            ("PodDisruptionBudget", "web"),
            ("ServiceMonitor", "web"),
            ("ExternalSecret", "web"),
        ]
        .map(|(k, n)| (k.to_owned(), n.to_owned()))
        .into();
        let config = ClusterConfig::build("yc-prod", &ClusterInput::default(), "argocd").unwrap();
        let spec = OverlaySpec {
            cluster: "yc-prod".into(),
            ..OverlaySpec::default()
        };
        let files: BTreeMap<String, String> = overlay_files("web", &spec, &base, &config)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            ["hpa.yaml", "kustomization.yaml", "monitoring.yaml", "route.yaml"]
        );
        assert!(!files["monitoring.yaml"].contains("kind: ServiceMonitor"));
        assert!(files["monitoring.yaml"].contains("grafana_dashboard"));
        assert!(!files["kustomization.yaml"].contains("pdb.yaml"));
        assert!(!files["kustomization.yaml"].contains("envFrom"));
    }

    #[test]
    fn prod_and_dev_differ() {
        let spec = |cluster: &str| OverlaySpec {
            cluster: cluster.into(),
            ..OverlaySpec::default()
        };
        let prod = files("yc-prod", spec("yc-prod"));
        assert_eq!(
            prod.keys().collect::<Vec<_>>(),
            [
                "external-secret.yaml",
                "hpa.yaml",
                "kustomization.yaml",
                "monitoring.yaml",
                "pdb.yaml",
                "route.yaml"
            ]
        );
        assert!(prod["route.yaml"].contains("kind: HTTPRoute"));
        assert!(prod["route.yaml"].contains("web.yc-prod.apps.soft-yt.internal"));
        assert!(prod["monitoring.yaml"].contains("kind: ServiceMonitor"));
        assert!(prod["monitoring.yaml"].contains("grafana_dashboard"));
        assert!(prod["external-secret.yaml"].contains("key: apps/web"));
        assert!(prod["kustomization.yaml"].contains("envFrom") && prod["kustomization.yaml"].contains("web-env"));
        assert!(
            prod["kustomization.yaml"].contains("value: 3\n"),
            "{}",
            prod["kustomization.yaml"]
        );
        assert!(prod["kustomization.yaml"].contains("- pdb.yaml") && prod["kustomization.yaml"].contains("- hpa.yaml"));
        assert!(prod["kustomization.yaml"].contains("imagePullSecrets"));
        assert!(prod["pdb.yaml"].contains("kind: PodDisruptionBudget") && prod["pdb.yaml"].contains("app: web"));
        assert!(prod["hpa.yaml"].contains("maxReplicas: 10"));
        assert!(prod["kustomization.yaml"].contains("memory: 512Mi"));
        // Traces go to the cluster's collector; ExternalDNS publishes the host.
        assert!(
            prod["kustomization.yaml"].contains("OTEL_EXPORTER_OTLP_ENDPOINT")
                && prod["kustomization.yaml"].contains(crate::gitops::cluster::DEFAULT_OTLP_ENDPOINT)
                && prod["kustomization.yaml"].contains("k8s.cluster.name=yc-prod"),
            "{}",
            prod["kustomization.yaml"]
        );
        assert!(
            prod["route.yaml"].contains("external-dns.alpha.kubernetes.io/hostname: web.yc-prod.apps.soft-yt.internal")
                && prod["route.yaml"].contains("external-dns.alpha.kubernetes.io/ttl: '300'"),
            "{}",
            prod["route.yaml"]
        );

        let dev = files("onprem-dev", spec("onprem-dev"));
        assert_eq!(
            dev.keys().collect::<Vec<_>>(),
            [
                "external-secret.yaml",
                "kustomization.yaml",
                "monitoring.yaml",
                "route.yaml"
            ]
        );
        // onprem is a Traefik cluster: an Ingress with a cert-manager certificate.
        assert!(
            dev["route.yaml"].contains("kind: Ingress")
                && dev["route.yaml"].contains("cert-manager.io/cluster-issuer: internal-ca")
        );
        let istio = files("sber-prod", spec("sber-prod"));
        assert!(
            istio["route.yaml"].contains("kind: VirtualService") && istio["route.yaml"].contains("default/platform")
        );
        assert!(dev["kustomization.yaml"].contains("value: 1\n"));
        assert!(dev["kustomization.yaml"].contains("memory: 128Mi"));

        // The registration's own values win over the stage's.
        let mine = files(
            "onprem-dev",
            OverlaySpec {
                replicas: Some(2),
                ..spec("onprem-dev")
            },
        );
        assert!(mine["kustomization.yaml"].contains("value: 2\n"));
    }
}
