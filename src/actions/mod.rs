//! Scaffolder actions: one file per action with its id, typed input (the JSON
//! Schema is derived from the type), examples and handler. Actions see only
//! their `ActionContext`: no database, no HTTP.

pub mod approval;
pub mod bridge;
pub mod catalog;
mod context;
pub mod debug;
pub mod fetch;
pub mod fs;
pub mod github;
pub mod gitops;
#[cfg(test)]
mod hostile_paths;
pub mod publish;
mod registry;
pub mod workspace;

use std::sync::Arc;

use async_trait::async_trait;
use schemars::gen::SchemaSettings;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub use context::{ActionContext, ActionLimits, CheckpointJournal, LogLevel, LogSink, RunInfo, StepLogger};
pub use registry::{ActionInfo, ActionRegistry};

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    InvalidInput(String),
    /// A path or location the action may not touch (outside the workspace or
    /// the template's directory).
    #[error("{0}")]
    NotAllowed(String),
    /// A template file or file name failed to render.
    #[error("{0}")]
    Render(String),
    /// A remote location could not be read.
    #[error("{0}")]
    Fetch(String),
    #[error("{0}")]
    Failed(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("the step was cancelled")]
    Cancelled,
    /// An action of an action bridge failed; `name` is its error class
    /// (`InputError`, `NotFoundError`, …) when Backstage knows it.
    #[error("{message}")]
    Bridged { name: &'static str, message: String },

    /// The step waits for a decision (`approval:wait`): the runner stops
    /// here and the task waits without a worker until someone decides.
    #[error("waiting for approval by {}", .0.approvers())]
    AwaitApproval(Box<crate::model::approval::ApprovalGate>),
}

impl ActionError {
    /// The error class Backstage reports for this failure.
    pub fn name(&self) -> &'static str {
        match self {
            ActionError::InvalidInput(_) => "InputError",
            ActionError::NotAllowed(_) => "NotAllowedError",
            ActionError::Render(_) => "TemplateRenderError",
            ActionError::Fetch(_) => "FetchError",
            ActionError::Bridged { name, .. } => name,
            ActionError::Failed(_) | ActionError::Io { .. } | ActionError::Cancelled => "Error",
            ActionError::AwaitApproval(_) => "ApprovalPending",
        }
    }

    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ActionError {
        let context = context.into();
        move |source| ActionError::Io { context, source }
    }
}

/// A usage example, listed by `GET /v2/actions` and run by the test suite.
/// Runs file-system or rendering work without holding up the async threads
/// that other tasks and requests share: on the multi-threaded runtime the
/// current thread first hands its queued work to the others
/// (`block_in_place`). Cancellation is checked between such pieces.
pub fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionExample {
    pub description: &'static str,
    /// A YAML snippet of template steps.
    pub example: &'static str,
}

/// An example as `GET /v2/actions` lists it (a bridged action's come from
/// its bridge).
#[derive(Debug, Clone, Serialize)]
pub struct ListedExample {
    pub description: String,
    pub example: String,
}

/// What the runner sees of an action.
#[async_trait]
pub trait Action: Send + Sync {
    fn id(&self) -> &str;
    fn description(&self) -> &str;
    fn input_schema(&self) -> Value;
    fn output_schema(&self) -> Option<Value>;
    fn examples(&self) -> Vec<ActionExample>;
    /// The examples `GET /v2/actions` lists.
    fn listed_examples(&self) -> Vec<ListedExample> {
        self.examples()
            .into_iter()
            .map(|e| ListedExample {
                description: e.description.to_owned(),
                example: e.example.to_owned(),
            })
            .collect()
    }
    fn supports_dry_run(&self) -> bool;
    /// Runs with an input that has already been rendered.
    async fn run(&self, ctx: &mut ActionContext, input: Value) -> Result<(), ActionError>;
}

/// How action files are written: a typed input and a handler. The input
/// schema is derived from `Input`, so it is written once.
#[async_trait]
pub trait ActionHandler: Send + Sync + 'static {
    type Input: DeserializeOwned + JsonSchema + Send;
    const ID: &'static str;
    const DESCRIPTION: &'static str;
    const SUPPORTS_DRY_RUN: bool = false;

    fn output_schema(&self) -> Option<Value> {
        None
    }
    fn examples(&self) -> Vec<ActionExample> {
        Vec::new()
    }
    async fn handle(&self, ctx: &mut ActionContext, input: Self::Input) -> Result<(), ActionError>;
}

/// JSON Schema (draft-07) of a Rust type, shaped like Backstage's: no title,
/// optional fields without a `null` type.
pub fn schema_of<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft07()
        .with(|s| {
            s.option_add_null_type = false;
            s.option_nullable = false;
            s.inline_subschemas = true;
        })
        .into_generator();
    let schema = generator.into_root_schema_for::<T>();
    let mut value = serde_json::to_value(schema).unwrap_or(Value::Null);
    if let Some(obj) = value.as_object_mut() {
        obj.remove("title");
        obj.remove("definitions");
    }
    strip_numeric_formats(&mut value);
    order_required(&mut value);
    value
}

/// schemars sorts `required`; Backstage lists it in declaration order, which
/// is the order of `properties`.
fn order_required(value: &mut Value) {
    if let Value::Object(obj) = value {
        let order: Vec<String> = obj
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(Value::Array(required)) = obj.get_mut("required") {
            required.sort_by_key(|r| {
                order
                    .iter()
                    .position(|k| Some(k.as_str()) == r.as_str())
                    .unwrap_or(usize::MAX)
            });
        }
        obj.values_mut().for_each(order_required);
    } else if let Value::Array(items) = value {
        items.iter_mut().for_each(order_required);
    }
}

/// schemars marks Rust number widths (`double`, `uint32`…) as formats; JSON
/// Schema and Backstage have no such formats.
fn strip_numeric_formats(value: &mut Value) {
    match value {
        Value::Object(obj) => {
            let numeric = matches!(
                obj.get("format").and_then(Value::as_str),
                Some(
                    "double"
                        | "float"
                        | "int8"
                        | "int16"
                        | "int32"
                        | "int64"
                        | "uint"
                        | "uint8"
                        | "uint16"
                        | "uint32"
                        | "uint64"
                )
            );
            if numeric {
                obj.remove("format");
            }
            obj.values_mut().for_each(strip_numeric_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_numeric_formats),
        _ => {}
    }
}

#[async_trait]
impl<T: ActionHandler> Action for T {
    fn id(&self) -> &str {
        T::ID
    }
    fn description(&self) -> &str {
        T::DESCRIPTION
    }
    fn input_schema(&self) -> Value {
        // Derived on each call, with no cache shared between actions;
        // `cargo bench --bench render -- action_input_schema` measures what
        // that costs a step.
        schema_of::<T::Input>()
    }
    fn output_schema(&self) -> Option<Value> {
        ActionHandler::output_schema(self)
    }
    fn examples(&self) -> Vec<ActionExample> {
        ActionHandler::examples(self)
    }
    fn supports_dry_run(&self) -> bool {
        T::SUPPORTS_DRY_RUN
    }
    async fn run(&self, ctx: &mut ActionContext, input: Value) -> Result<(), ActionError> {
        if let Err(errors) = crate::validation::validate(&self.input_schema(), &input) {
            return Err(ActionError::InvalidInput(format!(
                "Invalid input passed to action {}, {}",
                T::ID,
                crate::validation::stacks(&errors)
            )));
        }
        let typed: T::Input = serde_json::from_value(input)
            .map_err(|e| ActionError::InvalidInput(format!("Invalid input passed to action {}, {e}", T::ID)))?;
        self.handle(ctx, typed).await
    }
}

/// What the built-in actions need from the installation: the SCM
/// integrations (publish) and the catalog client (catalog:*).
#[derive(Clone, Default)]
pub struct ActionDeps {
    pub integrations: Arc<crate::scm::ScmIntegrations>,
    pub catalog: Option<Arc<catalog::CatalogClient>>,
    /// Writers to one GitOps repository take turns within the application.
    pub repo_locks: Arc<crate::gitops::repo::RepoLocks>,
    /// `gitops.argocd_repo_url`: the URL Argo CD clones the GitOps repository from.
    pub argocd_repo_url: Option<String>,
    /// Registry, signature trust and Argo CD of the promotion actions.
    pub promotion: Option<Arc<crate::promotion::PromotionDeps>>,
}

/// The actions every installation has, with the default integrations (the
/// local git host and github.com) and no catalog.
pub fn builtin_actions() -> Vec<Arc<dyn Action>> {
    builtin_actions_with(&ActionDeps::default())
}

/// The actions every installation has, wired to `deps`.
pub fn builtin_actions_with(deps: &ActionDeps) -> Vec<Arc<dyn Action>> {
    let mut actions: Vec<Arc<dyn Action>> = vec![
        Arc::new(approval::ApprovalWait),
        Arc::new(catalog::CatalogFetch::new(deps.catalog.clone())),
        Arc::new(catalog::CatalogRegister::new(deps.catalog.clone())),
        Arc::new(catalog::CatalogWrite),
        Arc::new(debug::DebugLog),
        Arc::new(debug::DebugWait),
        Arc::new(fetch::FetchPlain),
        Arc::new(fetch::FetchPlainFile),
        Arc::new(fetch::FetchTemplate),
        Arc::new(fetch::FetchTemplateFile),
        Arc::new(fs::FsDelete),
        Arc::new(fs::FsReadDir),
        Arc::new(fs::FsRename),
        Arc::new(
            gitops::GitopsInit::new(deps.integrations.clone())
                .with_locks(deps.repo_locks.clone())
                .with_argocd_repo_url(deps.argocd_repo_url.clone()),
        ),
        Arc::new(
            gitops::GitopsOverlayRegister::new(deps.integrations.clone())
                .with_locks(deps.repo_locks.clone())
                .with_argocd_repo_url(deps.argocd_repo_url.clone()),
        ),
        Arc::new(gitops::GitopsOverlayUnregister::new(deps.integrations.clone()).with_locks(deps.repo_locks.clone())),
        Arc::new(gitops::GitopsImageVerify::new(deps.promotion.clone())),
        Arc::new(
            gitops::GitopsImagePromote::new(deps.integrations.clone(), deps.promotion.clone())
                .with_locks(deps.repo_locks.clone()),
        ),
        Arc::new(publish::PublishGit::new(deps.integrations.clone())),
        Arc::new(publish::PublishGithub::new(deps.integrations.clone())),
        Arc::new(publish::PublishGithubPullRequest::new(deps.integrations.clone())),
    ];
    actions.extend(github::actions(&deps.integrations));
    actions
}
