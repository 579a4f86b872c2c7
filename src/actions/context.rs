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
        self.sink
            .log(&self.step_id, format!("\u{1b}[32minfo\u{1b}[39m: {}", message.as_ref()))
            .await;
    }

    pub async fn warn(&self, message: impl AsRef<str>) {
        self.sink
            .log(&self.step_id, format!("\u{1b}[33mwarn\u{1b}[39m: {}", message.as_ref()))
            .await;
    }
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
    /// Outputs set so far (`steps.<id>.output`).
    pub outputs: Map<String, Value>,
    /// Bounds on skeletons and renders (`limits.*`).
    pub limits: ActionLimits,
    /// Reads remote skeletons (GitHub, the local git host) for the fetch
    /// actions; `None`: local files only.
    pub reader: Option<std::sync::Arc<crate::scm::reader::UrlReader>>,
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
