//! The step executor: one step of a run, with its `if`, its `each`
//! iterations, its timeout, dry-run fakes, a panic caught as a failure, and
//! the workspace size check after it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use serde_json::{json, Map, Value};
use url::Url;

use crate::actions::{ActionContext, ActionError, CheckpointJournal, LogSink, RunInfo, StepLogger};
use crate::model::approval::ApprovalGate;
use crate::model::{NewEvent, StepStatus};
use crate::template::Step;

use super::runner::{redact_secrets, RunRequest, RunSink, Runner};

pub(super) struct StepLogs(pub(super) Arc<dyn RunSink>);

#[async_trait]
impl LogSink for StepLogs {
    async fn log(&self, step_id: &str, message: String) {
        self.0.emit(NewEvent::step_log(step_id, message)).await;
    }
}

/// The journal key of checkpoint `key` of the step (or iteration) `step_key`.
fn checkpoint_key(step_key: &str, key: &str) -> String {
    format!("{step_key}{CHECKPOINT_MARK}{key}")
}

const CHECKPOINT_MARK: &str = "#checkpoint:";

/// The checkpoint states an earlier attempt of `step_key` journaled.
fn earlier_checkpoints(resume: &std::collections::HashMap<String, Value>, step_key: &str) -> Map<String, Value> {
    let prefix = format!("{step_key}{CHECKPOINT_MARK}");
    resume
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|key| (key.to_owned(), v.clone())))
        .collect()
}

/// A step's checkpoints go to the run's sink, which journals them.
struct StepCheckpoints {
    sink: Arc<dyn RunSink>,
    step_key: String,
}

#[async_trait]
impl CheckpointJournal for StepCheckpoints {
    async fn record(&self, key: &str, state: &Value) -> Result<(), ActionError> {
        self.sink
            .checkpoint(&checkpoint_key(&self.step_key, key), state)
            .await
            .map_err(|e| ActionError::Failed(format!("checkpoint {key} cannot be kept for a retry: {e}")))
    }
}

/// One step to run, and where the run stands.
pub(super) struct StepCall<'a> {
    pub(super) step: &'a Step,
    pub(super) id: &'a str,
    pub(super) template_base: &'a Url,
    /// An earlier step failed (only `always()`/`failure()` steps get here then).
    pub(super) after_failure: bool,
}

pub(super) enum StepEnd {
    Done,
    Skipped,
    Failed {
        name: &'static str,
        message: String,
    },
    Cancelled,
    Aborted,
    /// The step waits at an approval gate.
    Waiting(ApprovalGate),
}

pub(super) fn is_truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(_)) | Some(Value::Object(_)) => true,
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
pub(super) fn status_functions(condition: &Value, failed: bool) -> Value {
    match condition {
        Value::String(s) => Value::String(
            s.replace("always()", "true")
                .replace("success()", if failed { "false" } else { "true" })
                .replace("failure()", if failed { "true" } else { "false" }),
        ),
        other => other.clone(),
    }
}

pub(super) fn runs_after_failure(condition: Option<&Value>) -> bool {
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

/// Publish steps that make a repository from the workspace; a pull request
/// into someone else's repository is not generated from the template.
fn creates_repository(action: &str) -> bool {
    action.starts_with("publish:") && !action.ends_with(":pull-request") && !action.ends_with(":merge-request")
}

/// Writes the answers file into what a publish step publishes: the
/// workspace, or its `sourcePath`.
fn write_answers(workspace: &std::path::Path, input: &Value, answers: &str) -> Result<(), String> {
    let source = input.get("sourcePath").and_then(Value::as_str).unwrap_or("");
    let dir = crate::actions::workspace::resolve_safe_child_path(workspace, source).map_err(|e| e.to_string())?;
    let path = dir.join(crate::template::version::ANSWERS_PATH);
    let write = || -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, answers)
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl Runner {
    pub(super) async fn run_step(
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
                sink.emit(NewEvent::step_status(
                    step_id,
                    StepStatus::Skipped,
                    format!("Skipping step {step_id} because its if condition was false"),
                ))
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
            sink.emit(NewEvent::step_status(
                step_id,
                StepStatus::Skipped,
                format!("Skipping because {} does not support dry-run", step.action),
            ))
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
                task_id: request.task_id.to_string(),
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
                extensions: self.renderer.extensions().clone(),
                outputs: Map::new(),
                limits: self.limits,
                reader: self.reader.clone(),
                run: {
                    let step_key = iteration_key.clone().unwrap_or_else(|| step_id.to_owned());
                    RunInfo {
                        template_info: request.spec.get("templateInfo").cloned().unwrap_or(Value::Null),
                        each: each.clone(),
                        step_name: step.name.clone(),
                        checkpoints: earlier_checkpoints(&request.resume, &step_key),
                        journal: journaled.then(|| {
                            Arc::new(StepCheckpoints {
                                sink: sink.clone(),
                                step_key,
                            }) as Arc<dyn CheckpointJournal>
                        }),
                    }
                },
                approval: request
                    .approval
                    .as_ref()
                    .filter(|(waited_at, _)| waited_at == step_id && each.is_none())
                    .map(|(_, decision)| decision.clone()),
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
            if let Some(answers) = request.answers.as_deref() {
                if !request.dry_run && creates_repository(&step.action) {
                    if let Err(message) = write_answers(&request.workspace, &input, answers) {
                        return StepEnd::Failed { name: "Error", message };
                    }
                }
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
                // A gate needs the task to stop and come back later: not
                // possible halfway through a loop or while cleaning up.
                Err(ActionError::AwaitApproval(_)) if each.is_some() || after_failure => {
                    return StepEnd::Failed {
                        name: "InputError",
                        message: format!(
                            "{} cannot wait for approval inside `each` or in a step that runs after a failure",
                            step.action
                        ),
                    }
                }
                Err(ActionError::AwaitApproval(gate)) => return StepEnd::Waiting(*gate),
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
        sink.emit(NewEvent::step_status(
            step_id,
            StepStatus::Completed,
            format!(
                "Finished step {}",
                step.name.clone().unwrap_or_else(|| step.action.clone())
            ),
        ))
        .await;
        StepEnd::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_go_only_into_repositories_a_template_makes() {
        assert!(creates_repository("publish:github") && creates_repository("publish:git"));
        assert!(!creates_repository("publish:github:pull-request"));
        assert!(!creates_repository("publish:gitlab:merge-request"));
        assert!(!creates_repository("fetch:template"));
    }

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
