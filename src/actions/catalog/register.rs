//! `catalog:register`: registers a catalog descriptor URL as a location in
//! the Backstage catalog.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::user_token;
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::catalog::{stringify_entity, CatalogClient};

pub struct CatalogRegister {
    catalog: Option<Arc<CatalogClient>>,
}

impl CatalogRegister {
    pub fn new(catalog: Option<Arc<CatalogClient>>) -> CatalogRegister {
        CatalogRegister { catalog }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ByUrl {
    /// An absolute URL pointing to the catalog info file location
    pub catalog_info_url: String,
    /// Permit the registered location to optionally exist. Default: false
    pub optional: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ByRepo {
    /// An absolute URL pointing to the root of a repository directory tree
    pub repo_contents_url: String,
    /// A relative path from the repo root pointing to the catalog info file, defaults to /catalog-info.yaml
    pub catalog_info_path: Option<String>,
    /// Permit the registered location to optionally exist. Default: false
    pub optional: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Input {
    Url(ByUrl),
    Repo(ByRepo),
}

/// `repoContentsUrl` + `catalogInfoPath`, the path taken from the repository
/// root as Backstage's integrations resolve it.
pub fn catalog_info_url(repo_contents_url: &str, catalog_info_path: Option<&str>) -> String {
    let path = catalog_info_path.unwrap_or("/catalog-info.yaml");
    format!(
        "{}/{}",
        repo_contents_url.trim_end_matches('/'),
        path.trim_start_matches("./").trim_start_matches('/')
    )
}

#[async_trait]
impl ActionHandler for CatalogRegister {
    type Input = Input;
    const ID: &'static str = "catalog:register";
    const DESCRIPTION: &'static str =
        "Registers entities from a catalog descriptor file in the workspace into the software catalog.";

    fn examples(&self) -> Vec<ActionExample> {
        vec![ActionExample {
            description: "Register with the catalog",
            example: "steps:\n  - action: catalog:register\n    id: register-with-catalog\n    name: Register with the catalog\n    input:\n      catalogInfoUrl: http://github.com/backstage/backstage/blob/master/catalog-info.yaml\n",
        }]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let (url, optional) = match input {
            Input::Url(i) => (i.catalog_info_url, i.optional.unwrap_or(false)),
            Input::Repo(i) => (
                catalog_info_url(&i.repo_contents_url, i.catalog_info_path.as_deref()),
                i.optional.unwrap_or(false),
            ),
        };
        let Some(catalog) = &self.catalog else {
            if optional {
                ctx.logger
                    .info(format!(
                        "No catalog is configured (catalog.base_url); would register {url} in the catalog. Skipped because the location is optional"
                    ))
                    .await;
                ctx.output("catalogInfoUrl", Value::String(url));
                return Ok(());
            }
            return Err(ActionError::Failed(format!(
                "Cannot register {url}: no catalog is configured. Set catalog.base_url, or mark the step `optional: true`"
            )));
        };
        ctx.logger.info(format!("Registering {url} in the catalog")).await;
        let token = user_token(ctx);
        match catalog.add_location(&url, false, token.as_deref()).await {
            Ok(_) => {}
            // A re-run of the task finds its own location: that is success.
            Err(e) if e.status() == Some(409) => {
                ctx.logger
                    .info(format!("{url} is already registered in the catalog"))
                    .await;
            }
            Err(e) if optional => {
                ctx.logger
                    .warn(format!("Skipping the registration of {url}: {e}"))
                    .await
            }
            Err(e) => return Err(ActionError::Failed(e.to_string())),
        }
        match catalog.add_location(&url, true, token.as_deref()).await {
            Ok(result) => {
                let entities = result
                    .get("entities")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let generated = |e: &&Value| {
                    e.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.starts_with("generated-"))
                };
                let chosen = entities
                    .iter()
                    .find(|e| !generated(e) && e.get("kind").and_then(Value::as_str) == Some("Component"))
                    .or_else(|| entities.iter().find(|e| !generated(e)))
                    .or_else(|| entities.first());
                if let Some(entity_ref) = chosen.and_then(stringify_entity) {
                    ctx.output("entityRef", Value::String(entity_ref));
                }
            }
            Err(e) if optional => ctx.logger.warn(format!("Cannot read the entities of {url}: {e}")).await,
            Err(e) => return Err(ActionError::Failed(e.to_string())),
        }
        ctx.output("catalogInfoUrl", Value::String(url));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::actions::workspace::testing::{golden_action, TestDirs};
    use crate::actions::Action;

    #[test]
    fn matches_backstages_listing() {
        let action = CatalogRegister::new(None);
        let golden = golden_action("catalog:register");
        assert_eq!(Action::description(&action), golden["description"]);
        assert_eq!(Action::input_schema(&action), golden["schema"]["input"]);
        assert_eq!(
            serde_json::to_value(Action::examples(&action)).unwrap(),
            golden["examples"]
        );
        assert_eq!(Action::output_schema(&action), None);
    }

    #[test]
    fn catalog_info_urls_join_the_repository_root() {
        assert_eq!(
            catalog_info_url("https://github.com/o/r/blob/main", None),
            "https://github.com/o/r/blob/main/catalog-info.yaml"
        );
        assert_eq!(
            catalog_info_url("https://github.com/o/r/blob/main/", Some("./sub/catalog.yaml")),
            "https://github.com/o/r/blob/main/sub/catalog.yaml"
        );
    }

    #[tokio::test]
    async fn without_a_catalog_only_optional_registrations_succeed() {
        let t = TestDirs::new();
        let action = CatalogRegister::new(None);
        let out = t
            .run(
                &action,
                json!({"catalogInfoUrl": "https://x/catalog-info.yaml", "optional": true}),
            )
            .await
            .unwrap();
        assert_eq!(out["catalogInfoUrl"], json!("https://x/catalog-info.yaml"));
        assert!(t
            .log_lines()
            .iter()
            .any(|l| l.contains("would register https://x/catalog-info.yaml")));
        let err = t
            .run(&action, json!({"repoContentsUrl": "https://x/blob/main"}))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no catalog is configured"), "{err}");
    }
}
