//! Terminal progress for a run, shared by `run`, `dry-run` and the client
//! (`create`, `tasks retry --follow`): one line per step with a spinner and
//! the elapsed time while it runs (when stderr is a terminal), ✓/✗/skipped
//! with the duration when it ends, the step's log lines under it when
//! verbose, plain lines when stderr is not a terminal.
//!
//! Events come in the task-event shape (`type`, `body.stepId`,
//! `body.status`, `body.message`) whether they are the engine's own or read
//! from a server's event stream.

use std::collections::{HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::engine::RunSink;
use crate::model::{NewEvent, StepStatus};

/// Log lines kept per step, shown under a failed step when not verbose.
const KEPT_LOG_LINES: usize = 15;
const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Removes ANSI colour sequences (`ESC [ … m`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `0.4s`, `12.3s`, `2m05s`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// Where a step stands on the display: not reported yet, or the last
/// [`StepStatus`] its events reported (the type the runner writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    Pending,
    Reported(StepStatus),
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Reported(status) => status.as_str(),
        }
    }
}

#[derive(Debug, Clone)]
struct StepRecord {
    id: String,
    name: String,
    state: StepState,
    started: Option<DateTime<Utc>>,
    /// When the spinner's clock started (local time, for the live display).
    started_local: Option<std::time::Instant>,
    duration: Option<Duration>,
    logs: VecDeque<String>,
}

/// What a step ended as, for `--output json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepSummary {
    pub id: String,
    pub name: String,
    pub status: &'static str,
    pub duration_ms: Option<u64>,
}

struct State {
    steps: Vec<StepRecord>,
    by_id: HashMap<String, usize>,
    /// The step whose spinner line is on screen.
    spinning: Option<usize>,
    frame: usize,
    completion: Option<Value>,
    cancelled_message: Option<String>,
}

/// The live display of one run. Writes to stderr only.
pub struct Display {
    verbose: bool,
    tty: bool,
    /// Colours on a terminal, unless `NO_COLOR` is set.
    colour: bool,
    quiet: bool,
    state: Mutex<State>,
}

fn steps_of_spec(spec: &Value) -> Vec<(String, String)> {
    spec.get("steps")
        .and_then(Value::as_array)
        .map(|steps| {
            steps
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let id = s
                        .get("id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("step-{}", i + 1));
                    let name = s
                        .get("name")
                        .or_else(|| s.get("action"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| id.clone());
                    (id, name)
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Display {
    /// A display for the steps of a task spec (ids and names, in order).
    pub fn new(spec: &Value, verbose: bool) -> Arc<Display> {
        let tty = std::io::stderr().is_terminal();
        Display::with(spec, verbose, tty, false)
    }

    /// `tty` decides spinners and colour; `quiet` prints nothing at all.
    pub fn with(spec: &Value, verbose: bool, tty: bool, quiet: bool) -> Arc<Display> {
        let mut steps = Vec::new();
        let mut by_id = HashMap::new();
        for (id, name) in steps_of_spec(spec) {
            by_id.insert(id.clone(), steps.len());
            steps.push(StepRecord {
                id,
                name,
                state: StepState::Pending,
                started: None,
                started_local: None,
                duration: None,
                logs: VecDeque::new(),
            });
        }
        let colour = tty && !matches!(std::env::var_os("NO_COLOR"), Some(v) if !v.is_empty());
        Arc::new(Display {
            verbose,
            tty,
            colour,
            quiet,
            state: Mutex::new(State {
                steps,
                by_id,
                spinning: None,
                frame: 0,
                completion: None,
                cancelled_message: None,
            }),
        })
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\u{1b}[{code}m{text}\u{1b}[0m")
        } else {
            text.to_owned()
        }
    }

    /// Writes whole lines, taking the spinner line off the screen first and
    /// putting it back after.
    fn write_lines(&self, state: &mut State, lines: &[String]) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty && state.spinning.is_some() {
            let _ = write!(err, "\r\u{1b}[2K");
        }
        for line in lines {
            let _ = writeln!(err, "{line}");
        }
        if self.tty {
            self.draw_spinner(state, &mut err);
        }
        let _ = err.flush();
    }

    fn draw_spinner(&self, state: &State, err: &mut impl Write) {
        let Some(step) = state.spinning.and_then(|i| state.steps.get(i)) else {
            return;
        };
        let elapsed = step.started_local.map(|t| t.elapsed()).unwrap_or_default();
        let frame = SPINNER[state.frame % SPINNER.len()];
        let name: String = step.name.chars().take(70).collect();
        let _ = write!(
            err,
            "\r\u{1b}[2K{} {name} {}",
            self.paint("36", &frame.to_string()),
            self.paint("2", &format_duration(elapsed))
        );
    }

    /// Redraws the spinner (called by the ticker).
    pub fn tick(&self) {
        if !self.tty || self.quiet {
            return;
        }
        let Ok(mut state) = self.state.lock() else { return };
        if state.spinning.is_none() {
            return;
        }
        state.frame = state.frame.wrapping_add(1);
        let mut err = std::io::stderr().lock();
        self.draw_spinner(&state, &mut err);
        let _ = err.flush();
    }

    /// Redraws the spinner every 100 ms until the token fires (terminals only).
    pub fn start_ticker(self: &Arc<Self>) -> CancellationToken {
        let stop = CancellationToken::new();
        if self.tty && !self.quiet {
            let display = self.clone();
            let stopped = stop.clone();
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tokio::select! {
                        _ = stopped.cancelled() => return,
                        _ = interval.tick() => display.tick(),
                    }
                }
            });
        }
        stop
    }

    /// A line of the front end's own (not from the run).
    pub fn note(&self, text: &str) {
        if let Ok(mut state) = self.state.lock() {
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            self.write_lines(&mut state, &lines);
        }
    }

    /// Takes the spinner line off the screen for good.
    pub fn finish(&self) {
        if let Ok(mut state) = self.state.lock() {
            if self.tty && !self.quiet && state.spinning.take().is_some() {
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\u{1b}[2K");
                let _ = err.flush();
            }
        }
    }

    fn index(state: &mut State, step_id: &str) -> usize {
        if let Some(i) = state.by_id.get(step_id) {
            return *i;
        }
        state.steps.push(StepRecord {
            id: step_id.to_owned(),
            name: step_id.to_owned(),
            state: StepState::Pending,
            started: None,
            started_local: None,
            duration: None,
            logs: VecDeque::new(),
        });
        let i = state.steps.len() - 1;
        state.by_id.insert(step_id.to_owned(), i);
        i
    }

    fn clean(&self, message: &str) -> String {
        if self.colour {
            message.to_owned()
        } else {
            strip_ansi(message)
        }
    }

    /// One event of the run: `event_type` is `log`, `cancelled`,
    /// `completion` or `recovered`; `at` is when it happened.
    pub fn event(&self, event_type: &str, body: &Value, at: DateTime<Utc>) {
        let Ok(mut guard) = self.state.lock() else { return };
        let state = &mut *guard;
        let message = self.clean(body.get("message").and_then(Value::as_str).unwrap_or_default());
        let step_id = body.get("stepId").and_then(Value::as_str);
        let status = body.get("status").and_then(Value::as_str).and_then(StepStatus::parse);
        match event_type {
            "completion" => {
                state.completion = Some(body.clone());
                if self.verbose {
                    self.write_lines(state, &[self.paint("2", &message)]);
                }
                return;
            }
            "recovered" => {
                self.write_lines(state, &[self.paint("33", &format!("↻ {message}"))]);
                return;
            }
            _ => {}
        }
        let Some(step_id) = step_id else {
            if self.verbose && !message.is_empty() {
                self.write_lines(state, &[self.paint("2", &message)]);
            }
            return;
        };
        let i = Display::index(state, step_id);
        let since_start = |step: &StepRecord| {
            step.started
                .and_then(|s| (at - s).to_std().ok())
                .or_else(|| step.started_local.map(|t| t.elapsed()))
        };
        match (event_type, status) {
            (_, Some(StepStatus::Processing)) => {
                let step = &mut state.steps[i];
                step.state = StepState::Reported(StepStatus::Processing);
                step.started = Some(at);
                step.started_local = Some(std::time::Instant::now());
                step.duration = None;
                let line = format!("▸ {}", step.name);
                if self.tty {
                    state.spinning = Some(i);
                    self.write_lines(state, &[]);
                } else {
                    self.write_lines(state, &[line]);
                }
            }
            (_, Some(StepStatus::Completed)) => {
                let step = &mut state.steps[i];
                step.state = StepState::Reported(StepStatus::Completed);
                step.duration = since_start(step);
                let line = format!(
                    "{} {} {}",
                    self.paint("32", "✓"),
                    step.name,
                    self.paint("2", &step.duration.map(format_duration).unwrap_or_default())
                );
                self.end_line(state, i, vec![line]);
            }
            (_, Some(StepStatus::Skipped)) => {
                let step = &mut state.steps[i];
                step.state = StepState::Reported(StepStatus::Skipped);
                step.duration = None;
                let mut lines = vec![format!(
                    "{} {} {}",
                    self.paint("2", "-"),
                    step.name,
                    self.paint("2", "skipped")
                )];
                if self.verbose {
                    lines.push(format!("    {message}"));
                }
                self.end_line(state, i, lines);
            }
            (_, Some(StepStatus::Failed)) => {
                let step = &mut state.steps[i];
                step.state = StepState::Reported(StepStatus::Failed);
                step.duration = since_start(step);
                let mut lines = vec![format!(
                    "{} {} {}",
                    self.paint("31", "✗"),
                    step.name,
                    self.paint("2", &step.duration.map(format_duration).unwrap_or_default())
                )];
                if !self.verbose && !step.logs.is_empty() {
                    lines.extend(step.logs.iter().map(|l| format!("    {l}")));
                }
                for line in message.lines() {
                    lines.push(format!("    {}", self.paint("31", line)));
                }
                self.end_line(state, i, lines);
            }
            ("cancelled", _) | (_, Some(StepStatus::Cancelled)) => {
                let step = &mut state.steps[i];
                if step.state == StepState::Reported(StepStatus::Processing) {
                    step.duration = since_start(step);
                }
                step.state = StepState::Reported(StepStatus::Cancelled);
                let line = format!(
                    "{} {} {}",
                    self.paint("33", "⊘"),
                    step.name,
                    self.paint("2", "cancelled")
                );
                state.cancelled_message = Some(message);
                self.end_line(state, i, vec![line]);
            }
            _ => {
                let step = &mut state.steps[i];
                for line in message.lines() {
                    if step.logs.len() == KEPT_LOG_LINES {
                        step.logs.pop_front();
                    }
                    step.logs.push_back(line.to_owned());
                }
                if self.verbose {
                    let lines: Vec<String> = message.lines().map(|l| format!("    {l}")).collect();
                    self.write_lines(state, &lines);
                }
            }
        }
    }

    fn end_line(&self, state: &mut State, i: usize, lines: Vec<String>) {
        if state.spinning == Some(i) {
            if self.tty && !self.quiet {
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\u{1b}[2K");
            }
            state.spinning = None;
        }
        self.write_lines(state, &lines);
    }

    /// The `completion` event's body, once it arrived.
    pub fn completion(&self) -> Option<Value> {
        self.state.lock().ok().and_then(|s| s.completion.clone())
    }

    /// Every step in order with what became of it.
    pub fn summary(&self) -> Vec<StepSummary> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        state
            .steps
            .iter()
            .map(|s| StepSummary {
                id: s.id.clone(),
                name: s.name.clone(),
                status: s.state.as_str(),
                duration_ms: s.duration.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            })
            .collect()
    }

    /// The step that was running when the run was cancelled, if any.
    pub fn running_step(&self) -> Option<String> {
        let state = self.state.lock().ok()?;
        state
            .steps
            .iter()
            .find(|s| s.state == StepState::Reported(StepStatus::Processing))
            .map(|s| s.name.clone())
    }
}

/// Feeds a `Display` from the engine directly (local runs).
pub struct DisplaySink(pub Arc<Display>);

#[async_trait]
impl RunSink for DisplaySink {
    async fn emit(&self, event: NewEvent) {
        self.0.event(event.event_type.as_str(), &event.body, Utc::now());
    }
}

/// The template's output for a person: links, then text blocks, then any
/// other keys.
pub fn render_output(output: &Value) -> String {
    let mut out = String::new();
    let Some(obj) = output.as_object() else {
        return out;
    };
    if let Some(links) = obj.get("links").and_then(Value::as_array).filter(|l| !l.is_empty()) {
        out.push_str("Links:\n");
        for link in links {
            let title = link.get("title").and_then(Value::as_str).unwrap_or("link");
            let target = link
                .get("url")
                .and_then(Value::as_str)
                .or_else(|| link.get("entityRef").and_then(Value::as_str))
                .unwrap_or("");
            out.push_str(&format!("  {title}: {target}\n"));
        }
    }
    if let Some(texts) = obj.get("text").and_then(Value::as_array) {
        for text in texts {
            let title = text.get("title").and_then(Value::as_str).unwrap_or("Text");
            out.push_str(&format!("{title}:\n"));
            let content = match text.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            for line in content.trim_end().lines() {
                if line.trim().is_empty() {
                    out.push('\n');
                } else {
                    out.push_str(&format!("  {line}\n"));
                }
            }
        }
    }
    for (key, value) in obj {
        if key == "links" || key == "text" {
            continue;
        }
        let shown = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!("{key}: {shown}\n"));
    }
    out
}

/// `{status, output, steps:[{id,status,durationMs}], error?}` for `--output json`.
pub fn json_report(status: &str, output: &Value, steps: &[StepSummary], error: Option<Value>) -> Value {
    let steps: Vec<Value> = steps
        .iter()
        .map(|s| json!({ "id": s.id, "status": s.status, "durationMs": s.duration_ms }))
        .collect();
    let mut report = json!({ "status": status, "output": output, "steps": steps });
    if let Some(error) = error {
        report["error"] = error;
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Value {
        json!({"steps": [
            {"id": "a", "name": "Step A", "action": "debug:log"},
            {"id": "b", "action": "debug:wait"},
            {"action": "fs:delete"},
        ]})
    }

    #[test]
    fn ansi_codes_are_stripped() {
        assert_eq!(strip_ansi("\u{1b}[32minfo\u{1b}[39m: hi"), "info: hi");
        assert_eq!(strip_ansi("plain"), "plain");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(Duration::from_millis(400)), "0.4s");
        assert_eq!(format_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn steps_are_tracked_from_events() {
        let display = Display::with(&spec(), false, false, true);
        let t0 = Utc::now();
        let t1 = t0 + chrono::Duration::milliseconds(1500);
        display.event("log", &json!({"stepId": "a", "status": "processing"}), t0);
        display.event("log", &json!({"stepId": "a", "message": "hello"}), t0);
        display.event("log", &json!({"stepId": "a", "status": "completed"}), t1);
        display.event("log", &json!({"stepId": "b", "status": "processing"}), t1);
        display.event(
            "log",
            &json!({"stepId": "b", "status": "failed", "message": "Error: x"}),
            t1,
        );
        display.event("log", &json!({"stepId": "step-3", "status": "skipped"}), t1);
        display.event("completion", &json!({"message": "done", "error": {"message": "x"}}), t1);
        let summary = display.summary();
        assert_eq!(summary[0].id, "a");
        assert_eq!(summary[0].name, "Step A");
        assert_eq!(summary[0].status, "completed");
        assert_eq!(summary[0].duration_ms, Some(1500));
        assert_eq!(summary[1].name, "debug:wait");
        assert_eq!(summary[1].status, "failed");
        assert_eq!(summary[2].status, "skipped");
        assert_eq!(summary[2].duration_ms, None);
        assert!(display.completion().is_some());
        let report = json_report("failed", &json!({}), &summary, Some(json!({"message": "x"})));
        assert_eq!(
            report["steps"][0],
            json!({"id": "a", "status": "completed", "durationMs": 1500})
        );
        assert_eq!(report["error"]["message"], "x");
    }

    #[test]
    fn output_shows_links_and_text() {
        let text = render_output(&json!({
            "links": [{"title": "Repository", "url": "file:///x.git"}, {"title": "Cat", "entityRef": "component:a"}],
            "text": [{"title": "Apps", "content": "- one\n\n- two\n"}],
            "name": "n"
        }));
        assert_eq!(
            text,
            "Links:\n  Repository: file:///x.git\n  Cat: component:a\nApps:\n  - one\n\n  - two\nname: n\n"
        );
    }
}
