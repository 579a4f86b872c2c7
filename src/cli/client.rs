//! The HTTP client of a running scaffolder: requests under its mount, errors
//! in Backstage's body shapes, and following a task over the SSE event
//! stream, resuming with `Last-Event-ID` when the connection drops. The
//! commands that use it are in `commands.rs`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use url::Url;

use super::Exit;
use crate::backoff::Backoff;
use crate::errln;
use crate::sse::SseParser;

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

pub(super) fn event_time(event: &Value) -> DateTime<Utc> {
    event
        .get("createdAt")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now)
}

pub(super) fn event_type(event: &Value) -> &str {
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
    }
}
