//! `github:webhook`: a repository webhook. A re-run finds the hook that
//! already delivers to the same URL and updates it instead of adding a
//! second one.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::gen::SchemaGenerator;
use schemars::schema::Schema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{outcome, settings::no, settings::yes, Target};
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::scm::github::{HookConfig, HookRequest};
use crate::scm::ScmIntegrations;

pub struct GithubWebhook {
    integrations: Arc<ScmIntegrations>,
}

impl GithubWebhook {
    pub fn new(integrations: Arc<ScmIntegrations>) -> Self {
        GithubWebhook { integrations }
    }
}

/// The events a repository webhook can subscribe to (GitHub's list, as
/// Backstage's schema offers it).
const EVENTS: &[&str] = &[
    "branch_protection_rule",
    "check_run",
    "check_suite",
    "code_scanning_alert",
    "commit_comment",
    "create",
    "delete",
    "dependabot_alert",
    "deploy_key",
    "deployment",
    "deployment_status",
    "discussion",
    "discussion_comment",
    "fork",
    "github_app_authorization",
    "gollum",
    "installation",
    "installation_repositories",
    "installation_target",
    "issue_comment",
    "issues",
    "label",
    "marketplace_purchase",
    "member",
    "membership",
    "merge_group",
    "meta",
    "milestone",
    "org_block",
    "organization",
    "package",
    "page_build",
    "ping",
    "project",
    "project_card",
    "project_column",
    "projects_v2_item",
    "public",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "pull_request_review_thread",
    "push",
    "registry_package",
    "release",
    "repository",
    "repository_dispatch",
    "repository_import",
    "repository_vulnerability_alert",
    "secret_scanning_alert",
    "security_advisory",
    "sponsorship",
    "star",
    "status",
    "team",
    "team_add",
    "watch",
    "workflow_dispatch",
    "workflow_job",
    "workflow_run",
];

fn events_schema(_: &mut SchemaGenerator) -> Schema {
    serde_json::from_value(json!({
        "anyOf": [
            {
                "type": "array",
                "items": {"type": "string", "enum": EVENTS},
                "description": "The events that trigger the webhook. Default: `[push]`",
            },
            {
                "type": "array",
                "items": {"type": "string", "const": "*"},
                "description": "`[\"*\"]`: every event. Default: `[push]`",
            },
        ],
        "default": ["push"],
    }))
    .unwrap_or(Schema::Bool(true))
}

fn default_events() -> Vec<String> {
    vec!["push".into()]
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContentType {
    Form,
    Json,
}

fn default_content_type() -> ContentType {
    ContentType::Form
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// The repository, as `github.com?repo=reponame&owner=owner`
    pub repo_url: String,
    /// Where GitHub delivers the payloads
    pub webhook_url: String,
    /// The secret GitHub signs each delivery with (`X-Hub-Signature-256`)
    pub webhook_secret: Option<String>,
    #[schemars(schema_with = "events_schema")]
    #[serde(default = "default_events")]
    pub events: Vec<String>,
    /// Whether deliveries are sent. Default: `true`
    #[serde(default = "yes")]
    pub active: bool,
    /// How payloads are encoded: `form` or `json`. Default: `form`
    #[serde(default = "default_content_type")]
    pub content_type: ContentType,
    /// Skip verifying the receiver's TLS certificate. Default: `false`
    #[serde(default = "no")]
    pub insecure_ssl: bool,
    /// A token to use instead of the integration's credentials
    pub token: Option<String>,
}

#[async_trait]
impl ActionHandler for GithubWebhook {
    type Input = Input;
    const ID: &'static str = "github:webhook";
    const DESCRIPTION: &'static str = "Adds a webhook to a GitHub repository, or updates the one with the same URL";

    fn examples(&self) -> Vec<ActionExample> {
        vec![
            ActionExample {
                description: "Tell Argo CD about every push.",
                example: "steps:\n  - action: github:webhook\n    name: Notify Argo CD\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      webhookUrl: https://argocd.example.com/api/webhook\n      webhookSecret: ${{ secrets.argocdWebhookSecret }}\n      contentType: json\n",
            },
            ActionExample {
                description: "An inactive hook for pull requests and releases.",
                example: "steps:\n  - action: github:webhook\n    name: Add the release hook\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      webhookUrl: https://example.com/hooks/github\n      events:\n        - pull_request\n        - release\n      active: false\n",
            },
        ]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let target = Target::connect(&self.integrations, ctx, &input.repo_url, input.token.as_deref()).await?;
        let content_type = match input.content_type {
            ContentType::Form => "form",
            ContentType::Json => "json",
        };
        let hook = HookRequest {
            config: HookConfig {
                url: &input.webhook_url,
                content_type,
                secret: input.webhook_secret.as_deref().filter(|s| !s.is_empty()),
                insecure_ssl: if input.insecure_ssl { "1" } else { "0" },
            },
            events: &input.events,
            active: input.active,
        };
        let ensured = target.api().ensure_hook(&hook).await?;
        ctx.logger
            .info(outcome(
                &format!("webhook to {} on {}", input.webhook_url, target.full_name()),
                ensured,
            ))
            .await;
        Ok(())
    }
}
