use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use url::Url;

use super::EntityRef;

pub const API_VERSION: &str = "scaffolder.backstage.io/v1beta3";

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{0}")]
    Invalid(String),
}

/// One step of `spec.steps`. Keys we do not interpret are kept so that the
/// task spec echoes the template faithfully.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub if_: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub each: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct TemplateSpec {
    /// One parameter page (object) or several (array), as written.
    pub parameters: Value,
    pub steps: Vec<Step>,
    pub output: Option<Value>,
    pub recovery: Option<Value>,
    /// `spec.secrets.schema`: what `secrets` must hold on create, retry and dry-run.
    pub secrets_schema: Option<Value>,
}

impl TemplateSpec {
    /// Parameter pages as a list (a single object is one page).
    pub fn parameter_pages(&self) -> Vec<&Value> {
        match &self.parameters {
            Value::Array(pages) => pages.iter().collect(),
            Value::Null => Vec::new(),
            page => vec![page],
        }
    }

    /// Steps with Backstage's defaults: `id` = `step-<n>`, `name` = the action id.
    pub fn normalized_steps(&self) -> Vec<Step> {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let mut step = step.clone();
                if step.id.is_none() {
                    step.id = Some(format!("step-{}", i + 1));
                }
                if step.name.is_none() {
                    step.name = Some(step.action.clone());
                }
                step
            })
            .collect()
    }
}

/// A parsed template entity and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedTemplate {
    pub entity_ref: EntityRef,
    /// The whole entity as JSON, metadata namespace filled in.
    pub entity: Value,
    pub spec: TemplateSpec,
    /// Location of the template file; relative `fetch:*` URLs resolve against it.
    pub base_url: Url,
    /// The directory holding the template file, for templates read from disk.
    pub dir: Option<PathBuf>,
}

fn invalid(msg: impl Into<String>) -> TemplateError {
    TemplateError::Invalid(msg.into())
}

impl LoadedTemplate {
    /// Validates the entity's shape and builds the model. `base_url` is the
    /// template file's URL.
    pub fn from_entity(
        mut entity: Value,
        base_url: Url,
        dir: Option<PathBuf>,
    ) -> Result<LoadedTemplate, TemplateError> {
        let obj = entity
            .as_object_mut()
            .ok_or_else(|| invalid("template must be an object"))?;
        match obj.get("apiVersion").and_then(Value::as_str) {
            Some(API_VERSION) => {}
            Some(other) => {
                return Err(invalid(format!(
                    "unsupported apiVersion {other:?}, expected {API_VERSION}"
                )))
            }
            None => return Err(invalid("template has no apiVersion")),
        }
        if obj.get("kind").and_then(Value::as_str) != Some("Template") {
            return Err(invalid("entity kind must be Template"));
        }
        let metadata = obj
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| invalid("template has no metadata"))?;
        let name = metadata
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid("template has no metadata.name"))?
            .to_owned();
        let namespace = match metadata.get("namespace").and_then(Value::as_str) {
            Some(ns) => ns.to_owned(),
            None => {
                metadata.insert("namespace".into(), Value::String("default".into()));
                "default".to_owned()
            }
        };
        let spec = obj
            .get("spec")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("template has no spec"))?;
        let steps_value = spec.get("steps").cloned().unwrap_or_else(|| json!([]));
        let steps_array = steps_value
            .as_array()
            .ok_or_else(|| invalid("spec.steps must be an array"))?;
        let mut steps = Vec::with_capacity(steps_array.len());
        for (i, raw) in steps_array.iter().enumerate() {
            let step: Step =
                serde_json::from_value(raw.clone()).map_err(|e| invalid(format!("spec.steps[{i}] is invalid: {e}")))?;
            if step.action.is_empty() {
                return Err(invalid(format!("spec.steps[{i}].action must not be empty")));
            }
            steps.push(step);
        }
        let parameters = spec.get("parameters").cloned().unwrap_or(Value::Null);
        match &parameters {
            Value::Null | Value::Object(_) => {}
            Value::Array(pages) if pages.iter().all(Value::is_object) => {}
            _ => return Err(invalid("spec.parameters must be an object or an array of objects")),
        }
        let spec = TemplateSpec {
            parameters,
            steps,
            output: spec.get("output").cloned(),
            recovery: spec.get("EXPERIMENTAL_recovery").cloned(),
            secrets_schema: spec.get("secrets").and_then(|s| s.get("schema")).cloned(),
        };
        Ok(LoadedTemplate {
            entity_ref: EntityRef {
                kind: "template".into(),
                namespace,
                name,
            },
            entity,
            spec,
            base_url,
            dir,
        })
    }

    pub fn metadata(&self) -> Value {
        self.entity.get("metadata").cloned().unwrap_or_else(|| json!({}))
    }

    /// The task spec Backstage stores for a run of this template.
    pub fn task_spec(&self, values: &Value, user: &Value) -> Value {
        let mut spec = Map::new();
        spec.insert("apiVersion".into(), Value::String(API_VERSION.into()));
        spec.insert(
            "steps".into(),
            serde_json::to_value(self.spec.normalized_steps()).unwrap_or_else(|_| json!([])),
        );
        spec.insert("output".into(), self.spec.output.clone().unwrap_or_else(|| json!({})));
        spec.insert("parameters".into(), values.clone());
        spec.insert("user".into(), user.clone());
        spec.insert(
            "templateInfo".into(),
            json!({
                "entityRef": self.entity_ref.to_string(),
                "baseUrl": self.base_url.as_str(),
                "entity": { "metadata": self.metadata() },
            }),
        );
        if let Some(recovery) = &self.spec.recovery {
            spec.insert("EXPERIMENTAL_recovery".into(), recovery.clone());
        }
        Value::Object(spec)
    }
}
