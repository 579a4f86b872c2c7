//! `github:actions:dispatch`: starts a GitHub Actions workflow that has a
//! `workflow_dispatch` trigger, on a branch or tag, with optional inputs.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::Target;
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::scm::ScmIntegrations;

pub struct GithubActionsDispatch {
    integrations: Arc<ScmIntegrations>,
}

impl GithubActionsDispatch {
    pub fn new(integrations: Arc<ScmIntegrations>) -> Self {
        GithubActionsDispatch { integrations }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// The repository, as `github.com?repo=reponame&owner=owner`
    pub repo_url: String,
    /// The workflow's file name (e.g. `ci.yaml`) or numeric id
    pub workflow_id: String,
    /// The branch or tag the workflow runs on
    pub branch_or_tag_name: String,
    /// The workflow's `workflow_dispatch` inputs, by name (GitHub accepts at most 25)
    pub workflow_inputs: Option<BTreeMap<String, String>>,
    /// Ask GitHub for the started run and set the `workflowRun*` outputs
    pub return_workflow_run_details: Option<bool>,
    /// A token to use instead of the integration's credentials
    pub token: Option<String>,
}

#[async_trait]
impl ActionHandler for GithubActionsDispatch {
    type Input = Input;
    const ID: &'static str = "github:actions:dispatch";
    const DESCRIPTION: &'static str = "Starts a GitHub Actions workflow run on a branch or tag";

    fn output_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": {
                "workflowRunId": {"type": "number", "description": "The id of the started run"},
                "workflowRunUrl": {"type": "string", "description": "The run's API URL"},
                "workflowRunHtmlUrl": {"type": "string", "description": "The run's page on GitHub"},
            },
            "additionalProperties": false,
            "$schema": "http://json-schema.org/draft-07/schema#",
        }))
    }

    fn examples(&self) -> Vec<ActionExample> {
        vec![
            ActionExample {
                description: "Start a workflow on main.",
                example: "steps:\n  - action: github:actions:dispatch\n    name: Start the CI workflow\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      workflowId: ci.yaml\n      branchOrTagName: main\n",
            },
            ActionExample {
                description: "Start a workflow with inputs and report the run.",
                example: "steps:\n  - action: github:actions:dispatch\n    name: Deploy the first version\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      workflowId: deploy.yaml\n      branchOrTagName: main\n      workflowInputs:\n        environment: staging\n      returnWorkflowRunDetails: true\n",
            },
        ]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        if input.workflow_inputs.as_ref().is_some_and(|i| i.len() > 25) {
            return Err(ActionError::InvalidInput(
                "workflowInputs has more than 25 properties, which GitHub refuses".into(),
            ));
        }
        let target = Target::connect(&self.integrations, ctx, &input.repo_url, input.token.as_deref()).await?;
        ctx.logger
            .info(format!(
                "Dispatching workflow {} of {} on {}",
                input.workflow_id,
                target.full_name(),
                input.branch_or_tag_name
            ))
            .await;
        let details = input.return_workflow_run_details == Some(true);
        let mut body = json!({"ref": input.branch_or_tag_name});
        if let Some(inputs) = &input.workflow_inputs {
            body["inputs"] = json!(inputs);
        }
        if details {
            body["return_run_details"] = json!(true);
        }
        let run = target.api().dispatch_workflow(&input.workflow_id, &body).await?;
        if let Some(run) = run {
            ctx.logger
                .info(format!(
                    "Started workflow run {} ({})",
                    run.workflow_run_id, run.html_url
                ))
                .await;
            ctx.output("workflowRunId", json!(run.workflow_run_id));
            ctx.output("workflowRunUrl", json!(run.run_url));
            ctx.output("workflowRunHtmlUrl", json!(run.html_url));
        } else {
            ctx.logger
                .info(format!("Workflow {} dispatched", input.workflow_id))
                .await;
        }
        Ok(())
    }
}
