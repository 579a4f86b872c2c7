//! Runs a task's steps: renders `if`/`each`/`input` with the templating
//! engine, calls the actions, collects outputs and renders `spec.output`.
//! It reports through a `RunSink` and knows nothing of HTTP or SQL.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use url::Url;

use crate::actions::{ActionLimits, ActionRegistry};
use crate::model::approval::{ApprovalDecision, ApprovalGate};
use crate::model::{NewEvent, RunError, StepStatus, TaskId, TaskStatus};
use crate::scm::reader::UrlReader;
use crate::template::Step;
use crate::templating::Renderer;

use super::redact::Redactor;
pub use super::step::{fake_output, parse_timeout};
use super::step::{is_truthy, runs_after_failure, StepCall, StepEnd};

/// Receives the events of a run as they happen.
#[async_trait]
pub trait RunSink: Send + Sync {
    async fn emit(&self, event: NewEvent);

    /// A step (or one `each` iteration, key `id[key]`) finished with these
    /// outputs; the worker journals them, with the workspace the step left,
    /// so a later attempt can resume. An error fails the step: a step whose
    /// work cannot be kept is not finished.
    async fn step_finished(&self, _key: &str, _output: &Value) -> Result<(), JournalError> {
        Ok(())
    }

    /// A running step recorded a checkpoint (key `<step key>#checkpoint:<key>`,
    /// the state `{status, value|reason}`); the worker journals it at once,
    /// without the workspace, so a retry of the step gets it back. An error
    /// fails the step.
    async fn checkpoint(&self, _key: &str, _state: &Value) -> Result<(), JournalError> {
        Ok(())
    }

    /// A step that began has ended. Not called for steps resumed from the
    /// journal, steps never begun, or a run cut short by an abort.
    async fn step_ended(&self, _report: &StepReport<'_>) {}
}

/// A finished step could not be journaled (its workspace could not be saved,
/// say).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct JournalError(pub String);

/// What [`RunSink::step_ended`] learns about a step.
#[derive(Debug, Clone, Copy)]
pub struct StepReport<'a> {
    pub step_id: &'a str,
    /// The action id, or `unregistered` when no such action is installed
    /// (so the set of values stays bounded).
    pub action: &'a str,
    /// Completed, failed, cancelled or skipped.
    pub result: StepStatus,
    pub elapsed: Duration,
}

/// What a run belongs to: a task, or a dry-run (which templates see as
/// `dry-run-<uuid>`, as in Backstage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunId {
    Task(TaskId),
    DryRun(uuid::Uuid),
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunId::Task(id) => id.fmt(f),
            RunId::DryRun(id) => write!(f, "dry-run-{id}"),
        }
    }
}

/// Everything one run needs.
pub struct RunRequest {
    pub task_id: RunId,
    pub spec: Value,
    pub secrets: Map<String, Value>,
    pub workspace: PathBuf,
    pub dry_run: bool,
    /// The user asked to cancel: the run ends `cancelled`.
    pub cancel: CancellationToken,
    /// This process must stop running the task (shutdown, lost lease): the
    /// run stops without writing an end, so another attempt can resume it.
    pub abort: CancellationToken,
    /// Outputs of steps an earlier attempt finished, by step key.
    pub resume: HashMap<String, Value>,
    /// Lines logged right after the run's first line ("Starting up task
    /// with N steps", which clients expect first): what happened before the
    /// run, such as a restored workspace.
    pub notes: Vec<String>,
    /// The whole run must end by then (the task-wide limit).
    pub deadline: Option<tokio::time::Instant>,
    /// The answers file (`.scaffolder/answers.yaml`) of a task created from
    /// a versioned template: written into the workspace before every
    /// `publish:*` step that makes a repository, so the repository remembers where it came from.
    pub answers: Option<String>,
    /// The decision on the approval gate the task waited at: `(step id,
    /// decision)`, handed to that step's action.
    pub approval: Option<(String, ApprovalDecision)>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub enum RunOutcome {
    /// The run reached its end: write it, with its final events, in one go.
    Finished(RunEnd),
    /// The run was aborted (shutdown, lost lease): nothing is final, the
    /// task must be released so another attempt resumes it.
    Aborted,
    /// A step waits at an approval gate: the task is parked (no worker, no
    /// lease) until a decision, and resumes at that step.
    Waiting(ApprovalGate),
}

/// The statuses a run ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalStatus {
    Completed,
    Failed,
    Cancelled,
}

impl From<FinalStatus> for TaskStatus {
    fn from(status: FinalStatus) -> TaskStatus {
        match status {
            FinalStatus::Completed => TaskStatus::Completed,
            FinalStatus::Failed => TaskStatus::Failed,
            FinalStatus::Cancelled => TaskStatus::Cancelled,
        }
    }
}

/// The end of a run, with the events that must be written together with the
/// final status (the `cancelled` event, if any, and `completion`).
#[derive(Debug, Clone)]
pub struct RunEnd {
    pub status: FinalStatus,
    pub final_events: Vec<NewEvent>,
    /// The rendered `spec.output` (empty unless completed).
    pub output: Value,
}

impl RunEnd {
    /// A run that failed before any step could start.
    pub fn failed(name: &str, message: String) -> RunEnd {
        let error = RunError {
            name: name.to_owned(),
            message,
        };
        RunEnd {
            status: FinalStatus::Failed,
            final_events: vec![NewEvent::completion(TaskStatus::Failed, Some(&error), None)],
            output: json!({}),
        }
    }
}

#[derive(Clone)]
pub struct Runner {
    pub(super) actions: ActionRegistry,
    pub(super) renderer: Arc<Renderer>,
    pub(super) limits: ActionLimits,
    /// `limits.workspace_bytes`, checked after every step.
    pub(super) workspace_bytes: u64,
    /// Handed to the actions: where remote skeletons are read from.
    pub(super) reader: Option<Arc<UrlReader>>,
    /// `default_environment` (Backstage's `scaffolder.defaultEnvironment`).
    pub(super) environment: Arc<Environment>,
}

/// What templates see as `environment`.
#[derive(Debug, Clone, Default)]
pub(super) struct Environment {
    pub(super) parameters: Map<String, Value>,
    pub(super) secrets: Map<String, Value>,
}

/// Replaces every secret value (and its encoded forms) inside strings by `***`.
pub fn redact_secrets(value: &mut Value, secrets: &Map<String, Value>) {
    Redactor::new(secrets).redact(value);
}

/// Scrubs secrets from everything a run reports.
struct RedactingSink {
    inner: Arc<dyn RunSink>,
    redactor: Redactor,
}

#[async_trait]
impl RunSink for RedactingSink {
    async fn emit(&self, mut event: NewEvent) {
        self.redactor.redact(&mut event.body);
        self.inner.emit(event).await;
    }

    async fn step_finished(&self, key: &str, output: &Value) -> Result<(), JournalError> {
        let mut output = output.clone();
        self.redactor.redact(&mut output);
        self.inner.step_finished(key, &output).await
    }

    async fn checkpoint(&self, key: &str, state: &Value) -> Result<(), JournalError> {
        let mut state = state.clone();
        self.redactor.redact(&mut state);
        self.inner.checkpoint(key, &state).await
    }

    async fn step_ended(&self, report: &StepReport<'_>) {
        self.inner.step_ended(report).await;
    }
}

impl Runner {
    pub fn new(actions: ActionRegistry, renderer: Arc<Renderer>) -> Runner {
        let defaults = crate::config::LimitsSettings::default();
        Runner {
            actions,
            renderer,
            limits: ActionLimits::from(&defaults),
            workspace_bytes: defaults.workspace_bytes,
            reader: None,
            environment: Arc::default(),
        }
    }

    /// `environment.parameters` and `environment.secrets` of every run.
    pub fn with_environment(mut self, environment: &crate::config::DefaultEnvironmentSettings) -> Runner {
        let map = |m: &std::collections::BTreeMap<String, String>| -> Map<String, Value> {
            m.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()
        };
        self.environment = Arc::new(Environment {
            parameters: map(&environment.parameters),
            secrets: map(&environment.secrets),
        });
        self
    }

    /// Remote skeletons (GitHub, the local git host) are read through it.
    pub fn with_reader(mut self, reader: Arc<UrlReader>) -> Runner {
        self.reader = Some(reader);
        self
    }

    /// The configured `limits` (skeletons, renders, workspace size).
    pub fn with_limits(mut self, limits: &crate::config::LimitsSettings) -> Runner {
        self.limits = ActionLimits::from(limits);
        self.workspace_bytes = limits.workspace_bytes;
        self
    }

    pub fn actions(&self) -> &ActionRegistry {
        &self.actions
    }

    pub async fn run(&self, request: RunRequest, sink: Arc<dyn RunSink>) -> RunOutcome {
        // The environment's secrets are scrubbed like the task's (Backstage
        // adds both to its log redactions).
        let mut scrubbed = request.secrets.clone();
        for (i, value) in self.environment.secrets.values().enumerate() {
            scrubbed.insert(format!("\u{0}environment{i}"), value.clone());
        }
        let redactor = Redactor::new(&scrubbed);
        let sink: Arc<dyn RunSink> = if redactor.is_empty() {
            sink
        } else {
            Arc::new(RedactingSink {
                inner: sink,
                redactor: redactor.clone(),
            })
        };
        let mut outcome = self.run_steps(&request, sink).await;
        if let RunOutcome::Finished(end) = &mut outcome {
            for event in &mut end.final_events {
                redactor.redact(&mut event.body);
            }
            redactor.redact(&mut end.output);
        }
        outcome
    }

    async fn run_steps(&self, request: &RunRequest, sink: Arc<dyn RunSink>) -> RunOutcome {
        let steps: Vec<Step> = request
            .spec
            .get("steps")
            .cloned()
            .and_then(|s| serde_json::from_value(s).ok())
            .unwrap_or_default();
        let template_base = request
            .spec
            .pointer("/templateInfo/baseUrl")
            .and_then(Value::as_str)
            .and_then(|u| Url::parse(u).ok())
            .or_else(|| Url::from_directory_path(&request.workspace).ok())
            .unwrap_or_else(|| Url::parse("file:///").expect("static URL"));
        let user = request.spec.get("user").cloned().unwrap_or_else(|| json!({}));

        // Backstage's dry-run counts one step more than the template has.
        let announced = steps.len() + usize::from(request.dry_run);
        sink.emit(NewEvent::message(format!("Starting up task with {announced} steps")))
            .await;
        for note in &request.notes {
            sink.emit(NewEvent::message(note.clone())).await;
        }

        let mut context = json!({
            "parameters": request.spec.get("parameters").cloned().unwrap_or_else(|| json!({})),
            "steps": {},
            "secrets": Value::Object(request.secrets.clone()),
            "user": user,
            "context": { "task": { "id": request.task_id.to_string() } },
            // As Backstage: a dry-run sees the environment's parameters but
            // none of its secrets.
            "environment": {
                "parameters": Value::Object(self.environment.parameters.clone()),
                "secrets": if request.dry_run { json!({}) } else { Value::Object(self.environment.secrets.clone()) },
            },
        });

        let mut failure: Option<RunError> = None;
        let mut cancelled_step: Option<(String, String)> = None;
        for (index, step) in steps.iter().enumerate() {
            let step_id = step.id.clone().unwrap_or_else(|| format!("step-{}", index + 1));
            let step_name = step.name.clone().unwrap_or_else(|| step.action.clone());
            if failure.is_some() && cancelled_step.is_none() && runs_after_failure(step.if_.as_ref()) {
                // `if: ${{ always() }}` / `failure()` steps run after a failure.
            } else if failure.is_some() || cancelled_step.is_some() {
                if failure.is_some() {
                    sink.emit(NewEvent::step_status(
                        &step_id,
                        StepStatus::Skipped,
                        format!("Skipping step {step_id} because a previous step failed"),
                    ))
                    .await;
                }
                continue;
            }
            if request.abort.is_cancelled() {
                return RunOutcome::Aborted;
            }
            if request.cancel.is_cancelled() {
                cancelled_step = Some((step_id.clone(), step_name.clone()));
                continue;
            }
            // A step guarded by `always()`/`failure()` runs again on every
            // attempt whose outcome makes its condition true: its outputs
            // are never reused.
            let reusable = !runs_after_failure(step.if_.as_ref());
            if let Some(output) = request.resume.get(&step_id).filter(|_| reusable) {
                context["steps"][&step_id] = json!({ "output": output });
                // The page of a retried task shows every step move again.
                sink.emit(NewEvent::step_status(
                    &step_id,
                    StepStatus::Processing,
                    format!("Beginning step {step_name}"),
                ))
                .await;
                sink.emit(NewEvent::step_status(
                    &step_id,
                    StepStatus::Completed,
                    format!("Step {step_id} finished in an earlier attempt; its outputs are reused"),
                ))
                .await;
                continue;
            }
            sink.emit(NewEvent::step_status(
                &step_id,
                StepStatus::Processing,
                format!("Beginning step {step_name}"),
            ))
            .await;

            let call = StepCall {
                step,
                id: &step_id,
                template_base: &template_base,
                after_failure: failure.is_some(),
            };
            let span = step_span(request.task_id, &step_id, &step.action);
            let started = Instant::now();
            let end = self
                .run_step(call, request, &mut context, sink.clone())
                .instrument(span.clone())
                .await;
            self.report_step(&span, &step_id, &step.action, &end, started.elapsed(), sink.as_ref())
                .await;
            match end {
                StepEnd::Done | StepEnd::Skipped => {}
                StepEnd::Failed { name, message } => {
                    sink.emit(NewEvent::step_status(
                        &step_id,
                        StepStatus::Failed,
                        format!("Error: {message}"),
                    ))
                    .await;
                    // The first failure is the task's error.
                    if failure.is_none() {
                        failure = Some(RunError {
                            name: name.to_owned(),
                            message,
                        });
                    }
                }
                StepEnd::Cancelled => {
                    cancelled_step = Some((step_id.clone(), step_name.clone()));
                }
                StepEnd::Aborted => return RunOutcome::Aborted,
                StepEnd::Waiting(gate) => return RunOutcome::Waiting(gate),
            }
        }

        if let Some((step_id, _)) = cancelled_step {
            return RunOutcome::Finished(RunEnd {
                status: FinalStatus::Cancelled,
                final_events: vec![
                    NewEvent::cancelled_in(&step_id),
                    NewEvent::completion(TaskStatus::Cancelled, None, None),
                ],
                output: json!({}),
            });
        }
        if let Some(error) = failure {
            return RunOutcome::Finished(RunEnd {
                status: FinalStatus::Failed,
                final_events: vec![NewEvent::completion(TaskStatus::Failed, Some(&error), None)],
                output: json!({}),
            });
        }
        let output = request
            .spec
            .get("output")
            .map(|o| self.conditional_output(o, &context))
            .and_then(|o| self.renderer.render_value(&o, &context))
            .unwrap_or_else(|| json!({}));
        RunOutcome::Finished(RunEnd {
            status: FinalStatus::Completed,
            final_events: vec![NewEvent::completion(TaskStatus::Completed, None, Some(&output))],
            output,
        })
    }

    /// Logs the end of a begun step in its span and tells the sink (metrics).
    async fn report_step(
        &self,
        span: &tracing::Span,
        step_id: &str,
        action: &str,
        end: &StepEnd,
        elapsed: Duration,
        sink: &dyn RunSink,
    ) {
        let result = match end {
            StepEnd::Done => StepStatus::Completed,
            StepEnd::Skipped => StepStatus::Skipped,
            StepEnd::Failed { .. } => StepStatus::Failed,
            StepEnd::Cancelled => StepStatus::Cancelled,
            StepEnd::Aborted | StepEnd::Waiting(_) => return,
        };
        span.record("result", result.as_str());
        if result == StepStatus::Failed {
            span.record("otel.status_code", "ERROR");
        }
        span.in_scope(|| {
            tracing::info!(
                result = result.as_str(),
                elapsed_ms = elapsed.as_millis() as u64,
                "step finished"
            )
        });
        let action = if self.actions.get(action).is_some() {
            action
        } else {
            "unregistered"
        };
        sink.step_ended(&StepReport {
            step_id,
            action,
            result,
            elapsed,
        })
        .await;
    }

    /// `links` and `text` entries carry an optional `if`: entries whose
    /// condition is falsy are dropped, the others lose the key.
    fn conditional_output(&self, output: &Value, context: &Value) -> Value {
        let mut output = output.clone();
        for key in ["links", "text"] {
            if let Some(Value::Array(items)) = output.get_mut(key) {
                items.retain_mut(|item| match item.as_object_mut().and_then(|o| o.remove("if")) {
                    None => true,
                    Some(condition) => is_truthy(self.renderer.render_value(&condition, context).as_ref()),
                });
            }
        }
        output
    }
}

/// The span of one step. ERROR level so that it, and the ids it carries into
/// every log line, exists whatever `log.level` says; spans print nothing themselves.
fn step_span(task_id: RunId, step_id: &str, action: &str) -> tracing::Span {
    tracing::error_span!(
        "step",
        task_id = %task_id,
        step_id = %step_id,
        action = %action,
        otel.name = %format!("step {step_id}"),
        result = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}
