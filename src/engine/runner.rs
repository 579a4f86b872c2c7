//! Runs a task's steps: renders `if`/`each`/`input` with the templating
//! engine, calls the actions, collects outputs and renders `spec.output`.
//! It reports through a `RunSink` and knows nothing of HTTP or SQL.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::FutureExt;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use url::Url;

use crate::actions::{ActionContext, ActionError, ActionLimits, ActionRegistry, LogSink, StepLogger};
use crate::model::{EventType, NewEvent, TaskStatus};
use crate::template::Step;
use crate::templating::Renderer;

use super::redact::Redactor;

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

    /// A step that began has ended. Not called for steps resumed from the
    /// journal, steps never begun, or a run cut short by an abort.
    async fn step_ended(&self, _report: &StepReport<'_>) {}
}

/// A finished step could not be journaled (its workspace could not be saved,
/// say).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct JournalError(pub String);

/// How a begun step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepResult {
    Completed,
    Failed,
    Cancelled,
    /// Its `if` was false, or a dry-run skipped its action.
    Skipped,
}

impl StepResult {
    pub fn as_str(self) -> &'static str {
        match self {
            StepResult::Completed => "completed",
            StepResult::Failed => "failed",
            StepResult::Cancelled => "cancelled",
            StepResult::Skipped => "skipped",
        }
    }
}

/// What [`RunSink::step_ended`] learns about a step.
#[derive(Debug, Clone, Copy)]
pub struct StepReport<'a> {
    pub step_id: &'a str,
    /// The action id, or `unregistered` when no such action is installed
    /// (so the set of values stays bounded).
    pub action: &'a str,
    pub result: StepResult,
    pub elapsed: Duration,
}

struct StepLogs(Arc<dyn RunSink>);

#[async_trait]
impl LogSink for StepLogs {
    async fn log(&self, step_id: &str, message: String) {
        self.0
            .emit(NewEvent::log(json!({ "message": message, "stepId": step_id })))
            .await;
    }
}

/// Everything one run needs.
pub struct RunRequest {
    pub task_id: String,
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
    /// The whole run must end by then (the task-wide limit).
    pub deadline: Option<tokio::time::Instant>,
}

/// How a run ended, with the events that must be written together with the
/// final status (the `cancelled` event, if any, and `completion`).
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub status: TaskStatus,
    pub final_events: Vec<NewEvent>,
    /// The rendered `spec.output` (empty unless completed).
    pub output: Value,
    /// The run was aborted: nothing is final, the task must be released.
    pub aborted: bool,
}

impl RunOutcome {
    fn aborted() -> RunOutcome {
        RunOutcome {
            status: TaskStatus::Processing,
            final_events: Vec::new(),
            output: json!({}),
            aborted: true,
        }
    }
}

#[derive(Clone)]
pub struct Runner {
    actions: ActionRegistry,
    renderer: Arc<Renderer>,
    limits: ActionLimits,
    /// `limits.workspace_bytes`, checked after every step.
    workspace_bytes: u64,
    /// `default_environment` (Backstage's `scaffolder.defaultEnvironment`).
    environment: Arc<Environment>,
}

/// What templates see as `environment`.
#[derive(Debug, Clone, Default)]
struct Environment {
    parameters: Map<String, Value>,
    secrets: Map<String, Value>,
}

/// One step to run, and where the run stands.
struct StepCall<'a> {
    step: &'a Step,
    id: &'a str,
    template_base: &'a Url,
    /// An earlier step failed (only `always()`/`failure()` steps get here then).
    after_failure: bool,
}

enum StepEnd {
    Done,
    Skipped,
    Failed { name: &'static str, message: String },
    Cancelled,
    Aborted,
}

fn is_truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(_)) | Some(Value::Object(_)) => true,
    }
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

    async fn step_ended(&self, report: &StepReport<'_>) {
        self.inner.step_ended(report).await;
    }
}

/// Parses a step `timeout`: seconds as a number, or `500ms`, `30s`, `5m`, `1h`.
pub fn parse_timeout(value: &Value) -> Option<Duration> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64),
        Value::String(s) => {
            let s = s.trim();
            let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
            let (number, unit) = s.split_at(split);
            let n: f64 = number.parse().ok().filter(|n: &f64| n.is_finite() && *n > 0.0)?;
            let seconds = match unit.trim() {
                "" | "s" | "sec" | "seconds" => n,
                "ms" => n / 1000.0,
                "m" | "min" | "minutes" => n * 60.0,
                "h" | "hours" => n * 3600.0,
                _ => return None,
            };
            Some(Duration::from_secs_f64(seconds))
        }
        _ => None,
    }
}

/// GitHub-Actions-style status functions in `if`: `always()`, `success()`,
/// `failure()`. They are replaced by literals before rendering.
fn status_functions(condition: &Value, failed: bool) -> Value {
    match condition {
        Value::String(s) => Value::String(
            s.replace("always()", "true")
                .replace("success()", if failed { "false" } else { "true" })
                .replace("failure()", if failed { "true" } else { "false" }),
        ),
        other => other.clone(),
    }
}

fn runs_after_failure(condition: Option<&Value>) -> bool {
    condition
        .and_then(Value::as_str)
        .is_some_and(|s| s.contains("always()") || s.contains("failure()"))
}

/// A stand-in output for an action skipped in a dry-run, built from its
/// output schema as Backstage does.
pub fn fake_output(schema: &Value) -> Value {
    if let Some(example) = schema.get("examples").and_then(Value::as_array).and_then(|e| e.first()) {
        return example.clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let mut obj = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (key, sub) in props {
                    obj.insert(key.clone(), fake_output(sub));
                }
            }
            Value::Object(obj)
        }
        Some("array") => Value::Array(vec![schema.get("items").map(fake_output).unwrap_or(Value::Null)]),
        Some("string") => json!("<example>"),
        Some("number") | Some("integer") => json!(0),
        Some("boolean") => json!(false),
        _ => json!("<unknown>"),
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
        for event in &mut outcome.final_events {
            redactor.redact(&mut event.body);
        }
        redactor.redact(&mut outcome.output);
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
        sink.emit(NewEvent::log(json!({
            "message": format!("Starting up task with {announced} steps")
        })))
        .await;

        let mut context = json!({
            "parameters": request.spec.get("parameters").cloned().unwrap_or_else(|| json!({})),
            "steps": {},
            "secrets": Value::Object(request.secrets.clone()),
            "user": user,
            "context": { "task": { "id": request.task_id } },
            // As Backstage: a dry-run sees the environment's parameters but
            // none of its secrets.
            "environment": {
                "parameters": Value::Object(self.environment.parameters.clone()),
                "secrets": if request.dry_run { json!({}) } else { Value::Object(self.environment.secrets.clone()) },
            },
        });

        let mut failure: Option<(&'static str, String)> = None;
        let mut cancelled_step: Option<(String, String)> = None;
        for (index, step) in steps.iter().enumerate() {
            let step_id = step.id.clone().unwrap_or_else(|| format!("step-{}", index + 1));
            let step_name = step.name.clone().unwrap_or_else(|| step.action.clone());
            if failure.is_some() && cancelled_step.is_none() && runs_after_failure(step.if_.as_ref()) {
                // `if: ${{ always() }}` / `failure()` steps run after a failure.
            } else if failure.is_some() || cancelled_step.is_some() {
                if failure.is_some() {
                    sink.emit(NewEvent::log(json!({
                        "message": format!("Skipping step {step_id} because a previous step failed"),
                        "stepId": step_id,
                        "status": "skipped",
                    })))
                    .await;
                }
                continue;
            }
            if request.abort.is_cancelled() {
                return RunOutcome::aborted();
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
                sink.emit(NewEvent::log(json!({
                    "message": format!("Beginning step {step_name}"),
                    "stepId": step_id,
                    "status": "processing",
                })))
                .await;
                sink.emit(NewEvent::log(json!({
                    "message": format!("Step {step_id} finished in an earlier attempt; its outputs are reused"),
                    "stepId": step_id,
                    "status": "completed",
                })))
                .await;
                continue;
            }
            sink.emit(NewEvent::log(json!({
                "message": format!("Beginning step {step_name}"),
                "stepId": step_id,
                "status": "processing",
            })))
            .await;

            let call = StepCall {
                step,
                id: &step_id,
                template_base: &template_base,
                after_failure: failure.is_some(),
            };
            let span = step_span(&request.task_id, &step_id, &step.action);
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
                    sink.emit(NewEvent::log(json!({
                        "message": format!("Error: {message}"),
                        "stepId": step_id,
                        "status": "failed",
                    })))
                    .await;
                    // The first failure is the task's error.
                    if failure.is_none() {
                        failure = Some((name, message));
                    }
                }
                StepEnd::Cancelled => {
                    cancelled_step = Some((step_id.clone(), step_name.clone()));
                }
                StepEnd::Aborted => return RunOutcome::aborted(),
            }
        }

        if let Some((step_id, _)) = cancelled_step {
            let cancelled = NewEvent {
                event_type: EventType::Cancelled,
                body: json!({
                    "message": format!("Step {step_id} has been cancelled."),
                    "stepId": step_id,
                    "status": "cancelled",
                }),
            };
            let completion = NewEvent {
                event_type: EventType::Completion,
                body: json!({ "message": "Run completed with status: cancelled" }),
            };
            return RunOutcome {
                status: TaskStatus::Cancelled,
                final_events: vec![cancelled, completion],
                output: json!({}),
                aborted: false,
            };
        }
        if let Some((name, message)) = failure {
            return RunOutcome {
                status: TaskStatus::Failed,
                final_events: vec![NewEvent {
                    event_type: EventType::Completion,
                    body: json!({
                        "message": "Run completed with status: failed",
                        "error": { "name": name, "message": message },
                    }),
                }],
                output: json!({}),
                aborted: false,
            };
        }
        let output = request
            .spec
            .get("output")
            .map(|o| self.conditional_output(o, &context))
            .and_then(|o| self.renderer.render_value(&o, &context))
            .unwrap_or_else(|| json!({}));
        RunOutcome {
            status: TaskStatus::Completed,
            final_events: vec![NewEvent {
                event_type: EventType::Completion,
                body: json!({ "message": "Run completed with status: completed", "output": output }),
            }],
            output,
            aborted: false,
        }
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
            StepEnd::Done => StepResult::Completed,
            StepEnd::Skipped => StepResult::Skipped,
            StepEnd::Failed { .. } => StepResult::Failed,
            StepEnd::Cancelled => StepResult::Cancelled,
            StepEnd::Aborted => return,
        };
        span.record("result", result.as_str());
        if result == StepResult::Failed {
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

    async fn run_step(
        &self,
        call: StepCall<'_>,
        request: &RunRequest,
        context: &mut Value,
        sink: Arc<dyn RunSink>,
    ) -> StepEnd {
        let StepCall {
            step,
            id: step_id,
            template_base,
            after_failure,
        } = call;
        if let Some(condition) = &step.if_ {
            let condition = status_functions(condition, after_failure);
            let rendered = self.renderer.render_value(&condition, context);
            if !is_truthy(rendered.as_ref()) {
                sink.emit(NewEvent::log(json!({
                    "message": format!("Skipping step {step_id} because its if condition was false"),
                    "stepId": step_id,
                    "status": "skipped",
                })))
                .await;
                return StepEnd::Skipped;
            }
        }
        let Some(action) = self.actions.get(&step.action) else {
            return StepEnd::Failed {
                name: "NotFoundError",
                message: format!(
                    "Template action with ID '{}' is not registered. See https://backstage.io/docs/features/software-templates/builtin-actions/ on how to add a new action module.",
                    step.action
                ),
            };
        };
        let logger = StepLogger::new(Arc::new(StepLogs(sink.clone())), step_id);

        if request.dry_run && !action.supports_dry_run() {
            let output = action
                .output_schema()
                .map(|s| fake_output(&s))
                .unwrap_or_else(|| json!({}));
            context["steps"][step_id] = json!({ "output": output });
            sink.emit(NewEvent::log(json!({
                "message": format!("Skipping because {} does not support dry-run", step.action),
                "stepId": step_id,
                "status": "skipped",
            })))
            .await;
            return StepEnd::Skipped;
        }

        // `each` runs the action once per item, with `each.key`/`each.value`
        // in scope; outputs become arrays, one entry per iteration.
        let iterations: Vec<Option<Value>> = match &step.each {
            None => vec![None],
            Some(each) => match self.renderer.render_value(each, context) {
                Some(Value::Array(items)) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| Some(json!({ "key": i.to_string(), "value": v })))
                    .collect(),
                Some(Value::Object(map)) => map
                    .into_iter()
                    .map(|(k, v)| Some(json!({ "key": k, "value": v })))
                    .collect(),
                _ => {
                    return StepEnd::Failed {
                        name: "InputError",
                        message: format!(
                            "Invalid value on action {}.each parameter, \"{}\" cannot be resolved to a value",
                            step.action,
                            match each {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            }
                        ),
                    }
                }
            },
        };

        // Only the successful prefix of a run is journaled: a step that runs
        // after a failure (`always()`, `failure()`) may undo what a retry
        // needs, so neither its outputs nor its workspace are kept.
        let journaled = !request.dry_run && !after_failure;
        let step_timeout = step.extra.get("timeout").and_then(parse_timeout);
        let step_deadline = match (step_timeout.map(|t| tokio::time::Instant::now() + t), request.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut step_output = Map::new();
        let collect = |outputs: Map<String, Value>, iterating: bool, step_output: &mut Map<String, Value>| {
            for (key, value) in outputs {
                if iterating {
                    match step_output.entry(key).or_insert_with(|| json!([])) {
                        Value::Array(items) => items.push(value),
                        slot => *slot = json!([value]),
                    }
                } else {
                    step_output.insert(key, value);
                }
            }
        };
        for each in iterations {
            let iteration_key = each
                .as_ref()
                .map(|e| format!("{step_id}[{}]", e["key"].as_str().unwrap_or_default()));
            if let Some(done) = iteration_key.as_ref().and_then(|k| request.resume.get(k)) {
                collect(done.as_object().cloned().unwrap_or_default(), true, &mut step_output);
                continue;
            }
            let mut scope = context.clone();
            if let Some(each) = &each {
                scope["each"] = each.clone();
            }
            let input = step
                .input
                .as_ref()
                .and_then(|i| self.renderer.render_value(i, &scope))
                .unwrap_or_else(|| json!({}));
            let mut ctx = ActionContext {
                task_id: request.task_id.clone(),
                step_id: step_id.to_owned(),
                workspace: request.workspace.clone(),
                template_base: template_base.clone(),
                raw_input: input.clone(),
                logger: logger.clone(),
                secrets: request.secrets.clone(),
                user: context.get("user").cloned().unwrap_or_else(|| json!({})),
                dry_run: request.dry_run,
                cancel: request.cancel.child_token(),
                integrations: self.renderer.integrations().clone(),
                outputs: Map::new(),
                limits: self.limits,
            };
            if request.dry_run {
                let mut shown = input.clone();
                if !self.environment.secrets.is_empty() {
                    // Backstage shows the environment's secrets as `***` here.
                    let starred: Map<String, Value> = self
                        .environment
                        .secrets
                        .keys()
                        .map(|k| (k.clone(), json!("***")))
                        .collect();
                    scope["environment"]["secrets"] = Value::Object(starred);
                    if let Some(rendered) = step.input.as_ref().and_then(|i| self.renderer.render_value(i, &scope)) {
                        shown = rendered;
                    }
                }
                redact_secrets(&mut shown, &request.secrets);
                logger
                    .info(format!(
                        "Running {} in dry-run mode with inputs (secrets redacted): {}",
                        step.action,
                        serde_json::to_string_pretty(&shown).unwrap_or_default()
                    ))
                    .await;
            }
            // Dropping the action's future is what stops a step that does not
            // watch its cancellation token.
            // Fired whenever this iteration ends, however it ends, so that
            // blocking work an action started stops with it.
            let _stop_blocking_work = ctx.cancel.clone().drop_guard();
            let run = std::panic::AssertUnwindSafe(action.run(&mut ctx, input)).catch_unwind();
            let result = tokio::select! {
                biased;
                _ = request.abort.cancelled() => return StepEnd::Aborted,
                _ = request.cancel.cancelled() => Err(ActionError::Cancelled),
                _ = sleep_until_or_forever(step_deadline) => {
                    let message = match step_timeout {
                        Some(t) if request.deadline.map_or(true, |d| tokio::time::Instant::now() < d) => {
                            format!("Step {step_id} timed out after {}", humanize(t))
                        }
                        _ => format!("Step {step_id} was stopped: the task exceeded its time limit"),
                    };
                    return StepEnd::Failed { name: "TimeoutError", message };
                }
                r = run => r.unwrap_or_else(|panic| Err(ActionError::Failed(format!(
                    "Action {} stopped unexpectedly (panic: {}); the step failed and the task went on like after any failure",
                    step.action,
                    panic_message(panic.as_ref())
                )))),
            };
            match result {
                Ok(()) => {
                    if let Some(key) = iteration_key.as_ref().filter(|_| journaled) {
                        if let Err(e) = sink.step_finished(key, &Value::Object(ctx.outputs.clone())).await {
                            return StepEnd::Failed {
                                name: "Error",
                                message: format!("Step {step_id} finished but cannot be kept for a later attempt: {e}"),
                            };
                        }
                    }
                    collect(ctx.outputs, each.is_some(), &mut step_output);
                }
                Err(ActionError::Cancelled) => return StepEnd::Cancelled,
                Err(e) => {
                    return StepEnd::Failed {
                        name: e.name(),
                        message: e.to_string(),
                    }
                }
            }
        }
        let measured = {
            let (workspace, limit) = (request.workspace.clone(), self.workspace_bytes);
            tokio::task::spawn_blocking(move || workspace_size_over(&workspace, limit))
                .await
                .unwrap_or(None)
        };
        if let Some(size) = measured {
            return StepEnd::Failed {
                name: "Error",
                message: format!(
                    "The task workspace holds more than {} bytes ({size} bytes after step {step_id}; limits.workspace_bytes)",
                    self.workspace_bytes
                ),
            };
        }
        let step_output = Value::Object(step_output);
        if journaled {
            if let Err(e) = sink.step_finished(step_id, &step_output).await {
                return StepEnd::Failed {
                    name: "Error",
                    message: format!("Step {step_id} finished but cannot be kept for a later attempt: {e}"),
                };
            }
        }
        context["steps"][step_id] = json!({ "output": step_output });
        sink.emit(NewEvent::log(json!({
            "message": format!("Finished step {}", step.name.clone().unwrap_or_else(|| step.action.clone())),
            "stepId": step_id,
            "status": "completed",
        })))
        .await;
        StepEnd::Done
    }
}

/// The workspace's size when it exceeds `limit` (symbolic links are not followed).
fn workspace_size_over(workspace: &std::path::Path, limit: u64) -> Option<u64> {
    let mut total = 0u64;
    for entry in walkdir::WalkDir::new(workspace)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        if entry.file_type().is_file() {
            total = total.saturating_add(entry.metadata().map(|m| m.len()).unwrap_or(0));
        }
    }
    (total > limit).then_some(total)
}

/// The span of one step. ERROR level so that it, and the ids it carries into
/// every log line, exists whatever `log.level` says; spans print nothing themselves.
fn step_span(task_id: &str, step_id: &str, action: &str) -> tracing::Span {
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

async fn sleep_until_or_forever(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The text a panic carried (`panic!("...")` gives a `&str` or a `String`).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

fn humanize(d: Duration) -> String {
    if d.as_secs() >= 1 && d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_size_is_measured_against_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/f"), vec![0u8; 600]).unwrap();
        std::fs::write(dir.path().join("g"), vec![0u8; 500]).unwrap();
        assert_eq!(workspace_size_over(dir.path(), 1099), Some(1100));
        assert_eq!(workspace_size_over(dir.path(), 1100), None);
    }

    #[test]
    fn timeouts_parse_numbers_and_units() {
        assert_eq!(parse_timeout(&json!(2)), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout(&json!("500ms")), Some(Duration::from_millis(500)));
        assert_eq!(parse_timeout(&json!("5m")), Some(Duration::from_secs(300)));
        assert_eq!(parse_timeout(&json!("1h")), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout(&json!("soon")), None);
        assert_eq!(parse_timeout(&json!(-1)), None);
    }

    #[test]
    fn status_functions_follow_the_run_state() {
        assert_eq!(status_functions(&json!("${{ failure() }}"), true), json!("${{ true }}"));
        assert_eq!(
            status_functions(&json!("${{ success() }}"), true),
            json!("${{ false }}")
        );
        assert!(runs_after_failure(Some(&json!("${{ always() }}"))));
        assert!(!runs_after_failure(Some(&json!("${{ success() }}"))));
        assert!(!runs_after_failure(None));
    }

    #[test]
    fn fake_outputs_follow_the_schema() {
        let schema = json!({"type": "object", "properties": {
            "remoteUrl": {"type": "string"}, "n": {"type": "number"}, "ok": {"type": "boolean"},
            "list": {"type": "array", "items": {"type": "string"}}, "x": {}}});
        assert_eq!(
            fake_output(&schema),
            json!({"remoteUrl": "<example>", "n": 0, "ok": false, "list": ["<example>"], "x": "<unknown>"})
        );
        assert_eq!(fake_output(&json!({"type": "string", "examples": ["a"]})), json!("a"));
    }

    #[test]
    fn secrets_are_redacted_everywhere_in_a_value() {
        let secrets: Map<String, Value> = serde_json::from_value(json!({"t": "abc123"})).unwrap();
        let mut body = json!({"message": "token=abc123 used", "nested": ["abc123"]});
        redact_secrets(&mut body, &secrets);
        assert_eq!(body, json!({"message": "token=*** used", "nested": ["***"]}));
    }

    #[test]
    fn truthiness_is_javascript_s() {
        assert!(!is_truthy(None));
        assert!(!is_truthy(Some(&json!(false))));
        assert!(!is_truthy(Some(&json!(""))));
        assert!(!is_truthy(Some(&json!(0))));
        assert!(is_truthy(Some(&json!("false"))));
        assert!(is_truthy(Some(&json!([]))));
        assert!(is_truthy(Some(&json!(1))));
    }
}
