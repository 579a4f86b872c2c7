//! The commands that talk to a running scaffolder: `create`, `tasks list |
//! show | logs | cancel | retry`, `templates show`, `actions list`, each
//! printing for a terminal or as JSON (`--output json`).

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::client::{event_time, event_type, Client, ClientError};
use super::progress::{json_report, render_output, strip_ansi, Display};
use super::values::{
    can_prompt, check_set_keys, fill_values, load_secrets, load_values, page_visible, validate_all, Ask, Terminal,
};
use super::{Exit, OutputFormat};
use crate::domain::entity_ref::EntityRef;
use crate::templating::Renderer;
use crate::{errln, out, outln};

/// The status a `completion` body reports (`Run completed with status: x`).
fn status_of_completion(body: &Value) -> String {
    body.get("message")
        .and_then(Value::as_str)
        .and_then(|m| m.rsplit_once("status: "))
        .map(|(_, s)| s.trim().to_owned())
        .unwrap_or_else(|| {
            if body.get("error").is_some() {
                "failed".into()
            } else {
                "completed".into()
            }
        })
}

fn exit_of_status(status: &str) -> Exit {
    match status {
        "completed" => Exit::Ok,
        "cancelled" => Exit::Cancelled,
        _ => Exit::Failed,
    }
}

/// Follows a task with the progress display; returns the exit code and
/// prints the end (text or JSON).
pub(crate) async fn follow_with_display(
    client: &Client,
    task_id: &str,
    after: Option<i64>,
    verbose: bool,
    output: OutputFormat,
) -> Result<Exit, ClientError> {
    let task = client.get(&["v2", "tasks", task_id], &[]).await?;
    let spec = task.get("spec").cloned().unwrap_or_else(|| json!({}));
    let display = Display::new(&spec, verbose);
    let ticker = display.start_ticker();
    let mut interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| ClientError::Local(format!("cannot watch for Ctrl-C: {e}")))?;
    let followed = {
        let shown = display.clone();
        let on_event = move |event: &Value| {
            let body = event.get("body").cloned().unwrap_or_else(|| json!({}));
            shown.event(event_type(event), &body, event_time(event));
        };
        let reconnecting = display.clone();
        let on_reconnect = move |after: Option<i64>| {
            reconnecting.note(&format!(
                "(connection lost; resuming after event {})",
                after.map(|a| a.to_string()).unwrap_or_else(|| "0".into())
            ));
        };
        tokio::select! {
            r = client.follow(task_id, after, on_event, on_reconnect) => Some(r),
            _ = interrupts.recv() => None,
        }
    };
    ticker.cancel();
    display.finish();
    let Some(result) = followed else {
        errln!("Stopped following task {task_id}; it goes on on the server.");
        errln!("  scaffolder tasks logs {task_id} --follow    # follow it again");
        errln!("  scaffolder tasks cancel {task_id}           # cancel it");
        return Ok(Exit::Cancelled);
    };
    let completion = result?;
    let status = status_of_completion(&completion);
    let task_output = completion.get("output").cloned().unwrap_or_else(|| json!({}));
    let error = match status.as_str() {
        "completed" => None,
        "cancelled" => Some(json!({ "name": "Cancelled", "message": "the task was cancelled" })),
        _ => Some(
            completion
                .get("error")
                .cloned()
                .unwrap_or_else(|| json!({ "name": "Error", "message": format!("the task {status}") })),
        ),
    };
    if output == OutputFormat::Json {
        let mut report = json_report(&status, &task_output, &display.summary(), error);
        report["id"] = json!(task_id);
        outln!("{report}");
    } else {
        match status.as_str() {
            "completed" => {
                errln!("Task {task_id} completed.");
                out!("{}", render_output(&task_output));
            }
            other => {
                let message = error
                    .as_ref()
                    .and_then(|e| e.get("message").and_then(Value::as_str))
                    .unwrap_or("");
                errln!("Task {task_id} {other}: {message}");
            }
        }
    }
    Ok(exit_of_status(&status))
}

pub struct CreateArgs {
    pub template_ref: String,
    pub values: Option<std::path::PathBuf>,
    pub set: Vec<String>,
    pub secrets: Vec<String>,
    pub verbose: bool,
    pub output: OutputFormat,
}

/// `GET /v2/templates/{namespace}/{kind}/{name}/parameter-schema`.
async fn parameter_schema(client: &Client, entity_ref: &EntityRef) -> Result<Value, ClientError> {
    let path = [
        "v2",
        "templates",
        entity_ref.namespace.as_str(),
        entity_ref.kind.as_str(),
        entity_ref.name.as_str(),
        "parameter-schema",
    ];
    client.get(&path, &[]).await
}

pub async fn create(client: &Client, args: CreateArgs) -> Result<Exit, ClientError> {
    let values = load_values(args.values.as_deref(), &args.set).map_err(|e| ClientError::Usage(e.to_string()))?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let secrets = load_secrets(&env, &args.secrets).map_err(|e| ClientError::Usage(e.to_string()))?;
    // Defaults (and prompts) as the form would, from the server's schema.
    let entity_ref =
        EntityRef::parse(&args.template_ref, "template", "default").map_err(|e| ClientError::Usage(e.to_string()))?;
    let schema = parameter_schema(client, &entity_ref).await?;
    let pages: Vec<Value> = schema
        .get("steps")
        .and_then(Value::as_array)
        .map(|steps| steps.iter().filter_map(|s| s.get("schema").cloned()).collect())
        .unwrap_or_default();
    let page_refs: Vec<&Value> = pages.iter().collect();
    check_set_keys(&page_refs, &args.set).map_err(|e| ClientError::Usage(e.to_string()))?;
    let renderer = Renderer::default();
    let visible = |page: &Value, values: &Value| page_visible(&renderer, page, values);
    let mut terminal = Terminal;
    let ask: Option<&mut dyn Ask> = if can_prompt() { Some(&mut terminal) } else { None };
    let values = Value::Object(fill_values(&page_refs, values, &visible, ask));
    // Every page's errors at once; the server would stop at the first page.
    validate_all(&page_refs, &values, |page| page_visible(&renderer, page, &values)).map_err(|errors| {
        ClientError::Invalid(
            errors
                .iter()
                .filter_map(|e| e.get("stack").and_then(Value::as_str).map(str::to_owned))
                .collect(),
        )
    })?;

    let mut body = json!({ "templateRef": args.template_ref, "values": values });
    if !secrets.is_empty() {
        body["secrets"] = Value::Object(secrets);
    }
    let created = client.post(&["v2", "tasks"], &body).await?;
    let id = created
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| ClientError::Transport("the server did not answer with a task id".into()))?
        .to_owned();
    errln!("Task {id} created.");
    follow_with_display(client, &id, None, args.verbose, args.output).await
}

pub async fn tasks_list(
    client: &Client,
    status: &[String],
    limit: Option<u32>,
    output: OutputFormat,
) -> Result<Exit, ClientError> {
    let mut query: Vec<(&str, String)> = status.iter().map(|s| ("status", s.clone())).collect();
    if let Some(limit) = limit {
        query.push(("limit", limit.to_string()));
    }
    let answer = client.get(&["v2", "tasks"], &query).await?;
    if output == OutputFormat::Json {
        outln!("{answer}");
        return Ok(Exit::Ok);
    }
    let tasks = answer
        .get("tasks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    outln!("{:<36}  {:<10}  {:<24}  TEMPLATE", "ID", "STATUS", "CREATED");
    for task in &tasks {
        let field = |pointer: &str| task.pointer(pointer).and_then(Value::as_str).unwrap_or("-").to_owned();
        outln!(
            "{:<36}  {:<10}  {:<24}  {}",
            field("/id"),
            field("/status"),
            field("/createdAt"),
            field("/spec/templateInfo/entityRef")
        );
    }
    let total = answer
        .get("totalTasks")
        .and_then(Value::as_i64)
        .unwrap_or(tasks.len() as i64);
    errln!("{} of {total} tasks", tasks.len());
    Ok(Exit::Ok)
}

pub async fn tasks_show(client: &Client, id: &str, output: OutputFormat) -> Result<Exit, ClientError> {
    let task = client.get(&["v2", "tasks", id], &[]).await?;
    if output == OutputFormat::Json {
        outln!("{task}");
        return Ok(Exit::Ok);
    }
    let field = |pointer: &str| task.pointer(pointer).and_then(Value::as_str).unwrap_or("-").to_owned();
    outln!("Task        {}", field("/id"));
    outln!("Template    {}", field("/spec/templateInfo/entityRef"));
    outln!("Status      {}", field("/status"));
    outln!("Created     {}", field("/createdAt"));
    outln!("Heartbeat   {}", field("/lastHeartbeatAt"));
    if let Some(by) = task.get("createdBy").and_then(Value::as_str) {
        outln!("Created by  {by}");
    }
    if let Some(parameters) = task.pointer("/spec/parameters").and_then(Value::as_object) {
        outln!("Parameters:");
        for (key, value) in parameters {
            outln!("  {key}: {value}");
        }
    }
    let spec = task.get("spec").cloned().unwrap_or_else(|| json!({}));
    let display = Display::with(&spec, false, false, true);
    let events = if task.get("status").and_then(Value::as_str) == Some("open") {
        Vec::new()
    } else {
        client.events_so_far(id).await?
    };
    for event in &events {
        let body = event.get("body").cloned().unwrap_or_else(|| json!({}));
        display.event(event_type(event), &body, event_time(event));
    }
    outln!("Steps:");
    for step in display.summary() {
        let mark = match step.status {
            "completed" => "✓",
            "failed" => "✗",
            "skipped" => "-",
            "cancelled" => "⊘",
            "processing" => "▸",
            _ => " ",
        };
        let duration = step
            .duration_ms
            .map(|ms| format!(" {}", super::progress::format_duration(Duration::from_millis(ms))))
            .unwrap_or_default();
        outln!("  {mark} {} ({}) {}{duration}", step.name, step.id, step.status);
    }
    if let Some(completion) = display.completion() {
        if let Some(error) = completion.get("error") {
            outln!(
                "Error: {}",
                error.get("message").and_then(Value::as_str).unwrap_or_default()
            );
        }
        if let Some(output) = completion.get("output") {
            out!("{}", render_output(output));
        }
    }
    Ok(Exit::Ok)
}

fn log_line(event: &Value) -> String {
    let at = event.get("createdAt").and_then(Value::as_str).unwrap_or("");
    let body = event.get("body").cloned().unwrap_or_else(|| json!({}));
    let message = strip_ansi(body.get("message").and_then(Value::as_str).unwrap_or_default());
    let mut prefix = at.to_owned();
    if let Some(step) = body.get("stepId").and_then(Value::as_str) {
        prefix.push_str(&format!(" [{step}]"));
    }
    if let Some(status) = body.get("status").and_then(Value::as_str) {
        prefix.push_str(&format!(" ({status})"));
    }
    message
        .lines()
        .map(|line| format!("{prefix} {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub async fn tasks_logs(client: &Client, id: &str, follow: bool) -> Result<Exit, ClientError> {
    if !follow {
        for event in client.events_so_far(id).await? {
            outln!("{}", log_line(&event));
        }
        return Ok(Exit::Ok);
    }
    let mut interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| ClientError::Local(format!("cannot watch for Ctrl-C: {e}")))?;
    let print = |event: &Value| outln!("{}", log_line(event));
    let note = |after: Option<i64>| errln!("(connection lost; resuming after event {})", after.unwrap_or(0));
    tokio::select! {
        completion = client.follow(id, None, print, note) => Ok(exit_of_status(&status_of_completion(&completion?))),
        _ = interrupts.recv() => Ok(Exit::Cancelled),
    }
}

pub async fn tasks_cancel(client: &Client, id: &str) -> Result<Exit, ClientError> {
    let answer = client.post(&["v2", "tasks", id, "cancel"], &json!({})).await?;
    match answer.get("message").and_then(Value::as_str) {
        Some(message) => errln!("{message}"),
        None => errln!("Task {id}: cancellation requested."),
    }
    Ok(Exit::Ok)
}

pub async fn tasks_retry(
    client: &Client,
    id: &str,
    follow: bool,
    verbose: bool,
    output: OutputFormat,
) -> Result<Exit, ClientError> {
    // Follow only what the new attempt appends.
    let last = if follow {
        client
            .events_so_far(id)
            .await?
            .iter()
            .filter_map(|e| e.get("id").and_then(Value::as_i64))
            .max()
    } else {
        None
    };
    client.post(&["v2", "tasks", id, "retry"], &json!({})).await?;
    errln!("Task {id} re-opened.");
    if follow {
        return follow_with_display(client, id, last, verbose, output).await;
    }
    if output == OutputFormat::Json {
        // The task as it is now, as `tasks show --output json` prints it.
        let task = client.get(&["v2", "tasks", id], &[]).await?;
        outln!("{task}");
    }
    Ok(Exit::Ok)
}

fn describe_property(key: &str, schema: &Value, required: bool) -> String {
    let kind = match schema.get("type") {
        Some(Value::String(t)) if t == "array" => {
            let items = schema.pointer("/items/type").and_then(Value::as_str).unwrap_or("any");
            format!("array of {items}")
        }
        Some(Value::String(t)) => t.clone(),
        Some(other) => other.to_string(),
        None => "any".into(),
    };
    let mut text = format!("  {key}{}  {kind}", if required { " (required)" } else { "" });
    if let Some(title) = schema.get("title").and_then(Value::as_str) {
        text.push_str(&format!("  — {title}"));
    }
    if let Some(description) = schema.get("description").and_then(Value::as_str) {
        text.push_str(&format!(
            "\n      {}",
            description.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    let choices = schema
        .get("enum")
        .or_else(|| schema.pointer("/items/enum"))
        .and_then(Value::as_array);
    if let Some(choices) = choices {
        let shown: Vec<String> = choices
            .iter()
            .map(|c| c.as_str().map(str::to_owned).unwrap_or_else(|| c.to_string()))
            .collect();
        text.push_str(&format!("\n      one of: {}", shown.join(", ")));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        text.push_str(&format!("\n      pattern: {pattern}"));
    }
    if let Some(default) = schema.get("default") {
        text.push_str(&format!("\n      default: {default}"));
    }
    text
}

pub async fn templates_show(client: &Client, raw_ref: &str, output: OutputFormat) -> Result<Exit, ClientError> {
    let entity_ref = EntityRef::parse(raw_ref, "template", "default").map_err(|e| ClientError::Usage(e.to_string()))?;
    let schema = parameter_schema(client, &entity_ref).await?;
    if output == OutputFormat::Json {
        outln!("{schema}");
        return Ok(Exit::Ok);
    }
    let title = schema.get("title").and_then(Value::as_str).unwrap_or(&entity_ref.name);
    outln!("{title} ({entity_ref})");
    if let Some(description) = schema.get("description").and_then(Value::as_str) {
        outln!("  {}", description.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    let steps = schema
        .get("steps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, step) in steps.iter().enumerate() {
        let page_title = step.get("title").and_then(Value::as_str).unwrap_or("Parameters");
        outln!();
        out!("{}. {page_title}", i + 1);
        // Backstage lifts a page's `when` out of its schema (older servers left it in).
        match step.get("when").or_else(|| step.pointer("/schema/when")) {
            Some(when) => outln!(
                "  (shown when {})",
                when.as_str().map(str::to_owned).unwrap_or(when.to_string())
            ),
            None => outln!(),
        }
        let required: Vec<&str> = step
            .pointer("/schema/required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let empty = Map::new();
        let props = step
            .pointer("/schema/properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        for (key, prop) in props {
            outln!("{}", describe_property(key, prop, required.contains(&key.as_str())));
        }
    }
    Ok(Exit::Ok)
}

pub async fn actions_list(client: &Client, output: OutputFormat) -> Result<Exit, ClientError> {
    let actions = client.get(&["v2", "actions"], &[]).await?;
    if output == OutputFormat::Json {
        outln!("{actions}");
        return Ok(Exit::Ok);
    }
    let list = actions.as_array().cloned().unwrap_or_default();
    let width = list
        .iter()
        .filter_map(|a| a.get("id").and_then(Value::as_str))
        .map(str::len)
        .max()
        .unwrap_or(0);
    for action in &list {
        let id = action.get("id").and_then(Value::as_str).unwrap_or("?");
        let description = action.get("description").and_then(Value::as_str).unwrap_or("");
        let first = description.lines().next().unwrap_or("");
        outln!("{id:<width$}  {first}");
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_completion_names_the_status() {
        assert_eq!(
            status_of_completion(&json!({"message": "Run completed with status: cancelled"})),
            "cancelled"
        );
    }
}

/// `scaffolder tasks approve|reject ID [--comment]`.
pub async fn tasks_decide(
    client: &Client,
    id: &str,
    approve: bool,
    comment: Option<String>,
) -> Result<Exit, ClientError> {
    let verb = if approve { "approve" } else { "reject" };
    let body = match comment {
        Some(comment) => json!({ "comment": comment }),
        None => json!({}),
    };
    let answer = client.post(&["v2", "tasks", id, verb], &body).await?;
    let step = answer.get("stepId").and_then(Value::as_str).unwrap_or("-");
    let decision = answer.get("decision").and_then(Value::as_str).unwrap_or(verb);
    errln!("Task {id}: step {step} {decision}; the task goes on.");
    Ok(Exit::Ok)
}

/// Filters of `scaffolder audit`.
#[derive(Debug, Default)]
pub struct AuditArgs {
    pub actor: Option<String>,
    pub events: Vec<String>,
    pub task: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub before: Option<i64>,
    pub limit: Option<u32>,
    pub output: OutputFormat,
}

/// `scaffolder audit`: one page of the audit trail, newest first.
pub async fn audit(client: &Client, args: AuditArgs) -> Result<Exit, ClientError> {
    let mut query: Vec<(&str, String)> = args.events.iter().map(|e| ("event", e.clone())).collect();
    let optional = [
        ("actor", args.actor),
        ("taskId", args.task),
        ("since", args.since),
        ("until", args.until),
        ("before", args.before.map(|b| b.to_string())),
        ("limit", args.limit.map(|l| l.to_string())),
    ];
    query.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    let answer = client.get(&["v2", "audit"], &query).await?;
    if args.output == OutputFormat::Json {
        outln!("{answer}");
        return Ok(Exit::Ok);
    }
    let events = answer
        .get("events")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    outln!(
        "{:<8}  {:<24}  {:<28}  {:<9}  {:<30}  TASK / TARGET",
        "ID",
        "TIME",
        "EVENT",
        "STATUS",
        "ACTOR"
    );
    for event in &events {
        let field = |pointer: &str| event.pointer(pointer).and_then(Value::as_str).unwrap_or("-").to_owned();
        let target = event
            .get("taskId")
            .or_else(|| event.get("target"))
            .and_then(Value::as_str)
            .unwrap_or("-");
        outln!(
            "{:<8}  {:<24}  {:<28}  {:<9}  {:<30}  {target}",
            event.get("id").and_then(Value::as_i64).unwrap_or_default(),
            field("/createdAt"),
            field("/event"),
            field("/status"),
            field("/actor/actorId"),
        );
    }
    match answer.get("next").and_then(Value::as_i64) {
        Some(next) => errln!("{} events; older ones: --before {next}", events.len()),
        None => errln!("{} events", events.len()),
    }
    Ok(Exit::Ok)
}
