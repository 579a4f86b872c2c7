//! `github:repo:rulesets:create`: a repository ruleset (GitHub's successor
//! of branch protection), rules and bypass actors in GitHub's REST shape.
//! A re-run updates the repository's ruleset of the same name.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::gen::SchemaGenerator;
use schemars::schema::Schema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{outcome, Target};
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::scm::ScmIntegrations;

pub struct GithubRulesetsCreate {
    integrations: Arc<ScmIntegrations>,
}

impl GithubRulesetsCreate {
    pub fn new(integrations: Arc<ScmIntegrations>) -> Self {
        GithubRulesetsCreate { integrations }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RulesetTarget {
    Branch,
    Tag,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    Active,
    Evaluate,
    Disabled,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    pub ref_name: Option<RefName>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefName {
    pub include: Option<Vec<String>>,
    pub exclude: Option<Vec<String>>,
}

fn any_object(_: &mut SchemaGenerator) -> Schema {
    serde_json::from_value(json!({"type": "object", "additionalProperties": {}})).unwrap_or(Schema::Bool(true))
}

fn integer_or_null(_: &mut SchemaGenerator) -> Schema {
    serde_json::from_value(json!({"anyOf": [{"type": "integer"}, {"type": "null"}]})).unwrap_or(Schema::Bool(true))
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(rename = "type")]
    pub kind: String,
    #[schemars(schema_with = "any_object")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BypassMode {
    Always,
    PullRequest,
    Exempt,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BypassActor {
    #[schemars(schema_with = "integer_or_null")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<Option<i64>>,
    pub actor_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bypass_mode: Option<BypassMode>,
}

fn default_target() -> RulesetTarget {
    RulesetTarget::Branch
}
fn default_enforcement() -> Enforcement {
    Enforcement::Active
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// The repository, as `github.com?repo=reponame&owner=owner`
    pub repo_url: String,
    /// The ruleset's name; a re-run updates the ruleset of this name
    pub name: String,
    /// What the ruleset applies to: `branch` or `tag`. Default: `branch`
    #[serde(default = "default_target")]
    pub target: RulesetTarget,
    /// `active`, `evaluate` (report only; not on every GitHub plan) or `disabled`. Default: `active`
    #[serde(default = "default_enforcement")]
    pub enforcement: Enforcement,
    /// Which refs the ruleset covers: `ref_name.include`/`exclude` patterns, also `~DEFAULT_BRANCH` and `~ALL`. Without conditions it covers no ref
    pub conditions: Option<Conditions>,
    /// The rules, as GitHub's REST API writes them (`{type: pull_request, parameters: {…}}`)
    pub rules: Option<Vec<Rule>>,
    /// Who may bypass the ruleset, as GitHub's REST API writes them
    pub bypass_actors: Option<Vec<BypassActor>>,
    /// A token to use instead of the integration's credentials
    pub token: Option<String>,
}

#[async_trait]
impl ActionHandler for GithubRulesetsCreate {
    type Input = Input;
    const ID: &'static str = "github:repo:rulesets:create";
    const DESCRIPTION: &'static str = "Creates or updates a ruleset of a GitHub repository";

    fn output_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": {
                "id": {"type": "number", "description": "The ruleset's id"},
            },
            "required": ["id"],
            "additionalProperties": false,
            "$schema": "http://json-schema.org/draft-07/schema#",
        }))
    }

    fn examples(&self) -> Vec<ActionExample> {
        vec![
            ActionExample {
                description: "Pull requests with one approval and green CI on the default branch.",
                example: "steps:\n  - action: github:repo:rulesets:create\n    name: Protect main\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      name: main\n      conditions:\n        ref_name:\n          include:\n            - ~DEFAULT_BRANCH\n          exclude: []\n      rules:\n        - type: deletion\n        - type: non_fast_forward\n        - type: pull_request\n          parameters:\n            required_approving_review_count: 1\n            dismiss_stale_reviews_on_push: true\n            require_code_owner_review: false\n            require_last_push_approval: false\n            required_review_thread_resolution: false\n        - type: required_status_checks\n          parameters:\n            strict_required_status_checks_policy: true\n            required_status_checks:\n              - context: ci\n",
            },
            ActionExample {
                description: "Version tags cannot be moved or deleted; repository admins may bypass.",
                example: "steps:\n  - action: github:repo:rulesets:create\n    name: Freeze version tags\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      name: version tags\n      target: tag\n      conditions:\n        ref_name:\n          include:\n            - refs/tags/v*\n          exclude: []\n      rules:\n        - type: update\n        - type: deletion\n      bypassActors:\n        - actor_id: 5\n          actor_type: RepositoryRole\n          bypass_mode: always\n",
            },
        ]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let target = Target::connect(&self.integrations, ctx, &input.repo_url, input.token.as_deref()).await?;
        let mut body = json!({
            "name": input.name,
            "target": input.target,
            "enforcement": input.enforcement,
        });
        if let Some(conditions) = &input.conditions {
            body["conditions"] = json!(conditions);
        }
        if let Some(rules) = &input.rules {
            body["rules"] = json!(rules);
        }
        if let Some(actors) = &input.bypass_actors {
            body["bypass_actors"] = json!(actors);
        }
        let (id, ensured) = target.api().ensure_ruleset(&input.name, &body).await?;
        ctx.logger
            .info(outcome(
                &format!("ruleset {} ({id}) of {}", input.name, target.full_name()),
                ensured,
            ))
            .await;
        ctx.output("id", json!(id));
        Ok(())
    }
}
