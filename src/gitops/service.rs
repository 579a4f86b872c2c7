//! Per-service platform resources of an overlay, from its cluster's
//! settings and what the base holds:
//!
//! - `route.yaml`: `https://<service>.<baseDomain>` to the web Service
//!   (`<service>-frontend`, else `<service>`, else the first): a Gateway API
//!   `HTTPRoute` on the cluster's `platform` Gateway, an Istio
//!   `VirtualService` on its Istio `Gateway`, or a Traefik `Ingress` whose
//!   certificate cert-manager issues from the annotation;
//! - `monitoring.yaml`: a Prometheus Operator `ServiceMonitor` of the
//!   backend Service (`<service>-backend`, else the web one) at `/metrics`,
//!   and a Grafana dashboard `ConfigMap` (label `grafana_dashboard: "1"`);
//! - `external-secret.yaml`: an External Secrets `ExternalSecret` reading
//!   Vault key `apps/<service>` through the cluster's `ClusterSecretStore`
//!   into the Secret `<service>-env`, which the backend Deployment's first
//!   container takes as environment (`envFrom`, optional);
//! - the backend's OpenTelemetry environment (`OTEL_EXPORTER_OTLP_ENDPOINT`
//!   from the cluster's collector, `OTEL_SERVICE_NAME`,
//!   `OTEL_RESOURCE_ATTRIBUTES`), where the cluster has `telemetry`;
//! - ExternalDNS annotations on the route (hostname, TTL and, on Traefik,
//!   the target), where the cluster has `externalDns`.
//!
//! Pure.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::base::{BaseInfo, ServicePort};
use super::cluster::Stage;
use super::cluster::{ClusterConfig, IngressFlavour};
use super::overlay::ContainerEnv;
use super::platform::{DNS_HOSTNAME, DNS_TARGET, DNS_TTL, GATEWAY, GATEWAY_NAMESPACE};
use super::GitopsError;

pub const ROUTE_FILE: &str = "route.yaml";
pub const MONITORING_FILE: &str = "monitoring.yaml";
pub const EXTERNAL_SECRET_FILE: &str = "external-secret.yaml";

/// What the per-service resources add to an overlay.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ServiceResources {
    /// Files of the overlay directory.
    pub files: BTreeMap<String, String>,
    /// `(deployment, secret)` for the overlay's `envFrom` patch.
    pub secret_env: Option<(String, String)>,
    /// Environment variables of one container, for the overlay's `env` patch.
    pub env: Option<super::overlay::ContainerEnv>,
}

fn pick<'a>(base: &'a BaseInfo, names: &[String]) -> Option<&'a ServicePort> {
    names
        .iter()
        .find_map(|n| base.services.iter().find(|s| &s.service == n))
        .or_else(|| base.services.first())
}

fn documents(docs: &[Value]) -> Result<String, GitopsError> {
    super::overlay::yaml_documents("", docs)
}

/// ExternalDNS's annotations of a route: the host, the TTL and, where the
/// route is an Ingress (no Gateway to carry it), the target.
fn dns_annotations(host: &str, cluster: &ClusterConfig) -> Map<String, Value> {
    let mut annotations = Map::new();
    if let Some(dns) = &cluster.external_dns {
        annotations.insert(DNS_HOSTNAME.into(), json!(host));
        annotations.insert(DNS_TTL.into(), json!(dns.ttl.to_string()));
        if let (Some(target), IngressFlavour::Traefik) = (&dns.target, cluster.ingress) {
            annotations.insert(DNS_TARGET.into(), json!(target));
        }
    }
    annotations
}

fn route(service: &str, host: &str, web: &ServicePort, cluster: &ClusterConfig) -> Value {
    let mut route = route_without_dns(service, host, web, cluster);
    let dns = dns_annotations(host, cluster);
    if !dns.is_empty() {
        if let Some(metadata) = route.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
            if let Some(map) = annotations.as_object_mut() {
                map.extend(dns);
            }
        }
    }
    route
}

fn route_without_dns(service: &str, host: &str, web: &ServicePort, cluster: &ClusterConfig) -> Value {
    match cluster.ingress {
        IngressFlavour::GatewayApi => json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": service},
            "spec": {
                "parentRefs": [{"name": GATEWAY, "namespace": GATEWAY_NAMESPACE, "sectionName": "https"}],
                "hostnames": [host],
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": web.service, "port": web.port}],
                }],
            },
        }),
        IngressFlavour::Istio => json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": service},
            "spec": {
                "hosts": [host],
                "gateways": [format!("{GATEWAY_NAMESPACE}/{GATEWAY}")],
                "http": [{
                    "match": [{"uri": {"prefix": "/"}}],
                    "route": [{"destination": {
                        "host": format!("{}.{}.svc.cluster.local", web.service, super::layout::DESTINATION_NAMESPACE),
                        "port": {"number": web.port},
                    }}],
                }],
            },
        }),
        IngressFlavour::Traefik => json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": service,
                "annotations": {
                    "cert-manager.io/cluster-issuer": cluster.tls_issuer,
                    "traefik.ingress.kubernetes.io/router.entrypoints": "websecure",
                    "traefik.ingress.kubernetes.io/router.tls": "true",
                },
            },
            "spec": {
                "ingressClassName": "traefik",
                "tls": [{"hosts": [host], "secretName": format!("{service}-tls")}],
                "rules": [{
                    "host": host,
                    "http": {"paths": [{
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": web.service, "port": {"number": web.port}}},
                    }]},
                }],
            },
        }),
    }
}

fn dashboard(service: &str) -> Value {
    let panel = |id: u32, title: &str, expr: String, y: u32| {
        json!({
            "id": id, "type": "timeseries", "title": title,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 24, "x": 0, "y": y},
            "targets": [{"expr": expr, "refId": "A"}],
        })
    };
    let selector = format!("namespace=\"default\", job=~\"{service}-.*\"");
    let model = json!({
        "title": format!("{service}"),
        "uid": format!("svc-{service}"),
        "tags": ["scaffolder", service],
        "schemaVersion": 39,
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]},
        "panels": [
            panel(1, "Requests per second", format!("sum by (code) (rate(http_requests_total{{{selector}}}[5m]))"), 0),
            panel(2, "Latency p95", format!("histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{{selector}}}[5m])))"), 8),
            panel(3, "Up", format!("up{{{selector}}}"), 16),
        ],
    });
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": format!("{service}-dashboard"),
            "labels": {"grafana_dashboard": "1"},
            "annotations": {"grafana_folder": "services"},
        },
        "data": {format!("{service}.json"): serde_json::to_string_pretty(&model).unwrap_or_default()},
    })
}

/// Whether the base already declares `doc`'s kind and name (the base's own
/// resource wins; kustomize refuses the same id twice).
fn declared(base: &BaseInfo, doc: &Value) -> bool {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = doc
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    base.declares(kind, name)
}

/// The per-service resources of `service` on `cluster`.
pub fn service_resources(
    service: &str,
    base: &BaseInfo,
    cluster: &ClusterConfig,
) -> Result<ServiceResources, GitopsError> {
    let mut out = ServiceResources::default();
    let host = format!("{service}.{}", cluster.base_domain);
    if let Some(web) = pick(base, &[format!("{service}-frontend"), service.to_owned()]) {
        let route = route(service, &host, web, cluster);
        if !declared(base, &route) {
            out.files.insert(ROUTE_FILE.to_owned(), documents(&[route])?);
        }
    }
    if let Some(backend) = pick(base, &[format!("{service}-backend"), format!("{service}-frontend")]) {
        let labels = if backend.labels.is_empty() {
            BTreeMap::from([("backstage.io/kubernetes-id".to_owned(), service.to_owned())])
        } else {
            backend.labels.clone()
        };
        let endpoint = match &backend.port_name {
            Some(name) => json!({"port": name, "path": "/metrics", "interval": "30s"}),
            None => json!({"targetPort": backend.port, "path": "/metrics", "interval": "30s"}),
        };
        let monitor = json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": backend.service},
            "spec": {
                "selector": {"matchLabels": labels},
                "endpoints": [endpoint],
                "jobLabel": "app.kubernetes.io/name",
            },
        });
        let monitoring: Vec<Value> = [monitor, dashboard(service)]
            .into_iter()
            .filter(|doc| !declared(base, doc))
            .collect();
        if !monitoring.is_empty() {
            out.files.insert(MONITORING_FILE.to_owned(), documents(&monitoring)?);
        }
    }
    let backend = base
        .deployments
        .iter()
        .find(|(name, _)| name == &format!("{service}-backend"))
        .or_else(|| base.deployments.first());
    if let (Some(telemetry), Some((deployment, containers))) = (&cluster.telemetry, backend) {
        if let Some(container) = containers.first() {
            let stage = match cluster.stage {
                Stage::Dev => "dev",
                Stage::Staging => "staging",
                Stage::Prod => "prod",
            };
            out.env = Some(ContainerEnv {
                deployment: deployment.clone(),
                container: container.clone(),
                vars: vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), telemetry.otlp_endpoint.clone()),
                    ("OTEL_SERVICE_NAME".into(), deployment.clone()),
                    (
                        "OTEL_RESOURCE_ATTRIBUTES".into(),
                        format!(
                            "deployment.environment.name={stage},k8s.cluster.name={},service.namespace={service}",
                            cluster.name
                        ),
                    ),
                ],
            });
        }
    }
    let backend_deployment = backend.map(|(name, _)| name);
    if let Some(deployment) = backend_deployment.filter(|_| !base.declares("ExternalSecret", service)) {
        let secret = format!("{service}-env");
        let external = json!({
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {"name": service},
            "spec": {
                "refreshInterval": "1h",
                "secretStoreRef": {"kind": "ClusterSecretStore", "name": cluster.secret_store.name},
                "target": {"name": secret, "creationPolicy": "Owner"},
                "dataFrom": [{"extract": {"key": format!("apps/{service}")}}],
            },
        });
        out.files
            .insert(EXTERNAL_SECRET_FILE.to_owned(), documents(&[external])?);
        out.secret_env = Some((deployment.clone(), secret));
    }
    Ok(out)
}
