//! A client for a running scaffolder: `create`, `tasks …`, `templates show`,
//! `actions list`. Follows tasks over the SSE event stream, resuming with
//! `Last-Event-ID` when the connection drops.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::{Response, StatusCode};
use serde_json::{json, Map, Value};
use url::Url;

use super::progress::{json_report, render_output, strip_ansi, Display};
use super::values::{
    can_prompt, check_set_keys, fill_values, load_secrets, load_values, page_visible, validate_all, Ask, Terminal,
};
use super::{Exit, OutputFormat};
use crate::backoff::Backoff;
use crate::domain::entity_ref::EntityRef;
use crate::sse::SseParser;
use crate::templating::Renderer;
use crate::{errln, out, outln};

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7007";
/// Longest silence on an event stream before it counts as dropped (the
/// server sends a keep-alive every 15 s by default).
const STREAM_IDLE: Duration = Duration::from_secs(60);
/// Reconnects in a row without a single event before following gives up.
const MAX_RECONNECTS: u32 = 8;
/// 0.5 s after the first failure, doubling up to 5 s.
const RECONNECT_BACKOFF: Backoff = Backoff::doubling(Duration::from_millis(250)).capped(Duration::from_secs(5));

#[derive(Debug)]
pub enum ClientError {
    /// The server answered with an error.
    Http {
        status: u16,
        message: String,
        stacks: Vec<String>,
    },
    /// The server could not be reached or answered nonsense.
    Transport(String),
    /// Bad command-line input.
    Usage(String),
    /// Something on this machine failed (a signal handler, a file).
    Local(String),
    /// Values that fail the template's parameters, checked before sending:
    /// each error's `stack`.
    Invalid(Vec<String>),
}

impl ClientError {
    pub fn exit_code(&self) -> Exit {
        match self {
            ClientError::Http { status: 400, .. } | ClientError::Usage(_) | ClientError::Invalid(_) => Exit::Usage,
            ClientError::Http { status: 404, .. } => Exit::NotFound,
            ClientError::Transport(_) => Exit::Unreachable,
            ClientError::Http { .. } | ClientError::Local(_) => Exit::Failed,
        }
    }

    pub fn report(&self) {
        match self {
            ClientError::Http { message, stacks, .. } if !stacks.is_empty() => {
                errln!("scaffolder: {message}:");
                for stack in stacks {
                    errln!("  - {stack}");
                }
            }
            ClientError::Http { status, message, .. } => errln!("scaffolder: {message} (HTTP {status})"),
            ClientError::Invalid(stacks) => {
                errln!("scaffolder: the values do not match the template's parameters:");
                for stack in stacks {
                    errln!("  - {stack}");
                }
            }
            ClientError::Transport(message) | ClientError::Usage(message) | ClientError::Local(message) => {
                errln!("scaffolder: {message}")
            }
        }
    }
}

/// An error body in Backstage's shape: `errors[].stack` for invalid values,
/// else `error.message`.
pub fn error_of_body(status: u16, body: &str) -> ClientError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let stacks: Vec<String> = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e.get("stack").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !stacks.is_empty() {
        return ClientError::Http {
            status,
            message: "the values do not match the template's parameters".into(),
            stacks,
        };
    }
    let message = parsed
        .as_ref()
        .and_then(|v| v.pointer("/error/message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let text: String = body.trim().chars().take(300).collect();
            if text.is_empty() {
                format!("the server answered {status}")
            } else {
                text
            }
        });
    ClientError::Http {
        status,
        message,
        stacks: Vec::new(),
    }
}

pub struct Client {
    base: Url,
    http: reqwest::Client,
    token: Option<String>,
}

fn event_time(event: &Value) -> DateTime<Utc> {
    event
        .get("createdAt")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now)
}

fn event_type(event: &Value) -> &str {
    event.get("type").and_then(Value::as_str).unwrap_or("log")
}

impl Client {
    /// `server` is the service's root (`http://host:7007`) or its
    /// `…/api/scaffolder` mount.
    pub fn new(server: Option<&str>, token: Option<String>) -> Result<Client, ClientError> {
        let raw = server.unwrap_or(DEFAULT_SERVER).trim_end_matches('/');
        let mut base = Url::parse(raw).map_err(|e| ClientError::Usage(format!("--server {raw}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::Usage(format!("--server {raw}: not an http(s) URL")));
        }
        if !base.path().trim_end_matches('/').ends_with("/api/scaffolder") {
            let path = format!("{}/api/scaffolder", base.path().trim_end_matches('/'));
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Transport(format!("cannot build an HTTP client: {e}")))?;
        Ok(Client {
            base,
            http,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    fn url(&self, segments: &[&str]) -> Result<Url, ClientError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ClientError::Usage(format!("{} cannot be a base URL", self.base)))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, url);
        match &self.token {
            Some(token) => builder.header(AUTHORIZATION, format!("Bearer {token}")),
            None => builder,
        }
    }

    fn transport(&self, e: reqwest::Error) -> ClientError {
        ClientError::Transport(format!("cannot reach {}: {e}", self.base))
    }

    async fn answer(&self, response: Response) -> Result<Value, ClientError> {
        let status = response.status();
        let body = response.text().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            return Err(error_of_body(status.as_u16(), &body));
        }
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&body).map_err(|e| ClientError::Transport(format!("the server's answer is not JSON: {e}")))
    }

    pub async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Value, ClientError> {
        let mut url = self.url(segments)?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        let response = self
            .request(reqwest::Method::GET, url)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        self.answer(response).await
    }

    pub async fn post(&self, segments: &[&str], body: &Value) -> Result<Value, ClientError> {
        let response = self
            .request(reqwest::Method::POST, self.url(segments)?)
            .json(body)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        self.answer(response).await
    }

    /// The events so far, without waiting for new ones (long polling waits
    /// when there are none; that wait is cut short).
    pub async fn events_so_far(&self, task_id: &str) -> Result<Vec<Value>, ClientError> {
        let url = self.url(&["v2", "tasks", task_id, "events"])?;
        let request = self
            .request(reqwest::Method::GET, url)
            .timeout(Duration::from_secs(3))
            .send();
        match request.await {
            Ok(response) => Ok(self.answer(response).await?.as_array().cloned().unwrap_or_default()),
            Err(e) if e.is_timeout() => Ok(Vec::new()),
            Err(e) => Err(self.transport(e)),
        }
    }

    /// Follows a task's event stream after event `after` until its
    /// `completion` event, which it returns; reconnects with `Last-Event-ID`
    /// when the connection drops.
    pub async fn follow(
        &self,
        task_id: &str,
        mut after: Option<i64>,
        mut on_event: impl FnMut(&Value),
        mut on_reconnect: impl FnMut(Option<i64>),
    ) -> Result<Value, ClientError> {
        let url = self.url(&["v2", "tasks", task_id, "eventstream"])?;
        let mut failures = 0u32;
        loop {
            if failures > 0 {
                if failures > MAX_RECONNECTS {
                    return Err(ClientError::Transport(format!(
                        "lost the event stream of task {task_id} and could not get it back"
                    )));
                }
                tokio::time::sleep(RECONNECT_BACKOFF.delay(failures)).await;
                on_reconnect(after);
            }
            let mut request = self
                .request(reqwest::Method::GET, url.clone())
                .header(ACCEPT, "text/event-stream");
            if let Some(id) = after {
                request = request.header("Last-Event-ID", id.to_string());
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(_) => {
                    failures += 1;
                    continue;
                }
            };
            let status = response.status();
            if !status.is_success() {
                // A restarting server or a proxy in between: try again.
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                    failures += 1;
                    continue;
                }
                return Err(self
                    .answer(response)
                    .await
                    .err()
                    .unwrap_or_else(|| ClientError::Transport(format!("the event stream answered {status}"))));
            }
            let mut stream = response.bytes_stream();
            let mut parser = SseParser::default();
            loop {
                let chunk = match tokio::time::timeout(STREAM_IDLE, stream.next()).await {
                    Ok(Some(Ok(bytes))) => bytes,
                    // Closed, broken or silent for too long.
                    Ok(Some(Err(_))) | Ok(None) | Err(_) => break,
                };
                for frame in parser.push(&chunk) {
                    let Ok(event) = serde_json::from_str::<Value>(&frame.data) else {
                        continue;
                    };
                    failures = 0;
                    if let Some(id) = frame
                        .id
                        .as_deref()
                        .and_then(|i| i.parse::<i64>().ok())
                        .or_else(|| event.get("id").and_then(Value::as_i64))
                    {
                        after = Some(id);
                    }
                    on_event(&event);
                    let kind = frame.event.as_deref().unwrap_or_else(|| event_type(&event));
                    if kind == "completion" {
                        return Ok(event.get("body").cloned().unwrap_or_else(|| json!({})));
                    }
                }
            }
            failures += 1;
        }
    }
}

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
async fn follow_with_display(
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

pub async fn create(client: &Client, args: CreateArgs) -> Result<Exit, ClientError> {
    let values = load_values(args.values.as_deref(), &args.set).map_err(ClientError::Usage)?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let secrets = load_secrets(&env, &args.secrets).map_err(ClientError::Usage)?;
    // Defaults (and prompts) as the form would, from the server's schema.
    let entity_ref =
        EntityRef::parse(&args.template_ref, "template", "default").map_err(|e| ClientError::Usage(e.to_string()))?;
    let schema = client
        .get(
            &[
                "v2",
                "templates",
                &entity_ref.namespace,
                &entity_ref.kind,
                &entity_ref.name,
                "parameter-schema",
            ],
            &[],
        )
        .await?;
    let pages: Vec<Value> = schema
        .get("steps")
        .and_then(Value::as_array)
        .map(|steps| steps.iter().filter_map(|s| s.get("schema").cloned()).collect())
        .unwrap_or_default();
    let page_refs: Vec<&Value> = pages.iter().collect();
    check_set_keys(&page_refs, &args.set).map_err(ClientError::Usage)?;
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
    let schema = client
        .get(
            &[
                "v2",
                "templates",
                &entity_ref.namespace,
                &entity_ref.kind,
                &entity_ref.name,
                "parameter-schema",
            ],
            &[],
        )
        .await?;
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
    use super::*;

    #[test]
    fn backstage_errors_are_read() {
        let validation = error_of_body(400, r#"{"errors":[{"stack":"instance requires property \"name\""}]}"#);
        match &validation {
            ClientError::Http { stacks, .. } => {
                assert_eq!(stacks, &vec!["instance requires property \"name\"".to_owned()])
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(validation.exit_code(), Exit::Usage);
        let not_found = error_of_body(404, r#"{"error":{"name":"NotFoundError","message":"No task"}}"#);
        match &not_found {
            ClientError::Http { message, .. } => assert_eq!(message, "No task"),
            other => panic!("{other:?}"),
        }
        assert_eq!(not_found.exit_code(), Exit::NotFound);
        assert!(
            matches!(error_of_body(502, "bad gateway"), ClientError::Http { message, .. } if message == "bad gateway")
        );
    }

    #[test]
    fn server_urls_gain_the_mount() {
        let client = Client::new(Some("http://h:7007/"), None).unwrap();
        assert_eq!(
            client.url(&["v2", "tasks", "a b"]).unwrap().as_str(),
            "http://h:7007/api/scaffolder/v2/tasks/a%20b"
        );
        let client = Client::new(Some("http://h/api/scaffolder"), None).unwrap();
        assert_eq!(
            client.url(&["v2", "actions"]).unwrap().as_str(),
            "http://h/api/scaffolder/v2/actions"
        );
        assert!(Client::new(Some("ftp://h"), None).is_err());
        assert_eq!(
            status_of_completion(&json!({"message": "Run completed with status: cancelled"})),
            "cancelled"
        );
    }
}
