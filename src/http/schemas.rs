//! Wire types for the OpenAPI document. Request bodies are deserialized into
//! these (through `http::body`, after the document's schema accepted them);
//! handlers serialise domain types whose JSON matches the response types, and
//! `tests/api` checks responses against the document.

use std::fmt;

use base64::Engine;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::error::ApiError;
use crate::model::{EventType, TaskStatus, UpdateRunStatus, UpdateStatus};
use crate::service::{AutocompleteRequest, CreateTask, DryRunRequest, InlineFile, UpdateItemRecord, UpdateRun};

/// A JSON object of strings (secrets, autocomplete context), its keys in the
/// order they were sent. Documented as `BTreeMap<String, String>` where used.
#[derive(Debug, Default)]
pub struct Strings(pub Map<String, Value>);

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringsVisitor;
        impl<'de> Visitor<'de> for StringsVisitor {
            type Value = Strings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Strings, A::Error> {
                let mut map = Map::new();
                while let Some((key, value)) = access.next_entry::<String, String>()? {
                    map.insert(key, Value::String(value));
                }
                Ok(Strings(map))
            }
        }
        deserializer.deserialize_map(StringsVisitor)
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TaskIdResponse {
    #[schema(format = Uuid)]
    pub id: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateTaskRequest {
    /// Template entity ref: `template:default/name`, `default/name` or `name`.
    pub template_ref: String,
    /// Form values; validated against the template's parameter pages.
    #[schema(value_type = Object)]
    pub values: Map<String, Value>,
    /// Secrets available to steps as `${{ secrets.x }}`; never returned.
    #[schema(value_type = Option<BTreeMap<String, String>>, required = false)]
    pub secrets: Option<Strings>,
}

impl From<CreateTaskRequest> for CreateTask {
    fn from(request: CreateTaskRequest) -> CreateTask {
        CreateTask {
            template_ref: request.template_ref,
            values: Value::Object(request.values),
            secrets: request.secrets.map(|s| s.0),
            created_by: None,
        }
    }
}

/// `POST /v2/tasks/{taskId}/retry` body; the body itself is optional.
#[derive(Deserialize, ToSchema)]
pub struct RetryRequest {
    /// New secrets for the run, checked against the template's `spec.secrets.schema`.
    #[schema(value_type = Option<BTreeMap<String, String>>, required = false)]
    pub secrets: Option<Strings>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Task)]
pub struct TaskSchema {
    #[schema(format = Uuid)]
    pub id: String,
    /// The task spec: template steps, output, parameters, user, templateInfo.
    #[schema(value_type = Object)]
    pub spec: Value,
    pub status: TaskStatus,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_heartbeat_at: Option<String>,
    #[schema(required = false)]
    pub created_by: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskList {
    pub tasks: Vec<TaskSchema>,
    pub total_tasks: i64,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct CancelResponse {
    /// `cancelled`, or the final status of a task that had already finished.
    pub status: TaskStatus,
    #[schema(required = false)]
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TaskEvent)]
pub struct EventSchema {
    pub id: i64,
    pub is_task_recoverable: bool,
    #[schema(format = Uuid)]
    pub task_id: String,
    /// `{message, stepId?, status?}` for logs; `{message, output?, error?}` for completion.
    #[schema(value_type = Object)]
    pub body: Value,
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// One frame of `GET …/eventstream` as an SSE parser delivers it (each
/// `event:`/`id:`/`data:` block; keep-alive comments are not events).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TaskEventFrame {
    /// The event's `type`: `log`, `completion`, `cancelled` or `recovered`.
    pub event: String,
    /// The event's id, to resume from with `Last-Event-ID`.
    pub id: String,
    /// The `TaskEvent` as JSON.
    pub data: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub name: String,
    pub message: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorRequest {
    pub method: String,
    pub url: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponseInfo {
    pub status_code: u16,
}

/// Backstage's error body.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    #[schema(required = false)]
    pub request: Option<ErrorRequest>,
    pub response: ErrorResponseInfo,
}

/// One parameter validation failure, as the `jsonschema` npm library words it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ValidationError {
    pub path: Vec<PathSegment>,
    pub property: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub schema: Value,
    #[schema(value_type = Object)]
    pub instance: Value,
    pub name: String,
    #[schema(value_type = Object)]
    pub argument: Value,
    pub stack: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PathSegment {
    Key(String),
    Index(u64),
}

/// A 400 answer: either Backstage's error body or parameter validation errors.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ValidationErrors {
    Invalid(ValidationErrorList),
    Error(ErrorBody),
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ValidationErrorList {
    pub errors: Vec<ValidationError>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ParameterSchemaStep {
    pub title: String,
    #[schema(required = false)]
    pub description: Option<String>,
    /// The page's `when` condition (a `${{ }}` expression or a boolean), lifted out of `schema`.
    #[schema(value_type = Object, required = false)]
    pub when: Option<Value>,
    #[schema(value_type = Object)]
    pub schema: Value,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ParameterSchema {
    pub title: String,
    /// `spec.presentation`, when set.
    #[schema(value_type = Object, required = false)]
    pub presentation: Option<Value>,
    #[schema(required = false)]
    pub description: Option<String>,
    /// `metadata["ui:options"]`, when set.
    #[serde(rename = "ui:options")]
    #[schema(value_type = Object, required = false)]
    pub ui_options: Option<Value>,
    pub steps: Vec<ParameterSchemaStep>,
    /// `spec.formDecorators` (or the older `spec.EXPERIMENTAL_formDecorators`).
    #[serde(rename = "formDecorators")]
    #[schema(value_type = Vec<Object>, required = false)]
    pub form_decorators: Option<Value>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ActionExampleSchema {
    pub description: String,
    pub example: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ActionSchemaSchema {
    #[schema(value_type = Object)]
    pub input: Value,
    #[schema(value_type = Object, required = false)]
    pub output: Option<Value>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = Action)]
pub struct ActionSchemaEntry {
    pub id: String,
    /// Absent when the action has none (some of Backstage's module actions).
    #[schema(required = false)]
    pub description: Option<String>,
    pub examples: Vec<ActionExampleSchema>,
    pub schema: ActionSchemaSchema,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TemplatingGlobals {
    #[schema(value_type = Object)]
    pub functions: Value,
    #[schema(value_type = Object)]
    pub values: Value,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TemplatingExtensions {
    /// Filter name → `{description, schema:{input, output, arguments}, examples}`.
    #[schema(value_type = Object)]
    pub filters: Value,
    pub globals: TemplatingGlobals,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct HealthStatus {
    pub status: String,
    #[schema(required = false)]
    pub message: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InlineFileSchema {
    pub path: String,
    #[schema(content_encoding = "base64")]
    pub base64_content: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DryRunRequest)]
pub struct DryRunRequestSchema {
    /// The template entity (`scaffolder.backstage.io/v1beta3` `Template`).
    #[schema(value_type = Object)]
    pub template: Map<String, Value>,
    #[schema(value_type = Object)]
    pub values: Map<String, Value>,
    #[schema(value_type = Option<BTreeMap<String, String>>, required = false)]
    pub secrets: Option<Strings>,
    /// The template's files, paths relative to the template file's directory.
    pub directory_contents: Vec<InlineFileSchema>,
}

impl TryFrom<DryRunRequestSchema> for DryRunRequest {
    type Error = ApiError;

    /// Decodes the files; the schema cannot say what base64 is.
    fn try_from(request: DryRunRequestSchema) -> Result<DryRunRequest, ApiError> {
        let files = request
            .directory_contents
            .into_iter()
            .enumerate()
            .map(|(i, file)| {
                let content = base64::engine::general_purpose::STANDARD
                    .decode(&file.base64_content)
                    .map_err(|e| {
                        ApiError::Input(format!(
                            "request/body/directoryContents/{i}/base64Content is not base64: {e}"
                        ))
                    })?;
                Ok(InlineFile {
                    path: file.path,
                    content,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(DryRunRequest {
            template: Value::Object(request.template),
            values: Value::Object(request.values),
            secrets: request.secrets.map(|s| s.0).unwrap_or_default(),
            files,
        })
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct DryRunLogEntry {
    /// `{message, stepId?, status?}`
    #[schema(value_type = Object)]
    pub body: Value,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputFileSchema {
    pub path: String,
    pub executable: bool,
    pub base64_content: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRunResponse {
    pub log: Vec<DryRunLogEntry>,
    pub directory_contents: Vec<OutputFileSchema>,
    #[schema(value_type = Object)]
    pub output: Value,
    /// The template's steps with `id` and `name` filled in.
    #[schema(value_type = Vec<Object>)]
    pub steps: Value,
}

/// `POST /v2/autocomplete/{provider}/{resource}` body.
#[derive(Deserialize, ToSchema)]
#[schema(as = AutocompleteRequest)]
pub struct AutocompleteRequestSchema {
    /// Resource parameters: `host`, `owner`, `repository` (github); `repoUrl`, `branch` (gitops).
    #[schema(value_type = BTreeMap<String, String>)]
    pub context: Strings,
    /// The caller's token for the provider (a GitHub token for `github`).
    pub token: String,
}

impl From<AutocompleteRequestSchema> for AutocompleteRequest {
    fn from(request: AutocompleteRequestSchema) -> AutocompleteRequest {
        AutocompleteRequest {
            token: Some(request.token),
            context: request.context.0,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AutocompleteSuggestion {
    #[schema(required = false)]
    pub title: Option<String>,
    pub id: String,
}

/// `{results: [{title?, id}]}`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AutocompleteResponse {
    pub results: Vec<AutocompleteSuggestion>,
}

// Fleet updates (`/v2/updates`).

fn default_concurrency() -> usize {
    4
}

/// A fleet update: bring every repository generated from a template (or the
/// ones named) to the template's current version.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartUpdateRequest {
    /// Template entity ref: `template:default/name`, `default/name` or `name`.
    pub template_ref: String,
    /// Repositories to update (`repoUrl`s as templates take them). Absent or
    /// empty: every repository a completed task generated from the template.
    #[serde(default)]
    #[schema(required = false)]
    pub repositories: Vec<String>,
    /// Values for parameters the new version added (or to change), over the
    /// values recorded in each repository's answers file.
    #[serde(default)]
    #[schema(value_type = Object, required = false)]
    pub set: Map<String, Value>,
    /// Compute each repository's change and its diff without pushing anything.
    #[serde(default)]
    #[schema(required = false)]
    pub dry_run: bool,
    /// Repositories updated at once (1 to 16).
    #[serde(default = "default_concurrency")]
    #[schema(required = false, minimum = 1, maximum = 16, default = 4)]
    pub concurrency: usize,
}

/// Counts of a run's repositories by status.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateProgressSchema {
    pub total: usize,
    /// Repositories that reached an end.
    pub done: usize,
    pub opened: usize,
    pub conflicts: usize,
    pub up_to_date: usize,
    pub proposed: usize,
    pub planned: usize,
    pub failed: usize,
    pub cancelled: usize,
    /// "17 of 50: 14 opened, 2 conflicts, 1 up to date".
    pub summary: String,
}

/// One repository of a run.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateItemSchema {
    pub repo_url: String,
    pub status: UpdateStatus,
    /// The version the repository's answers file named.
    pub from_version: Option<String>,
    /// The pull request (GitHub) or the repository and branch (local git host).
    pub proposal: Option<String>,
    /// Files the change touches: `A`, `M` or `D`, a space, the path.
    pub files: Vec<String>,
    /// Files left with conflict markers.
    pub conflicts: Vec<String>,
    /// The body of the pull request.
    pub body: Option<String>,
    /// `git diff` from the default branch to the proposed tree.
    pub diff: Option<String>,
    pub error: Option<String>,
}

/// A fleet update run.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRunSchema {
    #[schema(format = Uuid)]
    pub id: String,
    pub template_ref: String,
    /// The template version the run updates to (`sha256:…`).
    pub version: String,
    pub status: UpdateRunStatus,
    pub dry_run: bool,
    pub created_by: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    pub progress: UpdateProgressSchema,
    pub repositories: Vec<UpdateItemSchema>,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn item_schema(item: UpdateItemRecord) -> UpdateItemSchema {
    UpdateItemSchema {
        files: strings(&item.files),
        conflicts: strings(&item.conflicts),
        repo_url: item.repo_url,
        status: item.status,
        from_version: item.from_version,
        proposal: item.proposal,
        body: item.body,
        diff: item.diff,
        error: item.error,
    }
}

impl From<UpdateRun> for UpdateRunSchema {
    fn from(run: UpdateRun) -> UpdateRunSchema {
        let p = &run.progress;
        let progress = UpdateProgressSchema {
            total: p.total,
            done: p.done(),
            opened: p.opened,
            conflicts: p.conflicts,
            up_to_date: p.up_to_date,
            proposed: p.proposed,
            planned: p.planned,
            failed: p.failed,
            cancelled: p.cancelled,
            summary: p.summary(),
        };
        UpdateRunSchema {
            id: run.id.to_string(),
            template_ref: run.template_ref,
            version: run.version,
            status: run.status,
            dry_run: run.dry_run,
            created_by: run.created_by,
            created_at: run.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            finished_at: run
                .finished_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            progress,
            repositories: run.items.into_iter().map(item_schema).collect(),
        }
    }
}

/// One image of a bundle.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromotionImage {
    /// The image in its registry, e.g. `ghcr.io/acme/web-backend` (the overlay's `newName`).
    #[schema(min_length = 1)]
    pub name: String,
    /// Its manifest digest.
    #[schema(pattern = "^sha256:[0-9a-f]{64}$")]
    pub digest: String,
}

/// What CI built.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromotionBundle {
    #[schema(min_items = 1)]
    pub images: Vec<PromotionImage>,
    /// The commit built; default: the CI token's `sha`.
    #[schema(required = false)]
    pub source_commit: Option<String>,
    /// The workflow run id; default: the CI token's `run_id`.
    #[schema(required = false, minimum = 0)]
    pub workflow_run: Option<u64>,
    #[schema(required = false)]
    pub workflow_run_url: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PromotionStage {
    Dev,
    Staging,
    Prod,
}

/// `POST /v2/promotions`: promote a bundle of signed images into a stage.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreatePromotionRequest {
    /// The service, as registered in infra-gitops.
    #[schema(min_length = 1)]
    pub service: String,
    pub stage: PromotionStage,
    pub bundle: PromotionBundle,
    /// Promote an earlier bundle on purpose (recorded as a rollback).
    #[schema(required = false)]
    pub rollback: Option<bool>,
    /// Operators only: the identity keyless signatures must name.
    #[schema(required = false)]
    pub identity: Option<String>,
}

impl From<CreatePromotionRequest> for crate::service::PromotionRequest {
    fn from(request: CreatePromotionRequest) -> Self {
        crate::service::PromotionRequest {
            service: request.service,
            stage: match request.stage {
                PromotionStage::Dev => "dev",
                PromotionStage::Staging => "staging",
                PromotionStage::Prod => "prod",
            }
            .into(),
            bundle: crate::service::BundleRequest {
                images: request
                    .bundle
                    .images
                    .into_iter()
                    .map(|i| crate::service::BundleImage {
                        name: i.name,
                        digest: i.digest,
                    })
                    .collect(),
                source_commit: request.bundle.source_commit,
                workflow_run: request.bundle.workflow_run,
                workflow_run_url: request.bundle.workflow_run_url,
            },
            rollback: request.rollback.unwrap_or(false),
            identity: request.identity,
        }
    }
}

/// `POST /v2/tasks/{taskId}/approve` and `/reject` body; optional.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// Why; written to the task log and the audit trail. A rejection fails
    /// the waiting step with it.
    #[schema(max_length = 2000, required = false)]
    pub comment: Option<String>,
}

/// The answer to an approval decision.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionResponse {
    #[schema(format = Uuid)]
    pub id: String,
    /// The step that waited.
    pub step_id: String,
    /// `approved` or `rejected`.
    pub decision: String,
}

/// A page of the audit trail, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditList {
    pub events: Vec<crate::model::audit::AuditRecord>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[schema(required = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}

/// One conditional decision Backstage's permission backend asks this
/// service (the owner of the `scaffolder-*` resource types) to apply.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyConditionsItem {
    pub id: String,
    /// A `scaffolder-resource:` ref this service sent (a string), or several (an array).
    #[schema(value_type = serde_json::Value)]
    pub resource_ref: Value,
    pub resource_type: String,
    #[schema(required = false)]
    pub plugin_id: Option<String>,
    /// The policy's criteria (`rule`/`allOf`/`anyOf`/`not`).
    #[schema(value_type = Object)]
    pub conditions: Value,
}

/// `POST /.well-known/backstage/permissions/apply-conditions` body.
#[derive(Deserialize, ToSchema)]
pub struct ApplyConditionsRequest {
    pub items: Vec<ApplyConditionsItem>,
}

/// `GET /v2/promotions`.
#[derive(Serialize, ToSchema)]
pub struct PromotionList {
    pub promotions: Vec<crate::service::PromotionRecord>,
}
