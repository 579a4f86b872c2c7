//! `scaffolder run TEMPLATE`: runs every step of a template for real, with
//! the server's `Runner`, without a server or a database. The step journal
//! lives in memory, secrets come from flags and the environment, publishing
//! goes wherever the integrations config says (by default the local git host).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::progress::{format_duration, json_report, render_output, Display};
use super::values::{
    can_prompt, check_set_keys, fill_values, load_secrets, load_values, page_visible, pages_of, validate_all, Ask,
    Terminal,
};
use super::{Exit, OutputFormat};
use crate::actions::{builtin_actions_with, ActionRegistry};
use crate::config::Settings;
use crate::engine::runner::redact_secrets;
use crate::engine::{JournalError, RunEnd, RunId, RunOutcome, RunRequest, RunSink, Runner};
use crate::model::{NewEvent, TaskStatus};
use crate::startup::action_deps;
use crate::template::source::load_template_file;
use crate::template::{DirTemplateSource, EntityRef, LoadedTemplate};
use crate::templating::Renderer;
use crate::{errln, errout, out, outln};

pub struct RunArgs {
    /// A template file, a directory holding `template.yaml`, or a template
    /// reference looked up in `templates.dirs`.
    pub template: String,
    pub values: Option<PathBuf>,
    pub set: Vec<String>,
    pub secrets: Vec<String>,
    /// Keep the workspace here (new or empty directory).
    pub workspace: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub verbose: bool,
    pub output: OutputFormat,
}

/// Why a run did not start.
pub enum Refusal {
    Usage(String),
    NotFound(String),
    Invalid(Vec<Value>),
}

/// Whether `raw` names a file or directory rather than a template reference:
/// it exists, looks like a path (`./x`, `/x`, `~/x`, `x.yaml`, `a/b/c`), or its
/// first component is an existing directory (`templates/nope`). `default/x`
/// stays a reference while there is no `default` directory here.
pub fn names_a_path(raw: &str) -> bool {
    let path = Path::new(raw);
    if path.exists()
        || raw.starts_with('.')
        || raw.starts_with('/')
        || raw.starts_with('~')
        || raw.contains('\\')
        || raw.ends_with(".yaml")
        || raw.ends_with(".yml")
        || raw.matches('/').count() > 1
    {
        return true;
    }
    match raw.split_once('/') {
        Some((first, _)) => !first.contains(':') && Path::new(first).is_dir(),
        None => false,
    }
}

/// Finds the template: a path (see [`names_a_path`]), else a reference in
/// the configured template directories.
pub fn resolve_template(raw: &str, settings: &Settings) -> Result<LoadedTemplate, Refusal> {
    if names_a_path(raw) {
        return load_path(Path::new(raw));
    }
    let entity_ref = EntityRef::parse(raw, "template", "default").map_err(|e| Refusal::Usage(e.to_string()))?;
    if !entity_ref.kind.eq_ignore_ascii_case("template") {
        return Err(Refusal::Usage(format!(
            "Invalid kind, only 'Template' kind is supported, got '{}'",
            entity_ref.kind
        )));
    }
    let source = DirTemplateSource::load(&settings.templates.dirs);
    let key = entity_ref.key();
    if let Some(found) = source.templates().find(|t| t.entity_ref.key() == key) {
        return Ok(found.clone());
    }
    let mut message = if settings.templates.dirs.is_empty() {
        format!(
            "{entity_ref} not found: no template directories are configured (templates.dirs); \
             give a path (./{raw}) or --config with templates.dirs"
        )
    } else {
        let dirs: Vec<String> = settings
            .templates
            .dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        format!("{entity_ref} not found; looked in {} (templates.dirs)", dirs.join(", "))
    };
    for (path, problem) in &source.problems {
        message.push_str(&format!("\n  skipped {}: {problem}", path.display()));
    }
    Err(Refusal::NotFound(message))
}

fn load_path(path: &Path) -> Result<LoadedTemplate, Refusal> {
    if !path.exists() {
        return Err(Refusal::NotFound(format!("{} does not exist", path.display())));
    }
    let file = if path.is_dir() {
        let file = path.join("template.yaml");
        if !file.is_file() {
            return Err(Refusal::NotFound(format!("no template.yaml in {}", path.display())));
        }
        file
    } else {
        path.to_path_buf()
    };
    let templates = load_template_file(&file).map_err(|e| Refusal::Usage(format!("{}: {e}", file.display())))?;
    templates
        .into_iter()
        .next()
        .ok_or_else(|| Refusal::NotFound(format!("{}: no template in this file", file.display())))
}

/// `--set` keys checked, then defaults, prompts, and the validation of every
/// shown page: the values to run with.
pub fn complete_values(
    template: &LoadedTemplate,
    values: Map<String, Value>,
    set: &[String],
    renderer: &Renderer,
    interactive: bool,
) -> Result<Value, Refusal> {
    let pages = pages_of(&template.spec.parameters);
    check_set_keys(&pages, set).map_err(|e| Refusal::Usage(e.to_string()))?;
    let visible = |page: &Value, values: &Value| page_visible(renderer, page, values);
    let mut terminal = Terminal;
    let ask: Option<&mut dyn Ask> = if interactive { Some(&mut terminal) } else { None };
    let values = Value::Object(fill_values(&pages, values, &visible, ask));
    validate_all(&pages, &values, |page| page_visible(renderer, page, &values)).map_err(Refusal::Invalid)
}

/// The run's sink: the live display, and the step journal in memory.
struct LocalSink {
    display: Arc<Display>,
    journal: Mutex<HashMap<String, Value>>,
    secrets: Map<String, Value>,
}

#[async_trait]
impl RunSink for LocalSink {
    async fn emit(&self, event: NewEvent) {
        let mut body = event.body;
        redact_secrets(&mut body, &self.secrets);
        self.display.event(event.event_type.as_str(), &body, Utc::now());
    }

    async fn step_finished(&self, key: &str, output: &Value) -> Result<(), JournalError> {
        if let Ok(mut journal) = self.journal.lock() {
            journal.insert(key.to_owned(), output.clone());
        }
        Ok(())
    }
}

/// Steps that finished (in template order) with the URLs among their outputs.
pub fn published(spec: &Value, journal: &HashMap<String, Value>) -> Vec<(String, Vec<(String, String)>)> {
    let mut ids: Vec<String> = spec
        .get("steps")
        .and_then(Value::as_array)
        .map(|steps| {
            steps
                .iter()
                .filter_map(|s| s.get("id").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    // Iterations of an `each` step that was cut short.
    let mut others: Vec<&String> = journal.keys().filter(|k| !ids.contains(k)).collect();
    others.sort();
    ids.extend(others.into_iter().cloned());
    ids.into_iter()
        .filter_map(|id| {
            let output = journal.get(&id)?;
            let mut urls = Vec::new();
            collect_urls("", output, &mut urls);
            Some((id, urls))
        })
        .collect()
}

fn collect_urls(prefix: &str, value: &Value, urls: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                collect_urls(&name, v, urls);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_urls(&format!("{prefix}[{i}]"), v, urls);
            }
        }
        Value::String(s) => {
            let key = prefix.rsplit('.').next().unwrap_or(prefix);
            let key = key.split('[').next().unwrap_or(key);
            if (key.ends_with("Url") || key.ends_with("url")) && !s.is_empty() {
                urls.push((prefix.to_owned(), s.clone()));
            }
        }
        _ => {}
    }
}

/// Local repositories (`file://…/x.git…`) among the outputs, as paths.
pub fn local_repositories(published: &[(String, Vec<(String, String)>)]) -> Vec<PathBuf> {
    let mut repos: Vec<PathBuf> = Vec::new();
    for (_, urls) in published {
        for (_, raw) in urls {
            let Some(repo) = local_repository(raw) else { continue };
            if !repos.contains(&repo) {
                repos.push(repo);
            }
        }
    }
    repos
}

fn local_repository(raw: &str) -> Option<PathBuf> {
    if !raw.starts_with("file://") {
        return None;
    }
    let end = raw
        .match_indices(".git")
        .map(|(i, _)| i + 4)
        .find(|&end| raw[end..].is_empty() || raw[end..].starts_with('/'))?;
    Url::parse(&raw[..end]).ok()?.to_file_path().ok()
}

fn prepare_workspace(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        if entries.next().is_some() {
            return Err(format!(
                "{} is not empty; choose a new or empty directory",
                dir.display()
            ));
        }
        Ok(())
    } else {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
    }
}

pub fn refuse(refusal: Refusal, output: OutputFormat) -> Exit {
    let (exit, name, message, errors) = match refusal {
        Refusal::Usage(message) => (Exit::Usage, "InputError", message, Vec::new()),
        Refusal::NotFound(message) => (Exit::NotFound, "NotFoundError", message, Vec::new()),
        Refusal::Invalid(errors) => (
            Exit::Usage,
            "InputError",
            "the values do not match the template's parameters".to_owned(),
            errors,
        ),
    };
    let stacks: Vec<String> = errors
        .iter()
        .filter_map(|e| e.get("stack").and_then(Value::as_str).map(str::to_owned))
        .collect();
    if stacks.is_empty() {
        errln!("scaffolder: {message}");
    } else {
        errln!("scaffolder: {message}:");
        for stack in &stacks {
            errln!("  - {stack}");
        }
    }
    if output == OutputFormat::Json {
        let mut error = json!({ "name": name, "message": message });
        if !errors.is_empty() {
            error["errors"] = Value::Array(errors);
        }
        let status = if exit == Exit::NotFound { "not-found" } else { "invalid" };
        outln!("{}", json_report(status, &json!({}), &[], Some(error)));
    }
    exit
}

/// Runs the template; returns the process exit code.
pub async fn run(args: RunArgs) -> Exit {
    let output = args.output;
    match run_inner(args).await {
        Ok(code) => code,
        Err(refusal) => refuse(refusal, output),
    }
}

async fn run_inner(args: RunArgs) -> Result<Exit, Refusal> {
    let settings = Settings::load(args.config.as_deref()).map_err(|e| Refusal::Usage(e.to_string()))?;
    let template = resolve_template(&args.template, &settings)?;
    let values = load_values(args.values.as_deref(), &args.set).map_err(|e| Refusal::Usage(e.to_string()))?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let secrets = load_secrets(&env, &args.secrets).map_err(|e| Refusal::Usage(e.to_string()))?;

    let deps = action_deps(&settings).map_err(|e| Refusal::Usage(e.to_string()))?;
    let renderer = Arc::new(Renderer::builder().integrations(deps.integrations.templating()).build());
    let values = complete_values(&template, values, &args.set, &renderer, can_prompt())?;

    let (workspace, scratch) = match &args.workspace {
        Some(dir) => {
            prepare_workspace(dir).map_err(|e| Refusal::Usage(e.to_string()))?;
            (dir.clone(), None)
        }
        None => {
            let base = settings.worker.work_dir.clone().unwrap_or_else(std::env::temp_dir);
            let dir = tempfile::Builder::new()
                .prefix("scaffolder-run-")
                .tempdir_in(&base)
                .map_err(|e| Refusal::Usage(format!("cannot create a workspace in {}: {e}", base.display())))?;
            (dir.path().to_path_buf(), Some(dir))
        }
    };

    // Registered before anything runs, so an early Ctrl-C cancels too.
    let mut interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Refusal::Usage(format!("cannot watch for Ctrl-C: {e}")))?;

    let runner = Runner::new(ActionRegistry::new(builtin_actions_with(&deps)), renderer)
        .with_limits(&settings.limits)
        // Remote skeletons (GitHub, the local git host) as `serve` reads them.
        .with_reader(Arc::new(crate::scm::reader::UrlReader::new(
            deps.integrations.clone(),
            settings.templates.cache_dir(),
        )));
    let spec = template.task_spec(&values, &json!({}));
    let display = Display::new(&spec, args.verbose);
    let sink = Arc::new(LocalSink {
        display: display.clone(),
        journal: Mutex::new(HashMap::new()),
        secrets: secrets.clone(),
    });
    let cancel = CancellationToken::new();
    let watcher = {
        let cancel = cancel.clone();
        let display = display.clone();
        tokio::spawn(async move {
            if interrupts.recv().await.is_some() {
                display.note("Cancelling the running step… (Ctrl-C again to quit at once)");
                cancel.cancel();
                if interrupts.recv().await.is_some() {
                    display.finish();
                    errln!("scaffolder: interrupted");
                    std::process::exit(i32::from(Exit::Cancelled.code()));
                }
            }
        })
    };

    display.note(&format!("Running {} in {}", template.entity_ref, workspace.display()));
    let started = Instant::now();
    let ticker = display.start_ticker();
    let outcome = runner
        .run(
            RunRequest {
                task_id: RunId::Task(crate::model::TaskId::new()),
                spec: spec.clone(),
                secrets: secrets.clone(),
                workspace: workspace.clone(),
                dry_run: false,
                cancel,
                abort: CancellationToken::new(),
                resume: HashMap::new(),
                notes: Vec::new(),
                // A local run is not recorded: there is no version to remember.
                answers: None,
                // The same task-wide limit the worker applies.
                deadline: Some(
                    tokio::time::Instant::now() + std::time::Duration::from_secs(settings.worker.task_timeout_seconds),
                ),
                approval: None,
            },
            sink.clone(),
        )
        .await;
    // A local run holds no lease and is never handed over, so never aborted.
    let outcome = match outcome {
        RunOutcome::Finished(end) => end,
        RunOutcome::Aborted => RunEnd::failed("Error", "the run was aborted".into()),
        RunOutcome::Waiting(gate) => RunEnd::failed(
            "Error",
            format!(
                "step {} waits for approval by {}: a local run cannot wait; run the template on a server",
                gate.step_id,
                gate.approvers()
            ),
        ),
    };
    for event in &outcome.final_events {
        let mut body = event.body.clone();
        redact_secrets(&mut body, &secrets);
        display.event(event.event_type.as_str(), &body, Utc::now());
    }
    ticker.cancel();
    watcher.abort();
    display.finish();
    let elapsed = format_duration(started.elapsed());

    let journal = sink.journal.lock().map(|j| j.clone()).unwrap_or_default();
    let done = published(&spec, &journal);
    let error = outcome.final_events.iter().find_map(|e| e.body.get("error").cloned());
    let (code, status) = match TaskStatus::from(outcome.status) {
        TaskStatus::Completed => (Exit::Ok, "completed"),
        TaskStatus::Cancelled => (Exit::Cancelled, "cancelled"),
        _ => (Exit::Failed, "failed"),
    };
    let cancelled_message = outcome
        .final_events
        .iter()
        .find(|e| e.event_type == crate::model::EventType::Cancelled)
        .and_then(|e| e.body.get("message").and_then(Value::as_str).map(str::to_owned));

    if args.output == OutputFormat::Json {
        let error = match TaskStatus::from(outcome.status) {
            TaskStatus::Completed => None,
            TaskStatus::Cancelled => Some(json!({
                "name": "Cancelled",
                "message": cancelled_message.clone().unwrap_or_else(|| "the run was cancelled".into()),
            })),
            _ => Some(
                error
                    .clone()
                    .unwrap_or_else(|| json!({ "name": "Error", "message": "the run failed" })),
            ),
        };
        outln!("{}", json_report(status, &outcome.output, &display.summary(), error));
    } else {
        match TaskStatus::from(outcome.status) {
            TaskStatus::Completed => {
                errln!("Completed in {elapsed}.");
                out!("{}", render_output(&outcome.output));
                print_repositories(&local_repositories(&done), true);
            }
            TaskStatus::Cancelled => {
                errln!(
                    "Cancelled after {elapsed}: {}",
                    cancelled_message.unwrap_or_else(|| "the run was cancelled".into())
                );
                report_published(&spec, &done);
            }
            _ => {
                let message = error
                    .as_ref()
                    .and_then(|e| e.get("message").and_then(Value::as_str))
                    .unwrap_or("the run failed");
                errln!("Failed after {elapsed}: {message}");
                report_published(&spec, &done);
            }
        }
    }
    match scratch {
        Some(dir) => drop(dir),
        None => errln!("The workspace is kept in {}", workspace.display()),
    }
    Ok(code)
}

fn step_name(spec: &Value, id: &str) -> String {
    spec.get("steps")
        .and_then(Value::as_array)
        .and_then(|steps| steps.iter().find(|s| s.get("id").and_then(Value::as_str) == Some(id)))
        .and_then(|s| s.get("name").and_then(Value::as_str))
        .map(|name| format!("{name} ({id})"))
        .unwrap_or_else(|| id.to_owned())
}

/// After a failure or a cancel: what already happened and is not undone.
fn report_published(spec: &Value, done: &[(String, Vec<(String, String)>)]) {
    if done.is_empty() {
        errln!("No step had finished: nothing was published.");
        return;
    }
    errln!("These steps had finished; what they did is not undone:");
    for (id, urls) in done {
        errln!("  ✓ {}", step_name(spec, id));
        for (key, url) in urls {
            errln!("      {key}: {url}");
        }
    }
    print_repositories(&local_repositories(done), false);
}

fn print_repositories(repos: &[PathBuf], to_stdout: bool) {
    if repos.is_empty() {
        return;
    }
    let mut text = String::from("Repositories on this machine:\n");
    for repo in repos {
        let name = repo
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "repo".into());
        text.push_str(&format!(
            "  {}\n    git clone {} {name}\n",
            repo.display(),
            repo.display()
        ));
    }
    if to_stdout {
        out!("{text}");
    } else {
        errout!("{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_steps_list_their_urls_in_template_order() {
        let spec = json!({"steps": [{"id": "fetch"}, {"id": "publish"}, {"id": "gitops"}]});
        let mut journal = HashMap::new();
        journal.insert(
            "publish".to_owned(),
            json!({"remoteUrl": "file:///data/git/acme/svc.git", "repoContentsUrl": "file:///data/git/acme/svc.git/blob/main", "commitHash": "abc"}),
        );
        journal.insert("fetch".to_owned(), json!({}));
        journal.insert(
            "gitops".to_owned(),
            json!({"commitUrl": "file:///data/git/acme/infra-gitops.git/commit/abc", "overlayPaths": ["a"]}),
        );
        let done = published(&spec, &journal);
        assert_eq!(done[0], ("fetch".to_owned(), vec![]));
        assert_eq!(done[1].0, "publish");
        assert_eq!(
            done[1].1[0],
            ("remoteUrl".to_owned(), "file:///data/git/acme/svc.git".to_owned())
        );
        assert_eq!(done[1].1.len(), 2);
        assert_eq!(
            local_repositories(&done),
            vec![
                PathBuf::from("/data/git/acme/svc.git"),
                PathBuf::from("/data/git/acme/infra-gitops.git")
            ]
        );
    }

    #[test]
    fn only_file_urls_name_local_repositories() {
        assert_eq!(local_repository("https://github.com/a/b.git"), None);
        assert_eq!(local_repository("file:///x/a.github/b"), None);
        assert_eq!(
            local_repository("file:///x/a.git/blob/main"),
            Some(PathBuf::from("/x/a.git"))
        );
    }

    #[test]
    fn paths_and_references_are_told_apart() {
        // Run from the repository root, as cargo runs unit tests.
        for path in [
            "templates/app-base-go-react",
            "templates/nope",
            "./nope",
            "../x",
            "/abs/x",
            "x.yaml",
            "a/b/c",
        ] {
            assert!(names_a_path(path), "{path} is a path");
        }
        for reference in ["app-base-go-react", "default/x", "template:default/x", "template:x"] {
            assert!(!names_a_path(reference), "{reference} is a reference");
        }
    }
}
