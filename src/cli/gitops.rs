//! `scaffolder gitops …`: the GitOps actions from the command line, with
//! the integrations of the configuration file.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::actions::gitops::GitopsInit;
use crate::actions::{Action, ActionContext, ActionError, LogSink, StepLogger};
use crate::gitops::cluster::{
    ClusterConfig, ClusterInput, ExternalDns, IngressFlavour, Provider, RegistryCredentials, SecretStore, Stage,
    Telemetry, DEFAULT_DNS_TTL, DEFAULT_DOMAIN,
};
use crate::scm::ScmIntegrations;

/// A word of a typed setting (`yc`, `gateway-api`, …), read the way
/// `cluster.yaml` reads it, so the flags and the file accept the same words.
fn word<T: DeserializeOwned>(value: &str, choices: &str) -> Result<T, String> {
    serde_json::from_value(Value::String(value.to_owned())).map_err(|_| format!("{value:?} is not one of {choices}"))
}
fn provider(value: &str) -> Result<Provider, String> {
    word(value, "yc, sber, vk, onprem")
}
fn stage(value: &str) -> Result<Stage, String> {
    word(value, "dev, staging, prod")
}
fn ingress(value: &str) -> Result<IngressFlavour, String> {
    word(value, "traefik, istio, gateway-api")
}

/// Typed cluster settings on the command line: each applies to every
/// `--cluster` of the run (the `settings` of `gitops:init`), and
/// `--settings FILE` gives them per cluster. A cluster given any of them
/// has its `cluster.yaml` rewritten; what none gives is inferred from the
/// cluster's name.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct SettingsArgs {
    /// The cloud: yc, sber, vk or onprem (default: from the name `<provider>-<stage>`).
    #[arg(long, value_parser = provider)]
    provider: Option<Provider>,
    /// dev, staging or prod (default: from the name).
    #[arg(long, value_parser = stage)]
    stage: Option<Stage>,
    /// The base domain: services at `<service>.<domain>` (default `<cluster>.apps.soft-yt.internal`).
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// How services are exposed: traefik, istio or gateway-api (default: by provider).
    #[arg(long, value_parser = ingress)]
    ingress: Option<IngressFlavour>,
    /// The cert-manager ClusterIssuer (default: letsencrypt on prod, internal-ca elsewhere).
    #[arg(long, value_name = "ISSUER")]
    tls_issuer: Option<String>,
    /// The cluster's age public key (age1…): SOPS rules, the age key from Vault, KSOPS for Argo CD.
    #[arg(long, value_name = "AGE1…")]
    age_recipient: Option<String>,
    /// A second age key every secret is also encrypted for (kept offline).
    #[arg(long, value_name = "AGE1…")]
    break_glass_recipient: Option<String>,
    /// The External Secrets ClusterSecretStore's name (default vault).
    #[arg(long, value_name = "NAME")]
    secret_store: Option<String>,
    /// Vault's https address (default https://vault.<cluster>.apps.soft-yt.internal:8200).
    #[arg(long, value_name = "URL")]
    vault_server: Option<String>,
    /// The Vault KV v2 mount (default secret).
    #[arg(long, value_name = "PATH")]
    vault_path: Option<String>,
    /// The Vault Kubernetes auth role (default external-secrets).
    #[arg(long, value_name = "ROLE")]
    vault_role: Option<String>,
    /// The dockerconfigjson pull Secret of the pods (default ghcr-pull).
    #[arg(long, value_name = "NAME")]
    pull_secret: Option<String>,
    /// The registry of the pull Secret (default ghcr.io).
    #[arg(long, value_name = "HOST")]
    registry: Option<String>,
    /// The Vault key with the registry's `username` and `password` (default platform/registry/ghcr).
    #[arg(long, value_name = "KEY")]
    registry_vault_key: Option<String>,
    /// The OTLP/HTTP endpoint of the cluster's OpenTelemetry collector.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// The zone ExternalDNS manages (default: the base domain).
    #[arg(long, value_name = "ZONE")]
    dns_zone: Option<String>,
    /// ExternalDNS's TXT owner id (default: the cluster's name).
    #[arg(long, value_name = "ID")]
    dns_owner_id: Option<String>,
    /// The records' TTL in seconds (default 300).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..))]
    dns_ttl: Option<u32>,
    /// What the records point at when the routes cannot say (an IP address or host name).
    #[arg(long, value_name = "TARGET")]
    dns_target: Option<String>,
    /// Settings per cluster: a YAML list of cluster.yaml entries
    /// (`- name: yc-prod` with provider, stage, baseDomain, …); they win over the flags.
    #[arg(long = "settings", value_name = "FILE")]
    settings_file: Option<PathBuf>,
}

impl SettingsArgs {
    fn given(&self) -> bool {
        *self != SettingsArgs::default()
    }

    /// What the flags say of `cluster`.
    fn for_cluster(&self, cluster: &str) -> ClusterInput {
        let vault = [
            &self.secret_store,
            &self.vault_server,
            &self.vault_path,
            &self.vault_role,
        ];
        let secret_store = vault.iter().any(|v| v.is_some()).then(|| SecretStore {
            name: self.secret_store.clone().unwrap_or_else(|| "vault".into()),
            vault_server: self
                .vault_server
                .clone()
                .unwrap_or_else(|| format!("https://vault.{cluster}.{DEFAULT_DOMAIN}:8200")),
            vault_path: self.vault_path.clone().unwrap_or_else(|| "secret".into()),
            vault_role: self.vault_role.clone().unwrap_or_else(|| "external-secrets".into()),
        });
        let registry_credentials = (self.registry.is_some() || self.registry_vault_key.is_some()).then(|| {
            let default = RegistryCredentials::default_ghcr();
            RegistryCredentials {
                server: self.registry.clone().unwrap_or(default.server),
                vault_key: self.registry_vault_key.clone().unwrap_or(default.vault_key),
            }
        });
        let dns = [&self.dns_zone, &self.dns_owner_id, &self.dns_target];
        let external_dns = (dns.iter().any(|v| v.is_some()) || self.dns_ttl.is_some()).then(|| ExternalDns {
            zone: self
                .dns_zone
                .clone()
                .or_else(|| self.domain.clone())
                .unwrap_or_else(|| format!("{cluster}.{DEFAULT_DOMAIN}")),
            txt_owner_id: self.dns_owner_id.clone().unwrap_or_else(|| cluster.to_owned()),
            ttl: self.dns_ttl.unwrap_or(DEFAULT_DNS_TTL),
            target: self.dns_target.clone(),
        });
        ClusterInput {
            name: cluster.to_owned(),
            provider: self.provider,
            stage: self.stage,
            base_domain: self.domain.clone(),
            ingress: self.ingress,
            tls_issuer: self.tls_issuer.clone(),
            age_recipient: self.age_recipient.clone(),
            break_glass_recipient: self.break_glass_recipient.clone(),
            secret_store,
            registry_pull_secret: self.pull_secret.clone(),
            registry_credentials,
            telemetry: self
                .otlp_endpoint
                .clone()
                .map(|otlp_endpoint| Telemetry { otlp_endpoint }),
            external_dns,
            workloads: None,
        }
    }

    /// The `settings` of `gitops:init` for `clusters`: the flags, under
    /// each cluster's entry of the settings file; each checked as init
    /// would write it. Empty when no setting is given.
    fn resolve(&self, clusters: &[String], argocd_namespace: &str) -> Result<Vec<ClusterInput>, GitopsRunError> {
        if !self.given() {
            return Ok(Vec::new());
        }
        let from_file: Vec<ClusterInput> = match &self.settings_file {
            None => Vec::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| GitopsRunError::Settings(format!("cannot read {}: {e}", path.display())))?;
                serde_norway::from_str(&text).map_err(|e| {
                    GitopsRunError::Settings(format!(
                        "{} is not a list of cluster settings ({e}); each entry is `name:` plus cluster.yaml's fields (schemas/cluster.schema.json)",
                        path.display()
                    ))
                })?
            }
        };
        for entry in &from_file {
            if !clusters.contains(&entry.name) {
                return Err(GitopsRunError::Settings(format!(
                    "the settings file names the cluster {:?}, which is not given with --cluster",
                    entry.name
                )));
            }
        }
        let mut out = Vec::new();
        for cluster in clusters {
            let mut merged = without_nulls(to_value(&self.for_cluster(cluster))?);
            if let Some(entry) = from_file.iter().find(|e| &e.name == cluster) {
                if let (Some(into), Value::Object(own)) = (merged.as_object_mut(), without_nulls(to_value(entry)?)) {
                    into.extend(own);
                }
            }
            let input: ClusterInput = serde_json::from_value(merged)
                .map_err(|e| GitopsRunError::Settings(format!("cluster {cluster}: {e}")))?;
            ClusterConfig::build(cluster, &input, argocd_namespace)
                .map_err(|e| GitopsRunError::Settings(e.to_string()))?;
            out.push(input);
        }
        Ok(out)
    }
}

fn to_value(input: &ClusterInput) -> Result<Value, GitopsRunError> {
    serde_json::to_value(input).map_err(|e| GitopsRunError::Settings(e.to_string()))
}

fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum GitopsCommand {
    /// Create or update the GitOps repository layout: clusters/<cluster>/…
    /// with one Argo CD ApplicationSet per cluster (the action gitops:init).
    /// Prints the outputs as JSON.
    Init {
        /// The repository, e.g. `git.local?owner=acme&repo=infra-gitops`
        /// (created when missing) or `github.com?owner=acme&repo=infra-gitops`.
        #[arg(long)]
        repo: String,
        /// Cluster names (repeatable, or comma-separated).
        #[arg(long = "cluster", required = true, num_args = 1.., value_delimiter = ',')]
        clusters: Vec<String>,
        /// The branch Argo CD follows.
        #[arg(long, default_value = "main")]
        branch: String,
        /// The repository URL written into the ApplicationSets (default: the clone URL).
        #[arg(long)]
        argocd_repo_url: Option<String>,
        /// Argo CD's namespace.
        #[arg(long, default_value = "argocd")]
        argocd_namespace: String,
        /// The commit message.
        #[arg(long)]
        message: Option<String>,
        /// Check and show what would be written; push nothing.
        #[arg(long)]
        dry_run: bool,
        // Boxed: the settings are large, the other commands small.
        #[command(flatten)]
        settings: Box<SettingsArgs>,
    },
}

/// Log lines go to stderr without the colour codes.
struct Stderr;

#[async_trait]
impl LogSink for Stderr {
    async fn log(&self, _step_id: &str, message: String) {
        let plain = message
            .replace("\u{1b}[32m", "")
            .replace("\u{1b}[33m", "")
            .replace("\u{1b}[39m", "");
        eprintln!("{plain}");
    }
}

/// Why a `gitops` command failed.
#[derive(Debug, thiserror::Error)]
pub enum GitopsRunError {
    #[error("cannot create a temporary directory: {0}")]
    Workspace(std::io::Error),
    #[error("cluster settings: {0}")]
    Settings(String),
    #[error(transparent)]
    Action(#[from] ActionError),
}

/// Runs the command; the outputs (JSON) are returned for printing.
/// `argocd_repo_url` is the configuration's `gitops.argocd_repo_url`.
pub async fn run(
    command: GitopsCommand,
    integrations: Arc<ScmIntegrations>,
    argocd_repo_url: Option<String>,
) -> Result<Value, GitopsRunError> {
    let configured_repo_url = argocd_repo_url;
    let GitopsCommand::Init {
        repo,
        clusters,
        branch,
        argocd_repo_url,
        argocd_namespace,
        message,
        dry_run,
        settings,
    } = command;
    let settings = settings.resolve(&clusters, &argocd_namespace)?;
    let workspace = tempfile::tempdir().map_err(GitopsRunError::Workspace)?;
    let mut input = json!({
        "repoUrl": repo,
        "clusters": clusters,
        "branch": branch,
        "argocdNamespace": argocd_namespace,
    });
    if !settings.is_empty() {
        let settings: Result<Vec<Value>, GitopsRunError> =
            settings.iter().map(|s| to_value(s).map(without_nulls)).collect();
        input["settings"] = Value::Array(settings?);
    }
    if let Some(url) = argocd_repo_url {
        input["argocdRepoUrl"] = json!(url);
    }
    if let Some(message) = message {
        input["commitMessage"] = json!(message);
    }
    let task_id = format!("cli-{}", uuid::Uuid::new_v4());
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let mut ctx = ActionContext {
        task_id: task_id.clone(),
        step_id: "gitops-init".into(),
        workspace: workspace.path().to_path_buf(),
        template_base: url::Url::parse("file:///").expect("a constant URL"),
        raw_input: input.clone(),
        logger: StepLogger::new(Arc::new(Stderr), "gitops-init"),
        secrets: Map::new(),
        user: json!({}),
        dry_run,
        cancel,
        integrations: integrations.templating(),
        extensions: Default::default(),
        outputs: Map::new(),
        limits: Default::default(),
        reader: None,
        run: Default::default(),
        approval: None,
    };
    let action = GitopsInit::new(integrations.clone()).with_argocd_repo_url(configured_repo_url);
    action.run(&mut ctx, input).await?;
    Ok(Value::Object(ctx.into_outputs()))
}
