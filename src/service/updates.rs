//! Template updates: every repository generated from a template can follow
//! it. One repository: render the version its answers file names (base) and
//! the current version (new) with its answers, merge the difference into
//! its default branch three-way (`scm::merge`), propose the result with
//! `publish:github:pull-request` (a pull request on GitHub, a branch on the
//! local git host). A fleet: one run, one item per repository, bounded
//! concurrency, failures isolated, cancel and retry of the whole run.
//!
//! Only the steps that write files run in an update
//! (`template::version::runs_in_update`: `fetch:*`, `fs:*`): an update never
//! creates repositories, registers overlays or calls the catalog again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::ServiceError;
use crate::actions::publish::repository_remote;
use crate::auth::Caller;
use crate::engine::{FinalStatus, RunId, RunOutcome, RunRequest, RunSink, Runner};
use crate::model::{NewEvent, TaskId, UpdateRunStatus, UpdateStatus};
use crate::scm::merge::{Merged, UpdateRepo};
use crate::scm::reader::{Fetched, UrlReader};
use crate::scm::ScmIntegrations;
use crate::store::{Store, UpdateItemRecord, UpdateRunRecord};
use crate::template::source::load_template_file;
use crate::template::version::{
    runs_in_update, snapshot_dir, unpack, update_excludes, with_defaults, Answers, TemplateSnapshot, ANSWERS_PATH,
};
use crate::template::{validate_parameters, EntityRef, LoadedTemplate, Templates, API_VERSION};

/// At most this many repositories are updated at once.
pub const MAX_CONCURRENCY: usize = 16;

/// A template's directory as it is now, laid out on this machine: a
/// directory template's own directory, or a git template's directory read
/// through the URL reader (at the commit its ref names now).
struct TemplateDirNow {
    dir: PathBuf,
    /// The template file's name in `dir`.
    file: String,
    /// Keeps a fetched directory alive.
    _fetched: Option<Fetched>,
}

async fn template_dir_now(
    template: &LoadedTemplate,
    reader: Option<&UrlReader>,
) -> Result<Option<TemplateDirNow>, ServiceError> {
    let file = template
        .base_url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|f| !f.is_empty())
        .unwrap_or("template.yaml")
        .to_owned();
    if let Some(dir) = &template.dir {
        return Ok(Some(TemplateDirNow {
            dir: dir.clone(),
            file,
            _fetched: None,
        }));
    }
    let Some(reader) = reader.filter(|r| r.knows(&template.base_url)) else {
        return Ok(None);
    };
    let dir_url = template
        .base_url
        .join(".")
        .map_err(|e| ServiceError::Input(format!("cannot resolve the template's directory: {e}")))?;
    let fetched = reader
        .read_tree(&dir_url, None, &CancellationToken::new())
        .await
        .map_err(|e| ServiceError::Upstream {
            status: None,
            message: format!("cannot read the template directory {dir_url}: {e}"),
        })?;
    Ok(Some(TemplateDirNow {
        dir: fetched.path.clone(),
        file,
        _fetched: Some(fetched),
    }))
}

/// The version of a template, taken now (`None` for templates from the
/// catalog, which has no history to render again).
pub(crate) async fn snapshot_of(
    template: &LoadedTemplate,
    reader: Option<&UrlReader>,
) -> Result<Option<TemplateSnapshot>, ServiceError> {
    let Some(now) = template_dir_now(template, reader).await? else {
        return Ok(None);
    };
    let dir = now.dir.clone();
    let snapshot = tokio::task::spawn_blocking(move || snapshot_dir(&dir))
        .await
        .map_err(|e| ServiceError::Input(format!("cannot take the template version: {e}")))??;
    drop(now);
    Ok(Some(snapshot))
}

/// What a fleet update is asked to do.
#[derive(Debug, Clone)]
pub struct StartUpdate {
    pub template_ref: String,
    /// The repositories (`repoUrl`s); empty: every repository generated
    /// from the template (task history).
    pub repositories: Vec<String>,
    /// Values for parameters the new version added (or to change).
    pub set: Map<String, Value>,
    /// Compute and record each change without pushing it.
    pub dry_run: bool,
    pub concurrency: usize,
    pub created_by: Option<String>,
}

/// Counts of a run's items by status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateProgress {
    pub total: usize,
    pub pending: usize,
    pub running: usize,
    pub opened: usize,
    pub conflicts: usize,
    pub up_to_date: usize,
    pub proposed: usize,
    pub planned: usize,
    pub failed: usize,
    pub cancelled: usize,
}

impl UpdateProgress {
    fn of(items: &[UpdateItemRecord]) -> UpdateProgress {
        let mut p = UpdateProgress {
            total: items.len(),
            ..Default::default()
        };
        for item in items {
            let slot = match item.status {
                UpdateStatus::Pending => &mut p.pending,
                UpdateStatus::Running => &mut p.running,
                UpdateStatus::Opened => &mut p.opened,
                UpdateStatus::Conflicts => &mut p.conflicts,
                UpdateStatus::UpToDate => &mut p.up_to_date,
                UpdateStatus::Proposed => &mut p.proposed,
                UpdateStatus::Planned => &mut p.planned,
                UpdateStatus::Failed => &mut p.failed,
                UpdateStatus::Cancelled => &mut p.cancelled,
            };
            *slot += 1;
        }
        p
    }

    /// Repositories that reached an end (any end).
    pub fn done(&self) -> usize {
        self.total - self.pending - self.running
    }

    /// "17 of 50: 14 opened, 2 conflicts, 1 up to date".
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.planned > 0 {
            parts.push(format!("{} planned", self.planned));
        } else {
            parts.push(format!("{} opened", self.opened));
        }
        parts.push(format!(
            "{} conflict{}",
            self.conflicts,
            if self.conflicts == 1 { "" } else { "s" }
        ));
        parts.push(format!("{} up to date", self.up_to_date));
        for (n, word) in [
            (self.proposed, "already proposed"),
            (self.failed, "failed"),
            (self.cancelled, "cancelled"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {word}"));
            }
        }
        format!("{} of {}: {}", self.done(), self.total, parts.join(", "))
    }
}

/// A run with its items, as the API shows it.
#[derive(Debug, Clone)]
pub struct UpdateRun {
    pub id: Uuid,
    pub template_ref: String,
    pub version: String,
    pub status: UpdateRunStatus,
    pub dry_run: bool,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub progress: UpdateProgress,
    pub items: Vec<UpdateItemRecord>,
}

/// The current version of a template, read from its directory now.
struct Version {
    template: LoadedTemplate,
    digest: String,
}

/// The options a run keeps (and a retry runs with again).
#[derive(Debug, Clone)]
struct RunOptions {
    dry_run: bool,
    set: Map<String, Value>,
    concurrency: usize,
}

impl RunOptions {
    fn to_json(&self) -> Value {
        json!({"dryRun": self.dry_run, "set": self.set, "concurrency": self.concurrency})
    }

    fn from_json(value: &Value) -> RunOptions {
        RunOptions {
            dry_run: value["dryRun"].as_bool().unwrap_or(false),
            set: value["set"].as_object().cloned().unwrap_or_default(),
            concurrency: value["concurrency"]
                .as_u64()
                .map(|n| (n as usize).clamp(1, MAX_CONCURRENCY))
                .unwrap_or(4),
        }
    }
}

#[derive(Clone)]
pub struct UpdateService {
    store: Store,
    templates: Templates,
    runner: Runner,
    integrations: Arc<ScmIntegrations>,
    /// Reads git templates' directories.
    reader: Option<Arc<UrlReader>>,
    /// Runs driven by this process, to cancel at once.
    running: Arc<Mutex<HashMap<Uuid, CancellationToken>>>,
    /// Bumped whenever an item or a run of this process changes: what
    /// `wait` watches (no polling).
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    shutdown: CancellationToken,
}

impl UpdateService {
    pub fn new(
        store: Store,
        templates: Templates,
        runner: Runner,
        integrations: Arc<ScmIntegrations>,
        shutdown: CancellationToken,
    ) -> UpdateService {
        UpdateService {
            store,
            templates,
            runner,
            integrations,
            reader: None,
            running: Arc::default(),
            changes: Arc::new(tokio::sync::watch::channel(0).0),
            shutdown,
        }
    }

    /// Git templates (`templates.urls`) are read through it.
    pub fn with_reader(mut self, reader: Arc<UrlReader>) -> UpdateService {
        self.reader = Some(reader);
        self
    }

    /// Starts a fleet update; the run goes on in the background.
    pub async fn start(&self, caller: &Caller, request: StartUpdate) -> Result<UpdateRun, ServiceError> {
        // A fleet update proposes changes to repositories anyone generated.
        if !caller.sees_all {
            return Err(ServiceError::Forbidden(
                "fleet updates change every repository generated from a template: only callers that see every task (admins, tokens with access: all) may start them".into(),
            ));
        }
        if request.concurrency == 0 || request.concurrency > MAX_CONCURRENCY {
            return Err(ServiceError::Input(format!(
                "concurrency must be between 1 and {MAX_CONCURRENCY}, got {}",
                request.concurrency
            )));
        }
        if let Some(bad) = request
            .repositories
            .iter()
            .find(|r| r.trim().is_empty() || r.contains('\0'))
        {
            return Err(ServiceError::Input(format!(
                "repositories must be repoUrls (like github.com?owner=o&repo=r), got {bad:?}"
            )));
        }
        let version = self.current_version(&request.template_ref).await?;
        let template_ref = version.template.entity_ref.to_string();
        let mut repositories = if request.repositories.is_empty() {
            self.store.generated_repositories(&template_ref).await?
        } else {
            request.repositories.clone()
        };
        let mut seen = std::collections::HashSet::new();
        repositories.retain(|r| seen.insert(r.clone()));
        if repositories.is_empty() {
            return Err(ServiceError::Input(format!(
                "no repository was generated from {template_ref} by a completed task; name the repositories to update"
            )));
        }
        let options = RunOptions {
            dry_run: request.dry_run,
            set: request.set,
            concurrency: request.concurrency,
        };
        let id = Uuid::new_v4();
        self.store
            .create_update_run(
                id,
                &template_ref,
                &version.digest,
                &options.to_json(),
                request.created_by.as_deref(),
                &repositories,
            )
            .await?;
        tracing::info!(run = %id, template = %template_ref, version = %version.digest, repositories = repositories.len(), dry_run = options.dry_run, "template update started");
        self.spawn(id, Arc::new(version), repositories, options);
        self.get(caller, &id.to_string()).await
    }

    /// A run the caller may see (its creator's, or any for callers that
    /// see every task), as a missing one otherwise.
    async fn visible_run(&self, caller: &Caller, raw_id: &str) -> Result<(Uuid, UpdateRunRecord), ServiceError> {
        let id = parse_id(raw_id)?;
        let run = self.store.update_run(id).await?.ok_or_else(|| not_found(raw_id))?;
        if !caller.may_see(run.created_by.as_deref()) {
            return Err(not_found(raw_id));
        }
        Ok((id, run))
    }

    /// A run and its items.
    pub async fn get(&self, caller: &Caller, raw_id: &str) -> Result<UpdateRun, ServiceError> {
        let (id, run) = self.visible_run(caller, raw_id).await?;
        let items = self.store.update_items(id).await?;
        Ok(view(run, items))
    }

    /// A run, once something changed in it or it ended, or after `limit`:
    /// followers (the command line, tests) long-poll with it.
    pub async fn wait(
        &self,
        caller: &Caller,
        raw_id: &str,
        limit: std::time::Duration,
    ) -> Result<UpdateRun, ServiceError> {
        let mut changes = self.changes.subscribe();
        changes.mark_unchanged();
        let run = self.get(caller, raw_id).await?;
        if run.status != UpdateRunStatus::Running {
            return Ok(run);
        }
        let _ = tokio::time::timeout(limit, changes.changed()).await;
        self.get(caller, raw_id).await
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Stops a running run: items not started are cancelled, items in
    /// flight stop. A run left running by a process that died ends here.
    pub async fn cancel(&self, caller: &Caller, raw_id: &str) -> Result<UpdateRun, ServiceError> {
        let (id, run) = self.visible_run(caller, raw_id).await?;
        if run.status == UpdateRunStatus::Running && self.store.cancel_update_run(id).await? {
            let token = self.running.lock().ok().and_then(|m| m.get(&id).cloned());
            match token {
                Some(token) => token.cancel(),
                // No driver here: end it now (a retry can start it again).
                None => {
                    self.store.finish_update_run(id).await?;
                    self.changed();
                }
            }
        }
        self.get(caller, raw_id).await
    }

    /// Runs the items that failed or were cancelled again, with the run's
    /// options, against the template's current version.
    pub async fn retry(&self, caller: &Caller, raw_id: &str) -> Result<UpdateRun, ServiceError> {
        let (id, run) = self.visible_run(caller, raw_id).await?;
        if run.status == UpdateRunStatus::Running {
            return Err(ServiceError::Conflict(format!(
                "update run {id} is still running; cancel it first"
            )));
        }
        let version = self.current_version(&run.template_ref).await?;
        let Some(repositories) = self.store.retry_update_run(id).await? else {
            return Err(ServiceError::Conflict(format!("update run {id} is still running")));
        };
        tracing::info!(run = %id, repositories = repositories.len(), "template update retried");
        self.spawn(id, Arc::new(version), repositories, RunOptions::from_json(&run.options));
        self.get(caller, raw_id).await
    }

    fn spawn(&self, id: Uuid, version: Arc<Version>, repositories: Vec<String>, options: RunOptions) {
        let token = self.shutdown.child_token();
        if let Ok(mut running) = self.running.lock() {
            running.insert(id, token.clone());
        }
        let this = self.clone();
        tokio::spawn(async move {
            let concurrency = options.concurrency;
            let options = Arc::new(options);
            futures::stream::iter(repositories)
                .map(|repo| {
                    let (this, version, options, token) =
                        (this.clone(), version.clone(), options.clone(), token.clone());
                    async move { this.drive_item(id, &repo, &version, &options, &token).await }
                })
                .buffer_unordered(concurrency)
                .collect::<Vec<()>>()
                .await;
            if let Ok(mut running) = this.running.lock() {
                running.remove(&id);
            }
            if this.shutdown.is_cancelled() {
                // Left running: a cancel (then retry) after restart ends it.
                return;
            }
            match this.store.finish_update_run(id).await {
                Ok(status) => tracing::info!(run = %id, status = status.as_str(), "template update finished"),
                Err(e) => tracing::warn!(run = %id, error = %e, "cannot record the end of a template update"),
            }
            this.changed();
        });
    }

    async fn drive_item(
        &self,
        run: Uuid,
        repo: &str,
        version: &Version,
        options: &RunOptions,
        token: &CancellationToken,
    ) {
        if token.is_cancelled() || self.store.update_cancel_requested(run).await.unwrap_or(true) {
            return;
        }
        let mut record = item(repo, UpdateStatus::Running);
        if let Err(e) = self.store.record_update_item(run, &record).await {
            tracing::warn!(run = %run, repo, error = %e, "cannot record an update item");
            return;
        }
        self.changed();
        let cancel = token.child_token();
        record = match self.update_one(repo, version, options, &cancel).await {
            Ok(done) => done,
            Err(_) if cancel.is_cancelled() => item(repo, UpdateStatus::Cancelled),
            Err(message) => UpdateItemRecord {
                error: Some(message),
                ..item(repo, UpdateStatus::Failed)
            },
        };
        tracing::info!(run = %run, repo, status = record.status.as_str(), "repository updated");
        if let Err(e) = self.store.record_update_item(run, &record).await {
            tracing::warn!(run = %run, repo, error = %e, "cannot record an update item");
        }
        self.changed();
    }

    /// Updates one repository; every failure is this repository's alone.
    async fn update_one(
        &self,
        repo: &str,
        version: &Version,
        options: &RunOptions,
        cancel: &CancellationToken,
    ) -> Result<UpdateItemRecord, String> {
        let template_ref = version.template.entity_ref.to_string();
        let (git, remote) = repository_remote(&self.integrations, repo, cancel.clone())
            .await
            .map_err(|e| e.to_string())?;
        let checkout = UpdateRepo::fetch(&git, &remote).await.map_err(|e| e.to_string())?;
        let recorded = checkout
            .read(ANSWERS_PATH)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "{ANSWERS_PATH} is missing on {}: the repository does not say which template version made it",
                    checkout.branch
                )
            })?;
        let answers = Answers::parse(&recorded).map_err(|e| format!("{ANSWERS_PATH}: {e}"))?;
        if answers.template != template_ref {
            return Err(format!("{ANSWERS_PATH} names {}, not {template_ref}", answers.template));
        }
        let mut record = UpdateItemRecord {
            from_version: Some(answers.version.clone()),
            ..item(repo, UpdateStatus::UpToDate)
        };
        if answers.version == version.digest && options.set.is_empty() {
            return Ok(record);
        }
        let old = self.stored_version(&answers.version, &template_ref).await?;
        let new_values = with_defaults(&version.template, &answers.values, &options.set);
        validate_parameters(&version.template.spec.parameter_pages(), &new_values, |_| true).map_err(|errors| {
            let messages: Vec<String> = errors
                .iter()
                .map(|e| {
                    e["stack"]
                        .as_str()
                        .or(e["message"].as_str())
                        .unwrap_or("invalid")
                        .to_owned()
                })
                .collect();
            format!(
                "the recorded values do not satisfy the new version ({}); give the missing values with --set",
                messages.join("; ")
            )
        })?;

        let scratch = tempfile::Builder::new()
            .prefix("scaffolder-render-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let base_dir = scratch.path().join("base");
        let new_dir = scratch.path().join("new");
        self.render(&old.template, &Value::Object(answers.values.clone()), &base_dir, cancel)
            .await
            .map_err(|e| format!("cannot render the recorded version {}: {e}", answers.version))?;
        self.render(&version.template, &new_values, &new_dir, cancel)
            .await
            .map_err(|e| format!("cannot render version {}: {e}", version.digest))?;
        let excludes = update_excludes(&version.template).map_err(|e| e.to_string())?;
        for dir in [&base_dir, &new_dir] {
            remove_excluded(dir, &excludes).map_err(|e| format!("cannot apply spec.updates.exclude: {e}"))?;
        }
        let new_answers = Answers {
            template: template_ref.clone(),
            version: version.digest.clone(),
            // The task that generated the repository: the same change
            // proposed twice is the same tree.
            task_id: answers.task_id.clone(),
            values: new_values.as_object().cloned().unwrap_or_default(),
        };
        write_file(&base_dir.join(ANSWERS_PATH), &recorded)?;
        write_file(&new_dir.join(ANSWERS_PATH), &new_answers.to_yaml())?;

        let branch = format!("scaffolder/update-{}", version.template.entity_ref.name);
        let target_branch = checkout.branch.clone();
        let merged = checkout
            .merge(&base_dir, &new_dir, &branch)
            .await
            .map_err(|e| e.to_string())?;
        if merged.up_to_date {
            return Ok(record);
        }
        let added: Vec<String> = new_values
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| !answers.values.contains_key(*k))
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect()
            })
            .unwrap_or_default();
        let body = proposal_body(&template_ref, &answers.version, &version.digest, &merged, &added);
        record.files = json!(merged
            .changes
            .iter()
            .map(|c| format!("{} {}", c.status, c.path))
            .collect::<Vec<_>>());
        record.conflicts = json!(merged.conflicts);
        record.diff = Some(merged.diff.clone());
        record.body = Some(body.clone());
        if options.dry_run {
            record.status = UpdateStatus::Planned;
            return Ok(record);
        }
        if merged.already_proposed {
            record.status = UpdateStatus::Proposed;
            record.proposal = Some(branch);
            return Ok(record);
        }
        let title = format!(
            "Update from template {} ({})",
            version.template.entity_ref.name,
            short(&version.digest)
        );
        let deleted: Vec<&str> = merged
            .changes
            .iter()
            .filter(|c| c.status == 'D')
            .map(|c| c.path.as_str())
            .collect();
        let proposal = self
            .propose(
                repo,
                &branch,
                &target_branch,
                &title,
                &body,
                &deleted,
                &merged.tree_dir,
                cancel,
            )
            .await?;
        record.proposal = Some(proposal);
        record.status = if merged.conflicts.is_empty() {
            UpdateStatus::Opened
        } else {
            UpdateStatus::Conflicts
        };
        Ok(record)
    }

    /// The template at `raw_ref` as its directory (or its git ref) holds it
    /// now, its version stored.
    async fn current_version(&self, raw_ref: &str) -> Result<Version, ServiceError> {
        let entity_ref = EntityRef::parse(raw_ref, "template", "default")
            .map_err(|e| ServiceError::Input(format!("invalid template reference '{raw_ref}': {e}")))?;
        let known = self
            .templates
            .find(&entity_ref)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("Template {entity_ref} not found")))?;
        let Some(now) = template_dir_now(&known, self.reader.as_deref()).await? else {
            return Err(ServiceError::Input(format!(
                "{entity_ref} comes from the catalog; updates need a template directory or a git URL"
            )));
        };
        let reload = entity_ref.clone();
        let (dir, file) = (now.dir.clone(), now.file.clone());
        let (mut template, snapshot) = tokio::task::spawn_blocking(move || {
            let path = dir.join(&file);
            let template = load_template_file(&path)
                .map_err(|e| ServiceError::Input(format!("cannot read {}: {e}", path.display())))?
                .into_iter()
                .find(|t| t.entity_ref.key() == reload.key())
                .ok_or_else(|| ServiceError::NotFound(format!("{reload} is no longer in {}", path.display())))?;
            Ok::<_, ServiceError>((template, snapshot_dir(&dir)?))
        })
        .await
        .map_err(|e| ServiceError::Input(format!("cannot read the template: {e}")))??;
        if known.dir.is_none() {
            // A git template renders from its own URL, as its tasks do.
            template.base_url = known.base_url.clone();
            template.dir = None;
        }
        self.store
            .ensure_template_version(&snapshot.digest, &entity_ref.to_string(), &snapshot.archive)
            .await?;
        Ok(Version {
            template,
            digest: snapshot.digest,
        })
    }

    /// A stored version, laid out in a temporary directory and loaded.
    async fn stored_version(&self, digest: &str, template_ref: &str) -> Result<StoredVersion, String> {
        let archive = self
            .store
            .template_version(digest)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("template version {digest} is not stored here"))?;
        let dir = tempfile::Builder::new()
            .prefix("scaffolder-version-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let (digest, template_ref) = (digest.to_owned(), template_ref.to_owned());
        let root = dir.path().to_path_buf();
        let template = tokio::task::spawn_blocking(move || {
            unpack(&digest, &archive, &root).map_err(|e| e.to_string())?;
            // `template.yaml` for directory templates; a git template's file
            // may be named otherwise: the YAML files at the top are tried.
            let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
                .map_err(|e| e.to_string())?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            files.sort_by_key(|p| p.file_name() != Some(std::ffi::OsStr::new("template.yaml")));
            files
                .iter()
                .filter_map(|f| load_template_file(f).ok())
                .flatten()
                .find(|t| t.entity_ref.to_string() == template_ref)
                .ok_or_else(|| format!("version {digest} does not define {template_ref}"))
        })
        .await
        .map_err(|e| e.to_string())??;
        Ok(StoredVersion { template, _dir: dir })
    }

    /// Runs the file-writing steps of `template` with `values` into `workspace`.
    async fn render(
        &self,
        template: &LoadedTemplate,
        values: &Value,
        workspace: &Path,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        std::fs::create_dir_all(workspace).map_err(|e| e.to_string())?;
        let mut template = template.clone();
        template.spec.steps.retain(|s| runs_in_update(&s.action));
        let spec = template.task_spec(values, &json!({}));
        let outcome = self
            .runner
            .run(quiet_request(spec, workspace, cancel), Arc::new(QuietSink))
            .await;
        finished(outcome).map(|_| ())
    }

    /// Pushes the proposed tree to `branch` and opens (or updates) the pull
    /// request, through the same action templates use. Returns its URL (the
    /// branch's repository on the local git host).
    #[allow(clippy::too_many_arguments)]
    async fn propose(
        &self,
        repo: &str,
        branch: &str,
        target: &str,
        title: &str,
        body: &str,
        deleted: &[&str],
        tree: &Path,
        cancel: &CancellationToken,
    ) -> Result<String, String> {
        let spec = json!({
            "apiVersion": API_VERSION,
            "steps": [{
                "id": "propose",
                "name": "Propose the update",
                "action": "publish:github:pull-request",
                "input": {
                    "repoUrl": "${{ parameters.repoUrl }}",
                    "branchName": "${{ parameters.branch }}",
                    "targetBranchName": "${{ parameters.target }}",
                    "title": "${{ parameters.title }}",
                    "description": "${{ parameters.body }}",
                    "commitMessage": "${{ parameters.title }}",
                    "filesToDelete": "${{ parameters.deleted }}",
                    "update": true,
                },
            }],
            "output": {"remoteUrl": "${{ steps.propose.output.remoteUrl }}"},
            "parameters": {
                "repoUrl": repo, "branch": branch, "target": target, "title": title, "body": body, "deleted": deleted,
            },
        });
        let outcome = self
            .runner
            .run(quiet_request(spec, tree, cancel), Arc::new(QuietSink))
            .await;
        let output = finished(outcome).map_err(|e| format!("cannot propose the update: {e}"))?;
        Ok(output["remoteUrl"]
            .as_str()
            .map(|url| format!("{url} (branch {branch})"))
            .unwrap_or_else(|| branch.to_owned()))
    }
}

struct StoredVersion {
    template: LoadedTemplate,
    _dir: tempfile::TempDir,
}

/// Runs of an update report nothing: their errors come back in the end.
struct QuietSink;

#[async_trait]
impl RunSink for QuietSink {
    async fn emit(&self, _event: NewEvent) {}
}

/// A run of an update's own: no secrets, no journal, nothing resumed; only
/// `cancel` stops it.
fn quiet_request(spec: Value, workspace: &Path, cancel: &CancellationToken) -> RunRequest {
    RunRequest {
        approval: None,
        task_id: RunId::Task(TaskId::new()),
        spec,
        secrets: Map::new(),
        workspace: workspace.to_path_buf(),
        dry_run: false,
        cancel: cancel.clone(),
        abort: CancellationToken::new(),
        resume: HashMap::new(),
        notes: Vec::new(),
        deadline: None,
        answers: None,
    }
}

fn finished(outcome: RunOutcome) -> Result<Value, String> {
    match outcome {
        RunOutcome::Finished(end) if end.status == FinalStatus::Completed => Ok(end.output),
        RunOutcome::Finished(end) => Err(end
            .final_events
            .iter()
            .find_map(|e| {
                e.body
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "the run was cancelled".into())),
        RunOutcome::Aborted => Err("the run was stopped".into()),
        // Updates run only fetch:* and fs:* steps; a gate cannot stop them.
        RunOutcome::Waiting(gate) => Err(format!("an update cannot wait for approval (by {})", gate.approvers())),
    }
}

fn item(repo: &str, status: UpdateStatus) -> UpdateItemRecord {
    UpdateItemRecord {
        repo_url: repo.to_owned(),
        status,
        from_version: None,
        proposal: None,
        files: json!([]),
        conflicts: json!([]),
        diff: None,
        body: None,
        error: None,
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Deletes the files of `dir` that `excludes` matches (paths relative,
/// `/`-separated): with neither side of the template change holding them,
/// the merge keeps the repository's.
fn remove_excluded(dir: &Path, excludes: &globset::GlobSet) -> std::io::Result<()> {
    if excludes.is_empty() {
        return Ok(());
    }
    let mut doomed: Vec<PathBuf> = Vec::new();
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.map_err(std::io::Error::other)?;
        let Ok(relative) = entry.path().strip_prefix(dir) else {
            continue;
        };
        let relative = relative.to_string_lossy().replace('\\', "/");
        if entry.file_type().is_file() && excludes.is_match(&relative) {
            doomed.push(entry.path().to_path_buf());
        }
    }
    for path in doomed {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..12).unwrap_or(hex)
}

/// The pull request's body: the template change, the files, the conflicts.
fn proposal_body(template_ref: &str, from: &str, to: &str, merged: &Merged, added: &[String]) -> String {
    let mut body = format!(
        "This repository was generated from `{template_ref}`. This change brings it from version `{}` to `{}`: the difference between the two versions, rendered with the values in `{ANSWERS_PATH}`, merged into the repository three-way.\n",
        short(from),
        short(to)
    );
    if !added.is_empty() {
        body.push_str("\nNew values:\n");
        for value in added {
            body.push_str(&format!("- `{value}`\n"));
        }
    }
    body.push_str("\nFiles touched:\n");
    for change in &merged.changes {
        let word = match change.status {
            'A' => "added",
            'D' => "deleted",
            _ => "modified",
        };
        body.push_str(&format!("- `{}` ({word})\n", change.path));
    }
    if merged.conflicts.is_empty() {
        body.push_str("\nNo conflicts: the template's changes and the repository's own merged cleanly.\n");
    } else {
        body.push_str("\nConflicts (both the template and this repository changed the same lines; resolve the `<<<<<<<` markers before merging):\n");
        for path in &merged.conflicts {
            body.push_str(&format!("- `{path}`\n"));
        }
    }
    body
}

fn parse_id(raw: &str) -> Result<Uuid, ServiceError> {
    Uuid::parse_str(raw).map_err(|_| not_found(raw))
}

fn not_found(raw: &str) -> ServiceError {
    ServiceError::NotFound(format!("No update run with id '{raw}' found"))
}

fn view(run: UpdateRunRecord, items: Vec<UpdateItemRecord>) -> UpdateRun {
    UpdateRun {
        id: run.id,
        template_ref: run.template_ref,
        version: run.version,
        status: run.status,
        dry_run: RunOptions::from_json(&run.options).dry_run,
        created_by: run.created_by,
        created_at: run.created_at,
        finished_at: run.finished_at,
        progress: UpdateProgress::of(&items),
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_like_a_sentence() {
        let items: Vec<UpdateItemRecord> = [
            UpdateStatus::Opened,
            UpdateStatus::Opened,
            UpdateStatus::Conflicts,
            UpdateStatus::UpToDate,
            UpdateStatus::Pending,
            UpdateStatus::Failed,
        ]
        .into_iter()
        .map(|s| item("r", s))
        .collect();
        assert_eq!(
            UpdateProgress::of(&items).summary(),
            "5 of 6: 2 opened, 1 conflict, 1 up to date, 1 failed"
        );
    }
}
