//! Typed cluster settings: `clusters/<cluster>/cluster.yaml`. `gitops:init`
//! writes them; overlays are generated from them (replicas, resources,
//! PodDisruptionBudget, HorizontalPodAutoscaler per stage). Their JSON
//! Schema is `schemas/cluster.schema.json` in this repository, generated
//! from [`ClusterConfig`] (a test keeps it current).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::layout::{self, DESTINATION_NAMESPACE, IN_CLUSTER};
use super::overlay::ResourceSpec;
use super::plan::RepoView;
use super::GitopsError;

pub const API_VERSION: &str = "platform.soft-yt.dev/v1alpha1";
pub const KIND: &str = "ClusterSettings";
/// The domain clusters get when init is given none (one subdomain each).
pub const DEFAULT_DOMAIN: &str = "apps.soft-yt.internal";
/// The cluster's OpenTelemetry collector (OTLP/HTTP) unless its settings say otherwise.
pub const DEFAULT_OTLP_ENDPOINT: &str = "http://otel-collector.observability.svc.cluster.local:4318";
pub const DEFAULT_DNS_TTL: u32 = 300;

impl RegistryCredentials {
    /// `ghcr.io`, credentials at Vault key `platform/registry/ghcr`.
    pub fn default_ghcr() -> RegistryCredentials {
        RegistryCredentials {
            server: "ghcr.io".into(),
            vault_key: "platform/registry/ghcr".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Yc,
    Sber,
    Vk,
    Onprem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Dev,
    Staging,
    Prod,
}

/// How services are exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IngressFlavour {
    /// `networking.k8s.io/v1` Ingress with the `traefik` class.
    Traefik,
    /// Istio `Gateway` + `VirtualService`.
    Istio,
    /// Gateway API `HTTPRoute` on a shared `Gateway`.
    GatewayApi,
}

/// The External Secrets `ClusterSecretStore` backed by Vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretStore {
    /// The ClusterSecretStore's name, e.g. `vault`
    pub name: String,
    /// Vault's address, e.g. `https://vault.soft-yt.internal:8200`
    pub vault_server: String,
    /// The KV v2 mount, e.g. `secret`
    pub vault_path: String,
    /// The Vault Kubernetes auth role the store logs in with
    pub vault_role: String,
}

/// Horizontal autoscaling of every Deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Autoscaling {
    #[schemars(range(min = 1))]
    pub min_replicas: u32,
    #[schemars(range(min = 1))]
    pub max_replicas: u32,
    /// Target average CPU utilisation, percent of the requests
    #[schemars(range(min = 1, max = 100))]
    pub cpu_utilization: u32,
}

/// What every service's Deployments get on this cluster unless its
/// registration says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadDefaults {
    #[schemars(range(min = 0))]
    pub replicas: u32,
    pub resources: ResourceSpec,
    /// A PodDisruptionBudget (`maxUnavailable: 1`) per Deployment
    pub pod_disruption_budget: bool,
    /// A HorizontalPodAutoscaler per Deployment, when set
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
}

impl WorkloadDefaults {
    /// The platform's defaults of a stage.
    pub fn for_stage(stage: Stage) -> WorkloadDefaults {
        let resources = |cpu: &str, memory: &str, limit: &str| ResourceSpec {
            requests: Some(
                [
                    ("cpu".to_owned(), cpu.to_owned()),
                    ("memory".to_owned(), memory.to_owned()),
                ]
                .into(),
            ),
            limits: Some([("memory".to_owned(), limit.to_owned())].into()),
        };
        match stage {
            Stage::Dev => WorkloadDefaults {
                replicas: 1,
                resources: resources("50m", "64Mi", "128Mi"),
                pod_disruption_budget: false,
                autoscaling: None,
            },
            Stage::Staging => WorkloadDefaults {
                replicas: 2,
                resources: resources("100m", "128Mi", "256Mi"),
                pod_disruption_budget: true,
                autoscaling: None,
            },
            Stage::Prod => WorkloadDefaults {
                replicas: 3,
                resources: resources("250m", "256Mi", "512Mi"),
                pod_disruption_budget: true,
                autoscaling: Some(Autoscaling {
                    min_replicas: 3,
                    max_replicas: 10,
                    cpu_utilization: 70,
                }),
            },
        }
    }
}

/// Where the cluster's services send their telemetry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Telemetry {
    /// The OTLP/HTTP endpoint of the cluster's OpenTelemetry collector (which passes traces on to Tempo), e.g. `http://otel-collector.observability.svc.cluster.local:4318`; every backend gets it as `OTEL_EXPORTER_OTLP_ENDPOINT`
    pub otlp_endpoint: String,
}

/// What ExternalDNS needs to publish the services' hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExternalDns {
    /// The DNS zone ExternalDNS manages (`--domain-filter`): `baseDomain` or a parent of it
    pub zone: String,
    /// ExternalDNS's `--txt-owner-id`: the TXT records that mark this cluster's records as its own
    pub txt_owner_id: String,
    /// Time to live of the records, in seconds
    #[schemars(range(min = 1))]
    pub ttl: u32,
    /// What the records point at when the route cannot say (on-prem load balancers without a status address): a host name or an IP address
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Where the registry pull secret's credentials are kept in Vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistryCredentials {
    /// The registry, e.g. `ghcr.io`
    pub server: String,
    /// The Vault key (in `secretStore.vaultPath`) holding the properties `username` and `password` (a token that may read the packages)
    pub vault_key: String,
}

/// How images are promoted into this cluster's stage (docs/gitops.md,
/// "Promotion").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromotionSettings {
    /// The stage's place in the promotion order (lower first); default by
    /// stage: dev 0, staging 10, prod 20
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<u32>,
    /// Promotions into this stage wait for an approval (`approval:wait`)
    #[serde(default)]
    pub requires_approval: bool,
    /// Before promoting into this stage, wait until the previous stage's Argo CD applications are Synced and Healthy
    #[serde(default)]
    pub wait_for_healthy: bool,
}

impl Stage {
    /// The default promotion order: dev, then staging, then prod.
    pub fn default_order(self) -> u32 {
        match self {
            Stage::Dev => 0,
            Stage::Staging => 10,
            Stage::Prod => 20,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dev => "dev",
            Stage::Staging => "staging",
            Stage::Prod => "prod",
        }
    }
}

/// Where Argo CD finds and deploys the cluster's services (written by init).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArgoCd {
    pub application_set: String,
    pub namespace: String,
    pub overlays: String,
    pub destination_server: String,
    pub destination_namespace: String,
}

/// `clusters/<cluster>/cluster.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(
    title = "ClusterSettings",
    description = "Settings of one cluster of infra-gitops (clusters/<cluster>/cluster.yaml)"
)]
pub struct ClusterConfig {
    /// `platform.soft-yt.dev/v1alpha1`
    #[schemars(regex(pattern = r"^platform\.soft-yt\.dev/v1alpha1$"))]
    pub api_version: String,
    /// `ClusterSettings`
    #[schemars(regex(pattern = r"^ClusterSettings$"))]
    pub kind: String,
    /// The cluster's name (a DNS label; the directory's name)
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub name: String,
    pub provider: Provider,
    pub stage: Stage,
    /// Services are reachable at `<service>.<baseDomain>`
    #[schemars(regex(pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$"))]
    pub base_domain: String,
    pub ingress: IngressFlavour,
    /// The cert-manager ClusterIssuer that signs the services' certificates
    pub tls_issuer: String,
    /// The cluster's age public key (`age1…`): SOPS encrypts its secrets for it
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^age1[02-9ac-hj-np-z]{58}$"))]
    pub age_recipient: Option<String>,
    /// A second age key every secret of the cluster is also encrypted for (kept offline, for recovery)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^age1[02-9ac-hj-np-z]{58}$"))]
    pub break_glass_recipient: Option<String>,
    pub secret_store: SecretStore,
    /// The `kubernetes.io/dockerconfigjson` Secret the pods pull ghcr.io images with (private repositories); none: public images
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_pull_secret: Option<String>,
    /// Where the pull secret's credentials come from (an ExternalSecret per cluster; nothing in Git). Default: `ghcr.io`, Vault key `platform/registry/ghcr`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_credentials: Option<RegistryCredentials>,
    /// The OpenTelemetry collector of the cluster; none: the services export no traces
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<Telemetry>,
    /// ExternalDNS settings; none: the routes get no DNS annotations
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_dns: Option<ExternalDns>,
    pub workloads: WorkloadDefaults,
    pub argocd: ArgoCd,
    /// Promotion into this cluster's stage; absent: the stage's default order, no approval, no health wait
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionSettings>,
}

impl ClusterConfig {
    /// This cluster's place in the promotion order.
    pub fn promotion_order(&self) -> u32 {
        self.promotion
            .as_ref()
            .and_then(|p| p.order)
            .unwrap_or_else(|| self.stage.default_order())
    }
}

/// What `gitops:init` may say of a cluster; the rest is inferred from its
/// name (`<provider>-<stage>`) and the stage's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterInput {
    /// The cluster (it must be in `clusters`)
    pub name: String,
    pub provider: Option<Provider>,
    pub stage: Option<Stage>,
    /// Default: `<cluster>.apps.soft-yt.internal`
    pub base_domain: Option<String>,
    pub ingress: Option<IngressFlavour>,
    /// Default: `letsencrypt` on prod, `internal-ca` elsewhere
    pub tls_issuer: Option<String>,
    pub age_recipient: Option<String>,
    pub break_glass_recipient: Option<String>,
    pub secret_store: Option<SecretStore>,
    pub registry_pull_secret: Option<String>,
    /// Default: `ghcr.io`, Vault key `platform/registry/ghcr`
    pub registry_credentials: Option<RegistryCredentials>,
    /// Default: the collector at `http://otel-collector.observability.svc.cluster.local:4318`
    pub telemetry: Option<Telemetry>,
    /// Default: zone `baseDomain`, owner id the cluster's name, TTL 300 s
    pub external_dns: Option<ExternalDns>,
    pub workloads: Option<WorkloadDefaults>,
}

fn infer(cluster: &str) -> (Provider, Stage) {
    let (provider, stage) = cluster.split_once('-').unwrap_or((cluster, ""));
    let provider = match provider {
        "yc" => Provider::Yc,
        "sber" => Provider::Sber,
        "vk" => Provider::Vk,
        _ => Provider::Onprem,
    };
    let stage = match stage {
        "prod" => Stage::Prod,
        "staging" | "stage" => Stage::Staging,
        _ => Stage::Dev,
    };
    (provider, stage)
}

impl ClusterConfig {
    /// The settings of `cluster` from `input` (may be empty), the rest
    /// inferred; checked.
    pub fn build(cluster: &str, input: &ClusterInput, argocd_namespace: &str) -> Result<ClusterConfig, GitopsError> {
        layout::check_dns_label("cluster", cluster)?;
        let (provider, stage) = infer(cluster);
        let provider = input.provider.unwrap_or(provider);
        let stage = input.stage.unwrap_or(stage);
        let ingress = input.ingress.unwrap_or(match provider {
            Provider::Onprem => IngressFlavour::Traefik,
            Provider::Sber => IngressFlavour::Istio,
            Provider::Yc | Provider::Vk => IngressFlavour::GatewayApi,
        });
        let config = ClusterConfig {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            name: cluster.to_owned(),
            provider,
            stage,
            base_domain: input
                .base_domain
                .clone()
                .unwrap_or_else(|| format!("{cluster}.{DEFAULT_DOMAIN}")),
            ingress,
            tls_issuer: input.tls_issuer.clone().unwrap_or_else(|| {
                if stage == Stage::Prod {
                    "letsencrypt".into()
                } else {
                    "internal-ca".into()
                }
            }),
            age_recipient: input.age_recipient.clone(),
            break_glass_recipient: input.break_glass_recipient.clone(),
            secret_store: input.secret_store.clone().unwrap_or_else(|| SecretStore {
                name: "vault".into(),
                vault_server: format!("https://vault.{cluster}.{DEFAULT_DOMAIN}:8200"),
                vault_path: "secret".into(),
                vault_role: "external-secrets".into(),
            }),
            registry_pull_secret: input.registry_pull_secret.clone().or_else(|| Some("ghcr-pull".into())),
            registry_credentials: Some(
                input
                    .registry_credentials
                    .clone()
                    .unwrap_or_else(RegistryCredentials::default_ghcr),
            ),
            telemetry: Some(input.telemetry.clone().unwrap_or_else(|| Telemetry {
                otlp_endpoint: DEFAULT_OTLP_ENDPOINT.into(),
            })),
            external_dns: input.external_dns.clone().or_else(|| {
                Some(ExternalDns {
                    zone: input
                        .base_domain
                        .clone()
                        .unwrap_or_else(|| format!("{cluster}.{DEFAULT_DOMAIN}")),
                    txt_owner_id: cluster.to_owned(),
                    ttl: DEFAULT_DNS_TTL,
                    target: None,
                })
            }),
            workloads: input
                .workloads
                .clone()
                .unwrap_or_else(|| WorkloadDefaults::for_stage(stage)),
            argocd: ArgoCd {
                application_set: format!("apps-{cluster}"),
                namespace: argocd_namespace.to_owned(),
                overlays: layout::overlays_glob(cluster),
                destination_server: IN_CLUSTER.into(),
                destination_namespace: DESTINATION_NAMESPACE.into(),
            },
            promotion: None,
        };
        config.check()?;
        Ok(config)
    }

    /// Parses `clusters/<cluster>/cluster.yaml` and checks it.
    pub fn parse(cluster: &str, text: &str) -> Result<ClusterConfig, GitopsError> {
        let config: ClusterConfig = serde_norway::from_str(text).map_err(|e| {
            GitopsError::Invalid(format!(
                "{} is not valid cluster settings ({e}); see schemas/cluster.schema.json, or rewrite it with gitops init",
                layout::cluster_file(cluster)
            ))
        })?;
        if config.name != cluster {
            return Err(GitopsError::Invalid(format!(
                "{} names the cluster {:?}",
                layout::cluster_file(cluster),
                config.name
            )));
        }
        config.check()?;
        Ok(config)
    }

    /// The settings of `cluster` in the repository, else those init would
    /// write for it.
    pub fn load(view: &dyn RepoView, cluster: &str, argocd_namespace: &str) -> Result<ClusterConfig, GitopsError> {
        match view.read(&layout::cluster_file(cluster)) {
            Some(text) => ClusterConfig::parse(cluster, &text),
            None => ClusterConfig::build(cluster, &ClusterInput::default(), argocd_namespace),
        }
    }

    /// What the schema cannot say.
    pub fn check(&self) -> Result<(), GitopsError> {
        let invalid = |m: String| Err(GitopsError::Invalid(format!("cluster {}: {m}", self.name)));
        if self.api_version != API_VERSION || self.kind != KIND {
            return invalid(format!("apiVersion/kind must be {API_VERSION}/{KIND}"));
        }
        if !is_dns_name(&self.base_domain) {
            return invalid(format!("baseDomain {:?} is not a DNS name", self.base_domain));
        }
        for recipient in self.age_recipient.iter().chain(&self.break_glass_recipient) {
            let ok = recipient.len() == 62
                && recipient.starts_with("age1")
                && recipient[4..]
                    .bytes()
                    .all(|b| b"023456789acdefghjklmnpqrstuvwxyz".contains(&b));
            if !ok {
                return invalid(format!(
                    "the age recipient {recipient:?} is not an age public key (age1…)"
                ));
            }
        }
        for (what, name) in [
            ("tlsIssuer", self.tls_issuer.as_str()),
            ("secretStore.name", self.secret_store.name.as_str()),
        ]
        .into_iter()
        .chain(self.registry_pull_secret.as_deref().map(|n| ("registryPullSecret", n)))
        {
            if layout::check_dns_label(what, name).is_err() {
                return invalid(format!("{what} {name:?} is not a Kubernetes name"));
            }
        }
        if !self.secret_store.vault_server.starts_with("https://") {
            return invalid("secretStore.vaultServer must be an https:// URL".into());
        }
        if let Some(telemetry) = &self.telemetry {
            let ok = url::Url::parse(&telemetry.otlp_endpoint)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if !ok {
                return invalid(format!(
                    "telemetry.otlpEndpoint {:?} is not an http(s) URL",
                    telemetry.otlp_endpoint
                ));
            }
        }
        if let Some(dns) = &self.external_dns {
            let zone_ok = is_dns_name(&dns.zone)
                && (self.base_domain == dns.zone || self.base_domain.ends_with(&format!(".{}", dns.zone)));
            if !zone_ok {
                return invalid(format!(
                    "externalDns.zone {:?} must be a DNS name that is baseDomain {:?} or a parent of it",
                    dns.zone, self.base_domain
                ));
            }
            if layout::check_dns_label("externalDns.txtOwnerId", &dns.txt_owner_id).is_err() {
                return invalid(format!(
                    "externalDns.txtOwnerId {:?} is not a DNS label",
                    dns.txt_owner_id
                ));
            }
            if dns.ttl == 0 {
                return invalid("externalDns.ttl must be at least 1 second".into());
            }
            if let Some(target) = &dns.target {
                if target.parse::<std::net::IpAddr>().is_err() && !is_dns_name(target) {
                    return invalid(format!(
                        "externalDns.target {target:?} is neither an IP address nor a DNS name"
                    ));
                }
            }
        }
        if let Some(registry) = &self.registry_credentials {
            let key_ok = !registry.vault_key.is_empty()
                && registry.vault_key.split('/').all(|part| {
                    !part.is_empty()
                        && part != "."
                        && part != ".."
                        && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                });
            if !is_dns_name(&registry.server) || !key_ok {
                return invalid(format!(
                    "registryCredentials needs a registry host name (e.g. ghcr.io) and a Vault key such as platform/registry/ghcr, not {:?} and {:?}",
                    registry.server, registry.vault_key
                ));
            }
        }
        super::overlay::check_resources(&self.workloads.resources)?;
        if let Some(a) = &self.workloads.autoscaling {
            if a.min_replicas == 0
                || a.min_replicas > a.max_replicas
                || a.cpu_utilization == 0
                || a.cpu_utilization > 100
            {
                return invalid(
                    "workloads.autoscaling needs 1 <= minReplicas <= maxReplicas and cpuUtilization in 1..=100".into(),
                );
            }
        }
        Ok(())
    }

    /// The file's text.
    pub fn render(&self) -> Result<String, GitopsError> {
        let body =
            serde_norway::to_string(self).map_err(|e| GitopsError::Invalid(format!("cannot write YAML: {e}")))?;
        Ok(format!(
            "# yaml-language-server: $schema=https://github.com/soft-yt/scaffolder/raw/main/schemas/cluster.schema.json\n# Settings of {} (written by `scaffolder gitops init`; edit freely, the schema checks them).\n{body}",
            self.name
        ))
    }
}

/// At least two labels, each a DNS label.
fn is_dns_name(name: &str) -> bool {
    name.split('.').count() >= 2
        && name
            .split('.')
            .all(|label| layout::check_dns_label("domain", label).is_ok())
}

/// How `.sops.yaml` starts when the scaffolder wrote it.
pub const SOPS_HEADER: &str = "# SOPS rules,";

/// `.sops.yaml` at the repository's root: one creation rule per cluster
/// with an age recipient, for `*.enc.yaml` files under `clusters/<c>/` and
/// `apps/*/overlays/<c>/`, encrypted for the cluster's key and its
/// break-glass key. `None` when no cluster has a recipient.
pub fn render_sops(configs: &[ClusterConfig]) -> Result<Option<String>, GitopsError> {
    let rules: Vec<Value> = configs
        .iter()
        .filter_map(|c| {
            let recipient = c.age_recipient.as_ref()?;
            let keys: Vec<&str> = std::iter::once(recipient.as_str())
                .chain(c.break_glass_recipient.as_deref())
                .collect();
            Some(json!({
                "path_regex": format!(r"^(clusters/{0}/|apps/[^/]+/overlays/{0}/).*\.enc\.ya?ml$", c.name),
                "encrypted_regex": "^(data|stringData)$",
                "age": keys.join(","),
            }))
        })
        .collect();
    if rules.is_empty() {
        return Ok(None);
    }
    let body = serde_norway::to_string(&json!({"creation_rules": rules}))
        .map_err(|e| GitopsError::Invalid(format!("cannot write YAML: {e}")))?;
    Ok(Some(format!(
        "{SOPS_HEADER} one per cluster with an ageRecipient in its cluster.yaml (written by the scaffolder; edits are overwritten).\n# Encrypt with: sops --encrypt --in-place clusters/<cluster>/<name>.enc.yaml\n{body}"
    )))
}

/// The JSON Schema of `cluster.yaml` (`schemas/cluster.schema.json`).
pub fn json_schema() -> Value {
    let schema = schemars::schema_for!(ClusterConfig);
    let mut value = serde_json::to_value(schema).unwrap_or_else(|_| json!({}));
    if let Some(map) = value.as_object_mut() {
        map.insert(
            "$id".into(),
            json!("https://github.com/soft-yt/scaffolder/raw/main/schemas/cluster.schema.json"),
        );
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGE: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    #[test]
    fn names_say_provider_and_stage() {
        let prod = ClusterConfig::build("yc-prod", &ClusterInput::default(), "argocd").unwrap();
        assert_eq!((prod.provider, prod.stage), (Provider::Yc, Stage::Prod));
        assert_eq!(prod.workloads.replicas, 3);
        assert!(prod.workloads.autoscaling.is_some() && prod.workloads.pod_disruption_budget);
        let dev = ClusterConfig::build("onprem-dev", &ClusterInput::default(), "argocd").unwrap();
        assert_eq!(
            (dev.provider, dev.stage, dev.ingress),
            (Provider::Onprem, Stage::Dev, IngressFlavour::Traefik)
        );
        assert_eq!(dev.workloads.replicas, 1);
        assert!(dev.workloads.autoscaling.is_none() && !dev.workloads.pod_disruption_budget);
        assert_eq!(dev.base_domain, "onprem-dev.apps.soft-yt.internal");
    }

    #[test]
    fn written_settings_parse_back_and_match_the_schema() {
        let input = ClusterInput {
            name: "sber-prod".into(),
            base_domain: Some("apps.sber.soft-yt.ru".into()),
            age_recipient: Some(AGE.into()),
            ingress: Some(IngressFlavour::Istio),
            ..ClusterInput::default()
        };
        let config = ClusterConfig::build("sber-prod", &input, "argocd").unwrap();
        let text = config.render().unwrap();
        assert_eq!(ClusterConfig::parse("sber-prod", &text).unwrap(), config);
        let schema = json_schema();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let doc: Value = serde_norway::from_str(&text).unwrap();
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        let mut bad = doc.clone();
        bad["provider"] = json!("aws");
        assert!(!validator.is_valid(&bad));
        bad = doc.clone();
        bad["ingress"] = json!("nginx");
        assert!(!validator.is_valid(&bad));
    }

    #[test]
    fn bad_settings_are_refused() {
        let config = ClusterConfig::build("vk-prod", &ClusterInput::default(), "argocd").unwrap();
        let text = config.render().unwrap();
        assert!(
            ClusterConfig::parse("yc-prod", &text).is_err(),
            "another cluster's file"
        );
        assert!(ClusterConfig::parse("vk-prod", "name: vk-prod\n").is_err());
        assert!(ClusterConfig::parse("vk-prod", &text.replace("stage: prod", "stage: qa")).is_err());
        assert!(ClusterConfig::parse("vk-prod", &format!("{text}extra: 1\n")).is_err());
        for input in [
            ClusterInput {
                base_domain: Some("localhost".into()),
                ..ClusterInput::default()
            },
            ClusterInput {
                age_recipient: Some("age1nope".into()),
                ..ClusterInput::default()
            },
            ClusterInput {
                tls_issuer: Some("Lets Encrypt".into()),
                ..ClusterInput::default()
            },
            ClusterInput {
                telemetry: Some(Telemetry {
                    otlp_endpoint: "otel-collector:4318".into(),
                }),
                ..ClusterInput::default()
            },
            ClusterInput {
                external_dns: Some(ExternalDns {
                    zone: "example.org".into(),
                    txt_owner_id: "vk-prod".into(),
                    ttl: 300,
                    target: None,
                }),
                ..ClusterInput::default()
            },
            ClusterInput {
                external_dns: Some(ExternalDns {
                    zone: "apps.soft-yt.internal".into(),
                    txt_owner_id: "vk-prod".into(),
                    ttl: 300,
                    target: Some("not a host".into()),
                }),
                ..ClusterInput::default()
            },
            ClusterInput {
                registry_credentials: Some(RegistryCredentials {
                    server: "ghcr.io".into(),
                    vault_key: "../etc".into(),
                }),
                ..ClusterInput::default()
            },
        ] {
            assert!(ClusterConfig::build("vk-prod", &input, "argocd").is_err(), "{input:?}");
        }
    }

    #[test]
    fn sops_rules_name_each_clusters_keys() {
        let with_key = ClusterConfig::build(
            "yc-prod",
            &ClusterInput {
                age_recipient: Some(AGE.into()),
                break_glass_recipient: Some(AGE.replace("age1ql3", "age1zz3")),
                ..ClusterInput::default()
            },
            "argocd",
        )
        .unwrap();
        let without = ClusterConfig::build("onprem-dev", &ClusterInput::default(), "argocd").unwrap();
        assert_eq!(render_sops(std::slice::from_ref(&without)).unwrap(), None);
        let text = render_sops(&[with_key, without]).unwrap().unwrap();
        let doc: Value = serde_norway::from_str(&text).unwrap();
        let rules = doc["creation_rules"].as_array().unwrap();
        assert_eq!(rules.len(), 1);
        assert!(rules[0]["path_regex"].as_str().unwrap().contains("clusters/yc-prod/"));
        assert_eq!(rules[0]["age"].as_str().unwrap().split(',').count(), 2);
    }

    #[test]
    fn the_committed_schema_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/cluster.schema.json");
        let expected = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(path, &expected).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == expected,
            "{path} is stale: run `UPDATE_SCHEMAS=1 cargo test --lib gitops::cluster`"
        );
    }
}
