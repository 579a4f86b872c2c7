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
use super::values::{apply_defaults, can_prompt, load_secrets, load_values, missing_required, pages_of, prompt};
use super::{OutputFormat, EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::actions::{builtin_actions_with, ActionRegistry};
use crate::config::Settings;
use crate::engine::runner::redact_secrets;
use crate::engine::{JournalError, RunEnd, RunId, RunOutcome, RunRequest, RunSink, Runner};
use crate::model::{NewEvent, TaskStatus};
use crate::startup::action_deps;
use crate::template::source::load_template_file;
use crate::template::{validate_parameters, DirTemplateSource, EntityRef, LoadedTemplate};
use crate::templating::Renderer;

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
enum Refusal {
    Usage(String),
    Invalid(Vec<Value>),
}

/// Finds the template: a path if one exists, else a reference in the
/// configured template directories.
pub fn resolve_template(raw: &str, settings: &Settings) -> Result<LoadedTemplate, String> {
    let path = Path::new(raw);
    if path.exists() {
        let file = if path.is_dir() {
            path.join("template.yaml")
        } else {
            path.to_path_buf()
        };
        let templates = load_template_file(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        return templates
            .into_iter()
            .next()
            .ok_or_else(|| format!("{}: no template in this file", file.display()));
    }
    let looks_like_path =
        raw.ends_with(".yaml") || raw.ends_with(".yml") || raw.starts_with('.') || raw.starts_with('/');
    if looks_like_path {
        return Err(format!("{raw}: no such file or directory"));
    }
    let entity_ref = EntityRef::parse(raw, "template", "default").map_err(|e| e.to_string())?;
    if !entity_ref.kind.eq_ignore_ascii_case("template") {
        return Err(format!(
            "Invalid kind, only 'Template' kind is supported, got '{}'",
            entity_ref.kind
        ));
    }
    let source = DirTemplateSource::load(&settings.templates.dirs);
    let key = entity_ref.key();
    if let Some(found) = source.templates().find(|t| t.entity_ref.key() == key) {
        return Ok(found.clone());
    }
    let dirs: Vec<String> = settings
        .templates
        .dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    let mut message = format!(
        "Template {entity_ref} not found: no such file or directory, and no template of that name in {} (templates.dirs)",
        dirs.join(", ")
    );
    for (path, problem) in &source.problems {
        message.push_str(&format!("\n  skipped {}: {problem}", path.display()));
    }
    Err(message)
}

/// Whether a parameter page is shown, as the server decides it (`when`).
fn page_visible(renderer: &Renderer, page: &Value, values: &Value) -> bool {
    match page.get("when") {
        None => true,
        Some(condition) => match renderer.render_value(condition, &json!({ "parameters": values })) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::String(s)) => !s.is_empty() && s != "false",
            Some(_) => true,
        },
    }
}

/// Schema defaults, then prompts for the required values still missing
/// (page by page, skipping hidden pages) when `interactive`.
pub fn fill_values(
    pages: &[&Value],
    mut values: Map<String, Value>,
    renderer: &Renderer,
    interactive: bool,
) -> Map<String, Value> {
    apply_defaults(pages, &mut values);
    if !interactive {
        return values;
    }
    for page in pages {
        if !page_visible(renderer, page, &Value::Object(values.clone())) {
            continue;
        }
        let missing: Vec<String> = missing_required(page, &values).into_iter().map(str::to_owned).collect();
        if missing.is_empty() {
            continue;
        }
        if let Some(title) = page.get("title").and_then(Value::as_str) {
            eprintln!("{title}");
        }
        for key in missing {
            let schema = page
                .get("properties")
                .and_then(|p| p.get(&key))
                .cloned()
                .unwrap_or_else(|| json!({}));
            match prompt(&key, &schema) {
                Some(value) => {
                    values.insert(key, value);
                }
                None => return values,
            }
        }
    }
    values
}

/// Defaults, prompts, then the server's validation: the values to run with.
fn complete_values(
    template: &LoadedTemplate,
    values: Map<String, Value>,
    renderer: &Renderer,
    interactive: bool,
) -> Result<Value, Vec<Value>> {
    let pages = pages_of(&template.spec.parameters);
    let values = Value::Object(fill_values(&pages, values, renderer, interactive));
    validate_parameters(&pages, &values, |page| page_visible(renderer, page, &values))
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

fn refuse(refusal: Refusal, output: OutputFormat) -> u8 {
    let (message, errors) = match refusal {
        Refusal::Usage(message) => (message, Vec::new()),
        Refusal::Invalid(errors) => ("the values do not match the template's parameters".to_owned(), errors),
    };
    let stacks: Vec<String> = errors
        .iter()
        .filter_map(|e| e.get("stack").and_then(Value::as_str).map(str::to_owned))
        .collect();
    if stacks.is_empty() {
        eprintln!("scaffolder: {message}");
    } else {
        eprintln!("scaffolder: {message}:");
        for stack in &stacks {
            eprintln!("  - {stack}");
        }
    }
    if output == OutputFormat::Json {
        let mut error = json!({ "name": "InputError", "message": message });
        if !errors.is_empty() {
            error["errors"] = Value::Array(errors);
        }
        println!("{}", json_report("invalid", &json!({}), &[], Some(error)));
    }
    EXIT_USAGE
}

/// Runs the template; returns the process exit code.
pub async fn run(args: RunArgs) -> u8 {
    let output = args.output;
    match run_inner(args).await {
        Ok(code) => code,
        Err(refusal) => refuse(refusal, output),
    }
}

async fn run_inner(args: RunArgs) -> Result<u8, Refusal> {
    let settings = Settings::load(args.config.as_deref()).map_err(|e| Refusal::Usage(e.to_string()))?;
    let template = resolve_template(&args.template, &settings).map_err(Refusal::Usage)?;
    let values = load_values(args.values.as_deref(), &args.set).map_err(Refusal::Usage)?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let secrets = load_secrets(&env, &args.secrets).map_err(Refusal::Usage)?;

    let deps = action_deps(&settings).map_err(|e| Refusal::Usage(e.to_string()))?;
    let renderer = Arc::new(Renderer::builder().integrations(deps.integrations.templating()).build());
    let values = complete_values(&template, values, &renderer, can_prompt()).map_err(Refusal::Invalid)?;

    let (workspace, scratch) = match &args.workspace {
        Some(dir) => {
            prepare_workspace(dir).map_err(Refusal::Usage)?;
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

    let runner = Runner::new(ActionRegistry::new(builtin_actions_with(&deps)), renderer);
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
                    eprintln!("scaffolder: interrupted");
                    std::process::exit(i32::from(EXIT_CANCELLED));
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
                // The same task-wide limit the worker applies.
                deadline: Some(
                    tokio::time::Instant::now() + std::time::Duration::from_secs(settings.worker.task_timeout_seconds),
                ),
            },
            sink.clone(),
        )
        .await;
    // A local run holds no lease and is never handed over, so never aborted.
    let outcome = match outcome {
        RunOutcome::Finished(end) => end,
        RunOutcome::Aborted => RunEnd::failed("Error", "the run was aborted".into()),
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
        TaskStatus::Completed => (EXIT_OK, "completed"),
        TaskStatus::Cancelled => (EXIT_CANCELLED, "cancelled"),
        _ => (EXIT_FAILED, "failed"),
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
        println!("{}", json_report(status, &outcome.output, &display.summary(), error));
    } else {
        match TaskStatus::from(outcome.status) {
            TaskStatus::Completed => {
                eprintln!("Completed in {elapsed}.");
                print!("{}", render_output(&outcome.output));
                print_repositories(&local_repositories(&done), true);
            }
            TaskStatus::Cancelled => {
                eprintln!(
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
                eprintln!("Failed after {elapsed}: {message}");
                report_published(&spec, &done);
            }
        }
    }
    match scratch {
        Some(dir) => drop(dir),
        None => eprintln!("The workspace is kept in {}", workspace.display()),
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
        eprintln!("No step had finished: nothing was published.");
        return;
    }
    eprintln!("These steps had finished; what they did is not undone:");
    for (id, urls) in done {
        eprintln!("  ✓ {}", step_name(spec, id));
        for (key, url) in urls {
            eprintln!("      {key}: {url}");
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
        print!("{text}");
    } else {
        eprint!("{text}");
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
}
