//! The scaffolder's permissions applied to requests, when a Backstage
//! permission backend is configured (`permission.enabled`): asked for
//! Backstage users on behalf of their token, each resource permission with
//! the resource as its `resourceRef` (a conditional policy decision comes
//! back to this service's `apply-conditions`). Static-token services and
//! anonymous callers keep the ownership rules alone. Decisions only ever
//! restrict: the ownership rules apply on top of them.

use serde_json::{json, Value};

use super::{ServiceError, TaskService};
use crate::auth::permissions::{resource_json, Check, Permission, PermissionError, Resource};
use crate::auth::Caller;
use crate::model::Task;
use crate::template::LoadedTemplate;

impl From<PermissionError> for ServiceError {
    fn from(e: PermissionError) -> ServiceError {
        ServiceError::Upstream {
            status: Some(503),
            message: e.to_string(),
        }
    }
}

fn denied(caller: &Caller, what: String) -> ServiceError {
    ServiceError::Forbidden(format!(
        "{what}: the permission policy does not allow it for {}",
        caller.subject().unwrap_or("this caller")
    ))
}

fn check(permission: Permission, resource: Option<Resource<'_>>) -> Check {
    Check {
        permission,
        resource: resource.as_ref().map(resource_json),
    }
}

impl TaskService {
    /// The answers to `checks` for `caller`; `None` when no permission
    /// backend is configured or the caller is not a Backstage user.
    async fn allowed(&self, caller: &Caller, checks: &[Check]) -> Result<Option<Vec<bool>>, ServiceError> {
        let (Some(client), Some(token)) = (&self.permissions, caller.backstage_token()) else {
            return Ok(None);
        };
        Ok(Some(client.check(token, checks).await?))
    }

    /// A basic permission (`scaffolder.task.create`, `scaffolder.template.dry-run`).
    pub(super) async fn require(&self, caller: &Caller, permission: Permission) -> Result<(), ServiceError> {
        match self.allowed(caller, &[check(permission, None)]).await? {
            Some(answers) if answers.first() != Some(&true) => Err(denied(caller, permission.name().to_owned())),
            _ => Ok(()),
        }
    }

    /// `scaffolder.task.read` or `scaffolder.task.cancel` on `task`.
    pub(super) async fn require_on_task(
        &self,
        caller: &Caller,
        permission: Permission,
        task: &Task,
    ) -> Result<(), ServiceError> {
        let resource = Resource::Task {
            created_by: task.created_by.as_deref(),
        };
        match self.allowed(caller, &[check(permission, Some(resource))]).await? {
            Some(answers) if answers.first() != Some(&true) => {
                Err(denied(caller, format!("{} on task {}", permission.name(), task.id)))
            }
            _ => Ok(()),
        }
    }

    /// Which parameter pages `caller` may see (`scaffolder.template.parameter.read`).
    pub(super) async fn visible_pages(
        &self,
        caller: &Caller,
        template: &LoadedTemplate,
    ) -> Result<Vec<bool>, ServiceError> {
        let pages = template.spec.parameter_pages();
        let checks: Vec<Check> = pages
            .iter()
            .map(|page| check(Permission::TemplateParameterRead, Some(Resource::Template(page))))
            .collect();
        Ok(self
            .allowed(caller, &checks)
            .await?
            .unwrap_or_else(|| vec![true; pages.len()]))
    }

    /// Everything a new task needs allowed, before it is stored (so a
    /// refused action never runs after other steps did):
    /// `scaffolder.task.create`; no value for a parameter page and no step
    /// the policy hides (`scaffolder.template.parameter.read`, `.step.read`);
    /// every step's action, with its input rendered from the parameters,
    /// allowed by `scaffolder.action.execute`.
    pub(super) async fn authorize_creation(
        &self,
        caller: &Caller,
        template: &LoadedTemplate,
        values: &Value,
    ) -> Result<(), ServiceError> {
        if self.permissions.is_none() || caller.backstage_token().is_none() {
            return Ok(());
        }
        let pages = template.spec.parameter_pages();
        let raw_steps = template
            .entity
            .pointer("/spec/steps")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let context = json!({ "parameters": values, "user": { "ref": caller.subject() } });
        let inputs: Vec<Value> = raw_steps
            .iter()
            .map(|step| {
                step.get("input")
                    .and_then(|input| self.renderer.render_value(input, &context))
                    .unwrap_or_else(|| json!({}))
            })
            .collect();
        // What each answer is about, for the refusal.
        let mut about: Vec<String> = vec![Permission::TaskCreate.name().to_owned()];
        let mut checks = vec![check(Permission::TaskCreate, None)];
        for page in &pages {
            let given: Vec<&str> = page
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| {
                    p.keys()
                        .filter(|k| values.get(k.as_str()).is_some())
                        .map(String::as_str)
                        .collect()
                })
                .unwrap_or_default();
            if given.is_empty() {
                continue;
            }
            about.push(format!(
                "{} for {} (page '{}')",
                Permission::TemplateParameterRead.name(),
                given.join(", "),
                page.get("title").and_then(Value::as_str).unwrap_or("untitled")
            ));
            checks.push(check(Permission::TemplateParameterRead, Some(Resource::Template(page))));
        }
        for (i, (step, input)) in raw_steps.iter().zip(&inputs).enumerate() {
            let id = step
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("step-{}", i + 1));
            let action = step.get("action").and_then(Value::as_str).unwrap_or_default();
            about.push(format!("{} for step {id}", Permission::TemplateStepRead.name()));
            checks.push(check(Permission::TemplateStepRead, Some(Resource::Template(step))));
            about.push(format!(
                "{} for {action} in step {id}",
                Permission::ActionExecute.name()
            ));
            checks.push(check(
                Permission::ActionExecute,
                Some(Resource::Action { action, input }),
            ));
        }
        let Some(answers) = self.allowed(caller, &checks).await? else {
            return Ok(());
        };
        match answers.iter().position(|allowed| !allowed) {
            Some(i) => Err(denied(caller, about.get(i).cloned().unwrap_or_default())),
            None => Ok(()),
        }
    }

    /// Whether the holder of `caller`'s token is allowed the (basic)
    /// permission `name` (approval gates that name a permission).
    pub(super) async fn allows_named(&self, caller: &Caller, name: &str) -> Result<bool, ServiceError> {
        match (&self.permissions, caller.backstage_token()) {
            (Some(client), Some(token)) => Ok(client.allows_named(token, name).await?),
            _ => Ok(false),
        }
    }
}
