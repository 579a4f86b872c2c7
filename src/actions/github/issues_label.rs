//! `github:issues:label`: adds labels to an issue or pull request (GitHub
//! keeps labels it already has, so a re-run changes nothing).

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use super::Target;
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::scm::ScmIntegrations;

pub struct GithubIssuesLabel {
    integrations: Arc<ScmIntegrations>,
}

impl GithubIssuesLabel {
    pub fn new(integrations: Arc<ScmIntegrations>) -> Self {
        GithubIssuesLabel { integrations }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// The repository, as `github.com?repo=reponame&owner=owner`
    pub repo_url: String,
    /// The issue's or pull request's number
    pub number: f64,
    /// The labels to add
    pub labels: Vec<String>,
    /// A token to use instead of the integration's credentials
    pub token: Option<String>,
}

#[async_trait]
impl ActionHandler for GithubIssuesLabel {
    type Input = Input;
    const ID: &'static str = "github:issues:label";
    const DESCRIPTION: &'static str = "Adds labels to an issue or a pull request on GitHub";

    fn examples(&self) -> Vec<ActionExample> {
        vec![ActionExample {
            description: "Label the pull request an earlier step opened.",
            example: "steps:\n  - action: github:issues:label\n    name: Label the pull request\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      number: ${{ steps['publish-pr'].output.pullRequestNumber }}\n      labels:\n        - scaffolded\n",
        }]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        if input.number.fract() != 0.0 || input.number < 1.0 {
            return Err(ActionError::InvalidInput(format!(
                "number {} is not an issue or pull request number",
                input.number
            )));
        }
        let number = input.number as u64;
        let target = Target::connect(&self.integrations, ctx, &input.repo_url, input.token.as_deref()).await?;
        // Backstage logs a failure to label and carries on: labels are a nicety.
        match target.api().add_labels(number, &input.labels).await {
            Ok(()) => {
                ctx.logger
                    .info(format!(
                        "Labelled #{number} of {} with {}",
                        target.full_name(),
                        input.labels.join(", ")
                    ))
                    .await
            }
            Err(e) => {
                ctx.logger
                    .warn(format!(
                        "Failed: adding labels to issue: '{number}' on repo: '{}', {e}",
                        target.repo
                    ))
                    .await
            }
        }
        Ok(())
    }
}
