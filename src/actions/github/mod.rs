//! The actions of Backstage's GitHub module besides publishing (which lives
//! in `publish`): one file per action, each calling GitHub only through
//! `scm::github::GithubClient`. None supports dry-run, as in Backstage: a
//! dry-run skips them and fakes their outputs from the output schema.
//!
//! Re-runs are idempotent: a step retried after it created its webhook,
//! environment, deploy key, autolink or ruleset finds it and updates it
//! (`scm::github::Ensured`) instead of failing or making a second one.

mod actions_dispatch;
mod autolinks_create;
mod branch_protection_create;
mod deploy_key_create;
mod environment_create;
mod issues_create;
mod issues_label;
mod pages_enable;
mod repo_create;
mod repo_push;
mod rulesets_create;
pub(crate) mod settings;
mod webhook;

use std::sync::Arc;

pub use actions_dispatch::GithubActionsDispatch;
pub use autolinks_create::GithubAutolinksCreate;
pub use branch_protection_create::GithubBranchProtectionCreate;
pub use deploy_key_create::GithubDeployKeyCreate;
pub use environment_create::GithubEnvironmentCreate;
pub use issues_create::GithubIssuesCreate;
pub use issues_label::GithubIssuesLabel;
pub use pages_enable::GithubPagesEnable;
pub use repo_create::GithubRepoCreate;
pub use repo_push::GithubRepoPush;
pub use rulesets_create::GithubRulesetsCreate;
pub use webhook::GithubWebhook;

use crate::actions::{Action, ActionContext, ActionError};
use crate::scm::github::{Ensured, GithubClient};
use crate::scm::{ScmIntegrations, ScmTarget};

/// The twelve actions, sharing the integrations.
pub fn actions(integrations: &Arc<ScmIntegrations>) -> Vec<Arc<dyn Action>> {
    let i = || integrations.clone();
    vec![
        Arc::new(GithubActionsDispatch::new(i())),
        Arc::new(GithubAutolinksCreate::new(i())),
        Arc::new(GithubBranchProtectionCreate::new(i())),
        Arc::new(GithubDeployKeyCreate::new(i())),
        Arc::new(GithubEnvironmentCreate::new(i())),
        Arc::new(GithubIssuesCreate::new(i())),
        Arc::new(GithubIssuesLabel::new(i())),
        Arc::new(GithubPagesEnable::new(i())),
        Arc::new(GithubRepoCreate::new(i())),
        Arc::new(GithubRepoPush::new(i())),
        Arc::new(GithubRulesetsCreate::new(i())),
        Arc::new(GithubWebhook::new(i())),
    ]
}

/// The repository a `repoUrl` names on a GitHub host, and a client
/// authenticated for it (the `token` input, else the integration's token or
/// GitHub App installation).
pub(crate) struct Target {
    pub client: GithubClient,
    pub owner: String,
    pub repo: String,
}

impl Target {
    pub async fn connect(
        integrations: &ScmIntegrations,
        ctx: &ActionContext,
        repo_url: &str,
        token: Option<&str>,
    ) -> Result<Target, ActionError> {
        let spec = integrations
            .parse_repo_url(repo_url)
            .map_err(|e| ActionError::InvalidInput(e.to_string()))?;
        let Some(owner) = spec.owner.clone().filter(|o| !o.is_empty()) else {
            return Err(ActionError::InvalidInput(format!(
                "No owner provided for repo {repo_url}"
            )));
        };
        let host = match integrations.target(&spec.host) {
            Some(ScmTarget::Github(host)) => host,
            Some(ScmTarget::Local(_)) => {
                return Err(ActionError::InvalidInput(format!(
                    "{} is the local git host, which has no GitHub API; this action needs a GitHub host",
                    spec.host
                )))
            }
            None => {
                return Err(ActionError::InvalidInput(format!(
                    "No matching integration configuration for host {}, please check your integrations config",
                    spec.host
                )))
            }
        };
        let client = GithubClient::connect(host, token, ctx.cancel.clone()).await?;
        Ok(Target {
            client,
            owner,
            repo: spec.repo,
        })
    }

    pub fn api(&self) -> crate::scm::github::RepoApi<'_> {
        self.client.repo(&self.owner, &self.repo)
    }

    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }
}

/// "Created …" or "… already existed; updated" for the log.
pub(crate) fn outcome(what: &str, ensured: Ensured) -> String {
    match ensured {
        Ensured::Created => format!("Created {what}"),
        Ensured::Existing => format!(
            "{what} already existed (an earlier attempt or someone else made it); brought it to the requested settings"
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// Descriptions are ours; everything else must be Backstage's.
    fn without_descriptions(mut schema: Value) -> Value {
        match &mut schema {
            Value::Object(map) => {
                map.remove("description");
                for value in map.values_mut() {
                    *value = without_descriptions(value.take());
                }
                if let Some(Value::Array(required)) = map.get_mut("required") {
                    required.sort_by_key(|v| v.to_string());
                }
            }
            Value::Array(items) => {
                for item in items.iter_mut() {
                    *item = without_descriptions(item.take());
                }
            }
            _ => {}
        }
        schema
    }

    #[test]
    fn the_twelve_actions_have_backstages_ids_schemas_and_no_dry_run() {
        let golden = crate::test_data::test_data_json("api-golden/actions-list-modules.json");
        let list = golden["response"]["body"].as_array().cloned().unwrap_or_default();
        let actions = actions(&Arc::default());
        assert_eq!(actions.len(), 12);
        for action in actions {
            let id = action.id();
            let theirs = list
                .iter()
                .find(|a| a["id"] == id)
                .unwrap_or_else(|| panic!("{id} is not one of Backstage's actions"));
            assert_eq!(
                without_descriptions(action.input_schema()),
                without_descriptions(theirs["schema"]["input"].clone()),
                "{id} input schema"
            );
            assert_eq!(
                action.output_schema().map(without_descriptions),
                theirs["schema"].get("output").cloned().map(without_descriptions),
                "{id} output schema"
            );
            assert!(!action.supports_dry_run(), "{id}: Backstage's does not support dry-run");
            assert!(!action.examples().is_empty(), "{id} has examples");
            for example in action.examples() {
                let parsed: serde_norway::Value = serde_norway::from_str(example.example)
                    .unwrap_or_else(|e| panic!("{id} example {:?} does not parse: {e}", example.description));
                let steps = parsed["steps"].as_sequence().cloned().unwrap_or_default();
                let step = steps
                    .iter()
                    .find(|s| s["action"].as_str() == Some(id))
                    .unwrap_or_else(|| panic!("{id} example {:?} does not use the action", example.description));
                let input: Value = serde_json::to_value(&step["input"]).unwrap_or(Value::Null);
                // Templated values are strings until rendered; the rest must validate.
                if !example.example.contains("${{") {
                    assert!(
                        crate::validation::validate(&action.input_schema(), &input).is_ok(),
                        "{id} example {:?} is not valid input",
                        example.description
                    );
                }
            }
        }
    }
}
