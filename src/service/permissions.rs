//! The scaffolder's permissions applied to requests, when a Backstage
//! permission backend is configured (`permission.enabled`): asked for
//! Backstage users on behalf of their token; static-token services and
//! anonymous callers keep the ownership rules alone. Decisions only ever
//! restrict: the ownership rules apply on top of them.

use serde_json::{json, Value};

use super::{ServiceError, TaskService};
use crate::auth::permissions::{Decision, Permission, PermissionError, Resource};
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

impl TaskService {
    /// The decisions on `permissions` for `caller`; `None` when no
    /// permission backend is configured or the caller is not a Backstage user.
    pub(super) async fn decisions(
        &self,
        caller: &Caller,
        permissions: &[Permission],
    ) -> Result<Option<Vec<Decision>>, ServiceError> {
        let (Some(client), Some(token)) = (&self.permissions, caller.backstage_token()) else {
            return Ok(None);
        };
        Ok(Some(client.authorize(token, permissions).await?))
    }

    /// A basic permission (`scaffolder.task.create`, `scaffolder.template.dry-run`).
    pub(super) async fn require(&self, caller: &Caller, permission: Permission) -> Result<(), ServiceError> {
        match self.decisions(caller, &[permission]).await? {
            Some(d) if d.first() != Some(&Decision::Allow) => Err(denied(caller, permission.name().to_owned())),
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
        if let Some(d) = self.decisions(caller, &[permission]).await? {
            let resource = Resource::Task {
                created_by: task.created_by.as_deref(),
            };
            if !d.first().is_some_and(|d| d.authorizes(&resource)) {
                return Err(denied(caller, format!("{} on task {}", permission.name(), task.id)));
            }
        }
        Ok(())
    }

    /// The `createdBy` values a conditional `scaffolder.task.read` limits a
    /// listing to (`None`: no limit); a denial refuses the listing.
    pub(super) async fn readable_creators(&self, caller: &Caller) -> Result<Option<Vec<String>>, ServiceError> {
        let Some(d) = self.decisions(caller, &[Permission::TaskRead]).await? else {
            return Ok(None);
        };
        match d.first() {
            Some(Decision::Allow) => Ok(None),
            Some(Decision::Conditional(crate::auth::permissions::Criteria::Rule { rule, params, .. }))
                if rule == "IS_TASK_OWNER" =>
            {
                Ok(Some(
                    params
                        .get("createdBy")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                        .unwrap_or_default(),
                ))
            }
            Some(Decision::Conditional(_)) => Err(denied(
                caller,
                "scaffolder.task.read (a conditional decision other than IS_TASK_OWNER cannot filter a listing)".into(),
            )),
            _ => Err(denied(caller, "scaffolder.task.read".into())),
        }
    }

    /// Which parameter pages `caller` may see (`scaffolder.template.parameter.read`).
    pub(super) async fn visible_pages(
        &self,
        caller: &Caller,
        template: &LoadedTemplate,
    ) -> Result<Vec<bool>, ServiceError> {
        let pages = template.spec.parameter_pages();
        Ok(
            match self.decisions(caller, &[Permission::TemplateParameterRead]).await? {
                None => vec![true; pages.len()],
                Some(d) => pages
                    .iter()
                    .map(|page| d.first().is_some_and(|d| d.authorizes(&Resource::Template(page))))
                    .collect(),
            },
        )
    }

    /// Everything a new task needs allowed, before it is stored (so a
    /// refused action never gets to run after other steps did):
    /// `scaffolder.task.create`; no value for a parameter page and no step
    /// the policy hides; every step's action (with its input rendered
    /// from the parameters) allowed by `scaffolder.action.execute`.
    pub(super) async fn authorize_creation(
        &self,
        caller: &Caller,
        template: &LoadedTemplate,
        values: &Value,
    ) -> Result<(), ServiceError> {
        let wanted = [
            Permission::TaskCreate,
            Permission::TemplateParameterRead,
            Permission::TemplateStepRead,
            Permission::ActionExecute,
        ];
        let Some(d) = self.decisions(caller, &wanted).await? else {
            return Ok(());
        };
        let [create, parameters, steps, actions] = <[Decision; 4]>::try_from(d)
            .map_err(|_| ServiceError::Internal("the permission backend gave too few decisions".into()))?;
        if create != Decision::Allow {
            return Err(denied(caller, Permission::TaskCreate.name().to_owned()));
        }
        for page in template.spec.parameter_pages() {
            if parameters.authorizes(&Resource::Template(&page)) {
                continue;
            }
            let given: Vec<&String> = page
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().filter(|k| values.get(k.as_str()).is_some()).collect())
                .unwrap_or_default();
            if !given.is_empty() {
                return Err(denied(
                    caller,
                    format!(
                        "{} for {} (page '{}')",
                        Permission::TemplateParameterRead.name(),
                        given.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
                        page.get("title").and_then(Value::as_str).unwrap_or("untitled")
                    ),
                ));
            }
        }
        let raw_steps = template
            .entity
            .pointer("/spec/steps")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let context = json!({ "parameters": values, "user": { "ref": caller.subject() } });
        for (i, step) in raw_steps.iter().enumerate() {
            let id = step
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("step-{}", i + 1));
            if !steps.authorizes(&Resource::Template(step)) {
                return Err(denied(
                    caller,
                    format!("{} for step {id}", Permission::TemplateStepRead.name()),
                ));
            }
            let action = step.get("action").and_then(Value::as_str).unwrap_or_default();
            let input = step
                .get("input")
                .and_then(|input| self.renderer.render_value(input, &context))
                .unwrap_or_else(|| json!({}));
            if !actions.authorizes(&Resource::Action { action, input: &input }) {
                return Err(denied(
                    caller,
                    format!("{} for {action} in step {id}", Permission::ActionExecute.name()),
                ));
            }
        }
        Ok(())
    }

    /// Whether the holder of `caller`'s token is allowed the (basic)
    /// permission `name` (approval gates that name a permission).
    pub(super) async fn allows_named(&self, caller: &Caller, name: &str) -> Result<bool, ServiceError> {
        match (&self.permissions, caller.backstage_token()) {
            (Some(client), Some(token)) => Ok(client.authorize_basic(token, name).await? == Decision::Allow),
            _ => Ok(false),
        }
    }
}
