//! The HTTP client of one action bridge: its list, and one step's run read
//! as a stream of NDJSON records (docs/action-bridge.md).

use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::shipping;
use super::BridgedActionInfo;
use crate::actions::{ActionContext, ActionError, LogLevel};
use crate::config::{BridgeSettings, Secret};

/// The protocol version this engine speaks; part of every path.
const PROTOCOL: &str = "v1";
/// A list request that takes longer than this counts as unanswered.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("actions.bridges: {0}")]
    Config(String),
    #[error("cannot reach the action bridge at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the action bridge at {url} answered {status}: {message}")]
    Status { url: String, status: u16, message: String },
    #[error("the action bridge at {url} sent something this engine does not understand: {message}")]
    Protocol { url: String, message: String },
}

pub struct BridgeClient {
    url: String,
    base: String,
    token: Secret,
    http: reqwest::Client,
    shared_workspace: bool,
    refresh_every: Duration,
}

/// What `GET …/templating` lists.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TemplatingList {
    #[serde(default)]
    pub filters: Vec<String>,
    #[serde(default)]
    pub globals: Vec<BridgedGlobal>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BridgedGlobal {
    pub id: String,
    /// `function` or `value`.
    pub kind: String,
    #[serde(default)]
    pub value: Value,
}

#[derive(Deserialize)]
struct ActionList {
    actions: Vec<BridgedActionInfo>,
}

/// One line of a run's answer.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum Record {
    Log {
        level: String,
        message: String,
    },
    Output {
        name: String,
        #[serde(default)]
        value: Value,
    },
    Checkpoint {
        key: String,
        state: Value,
    },
    Workspace {
        tar: String,
    },
    End {
        ok: bool,
        #[serde(default)]
        error: Option<RemoteError>,
    },
}

#[derive(Deserialize)]
struct RemoteError {
    #[serde(default)]
    name: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: RemoteError,
}

impl BridgeClient {
    pub fn new(settings: &BridgeSettings) -> Result<BridgeClient, BridgeError> {
        let url = settings.url.trim_end_matches('/').to_owned();
        url::Url::parse(&url).map_err(|e| BridgeError::Config(format!("{url} is not a URL: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| BridgeError::Config(format!("cannot build an HTTP client for {url}: {e}")))?;
        Ok(BridgeClient {
            base: format!("{url}/api/scaffolder/bridge/{PROTOCOL}"),
            url,
            token: settings.token.clone(),
            http,
            shared_workspace: settings.shared_workspace,
            refresh_every: Duration::from_secs(settings.refresh_seconds),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub(super) fn refresh_every(&self) -> Duration {
        self.refresh_every
    }

    fn unreachable(&self) -> impl FnOnce(reqwest::Error) -> BridgeError + '_ {
        move |source| BridgeError::Unreachable {
            url: self.url.clone(),
            source,
        }
    }

    async fn refusal(&self, response: reqwest::Response) -> BridgeError {
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error.message)
            .unwrap_or(text);
        BridgeError::Status {
            url: self.url.clone(),
            status,
            message,
        }
    }

    /// `GET <path>` of the protocol, read as `T`; `what` names it in errors.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str, what: &str) -> Result<T, BridgeError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.token.expose())
            .timeout(LIST_TIMEOUT)
            .send()
            .await
            .map_err(self.unreachable())?;
        if !response.status().is_success() {
            return Err(self.refusal(response).await);
        }
        response.json().await.map_err(|e| BridgeError::Protocol {
            url: self.url.clone(),
            message: format!("{what} does not parse: {e}"),
        })
    }

    pub async fn list(&self) -> Result<Vec<BridgedActionInfo>, BridgeError> {
        let list: ActionList = self.get_json("/actions", "the action list").await?;
        Ok(list.actions)
    }

    /// The template filters and globals modules registered in this bridge.
    pub async fn templating(&self) -> Result<TemplatingList, BridgeError> {
        self.get_json("/templating", "the templating list").await
    }

    /// Calls template filter `id` (`kind` `filters`) or global function `id`
    /// (`globals`) from a template render, which is synchronous: the call
    /// runs on a thread of its own with a runtime of its own, and the
    /// render waits for it (off the shared async threads, `actions::blocking`).
    pub fn call_extension(&self, kind: &str, id: &str, body: Value) -> Result<Value, BridgeError> {
        let url = format!(
            "{}/templating/{kind}/{}",
            self.base,
            percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
        );
        let token = self.token.clone();
        let call = move || -> Result<Value, BridgeError> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    BridgeError::Config(format!("cannot start a runtime for a template extension call: {e}"))
                })?;
            runtime.block_on(async {
                let http = reqwest::Client::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(LIST_TIMEOUT.saturating_mul(3))
                    .build()
                    .map_err(|e| BridgeError::Config(format!("cannot build an HTTP client: {e}")))?;
                let response = http
                    .post(&url)
                    .bearer_auth(token.expose())
                    .json(&body)
                    .send()
                    .await
                    .map_err(self.unreachable())?;
                if !response.status().is_success() {
                    return Err(self.refusal(response).await);
                }
                let answer: Value = response.json().await.map_err(|e| BridgeError::Protocol {
                    url: self.url.clone(),
                    message: format!("the template extension's answer does not parse: {e}"),
                })?;
                Ok(answer.get("value").cloned().unwrap_or(Value::Null))
            })
        };
        crate::actions::blocking(|| {
            std::thread::scope(|scope| {
                scope.spawn(call).join().unwrap_or_else(|_| {
                    Err(BridgeError::Protocol {
                        url: self.url.clone(),
                        message: "the template extension call stopped unexpectedly".into(),
                    })
                })
            })
        })
    }

    /// Asks the autocomplete provider `provider` registered in this bridge;
    /// `None` when the bridge has no such provider.
    pub async fn autocomplete(
        &self,
        provider: &str,
        resource: &str,
        token: &str,
        context: &Map<String, Value>,
    ) -> Result<Option<Value>, BridgeError> {
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
        let response = self
            .http
            .post(format!(
                "{}/autocomplete/{}/{}",
                self.base,
                enc(provider),
                enc(resource)
            ))
            .bearer_auth(self.token.expose())
            .timeout(LIST_TIMEOUT.saturating_mul(3))
            .json(&json!({ "token": token, "context": context }))
            .send()
            .await
            .map_err(self.unreachable())?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(self.refusal(response).await);
        }
        let body: Value = response.json().await.map_err(|e| BridgeError::Protocol {
            url: self.url.clone(),
            message: format!("the autocomplete answer does not parse: {e}"),
        })?;
        Ok(Some(body.get("results").cloned().unwrap_or_else(|| json!([]))))
    }

    /// Runs action `id` for the step of `ctx`. Dropping the future closes
    /// the connection, which fires the action's `signal` in the bridge.
    pub async fn run(&self, id: &str, ctx: &mut ActionContext, input: Value) -> Result<(), ActionError> {
        let limit = ctx.limits.workspace_bytes;
        let workspace = if self.shared_workspace {
            json!({ "mode": "shared", "path": ctx.workspace })
        } else {
            let dir = ctx.workspace.clone();
            let packed = tokio::task::spawn_blocking(move || shipping::pack(&dir, limit))
                .await
                .map_err(|e| ActionError::Failed(format!("packing the workspace stopped: {e}")))??;
            json!({ "mode": "shipped", "tar": base64::engine::general_purpose::STANDARD.encode(packed) })
        };
        let body = json!({
            "input": input,
            "taskId": ctx.task_id,
            "stepId": ctx.step_id,
            "stepName": ctx.run.step_name,
            "isDryRun": ctx.dry_run,
            "user": ctx.user,
            "templateInfo": ctx.run.template_info,
            "secrets": Value::Object(ctx.secrets.clone()),
            "each": ctx.run.each,
            "checkpoints": Value::Object(ctx.run.checkpoints.clone()),
            "workspace": workspace,
        });
        let failed = |what: String| ActionError::Failed(format!("{what}; the step failed and a retry runs it again"));
        let response = tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(ActionError::Cancelled),
            sent = self
                .http
                .post(format!("{}/actions/{}/run", self.base, percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)))
                .bearer_auth(self.token.expose())
                .json(&body)
                .send() => sent.map_err(|e| failed(format!("Action {id} cannot run: the action bridge at {} cannot be reached ({e})", self.url)))?,
        };
        if !response.status().is_success() {
            let refusal = self.refusal(response).await;
            return Err(failed(format!("Action {id} cannot run: {refusal}")));
        }
        // A shipped workspace comes back on one line; nothing else is long.
        let line_limit = usize::try_from(limit.saturating_mul(2))
            .unwrap_or(usize::MAX)
            .max(1 << 20);
        let mut stream = response.bytes_stream();
        let mut buffer: Vec<u8> = Vec::new();
        let mut outputs = Map::new();
        let mut returned_tree: Option<Vec<u8>> = None;
        let died = |detail: String| {
            failed(format!(
                "The action bridge at {} stopped while running {id} ({detail})",
                self.url
            ))
        };
        loop {
            let chunk = tokio::select! {
                _ = ctx.cancel.cancelled() => return Err(ActionError::Cancelled),
                chunk = stream.next() => chunk,
            };
            let chunk = match chunk {
                None => return Err(died("the connection closed before the action finished".into())),
                Some(Err(e)) => return Err(died(format!("the connection broke: {e}"))),
                Some(Ok(chunk)) => chunk,
            };
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let line = &line[..line.len() - 1];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let record: Record = serde_json::from_slice(line).map_err(|e| {
                    ActionError::Failed(format!(
                        "The action bridge at {} sent an unreadable record while running {id}: {e}",
                        self.url
                    ))
                })?;
                match record {
                    Record::Log { level, message } => {
                        let level = match level.as_str() {
                            "error" => LogLevel::Error,
                            "warn" => LogLevel::Warn,
                            "debug" => LogLevel::Debug,
                            _ => LogLevel::Info,
                        };
                        ctx.logger.at(level, message).await;
                    }
                    Record::Output { name, value } => {
                        outputs.insert(name, value);
                    }
                    Record::Checkpoint { key, state } => {
                        if let Some(journal) = &ctx.run.journal {
                            journal.record(&key, &state).await?;
                        }
                        ctx.run.checkpoints.insert(key, state);
                    }
                    Record::Workspace { tar } => {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(tar.as_bytes())
                            .map_err(|e| {
                                ActionError::Failed(format!(
                                    "The action bridge at {} sent a workspace that does not decode: {e}",
                                    self.url
                                ))
                            })?;
                        returned_tree = Some(bytes);
                    }
                    Record::End { ok, error } => {
                        if let Some(tree) = returned_tree.take() {
                            let dir = ctx.workspace.clone();
                            tokio::task::spawn_blocking(move || shipping::replace(&dir, &tree, limit))
                                .await
                                .map_err(|e| ActionError::Failed(format!("unpacking the workspace stopped: {e}")))??;
                        }
                        // Outputs set before a failure are kept, as Backstage's are.
                        for (name, value) in outputs {
                            ctx.output(name, value);
                        }
                        if ok {
                            return Ok(());
                        }
                        let error = error.unwrap_or(RemoteError {
                            name: "Error".into(),
                            message: format!("Action {id} failed in the action bridge"),
                        });
                        return Err(ActionError::Bridged {
                            name: error_class(&error.name),
                            message: error.message,
                        });
                    }
                }
            }
            if buffer.len() > line_limit {
                return Err(ActionError::Failed(format!(
                    "The action bridge at {} sent a record larger than {line_limit} bytes while running {id}",
                    self.url
                )));
            }
        }
    }
}

/// Backstage's error classes keep their names; anything else is an `Error`.
fn error_class(name: &str) -> &'static str {
    match name {
        "InputError" => "InputError",
        "NotFoundError" => "NotFoundError",
        "NotAllowedError" => "NotAllowedError",
        "ConflictError" => "ConflictError",
        "AuthenticationError" => "AuthenticationError",
        "NotModifiedError" => "NotModifiedError",
        "ServiceUnavailableError" => "ServiceUnavailableError",
        "TypeError" => "TypeError",
        "AbortError" => "AbortError",
        _ => "Error",
    }
}
