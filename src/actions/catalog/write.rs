//! `catalog:write`: writes an entity as YAML into the workspace.

use async_trait::async_trait;
use schemars::gen::SchemaGenerator;
use schemars::schema::{InstanceType, ObjectValidation, Schema, SchemaObject};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::actions::workspace::resolve_safe_child_path;
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};

pub struct CatalogWrite;

/// Any object (`{"type": "object", "additionalProperties": {}}`).
fn object_schema(_: &mut SchemaGenerator) -> Schema {
    SchemaObject {
        instance_type: Some(InstanceType::Object.into()),
        object: Some(Box::new(ObjectValidation {
            additional_properties: Some(Box::new(Schema::Object(SchemaObject::default()))),
            ..Default::default()
        })),
        ..Default::default()
    }
    .into()
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    /// Defaults to catalog-info.yaml
    pub file_path: Option<String>,
    /// You can provide the same values used in the Entity schema.
    #[schemars(schema_with = "object_schema")]
    pub entity: Map<String, Value>,
}

#[async_trait]
impl ActionHandler for CatalogWrite {
    type Input = Input;
    const ID: &'static str = "catalog:write";
    const DESCRIPTION: &'static str = "Writes the catalog-info.yaml for your template";
    const SUPPORTS_DRY_RUN: bool = true;

    fn examples(&self) -> Vec<ActionExample> {
        vec![ActionExample {
            description: "Write a catalog yaml file",
            example: "steps:\n  - action: catalog:write\n    id: create-catalog-info-file\n    name: Create catalog file\n    input:\n      entity:\n        apiVersion: backstage.io/v1alpha1\n        kind: Component\n        metadata:\n          name: test\n          annotations: {}\n        spec:\n          type: service\n          lifecycle: production\n          owner: default/owner\n",
        }]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: Input) -> Result<(), ActionError> {
        ctx.logger.info("Writing catalog-info.yaml").await;
        let relative = input.file_path.as_deref().unwrap_or("catalog-info.yaml");
        let path = resolve_safe_child_path(&ctx.workspace, relative)?;
        let mut entity = input.entity;
        // As Backstage: the entity names the template that made it.
        if let Some(template) = ctx.run.template_info.get("entityRef").and_then(Value::as_str) {
            if let Some(metadata) = entity.get_mut("metadata").and_then(Value::as_object_mut) {
                let annotations = metadata
                    .entry("annotations")
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Some(annotations) = annotations.as_object_mut() {
                    annotations.insert(
                        "backstage.io/source-template".into(),
                        Value::String(template.to_owned()),
                    );
                }
            }
        }
        let yaml = serde_norway::to_string(&Value::Object(entity))
            .map_err(|e| ActionError::InvalidInput(format!("the entity cannot be written as YAML: {e}")))?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(ActionError::io(format!("cannot create the directory of {relative}")))?;
        }
        std::fs::write(&path, yaml).map_err(ActionError::io(format!("cannot write {relative}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::actions::workspace::testing::{assert_matches_backstage, TestDirs};

    #[test]
    fn matches_backstages_listing() {
        assert_matches_backstage(&CatalogWrite);
    }

    #[tokio::test]
    async fn the_entity_names_the_template_that_made_it() {
        let t = TestDirs::new();
        let mut ctx = t.context();
        ctx.run.template_info = json!({"entityRef": "template:default/dry-run"});
        let entity = json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
            "metadata": {"name": "svc", "annotations": {"github.com/project-slug": "acme/svc"}}});
        crate::actions::Action::run(&CatalogWrite, &mut ctx, json!({"entity": entity}))
            .await
            .unwrap();
        assert_eq!(
            t.read("catalog-info.yaml"),
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: svc\n  annotations:\n    \
             github.com/project-slug: acme/svc\n    backstage.io/source-template: template:default/dry-run\n"
        );
    }

    #[tokio::test]
    async fn writes_the_entity_as_yaml_inside_the_workspace() {
        let t = TestDirs::new();
        let entity = json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "svc"}});
        t.run(&CatalogWrite, json!({"entity": entity})).await.unwrap();
        let written: Value = serde_norway::from_str(&t.read("catalog-info.yaml")).unwrap();
        assert_eq!(written, entity);
        t.run(&CatalogWrite, json!({"entity": entity, "filePath": "sub/c.yaml"}))
            .await
            .unwrap();
        assert!(t.exists("sub/c.yaml"));
        let err = t
            .run(&CatalogWrite, json!({"entity": entity, "filePath": "../out.yaml"}))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("outside its parent"), "{err}");
    }
}
