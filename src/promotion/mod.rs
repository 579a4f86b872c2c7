//! Promotion: built images reach the clusters through `infra-gitops`,
//! signed digests only, stage by stage (docs/gitops.md, "Promotion").
//!
//! `oci` reads registries (the OCI distribution API), `cosign` verifies an
//! image digest's cosign signature against the configured trust (a public
//! key, or a keyless certificate chaining to a trust root and naming the
//! expected workflow).

pub mod argocd;
pub mod cosign;
pub mod oci;
pub mod plan;

use std::sync::Arc;
use std::time::Duration;

/// What the promotion actions get from the installation
/// (`config::PromotionSettings`, read at start).
pub struct PromotionDeps {
    pub registry: oci::RegistryClient,
    pub trust: cosign::TrustPolicy,
    pub argocd: Option<argocd::ArgoClient>,
    /// How long a stage waits for the previous stage's applications.
    pub health_timeout: Duration,
    /// Who may approve a promotion into a gated stage (entity refs).
    pub approver_users: Vec<String>,
    pub approver_groups: Vec<String>,
    /// How long a gated promotion waits for its decision.
    pub approval_timeout_seconds: u64,
}

impl PromotionDeps {
    pub fn shared(self) -> Arc<PromotionDeps> {
        Arc::new(self)
    }
}

/// Promotion settings that cannot be used (a key file that is not a key).
#[derive(Debug, thiserror::Error)]
#[error("invalid promotion configuration: {0}")]
pub struct PromotionConfigError(pub String);

impl PromotionDeps {
    /// The deps of `settings`: `None` when no signature is trusted (the
    /// promotion actions then refuse, saying so).
    pub fn from_settings(
        settings: &crate::config::PromotionSettings,
    ) -> Result<Option<PromotionDeps>, PromotionConfigError> {
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path)
                .map_err(|e| PromotionConfigError(format!("cannot read {}: {e}", path.display())))
        };
        let mut trust = cosign::TrustPolicy::default();
        for path in &settings.public_key_files {
            let key = cosign::TrustPolicy::parse_key(&read(path)?)
                .map_err(|e| PromotionConfigError(format!("{}: {e}", path.display())))?;
            trust.keys.push(key);
        }
        if let Some(path) = &settings.keyless_roots_file {
            let roots = cosign::TrustPolicy::parse_roots(&read(path)?)
                .map_err(|e| PromotionConfigError(format!("{}: {e}", path.display())))?;
            trust.keyless = Some(cosign::KeylessTrust {
                roots,
                issuer: settings.keyless_issuer.clone(),
            });
        }
        if trust.is_empty() {
            return Ok(None);
        }
        let registry = oci::RegistryClient::new(settings.insecure_registries.clone())
            .map_err(|e| PromotionConfigError(e.to_string()))?;
        let argocd = match &settings.argocd_url {
            Some(url) => Some(
                argocd::ArgoClient::new(url, settings.argocd_token.as_ref().map(|t| t.expose().to_owned()))
                    .map_err(|e| PromotionConfigError(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Some(PromotionDeps {
            registry,
            trust,
            argocd,
            health_timeout: Duration::from_secs(settings.health_timeout_seconds),
            approver_users: settings.approvers.users.clone(),
            approver_groups: settings.approvers.groups.clone(),
            approval_timeout_seconds: settings.approval_timeout_seconds,
        }))
    }
}
