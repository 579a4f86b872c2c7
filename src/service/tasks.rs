use serde_json::{json, Map, Value};

use super::ServiceError;
use crate::model::{Task, TaskId};
use crate::store::{CancelOutcome, ListQuery, RetryOutcome, Store};
use crate::template::{validate_parameters, EntityRef, LoadedTemplate, Templates};
use crate::templating::Renderer;

/// A validated request to start a task.
#[derive(Debug, Clone)]
pub struct CreateTask {
    pub template_ref: String,
    pub values: Value,
    pub secrets: Option<Map<String, Value>>,
    pub created_by: Option<String>,
}

#[derive(Clone)]
pub struct TaskService {
    store: Store,
    templates: Templates,
    renderer: std::sync::Arc<Renderer>,
}

impl TaskService {
    pub fn new(store: Store, templates: Templates, renderer: std::sync::Arc<Renderer>) -> TaskService {
        TaskService {
            store,
            templates,
            renderer,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Finds a template by a (possibly short) reference.
    pub async fn template(&self, raw_ref: &str) -> Result<LoadedTemplate, ServiceError> {
        let entity_ref =
            EntityRef::parse(raw_ref, "template", "default").map_err(|e| ServiceError::Input(e.to_string()))?;
        if !entity_ref.kind.eq_ignore_ascii_case("template") {
            return Err(ServiceError::Input(format!(
                "Invalid kind, only 'Template' kind is supported, got '{}'",
                entity_ref.kind
            )));
        }
        self.templates
            .find(&entity_ref)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("Template {entity_ref} not found")))
    }

    /// `{title, description, steps:[{title, description?, schema}]}` for the form.
    pub async fn parameter_schema(&self, raw_ref: &str) -> Result<Value, ServiceError> {
        let template = self.template(raw_ref).await?;
        let metadata = template.metadata();
        let steps: Vec<Value> = template
            .spec
            .parameter_pages()
            .into_iter()
            .map(|page| {
                let mut step = Map::new();
                step.insert(
                    "title".into(),
                    page.get("title")
                        .cloned()
                        .unwrap_or_else(|| json!("Please enter the following information")),
                );
                if let Some(description) = page.get("description") {
                    step.insert("description".into(), description.clone());
                }
                step.insert("schema".into(), page.clone());
                Value::Object(step)
            })
            .collect();
        let mut out = Map::new();
        out.insert(
            "title".into(),
            metadata
                .get("title")
                .or_else(|| metadata.get("name"))
                .cloned()
                .unwrap_or(Value::Null),
        );
        if let Some(description) = metadata.get("description") {
            out.insert("description".into(), description.clone());
        }
        if let Some(presentation) = template.entity.pointer("/spec/presentation") {
            out.insert("presentation".into(), presentation.clone());
        }
        if let Some(review) = template.entity.pointer("/spec/EXPERIMENTAL_formDecorators") {
            out.insert("EXPERIMENTAL_formDecorators".into(), review.clone());
        }
        out.insert("steps".into(), Value::Array(steps));
        Ok(Value::Object(out))
    }

    /// Values checked against every visible parameter page.
    pub fn validate_values(&self, template: &LoadedTemplate, values: &Value) -> Result<Value, ServiceError> {
        let pages = template.spec.parameter_pages();
        let context = json!({ "parameters": values });
        validate_parameters(&pages, values, |page| match page.get("when") {
            None => true,
            Some(condition) => match self.renderer.render_value(condition, &context) {
                None | Some(Value::Null) | Some(Value::Bool(false)) => false,
                Some(Value::String(s)) => !s.is_empty() && s != "false",
                Some(_) => true,
            },
        })
        .map_err(ServiceError::Validation)
    }

    pub async fn create(&self, request: CreateTask) -> Result<TaskId, ServiceError> {
        let template = self.template(&request.template_ref).await?;
        let values = self.validate_values(&template, &request.values)?;
        let user = match &request.created_by {
            Some(user_ref) => json!({ "ref": user_ref }),
            None => json!({}),
        };
        let spec = template.task_spec(&values, &user);
        let secrets = request.secrets.map(Value::Object);
        let id = self
            .store
            .create_task(&spec, secrets.as_ref(), request.created_by.as_deref())
            .await?;
        tracing::info!(task_id = %id, template = %template.entity_ref, "task created");
        Ok(id)
    }

    pub async fn get(&self, id: &str) -> Result<Task, ServiceError> {
        let not_found = || ServiceError::NotFound(format!("No task with id '{id}' found"));
        let task_id = TaskId::parse(id).ok_or_else(not_found)?;
        self.store.get_task(task_id).await?.ok_or_else(not_found)
    }

    pub async fn list(&self, query: &ListQuery) -> Result<(Vec<Task>, i64), ServiceError> {
        Ok(self.store.list_tasks(query).await?)
    }

    /// Cancels a task. A finished task is left as it is and the answer says so.
    pub async fn cancel(&self, id: &str) -> Result<CancelOutcome, ServiceError> {
        let task = self.get(id).await?;
        match self.store.cancel_task(task.id).await? {
            CancelOutcome::NotFound => Err(ServiceError::NotFound(format!("No task with id '{id}' found"))),
            outcome => Ok(outcome),
        }
    }

    pub async fn retry(&self, id: &str, secrets: Option<Map<String, Value>>) -> Result<TaskId, ServiceError> {
        let task = self.get(id).await?;
        let secrets = secrets.map(Value::Object);
        match self.store.retry_task(task.id, secrets.as_ref()).await? {
            RetryOutcome::Retried => Ok(task.id),
            RetryOutcome::NotFinished(status) => Err(ServiceError::Conflict(format!(
                "Task {id} cannot be retried while it is {status}; only finished tasks can be retried"
            ))),
            RetryOutcome::NotFound => Err(ServiceError::NotFound(format!("No task with id '{id}' found"))),
        }
    }
}
