use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use url::Url;

/// Where a step's log lines go (the task's event log, or a dry-run's memory).
#[async_trait]
pub trait LogSink: Send + Sync {
    async fn log(&self, step_id: &str, message: String);
}

/// A step's logger; lines carry Backstage's `info:` prefix with its colour codes.
#[derive(Clone)]
pub struct StepLogger {
    sink: Arc<dyn LogSink>,
    step_id: String,
}

impl StepLogger {
    pub fn new(sink: Arc<dyn LogSink>, step_id: impl Into<String>) -> StepLogger {
        StepLogger {
            sink,
            step_id: step_id.into(),
        }
    }

    pub async fn info(&self, message: impl AsRef<str>) {
        self.at(LogLevel::Info, message).await;
    }

    pub async fn warn(&self, message: impl AsRef<str>) {
        self.at(LogLevel::Warn, message).await;
    }

    /// A line at `level`, coloured as Backstage's winston logger colours it.
    pub async fn at(&self, level: LogLevel, message: impl AsRef<str>) {
        let (colour, word) = match level {
            LogLevel::Error => (31, "error"),
            LogLevel::Warn => (33, "warn"),
            LogLevel::Info => (32, "info"),
            LogLevel::Debug => (34, "debug"),
        };
        self.sink
            .log(
                &self.step_id,
                format!("\u{1b}[{colour}m{word}\u{1b}[39m: {}", message.as_ref()),
            )
            .await;
    }
}

/// The levels of Backstage's `LoggerService`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

/// Keeps the results of `checkpoint` calls of a running step (Backstage's
/// `ctx.checkpoint`), so a retried step gets them back instead of redoing
/// the work.
#[async_trait]
pub trait CheckpointJournal: Send + Sync {
    /// Records the state of checkpoint `key` (`{status, value}` or
    /// `{status: failed, reason}`) before the run goes on.
    async fn record(&self, key: &str, state: &Value) -> Result<(), super::ActionError>;
}

/// What Backstage's action context carries about the run besides the input.
#[derive(Clone, Default)]
pub struct RunInfo {
    /// The task spec's `templateInfo`.
    pub template_info: Value,
    /// This iteration's `{key, value}` of a step with `each`.
    pub each: Option<Value>,
    /// The step's `name`, if it has one.
    pub step_name: Option<String>,
    /// Checkpoint states an earlier attempt of this step recorded, by key.
    pub checkpoints: Map<String, Value>,
    /// Where new checkpoint states go; `None`: they are not kept (dry-runs,
    /// steps after a failure).
    pub journal: Option<Arc<dyn CheckpointJournal>>,
}

/// Everything an action may use.
pub struct ActionContext {
    pub task_id: String,
    pub step_id: String,
    /// The task's workspace; every path an action writes must stay inside it.
    pub workspace: PathBuf,
    /// The template file's location; relative URLs resolve against it.
    pub template_base: Url,
    /// The rendered input as given to the action (Backstage logs it).
    pub raw_input: Value,
    pub logger: StepLogger,
    pub secrets: Map<String, Value>,
    pub user: Value,
    pub dry_run: bool,
    /// Fires when the task is cancelled; long operations must watch it.
    pub cancel: CancellationToken,
    /// The SCM hosts templates know (`parseRepoUrl` in rendered files).
    pub integrations: crate::templating::Integrations,
    /// Template filters and globals beyond the built-in ones (the action
    /// bridges'), for the renderers of actions that render files.
    pub extensions: crate::templating::Extensions,
    /// Outputs set so far (`steps.<id>.output`).
    pub outputs: Map<String, Value>,
    /// Bounds on skeletons and renders (`limits.*`).
    pub limits: ActionLimits,
    /// Reads remote skeletons (GitHub, the local git host) for the fetch
    /// actions; `None`: local files only.
    pub reader: Option<std::sync::Arc<crate::scm::reader::UrlReader>>,
    /// The template, iteration, step name and checkpoints of this run.
    pub run: RunInfo,
    /// The decision on this step's approval gate, when its task comes back
    /// from waiting (`approval:wait`); `None` the first time.
    pub approval: Option<crate::model::approval::ApprovalDecision>,
}

/// The `limits` an action applies itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionLimits {
    /// Files and directories in one fetched skeleton.
    pub skeleton_files: usize,
    /// Total size of one fetched skeleton, in bytes.
    pub skeleton_bytes: u64,
    /// Instruction budget of one render.
    pub template_fuel: u64,
    /// Largest text one render may produce.
    pub template_output_bytes: usize,
    /// Total size of the task's workspace (`limits.workspace_bytes`); bounds
    /// what is shipped to an action bridge and back.
    pub workspace_bytes: u64,
}

impl Default for ActionLimits {
    fn default() -> Self {
        ActionLimits::from(&crate::config::LimitsSettings::default())
    }
}

impl From<&crate::config::LimitsSettings> for ActionLimits {
    fn from(l: &crate::config::LimitsSettings) -> Self {
        ActionLimits {
            skeleton_files: l.skeleton_files,
            skeleton_bytes: l.skeleton_bytes,
            template_fuel: l.template_fuel,
            template_output_bytes: l.template_output_bytes,
            workspace_bytes: l.workspace_bytes,
        }
    }
}

impl ActionContext {
    /// Sets one output of the step (`steps.<id>.output.<name>`).
    pub fn output(&mut self, name: impl Into<String>, value: Value) {
        self.outputs.insert(name.into(), value);
    }

    pub fn into_outputs(self) -> Map<String, Value> {
        self.outputs
    }
}
