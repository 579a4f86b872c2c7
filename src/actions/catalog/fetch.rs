//! `catalog:fetch`: reads entities from the catalog by reference.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::user_token;
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::catalog::CatalogClient;
use crate::domain::entity_ref::EntityRef;

pub struct CatalogFetch {
    catalog: Option<Arc<CatalogClient>>,
}

impl CatalogFetch {
    pub fn new(catalog: Option<Arc<CatalogClient>>) -> CatalogFetch {
        CatalogFetch { catalog }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// Entity reference of the entity to get
    pub entity_ref: Option<String>,
    /// Entity references of the entities to get
    pub entity_refs: Option<Vec<String>>,
    /// Allow the entity or entities to optionally exist. Default: false
    pub optional: Option<bool>,
    /// The default kind
    pub default_kind: Option<String>,
    /// The default namespace
    pub default_namespace: Option<String>,
}

/// catalog-model's `parseEntityRef` with defaults: a reference without a
/// kind needs `defaultKind`.
fn parse_ref(raw: &str, default_kind: Option<&str>, default_namespace: Option<&str>) -> Result<EntityRef, ActionError> {
    if !raw.contains(':') && default_kind.is_none() {
        return Err(ActionError::InvalidInput(format!(
            "Entity reference \"{raw}\" had missing or empty kind (e.g. did not start with \"component:\" or similar)"
        )));
    }
    EntityRef::parse(raw, default_kind.unwrap_or(""), default_namespace.unwrap_or("default"))
        .map_err(|e| ActionError::InvalidInput(e.to_string()))
}

/// `catalog:fetch` where no catalog is configured: every entity is missing.
fn without_catalog(
    ctx: &mut ActionContext,
    input: &Input,
    optional: bool,
    kind: Option<&str>,
    namespace: Option<&str>,
) -> Result<(), ActionError> {
    let missing = |raw: &str| {
        ActionError::Failed(format!(
            "Entity {raw} not found (no catalog is configured: set catalog.base_url)"
        ))
    };
    if let Some(raw) = &input.entity_ref {
        parse_ref(raw, kind, namespace)?;
        if !optional {
            return Err(missing(raw));
        }
        ctx.output("entity", Value::Null);
    }
    if let Some(raws) = &input.entity_refs {
        for raw in raws {
            parse_ref(raw, kind, namespace)?;
        }
        if let Some(raw) = raws.first().filter(|_| !optional) {
            return Err(missing(raw));
        }
        ctx.output("entities", Value::Array(vec![Value::Null; raws.len()]));
    }
    Ok(())
}

#[async_trait]
impl ActionHandler for CatalogFetch {
    type Input = Input;
    const ID: &'static str = "catalog:fetch";
    const DESCRIPTION: &'static str = "Returns entity or entities from the catalog by entity reference(s)";
    // As Backstage: it only reads, so a dry-run reads the configured catalog.
    const SUPPORTS_DRY_RUN: bool = true;

    fn output_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": {
                "entity": {"description": "Object containing same values used in the Entity schema. Only when used with `entityRef` parameter."},
                "entities": {"type": "array"},
            },
            "additionalProperties": false,
            "$schema": "http://json-schema.org/draft-07/schema#",
        }))
    }

    fn examples(&self) -> Vec<ActionExample> {
        vec![
            ActionExample {
                description: "Fetch entity by reference",
                example: "steps:\n  - action: catalog:fetch\n    id: fetch\n    name: Fetch catalog entity\n    input:\n      entityRef: component:default/name\n",
            },
            ActionExample {
                description: "Fetch multiple entities by reference",
                example: "steps:\n  - action: catalog:fetch\n    id: fetchMultiple\n    name: Fetch catalog entities\n    input:\n      entityRefs:\n        - component:default/name\n",
            },
        ]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        let optional = input.optional.unwrap_or(false);
        if input.entity_ref.is_none() && input.entity_refs.is_none() {
            if optional {
                return Ok(());
            }
            return Err(ActionError::Failed("Missing entity reference or references".into()));
        }
        let (kind, namespace) = (input.default_kind.as_deref(), input.default_namespace.as_deref());
        let Some(catalog) = &self.catalog else {
            // No catalog holds no entity: the step fails as Backstage's does
            // for a missing one (Error, 500 in a dry-run), naming the cause.
            return without_catalog(ctx, &input, optional, kind, namespace);
        };
        let token = user_token(ctx);
        if let Some(raw) = &input.entity_ref {
            let entity_ref = parse_ref(raw, kind, namespace)?;
            let entity = catalog
                .entity(&entity_ref, token.as_deref())
                .await
                .map_err(|e| ActionError::Failed(e.to_string()))?;
            if entity.is_none() && !optional {
                return Err(ActionError::Failed(format!("Entity {raw} not found")));
            }
            ctx.output("entity", entity.unwrap_or(Value::Null));
        }
        if let Some(raws) = &input.entity_refs {
            let refs = raws
                .iter()
                .map(|r| parse_ref(r, kind, namespace).map(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()?;
            let items = catalog
                .entities(&refs, token.as_deref())
                .await
                .map_err(|e| ActionError::Failed(e.to_string()))?;
            if !optional {
                if let Some((raw, _)) = raws.iter().zip(&items).find(|(_, item)| item.is_null()) {
                    return Err(ActionError::Failed(format!("Entity {raw} not found")));
                }
            }
            ctx.output("entities", Value::Array(items));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::workspace::testing::golden_action;
    use crate::actions::Action;

    #[test]
    fn matches_backstages_listing() {
        let action = CatalogFetch::new(None);
        let golden = golden_action("catalog:fetch");
        assert_eq!(Action::description(&action), golden["description"]);
        assert_eq!(Action::input_schema(&action), golden["schema"]["input"]);
        assert_eq!(Action::output_schema(&action), golden["schema"].get("output").cloned());
        assert_eq!(
            serde_json::to_value(Action::examples(&action)).unwrap(),
            golden["examples"]
        );
    }

    #[test]
    fn references_need_a_kind() {
        assert!(parse_ref("name", None, None).is_err());
        assert_eq!(
            parse_ref("name", Some("Component"), None).unwrap().to_string(),
            "Component:default/name"
        );
        assert_eq!(parse_ref("group:ns/x", None, None).unwrap().to_string(), "group:ns/x");
    }
}
