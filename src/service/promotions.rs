//! Promotions (`/v2/promotions`): who may promote what, and the history.
//! A promotion is a task of the built-in template `scaffolder-promotion`
//! (`promotion-template.yaml`), created here only after the caller passed
//! the policy: a GitHub Actions caller from a configured ref and workflow
//! file, promoting a service whose owner marker names its repository (the
//! `gitops:image:promote` step checks the marker at the tip it commits
//! onto), or an operator who sees every task.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::tasks::{CreateTask, TaskService};
use super::ServiceError;
use crate::auth::Caller;
use crate::config::PromotionSettings;
use crate::model::{TaskId, TaskStatus};
use crate::promotion::plan::BundleImage;
use crate::template::source::TemplateFileError;
use crate::template::StaticTemplateSource;

pub const PROMOTION_TEMPLATE_REF: &str = "template:default/scaffolder-promotion";
const PROMOTION_TEMPLATE: &str = include_str!("promotion-template.yaml");

/// The built-in template source holding the promotion template.
pub fn promotion_templates() -> Result<StaticTemplateSource, TemplateFileError> {
    StaticTemplateSource::from_yaml("promotion-template.yaml", PROMOTION_TEMPLATE)
}

/// What CI built.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BundleRequest {
    pub images: Vec<BundleImage>,
    /// Default: the token's `sha`
    pub source_commit: Option<String>,
    /// The workflow run id; default: the token's `run_id`
    pub workflow_run: Option<u64>,
    pub workflow_run_url: Option<String>,
}

/// `POST /v2/promotions`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromotionRequest {
    pub service: String,
    /// `dev`, `staging` or `prod`
    pub stage: String,
    pub bundle: BundleRequest,
    /// Promote an earlier bundle on purpose.
    #[serde(default)]
    pub rollback: bool,
    /// For operators: the identity a keyless signature must name (a CI
    /// caller's is its workflow's).
    pub identity: Option<String>,
}

/// One promotion of the history (`GET /v2/promotions`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionRecord {
    pub task_id: String,
    pub status: String,
    pub service: String,
    pub stage: String,
    /// The bundle's images, `{name, digest}` each.
    #[schema(value_type = Vec<Object>)]
    pub images: Value,
    pub source_commit: Option<String>,
    pub workflow_run: Option<u64>,
    pub workflow_run_url: Option<String>,
    pub rollback: bool,
    pub created_by: Option<String>,
    pub created_at: String,
    pub commit_url: Option<String>,
    pub branch: Option<String>,
    pub pull_request_url: Option<String>,
    pub clusters: Vec<String>,
}

#[derive(Clone)]
pub struct PromotionService {
    tasks: TaskService,
    settings: Arc<PromotionSettings>,
}

impl PromotionService {
    pub fn new(tasks: TaskService, settings: PromotionSettings) -> PromotionService {
        PromotionService {
            tasks,
            settings: Arc::new(settings),
        }
    }

    /// Starts a promotion task as `caller`, after the policy.
    pub async fn create(&self, caller: &Caller, request: PromotionRequest) -> Result<TaskId, ServiceError> {
        let repo_url = self.settings.repo_url.clone().ok_or_else(|| {
            ServiceError::Conflict("Promotion is not configured: promotion.repo_url names no GitOps repository".into())
        })?;
        let (owner, identity, source_commit, workflow_run) = match caller.ci() {
            Some(ci) => {
                if !self.settings.allowed_refs.contains(&ci.git_ref) {
                    return Err(ServiceError::Forbidden(format!(
                        "{} may not promote from {}: promotions come only from {}",
                        ci.repository,
                        ci.git_ref,
                        self.settings.allowed_refs.join(", ")
                    )));
                }
                let workflow = ci.workflow_path();
                if !self.settings.allowed_workflows.iter().any(|w| w == workflow) {
                    return Err(ServiceError::Forbidden(format!(
                        "{} may not promote from the workflow {workflow}: promotions come only from {}",
                        ci.repository,
                        self.settings.allowed_workflows.join(", ")
                    )));
                }
                let run: u64 = ci
                    .run_id
                    .parse()
                    .map_err(|_| ServiceError::Input(format!("the token's run_id {:?} is not a number", ci.run_id)))?;
                if request.bundle.workflow_run.is_some_and(|r| r != run) {
                    return Err(ServiceError::Input(format!(
                        "bundle.workflowRun must be this run ({run}) when a workflow promotes"
                    )));
                }
                (
                    Some(ci.subject.clone()),
                    Some(ci.certificate_identity()),
                    request.bundle.source_commit.clone().unwrap_or_else(|| ci.sha.clone()),
                    run,
                )
            }
            None if caller.sees_all => (
                None,
                request.identity.clone(),
                request
                    .bundle
                    .source_commit
                    .clone()
                    .ok_or_else(|| ServiceError::Input("bundle.sourceCommit is required".into()))?,
                request
                    .bundle
                    .workflow_run
                    .ok_or_else(|| ServiceError::Input("bundle.workflowRun is required".into()))?,
            ),
            None => {
                return Err(ServiceError::Forbidden(
                    "Promotions are started by a GitHub Actions workflow (its OIDC token) or by an operator who sees every task".into(),
                ))
            }
        };
        let mut values = json!({
            "repoUrl": repo_url,
            "branch": self.settings.branch,
            "service": request.service,
            "stage": request.stage,
            "images": request.bundle.images,
            "sourceCommit": source_commit,
            "workflowRun": workflow_run,
            "rollback": request.rollback,
        });
        for (key, value) in [
            ("owner", owner),
            ("identity", identity),
            ("workflowRunUrl", request.bundle.workflow_run_url.clone()),
        ] {
            if let Some(value) = value {
                values[key] = json!(value);
            }
        }
        self.tasks
            .create_builtin(
                caller,
                CreateTask {
                    template_ref: PROMOTION_TEMPLATE_REF.into(),
                    values,
                    secrets: None,
                    created_by: None,
                },
            )
            .await
    }

    /// The promotions the caller may see, newest first, optionally of one
    /// service and stage.
    pub async fn list(
        &self,
        caller: &Caller,
        service: Option<&str>,
        stage: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PromotionRecord>, ServiceError> {
        let rows = self
            .tasks
            .store()
            .tasks_of_template(PROMOTION_TEMPLATE_REF, caller.list_restriction(), 1000)
            .await?;
        let records = rows
            .into_iter()
            .map(|(task, completion)| {
                record(
                    task.id,
                    task.status,
                    &task.spec,
                    task.created_by,
                    task.created_at,
                    completion,
                )
            })
            .filter(|r| service.map_or(true, |s| r.service == s) && stage.map_or(true, |s| r.stage == s))
            .take(usize::try_from(limit.max(1)).unwrap_or(usize::MAX))
            .collect();
        Ok(records)
    }
}

fn record(
    id: TaskId,
    status: TaskStatus,
    spec: &Value,
    created_by: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    completion: Option<Value>,
) -> PromotionRecord {
    let parameter = |key: &str| {
        spec.pointer(&format!("/parameters/{key}"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let text = |v: Value| v.as_str().map(str::to_owned);
    let output = |key: &str| {
        completion
            .as_ref()
            .and_then(|c| c.pointer(&format!("/output/promotion/{key}")))
            .cloned()
            .unwrap_or(Value::Null)
    };
    PromotionRecord {
        task_id: id.to_string(),
        status: status.to_string(),
        service: text(parameter("service")).unwrap_or_default(),
        stage: text(parameter("stage")).unwrap_or_default(),
        images: parameter("images"),
        source_commit: text(parameter("sourceCommit")),
        workflow_run: parameter("workflowRun").as_u64(),
        workflow_run_url: text(parameter("workflowRunUrl")),
        rollback: parameter("rollback").as_bool().unwrap_or(false),
        created_by,
        created_at: created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        commit_url: text(output("commitUrl")),
        branch: text(output("branch")),
        pull_request_url: text(output("pullRequestUrl")).filter(|u| !u.is_empty()),
        clusters: output("clusters")
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default(),
    }
}
