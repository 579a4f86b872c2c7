//! `github:autolinks:create`: an autolink reference, so that `PREFIX-123`
//! in issues, pull requests and commits links to an external tracker.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{outcome, settings::yes, Target};
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::scm::github::AutolinkRequest;
use crate::scm::ScmIntegrations;

pub struct GithubAutolinksCreate {
    integrations: Arc<ScmIntegrations>,
}

impl GithubAutolinksCreate {
    pub fn new(integrations: Arc<ScmIntegrations>) -> Self {
        GithubAutolinksCreate { integrations }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// The repository, as `github.com?repo=reponame&owner=owner`
    pub repo_url: String,
    /// The text that, followed by a reference, becomes a link (e.g. `TICKET-`)
    pub key_prefix: String,
    /// The link's URL; `<num>` stands for the reference
    pub url_template: String,
    /// Whether references are alphanumeric (`A-Z`, `0-9`, `-`) rather than numbers only. Default: `true`
    #[serde(default = "yes")]
    pub is_alphanumeric: bool,
    /// A token to use instead of the integration's credentials
    pub token: Option<String>,
}

#[async_trait]
impl ActionHandler for GithubAutolinksCreate {
    type Input = Input;
    const ID: &'static str = "github:autolinks:create";
    const DESCRIPTION: &'static str = "Adds an autolink reference to a GitHub repository";

    fn examples(&self) -> Vec<ActionExample> {
        vec![ActionExample {
            description: "Link TICKET-123 to the tracker.",
            example: "steps:\n  - action: github:autolinks:create\n    name: Link tickets\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      keyPrefix: TICKET-\n      urlTemplate: https://tracker.example.com/browse/TICKET-<num>\n",
        }]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        if !input.url_template.contains("<num>") {
            return Err(ActionError::InvalidInput(
                "urlTemplate must contain `<num>`, the place of the reference".into(),
            ));
        }
        let target = Target::connect(&self.integrations, ctx, &input.repo_url, input.token.as_deref()).await?;
        let ensured = target
            .api()
            .ensure_autolink(&AutolinkRequest {
                key_prefix: &input.key_prefix,
                url_template: &input.url_template,
                is_alphanumeric: input.is_alphanumeric,
            })
            .await?;
        ctx.logger
            .info(outcome(
                &format!("autolink {} on {}", input.key_prefix, target.full_name()),
                ensured,
            ))
            .await;
        Ok(())
    }
}
