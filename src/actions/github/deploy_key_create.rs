//! `github:deployKey:create`: adds an SSH deploy key to a repository and
//! stores its private half as an Actions secret of the same repository.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{outcome, Target};
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::scm::github::Scope;
use crate::scm::ScmIntegrations;

pub struct GithubDeployKeyCreate {
    integrations: Arc<ScmIntegrations>,
}

impl GithubDeployKeyCreate {
    pub fn new(integrations: Arc<ScmIntegrations>) -> Self {
        GithubDeployKeyCreate { integrations }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// The repository, as `github.com?repo=reponame&owner=owner`
    pub repo_url: String,
    /// The public key in OpenSSH format (`ssh-ed25519 AAAA…`, `ssh-rsa …`, `ecdsa-sha2-nistp256 …`, …)
    pub public_key: String,
    /// The matching private key, stored as a repository secret
    pub private_key: String,
    /// The deploy key's title on GitHub
    pub deploy_key_name: String,
    /// The secret that receives the private key. Default: the key's name in upper case, spaces as `_`, then `_PRIVATE_KEY`
    pub private_key_secret_name: Option<String>,
    /// A token to use instead of the integration's credentials
    pub token: Option<String>,
}

/// Backstage's default secret name: `deploy key` → `DEPLOY_KEY_PRIVATE_KEY`.
fn default_secret_name(key_name: &str) -> String {
    format!(
        "{}_PRIVATE_KEY",
        key_name.split(' ').collect::<Vec<_>>().join("_").to_uppercase()
    )
}

#[async_trait]
impl ActionHandler for GithubDeployKeyCreate {
    type Input = Input;
    const ID: &'static str = "github:deployKey:create";
    const DESCRIPTION: &'static str =
        "Adds a deploy key to a GitHub repository and keeps its private key as an Actions secret";

    fn output_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": {
                "privateKeySecretName": {"type": "string", "description": "The repository secret that holds the private key"},
            },
            "required": ["privateKeySecretName"],
            "additionalProperties": false,
            "$schema": "http://json-schema.org/draft-07/schema#",
        }))
    }

    fn examples(&self) -> Vec<ActionExample> {
        vec![ActionExample {
            description: "Add a deploy key and store its private key.",
            example: "steps:\n  - action: github:deployKey:create\n    name: Add the GitOps deploy key\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      publicKey: ${{ parameters.publicKey }}\n      privateKey: ${{ secrets.privateKey }}\n      deployKeyName: gitops\n",
        }]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let secret_name = input
            .private_key_secret_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| default_secret_name(&input.deploy_key_name));
        let target = Target::connect(&self.integrations, ctx, &input.repo_url, input.token.as_deref()).await?;
        let api = target.api();
        let ensured = api
            .ensure_deploy_key(&input.deploy_key_name, input.public_key.trim())
            .await?;
        ctx.logger
            .info(outcome(
                &format!("deploy key {} on {}", input.deploy_key_name, target.full_name()),
                ensured,
            ))
            .await;
        api.put_secret(Scope::Repository, &secret_name, &input.private_key)
            .await?;
        ctx.logger
            .info(format!("Stored the private key as secret {secret_name}"))
            .await;
        ctx.output("privateKeySecretName", Value::String(secret_name));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_secret_name_is_backstages() {
        assert_eq!(super::default_secret_name("my deploy key"), "MY_DEPLOY_KEY_PRIVATE_KEY");
        assert_eq!(super::default_secret_name("gitops"), "GITOPS_PRIVATE_KEY");
    }
}
