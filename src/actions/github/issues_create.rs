//! `github:issues:create`: opens an issue.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::gen::SchemaGenerator;
use schemars::schema::Schema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Target;
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::scm::ScmIntegrations;

pub struct GithubIssuesCreate {
    integrations: Arc<ScmIntegrations>,
}

impl GithubIssuesCreate {
    pub fn new(integrations: Arc<ScmIntegrations>) -> Self {
        GithubIssuesCreate { integrations }
    }
}

/// A milestone number, as a number or as text (GitHub takes both).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Milestone {
    Number(f64),
    Text(String),
}

fn string_or_number(_: &mut SchemaGenerator) -> Schema {
    serde_json::from_value(json!({"type": ["string", "number"]})).unwrap_or(Schema::Bool(true))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// The repository, as `github.com?repo=reponame&owner=owner`
    pub repo_url: String,
    /// The issue's title
    pub title: String,
    /// The issue's text (Markdown)
    pub body: Option<String>,
    /// Logins to assign; GitHub drops them silently unless the caller can push to the repository
    pub assignees: Option<Vec<String>>,
    /// The milestone's number; GitHub drops it silently unless the caller can push to the repository
    #[schemars(schema_with = "string_or_number")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub milestone: Option<Milestone>,
    /// Labels to put on the issue; GitHub drops them silently unless the caller can push to the repository
    pub labels: Option<Vec<String>>,
    /// A token to use instead of the integration's credentials
    pub token: Option<String>,
}

#[async_trait]
impl ActionHandler for GithubIssuesCreate {
    type Input = Input;
    const ID: &'static str = "github:issues:create";
    const DESCRIPTION: &'static str = "Opens an issue in a GitHub repository";

    fn output_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": {
                "issueUrl": {"type": "string", "description": "The issue's page on GitHub"},
                "issueNumber": {"type": "number", "description": "The issue's number"},
            },
            "required": ["issueUrl", "issueNumber"],
            "additionalProperties": false,
            "$schema": "http://json-schema.org/draft-07/schema#",
        }))
    }

    fn examples(&self) -> Vec<ActionExample> {
        vec![
            ActionExample {
                description: "Open an issue.",
                example: "steps:\n  - action: github:issues:create\n    name: Open the onboarding issue\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      title: Finish setting up the service\n",
            },
            ActionExample {
                description: "Open an issue with a text, labels and an assignee.",
                example: "steps:\n  - action: github:issues:create\n    name: Open the onboarding issue\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      title: Finish setting up the service\n      body: Add the alerts and the runbook.\n      labels:\n        - onboarding\n      assignees:\n        - octocat\n",
            },
        ]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let target = Target::connect(&self.integrations, ctx, &input.repo_url, input.token.as_deref()).await?;
        let mut body = json!({"title": input.title});
        if let Some(text) = &input.body {
            body["body"] = json!(text);
        }
        if let Some(assignees) = &input.assignees {
            body["assignees"] = json!(assignees);
        }
        match &input.milestone {
            Some(Milestone::Number(n)) if n.fract() == 0.0 && *n >= 0.0 => body["milestone"] = json!(*n as u64),
            Some(Milestone::Number(n)) => {
                return Err(ActionError::InvalidInput(format!(
                    "milestone {n} is not a milestone number"
                )))
            }
            Some(Milestone::Text(text)) => body["milestone"] = json!(text),
            None => {}
        }
        if let Some(labels) = &input.labels {
            body["labels"] = json!(labels);
        }
        let issue = target.api().create_issue(&body).await?;
        ctx.logger
            .info(format!("Opened issue #{} ({})", issue.number, issue.html_url))
            .await;
        ctx.output("issueUrl", json!(issue.html_url));
        ctx.output("issueNumber", json!(issue.number));
        Ok(())
    }
}
