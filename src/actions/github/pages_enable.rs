//! `github:pages:enable`: turns GitHub Pages on, built by a workflow or
//! from a branch and folder; when Pages are on already, sets them to the
//! requested build type and source.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{outcome, Target};
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::scm::ScmIntegrations;

pub struct GithubPagesEnable {
    integrations: Arc<ScmIntegrations>,
}

impl GithubPagesEnable {
    pub fn new(integrations: Arc<ScmIntegrations>) -> Self {
        GithubPagesEnable { integrations }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuildType {
    Legacy,
    Workflow,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
pub enum SourcePath {
    #[serde(rename = "/")]
    Root,
    #[serde(rename = "/docs")]
    Docs,
}

fn default_build_type() -> BuildType {
    BuildType::Workflow
}
fn default_branch() -> String {
    "main".into()
}
fn default_path() -> SourcePath {
    SourcePath::Root
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// The repository, as `github.com?repo=reponame&owner=owner`
    pub repo_url: String,
    /// `workflow` (built by a GitHub Actions workflow) or `legacy` (built from a branch). Default: `workflow`
    #[serde(default = "default_build_type")]
    pub build_type: BuildType,
    /// The branch the site is built from. Default: `main`
    #[serde(default = "default_branch")]
    pub source_branch: String,
    /// The folder of that branch: `/` or `/docs`. Default: `/`
    #[serde(default = "default_path")]
    pub source_path: SourcePath,
    /// A token to use instead of the integration's credentials
    pub token: Option<String>,
}

#[async_trait]
impl ActionHandler for GithubPagesEnable {
    type Input = Input;
    const ID: &'static str = "github:pages:enable";
    const DESCRIPTION: &'static str = "Turns on GitHub Pages for a repository";

    fn examples(&self) -> Vec<ActionExample> {
        vec![
            ActionExample {
                description: "Pages built by a workflow.",
                example: "steps:\n  - action: github:pages:enable\n    name: Publish the docs site\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n",
            },
            ActionExample {
                description: "Pages built from the docs folder of main.",
                example: "steps:\n  - action: github:pages:enable\n    name: Publish the docs site\n    input:\n      repoUrl: github.com?repo=repo&owner=owner\n      buildType: legacy\n      sourceBranch: main\n      sourcePath: /docs\n",
            },
        ]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let target = Target::connect(&self.integrations, ctx, &input.repo_url, input.token.as_deref()).await?;
        let body = json!({
            "build_type": input.build_type,
            "source": {"branch": input.source_branch, "path": input.source_path},
        });
        let ensured = target.api().enable_pages(&body).await?;
        ctx.logger
            .info(outcome(&format!("GitHub Pages of {}", target.full_name()), ensured))
            .await;
        Ok(())
    }
}
