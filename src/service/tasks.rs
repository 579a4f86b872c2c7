use serde_json::{json, Map, Value};

use super::audit::{event_of, failed_of, AuditTrail};
use super::ServiceError;
use crate::actions::{ActionInfo, ActionRegistry};
use crate::auth::permissions::{Permission, PermissionClient};
use crate::auth::Caller;
use crate::catalog::CatalogClient;
use crate::model::audit::AuditKind;
use crate::model::{Task, TaskId};
use crate::secrets::Keyring;
use crate::store::{CancelOutcome, ListQuery, NewAnswers, RetryOutcome, Store};
use crate::template::version::Answers;
use crate::template::{validate_parameters, validate_secrets, EntityRef, LoadedTemplate, Templates};
use crate::templating::Renderer;

/// The request's `secrets` (before the caller's token is added) against the
/// template's `spec.secrets.schema`; Backstage answers 400 `{errors}`.
pub(crate) fn check_secrets(
    template: &LoadedTemplate,
    secrets: Option<&Map<String, Value>>,
) -> Result<(), ServiceError> {
    let secrets = Value::Object(secrets.cloned().unwrap_or_default());
    validate_secrets(template.spec.secrets_schema.as_ref(), &secrets).map_err(ServiceError::Validation)
}

/// Backstage's `parameter-schema` body for `template` (absent keys are
/// left out, as `JSON.stringify` drops `undefined`).
/// Pages `visible` marks false (hidden by the permission policy) are left out.
fn form_of(template: &LoadedTemplate, visible: &[bool]) -> Value {
    let metadata = template.metadata();
    let spec = template.entity.get("spec");
    let steps: Vec<Value> = template
        .spec
        .parameter_pages()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| visible.get(*i).copied().unwrap_or(true))
        .map(|(_, page)| {
            let mut schema = page.as_object().cloned().unwrap_or_default();
            let when = schema.remove("when");
            let mut step = Map::new();
            step.insert(
                "title".into(),
                schema
                    .get("title")
                    .cloned()
                    .unwrap_or_else(|| json!("Please enter the following information")),
            );
            if let Some(description) = schema.get("description") {
                step.insert("description".into(), description.clone());
            }
            if let Some(when @ (Value::String(_) | Value::Bool(_))) = when {
                step.insert("when".into(), when);
            }
            step.insert("schema".into(), Value::Object(schema));
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
    if let Some(presentation) = spec.and_then(|s| s.get("presentation")).filter(|p| is_truthy_json(p)) {
        out.insert("presentation".into(), presentation.clone());
    }
    if let Some(description) = metadata.get("description") {
        out.insert("description".into(), description.clone());
    }
    if let Some(options) = metadata.get("ui:options") {
        out.insert("ui:options".into(), options.clone());
    }
    out.insert("steps".into(), Value::Array(steps));
    let decorators = spec.and_then(|s| {
        s.get("formDecorators")
            .filter(|d| !d.is_null())
            .or_else(|| s.get("EXPERIMENTAL_formDecorators"))
    });
    if let Some(decorators) = decorators {
        out.insert("formDecorators".into(), decorators.clone());
    }
    Value::Object(out)
}

/// JavaScript truthiness of a JSON value (`...presentation ? {presentation} : {}`).
fn is_truthy_json(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

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
    pub(super) store: Store,
    templates: Templates,
    pub(super) renderer: std::sync::Arc<Renderer>,
    /// Where `spec.user.entity` comes from, when configured.
    catalog: Option<std::sync::Arc<CatalogClient>>,
    /// Seals secrets before they are stored.
    keyring: std::sync::Arc<Keyring>,
    /// Reads git templates' directories, to store their versions.
    reader: Option<std::sync::Arc<crate::scm::reader::UrlReader>>,
    pub(super) audit: AuditTrail,
    /// Backstage's permission backend (`permission.enabled`).
    pub(super) permissions: Option<std::sync::Arc<PermissionClient>>,
}

impl TaskService {
    pub fn new(
        store: Store,
        templates: Templates,
        renderer: std::sync::Arc<Renderer>,
        keyring: std::sync::Arc<Keyring>,
    ) -> TaskService {
        TaskService {
            templates,
            renderer,
            catalog: None,
            keyring,
            reader: None,
            audit: AuditTrail::new(store.clone()),
            permissions: None,
            store,
        }
    }

    /// Versions of git templates (`templates.urls`) are read through it.
    pub fn with_reader(mut self, reader: std::sync::Arc<crate::scm::reader::UrlReader>) -> TaskService {
        self.reader = Some(reader);
        self
    }

    /// Asks this permission backend for the scaffolder's permissions.
    pub fn with_permissions(mut self, permissions: Option<std::sync::Arc<PermissionClient>>) -> TaskService {
        self.permissions = permissions;
        self
    }

    /// Reads the creating user's entity from this catalog into `spec.user.entity`.
    pub fn with_catalog(mut self, catalog: Option<std::sync::Arc<CatalogClient>>) -> TaskService {
        self.catalog = catalog;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The audit trail this service writes to.
    pub fn audit(&self) -> &AuditTrail {
        &self.audit
    }

    /// The installed actions (`GET /v2/actions`), recorded as `action-fetch`.
    pub async fn actions(&self, caller: &Caller, registry: &ActionRegistry) -> Result<Vec<ActionInfo>, ServiceError> {
        let actions = registry.list();
        let count = actions.len();
        self.audit
            .outcome(caller, AuditKind::ActionList, |e| e.meta("count", count), Ok(actions))
            .await
    }

    /// Finds a template by a (possibly short) reference.
    pub async fn template(&self, raw_ref: &str) -> Result<LoadedTemplate, ServiceError> {
        self.template_for(&Caller::anonymous(), raw_ref).await
    }

    /// Finds a template as `caller` (whose Backstage token the catalog source forwards).
    pub async fn template_for(&self, caller: &Caller, raw_ref: &str) -> Result<LoadedTemplate, ServiceError> {
        let entity_ref =
            EntityRef::parse(raw_ref, "template", "default").map_err(|e| ServiceError::Input(e.to_string()))?;
        if !entity_ref.kind.eq_ignore_ascii_case("template") {
            return Err(ServiceError::Input(format!(
                "Invalid kind, only 'Template' kind is supported, got '{}'",
                entity_ref.kind
            )));
        }
        self.templates
            .find_as(&entity_ref, caller.backstage_token())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("Template {entity_ref} not found")))
    }

    /// The form of a template, as Backstage's `parameter-schema` route builds
    /// it: `{title, presentation?, description?, "ui:options"?, steps:[{title,
    /// description?, when?, schema}], formDecorators?}`, each page's `when`
    /// lifted out of its schema.
    pub async fn parameter_schema(&self, caller: &Caller, raw_ref: &str) -> Result<Value, ServiceError> {
        let result = match self.template_for(caller, raw_ref).await {
            Ok(template) => self
                .visible_pages(caller, &template)
                .await
                .map(|visible| form_of(&template, &visible)),
            Err(e) => Err(e),
        };
        self.audit
            .outcome(caller, AuditKind::ParameterSchemaRead, |e| e.target(raw_ref), result)
            .await
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

    /// Starts a task as `caller`: `createdBy` and `spec.user.ref` are the
    /// caller's, and a user's Backstage token travels along as
    /// `secrets.backstageToken` (as Backstage's scaffolder does).
    pub async fn create(&self, caller: &Caller, request: CreateTask) -> Result<TaskId, ServiceError> {
        self.create_audited(caller, request, false).await
    }

    /// Starts a task of a built-in template (a promotion), which
    /// [`TaskService::create`] refuses: its caller has passed the policy of
    /// the service that calls this.
    pub(crate) async fn create_builtin(&self, caller: &Caller, request: CreateTask) -> Result<TaskId, ServiceError> {
        self.create_audited(caller, request, true).await
    }

    async fn create_audited(
        &self,
        caller: &Caller,
        request: CreateTask,
        builtin: bool,
    ) -> Result<TaskId, ServiceError> {
        let template_ref = request.template_ref.clone();
        match self.create_recorded(caller, request, builtin).await {
            Ok(id) => Ok(id),
            // A created task's event is written with it; a refusal on its own.
            Err(e) => {
                self.audit
                    .outcome(caller, AuditKind::TaskCreate, |ev| ev.target(template_ref), Err(e))
                    .await
            }
        }
    }

    async fn create_recorded(
        &self,
        caller: &Caller,
        mut request: CreateTask,
        builtin: bool,
    ) -> Result<TaskId, ServiceError> {
        if let Some(subject) = caller.subject() {
            request.created_by = Some(subject.to_owned());
        }
        let template = self.template_for(caller, &request.template_ref).await?;
        if !builtin && template.entity_ref.to_string() == super::promotions::PROMOTION_TEMPLATE_REF {
            return Err(ServiceError::Forbidden(
                "Promotions are started through POST /v2/promotions, which checks who may promote what".into(),
            ));
        }
        let values = self.validate_values(&template, &request.values)?;
        self.authorize_creation(caller, &template, &values).await?;
        check_secrets(&template, request.secrets.as_ref())?;
        let mut user = Map::new();
        if let Some(user_ref) = &request.created_by {
            if caller.is_user() {
                if let Some(entity) = self.user_entity(user_ref, caller.backstage_token()).await {
                    user.insert("entity".into(), entity);
                }
            }
            user.insert("ref".into(), json!(user_ref));
        }
        let spec = template.task_spec(&values, &Value::Object(user));
        let mut secrets = request.secrets;
        if let Some(token) = caller.backstage_token() {
            secrets
                .get_or_insert_with(Map::new)
                .entry("backstageToken")
                .or_insert_with(|| json!(token));
        }
        let id = TaskId::new();
        let sealed = secrets.map(|s| self.keyring.seal(id, &s)).transpose()?;
        let version = match super::updates::snapshot_of(&template, self.reader.as_deref()).await {
            Ok(version) => version,
            // A git template whose tree cannot be read now: the task runs
            // (and reports what its fetch meets); it is not versioned.
            Err(ServiceError::Upstream { message, .. }) => {
                tracing::warn!(template = %template.entity_ref, error = %message, "task created without a template version");
                None
            }
            Err(e) => return Err(e),
        };
        let answers = version.as_ref().map(|snapshot| {
            let answers = Answers::new(&template, &snapshot.digest, &id.to_string(), &values);
            (snapshot, answers.to_yaml())
        });
        // PostgreSQL text holds no NUL; such a value names no repository.
        let repo_url = values
            .get("repoUrl")
            .and_then(Value::as_str)
            .filter(|u| !u.contains('\0'));
        let template_ref = template.entity_ref.to_string();
        let new_answers = answers.as_ref().map(|(snapshot, text)| NewAnswers {
            template_ref: &template_ref,
            version: &snapshot.digest,
            archive: &snapshot.archive,
            repo_url,
            answers: text,
        });
        let audit = event_of(caller, AuditKind::TaskCreate)
            .task(id)
            .target(template.entity_ref.to_string());
        self.store
            .create_task_with_answers(
                id,
                &spec,
                sealed.as_deref(),
                request.created_by.as_deref(),
                new_answers.as_ref(),
                Some(&audit),
            )
            .await?;
        tracing::info!(task_id = %id, template = %template.entity_ref, created_by = ?request.created_by, "task created");
        Ok(id)
    }

    /// The user's entity from the catalog; `None` (logged) when there is no
    /// catalog or it cannot answer: a task does not fail for it.
    async fn user_entity(&self, user_ref: &str, token: Option<&str>) -> Option<Value> {
        let catalog = self.catalog.as_ref()?;
        let entity_ref = EntityRef::parse(user_ref, "user", "default").ok()?;
        match catalog.entity(&entity_ref, token).await {
            Ok(entity) => entity,
            Err(e) => {
                tracing::warn!(user = %user_ref, error = %e, "cannot read the user entity from the catalog");
                None
            }
        }
    }

    /// A task the caller may see; a task hidden from the caller is reported
    /// exactly like a missing one.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Task, ServiceError> {
        self.get_as(caller, id, AuditKind::TaskGet).await
    }

    /// [`TaskService::get`] recorded as `kind` (`task:events`, `task:stream`
    /// for the routes that follow a task).
    pub async fn get_as(&self, caller: &Caller, id: &str, kind: AuditKind) -> Result<Task, ServiceError> {
        let result = self.find(caller, id).await;
        let task_id = TaskId::parse(id);
        self.audit
            .outcome(
                caller,
                kind,
                |e| match task_id {
                    Some(t) => e.task(t),
                    None => e.target(id),
                },
                result,
            )
            .await
    }

    /// A task the caller may see, without an audit event (the operation
    /// that looks it up records its own).
    async fn find(&self, caller: &Caller, id: &str) -> Result<Task, ServiceError> {
        let not_found = || ServiceError::NotFound(format!("No task with id '{id}' found"));
        let task_id = TaskId::parse(id).ok_or_else(not_found)?;
        let task = self.store.get_task(task_id).await?.ok_or_else(not_found)?;
        if !caller.may_see(task.created_by.as_deref()) && !self.approver_of(caller, &task).await? {
            return Err(not_found());
        }
        self.require_on_task(caller, Permission::TaskRead, &task).await?;
        Ok(task)
    }

    /// Whether `task` waits at an approval gate `caller` may decide: its
    /// approvers see the task (and its log) they are asked about.
    async fn approver_of(&self, caller: &Caller, task: &Task) -> Result<bool, ServiceError> {
        if task.status != crate::model::TaskStatus::Processing {
            return Ok(false);
        }
        Ok(match self.store.waiting_task(task.id).await? {
            Some(waiting) => {
                super::approvals::may_decide(caller, &waiting.approval.gate, task.created_by.as_deref()).is_ok()
            }
            None => false,
        })
    }

    /// Tasks the caller may see: for callers limited to their own tasks the
    /// `createdBy` filter is forced to them in SQL; asking for someone
    /// else's tasks is refused.
    pub async fn list(&self, caller: &Caller, query: &ListQuery) -> Result<(Vec<Task>, i64), ServiceError> {
        let result = self.list_unrecorded(caller, query).await;
        let count = result.as_ref().map(|(tasks, _)| tasks.len()).unwrap_or(0);
        self.audit
            .outcome(
                caller,
                AuditKind::TaskList,
                |e| e.meta("count", count).meta("createdBy", query.created_by.clone()),
                result,
            )
            .await
    }

    async fn list_unrecorded(&self, caller: &Caller, query: &ListQuery) -> Result<(Vec<Task>, i64), ServiceError> {
        match caller.list_restriction() {
            None => Ok(self.store.list_tasks(query).await?),
            Some(own) => {
                if let Some(other) = query.created_by.iter().find(|c| c.as_str() != own) {
                    return Err(ServiceError::Forbidden(format!(
                        "{own} may only list their own tasks, not those of {other}"
                    )));
                }
                let mut query = query.clone();
                query.created_by = vec![own.to_owned()];
                Ok(self.store.list_tasks(&query).await?)
            }
        }
    }

    /// Cancels a task. A finished task is left as it is and the answer says so.
    pub async fn cancel(&self, caller: &Caller, id: &str) -> Result<CancelOutcome, ServiceError> {
        let task = match self.find(caller, id).await {
            Ok(task) => task,
            Err(e) => {
                return self
                    .audit
                    .outcome(caller, AuditKind::TaskCancel, |ev| ev.target(id), Err(e))
                    .await
            }
        };
        if let Err(e) = self.require_on_task(caller, Permission::TaskCancel, &task).await {
            return self
                .audit
                .outcome(caller, AuditKind::TaskCancel, |ev| ev.task(task.id), Err(e))
                .await;
        }
        let audit = event_of(caller, AuditKind::TaskCancel).task(task.id);
        match self.store.cancel_task(task.id, Some(&audit)).await? {
            CancelOutcome::NotFound => Err(ServiceError::NotFound(format!("No task with id '{id}' found"))),
            outcome => Ok(outcome),
        }
    }

    pub async fn retry(
        &self,
        caller: &Caller,
        id: &str,
        secrets: Option<Map<String, Value>>,
    ) -> Result<TaskId, ServiceError> {
        match self.retry_recorded(caller, id, secrets).await {
            Ok(id) => Ok(id),
            Err(e) => {
                let event = failed_of(caller, AuditKind::TaskRetry, &e);
                let event = match TaskId::parse(id) {
                    Some(t) => event.task(t),
                    None => event.target(id),
                };
                self.audit.record(&event).await?;
                Err(e)
            }
        }
    }

    async fn retry_recorded(
        &self,
        caller: &Caller,
        id: &str,
        secrets: Option<Map<String, Value>>,
    ) -> Result<TaskId, ServiceError> {
        let task = self.find(caller, id).await?;
        // As Backstage: the secrets of a retry are checked against the
        // template the task was created from (which must still exist).
        if let Some(template_ref) = task.spec.pointer("/templateInfo/entityRef").and_then(Value::as_str) {
            let template = self.template_for(caller, template_ref).await?;
            check_secrets(&template, secrets.as_ref())?;
        }
        let mut secrets = secrets;
        if let Some(token) = caller.backstage_token() {
            secrets
                .get_or_insert_with(Map::new)
                .entry("backstageToken")
                .or_insert_with(|| json!(token));
        }
        let sealed = secrets.map(|s| self.keyring.seal(task.id, &s)).transpose()?;
        let audit = event_of(caller, AuditKind::TaskRetry).task(task.id);
        match self.store.retry_task(task.id, sealed.as_deref(), Some(&audit)).await? {
            RetryOutcome::Retried => Ok(task.id),
            RetryOutcome::NotFinished(status) => Err(ServiceError::Conflict(format!(
                "Task {id} cannot be retried while it is {status}; only finished tasks can be retried"
            ))),
            RetryOutcome::NotFound => Err(ServiceError::NotFound(format!("No task with id '{id}' found"))),
        }
    }
}
