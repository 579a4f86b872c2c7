//! `POST /v2/dry-run`: runs a template sent inline, against files sent
//! inline, without a database; returns the log, the workspace files and the
//! rendered output, as Backstage's template editor expects.

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::ServiceError;
use crate::engine::redact::Redactor;
use crate::engine::runner::redact_secrets;
use crate::engine::{FinalStatus, RunEnd, RunId, RunOutcome, RunRequest, RunSink, Runner};
use crate::model::NewEvent;
use crate::template::{validate_parameters, LoadedTemplate, API_VERSION};

/// One file sent with the request.
#[derive(Debug, Clone)]
pub struct InlineFile {
    pub path: String,
    pub content: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct DryRunRequest {
    pub template: Value,
    pub values: Value,
    pub secrets: Map<String, Value>,
    pub files: Vec<InlineFile>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputFile {
    pub path: String,
    pub executable: bool,
    pub base64_content: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRunResult {
    pub log: Vec<Value>,
    pub directory_contents: Vec<OutputFile>,
    pub output: Value,
    pub steps: Value,
}

/// A step failed: Backstage answers with the error's class and message.
#[derive(Debug, Clone)]
pub struct DryRunFailure {
    pub name: String,
    pub message: String,
}

struct MemorySink {
    log: Mutex<Vec<Value>>,
    secrets: Map<String, Value>,
    /// Also shown live (the CLI prints progress from it).
    forward: Option<Arc<dyn RunSink>>,
}

#[async_trait]
impl RunSink for MemorySink {
    async fn emit(&self, event: NewEvent) {
        // Secrets never appear in a dry-run's log; they show as `***`.
        let mut body = event.body;
        redact_secrets(&mut body, &self.secrets);
        if let Ok(mut log) = self.log.lock() {
            log.push(json!({ "body": body.clone() }));
        }
        if let Some(forward) = &self.forward {
            forward
                .emit(NewEvent {
                    event_type: event.event_type,
                    body,
                })
                .await;
        }
    }
}

#[derive(Clone)]
pub struct DryRunService {
    runner: Runner,
    work_dir: Option<PathBuf>,
    /// `limits.dry_run_files`, `limits.dry_run_bytes`.
    max_files: usize,
    max_bytes: u64,
    /// A dry-run answers an HTTP request: it may not run for long
    /// (`limits.dry_run_timeout_seconds`).
    timeout: std::time::Duration,
}

/// Backstage's `resolveSafeChildPath`, as its dry-run applies it to every
/// upload: a path that resolves outside the template's directory (`../x`,
/// an absolute path) is refused with its `NotAllowedError`. Paths that stay
/// inside but name no file (empty, `.`, `a/..`, a NUL byte) are ours to
/// refuse as input errors (Backstage fails on them later, writing).
fn safe_child_path(path: &str) -> Result<PathBuf, ServiceError> {
    let not_a_file = || ServiceError::Input(format!("directoryContents path '{path}' is not a relative file path"));
    if path.contains('\0') {
        return Err(not_a_file());
    }
    if Path::new(path).is_absolute() {
        return Err(outside_parent());
    }
    let mut rest: Vec<&str> = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::ParentDir => {
                if rest.pop().is_none() {
                    return Err(outside_parent());
                }
            }
            Component::Normal(part) => rest.push(part.to_str().ok_or_else(not_a_file)?),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err(outside_parent()),
        }
    }
    if rest.is_empty() {
        return Err(not_a_file());
    }
    Ok(rest.iter().collect())
}

fn outside_parent() -> ServiceError {
    ServiceError::Forbidden("Relative path is not allowed to refer to a directory outside its parent".into())
}

/// The workspace's files; paths and text files are scrubbed of secrets, as
/// the log is (the answer goes back to a browser).
fn serialize_workspace(root: &Path, redactor: &Redactor) -> Result<Vec<OutputFile>, std::io::Error> {
    use std::os::unix::fs::PermissionsExt;
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.map_err(std::io::Error::other)?;
        if !entry.file_type().is_file() {
            continue;
        }
        let relative = entry.path().strip_prefix(root).map_err(std::io::Error::other)?;
        let path = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let mode = entry.metadata().map_err(std::io::Error::other)?.permissions().mode();
        let mut content = std::fs::read(entry.path())?;
        if !redactor.is_empty() {
            if let Ok(text) = std::str::from_utf8(&content) {
                content = redactor.redact_str(text).into_bytes();
            }
        }
        files.push(OutputFile {
            path: if redactor.is_empty() {
                path
            } else {
                redactor.redact_str(&path)
            },
            executable: mode & 0o111 != 0,
            base64_content: base64::engine::general_purpose::STANDARD.encode(content),
        });
    }
    files.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Ok(files)
}

/// The RAM-backed directory dry-runs use when nothing else is configured.
const SHM_DIR: &str = "/dev/shm";

/// Whether `dir` is a mount point of a tmpfs, by `/proc/self/mounts`
/// (fields: device, mount point, type; spaces in paths are escaped there as
/// `\040`, which `/dev/shm` has none of).
fn is_tmpfs_mount(mounts: &str, dir: &str) -> bool {
    mounts.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let (_, point, kind) = (fields.next(), fields.next(), fields.next());
        point == Some(dir) && kind == Some("tmpfs")
    })
}

/// Where dry-runs lay out their files (`worker.dry_run_dir`): the configured
/// directory; else `/dev/shm` when it is a writable tmpfs and no action
/// bridge shares the workspace (a sidecar sees `work_dir`, not this
/// machine's memory), so that a dry-run's dozens of file creations and
/// deletions cost no disk work; else `work_dir` or the system temp dir.
pub fn dry_run_dir(configured: Option<&Path>, work_dir: Option<&Path>, shared_with_bridge: bool) -> PathBuf {
    if let Some(dir) = configured {
        return dir.to_path_buf();
    }
    let fallback = || work_dir.map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
    if shared_with_bridge {
        return fallback();
    }
    let on_tmpfs = std::fs::read_to_string("/proc/self/mounts").is_ok_and(|m| is_tmpfs_mount(&m, SHM_DIR));
    let writable = on_tmpfs
        && tempfile::Builder::new()
            .prefix("scaffolder-probe-")
            .tempdir_in(SHM_DIR)
            .is_ok();
    if writable {
        PathBuf::from(SHM_DIR)
    } else {
        fallback()
    }
}

impl DryRunService {
    pub fn new(runner: Runner, work_dir: Option<PathBuf>) -> DryRunService {
        let defaults = crate::config::LimitsSettings::default();
        DryRunService {
            runner,
            work_dir,
            max_files: defaults.dry_run_files,
            max_bytes: defaults.dry_run_bytes,
            timeout: std::time::Duration::from_secs(defaults.dry_run_timeout_seconds),
        }
    }

    /// The configured dry-run limits.
    pub fn with_limits(mut self, limits: &crate::config::LimitsSettings) -> DryRunService {
        self.max_files = limits.dry_run_files;
        self.max_bytes = limits.dry_run_bytes;
        self.timeout = std::time::Duration::from_secs(limits.dry_run_timeout_seconds);
        self
    }

    /// `directoryContents` within `limits.dry_run_files` and `limits.dry_run_bytes`.
    fn check_upload(&self, files: &[InlineFile]) -> Result<(), ServiceError> {
        if files.len() > self.max_files {
            return Err(ServiceError::Input(format!(
                "directoryContents has {} files; at most {} are accepted (limits.dry_run_files)",
                files.len(),
                self.max_files
            )));
        }
        let total: u64 = files.iter().map(|f| f.content.len() as u64).sum();
        if total > self.max_bytes {
            return Err(ServiceError::Input(format!(
                "directoryContents holds {total} bytes; at most {} are accepted (limits.dry_run_bytes)",
                self.max_bytes
            )));
        }
        Ok(())
    }

    /// [`DryRunService::run`] as `caller`, recorded in the audit trail
    /// (`task:dry-run`; a failed step is still a dry-run that ran).
    pub async fn run_for(
        &self,
        caller: &crate::auth::Caller,
        tasks: &super::TaskService,
        request: DryRunRequest,
    ) -> Result<Result<DryRunResult, DryRunFailure>, ServiceError> {
        let audit = tasks.audit();
        let template = request
            .template
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let result = match tasks
            .require(caller, crate::auth::permissions::Permission::TemplateDryRun)
            .await
        {
            Ok(()) => self.run(request).await,
            Err(e) => Err(e),
        };
        let failed_step = matches!(result, Ok(Err(_)));
        audit
            .outcome(
                caller,
                crate::model::audit::AuditKind::TaskDryRun,
                |e| {
                    let e = e.meta("stepFailed", failed_step);
                    match template {
                        Some(name) => e.target(name),
                        None => e,
                    }
                },
                result,
            )
            .await
    }

    pub async fn run(&self, request: DryRunRequest) -> Result<Result<DryRunResult, DryRunFailure>, ServiceError> {
        self.check_upload(&request.files)?;
        let template = &request.template;
        let is_template = template.get("kind").and_then(Value::as_str) == Some("Template")
            && template.get("apiVersion").and_then(Value::as_str) == Some(API_VERSION);
        if !is_template {
            return Err(ServiceError::Input("Input template is not a template".into()));
        }
        // The editor may send a template without a name; the run does not need one.
        let mut entity = template.clone();
        if let Some(metadata) = entity.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.entry("name").or_insert_with(|| json!("dry-run"));
        } else if let Some(obj) = entity.as_object_mut() {
            obj.insert("metadata".into(), json!({ "name": "dry-run" }));
        }

        let base = self.work_dir.clone().unwrap_or_else(std::env::temp_dir);
        let scratch = tempfile::Builder::new()
            .prefix("scaffolder-dry-run-")
            .tempdir_in(&base)
            .map_err(|e| ServiceError::Input(format!("cannot create a dry-run directory: {e}")))?;
        let contents_dir = scratch.path().join("content");
        let base_url = Url::from_file_path(contents_dir.join("template.yaml"))
            .map_err(|()| ServiceError::Input("dry-run directory is not absolute".into()))?;
        let loaded = LoadedTemplate::from_entity(entity, base_url, Some(contents_dir.clone()))
            .map_err(|e| ServiceError::Input(e.to_string()))?;
        // Backstage's order: values and secrets first, then the uploads.
        Self::validate_inputs(&loaded, &request.values, &request.secrets)?;

        let mut placed = Vec::with_capacity(request.files.len());
        for file in &request.files {
            placed.push((safe_child_path(&file.path)?, &file.content));
        }
        let io_err = |e: std::io::Error| ServiceError::Input(format!("cannot write dry-run files: {e}"));
        std::fs::create_dir_all(&contents_dir).map_err(io_err)?;
        for (relative, content) in placed {
            let target = contents_dir.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io_err)?;
            }
            std::fs::write(&target, content).map_err(io_err)?;
        }
        let workspace = scratch.path().join("workspace");
        std::fs::create_dir_all(&workspace).map_err(io_err)?;

        let result = self
            .execute(&loaded, &request.values, &request.secrets, &workspace, None)
            .await;
        drop(scratch);
        result
    }

    /// Values against the parameter pages (the errors of the first page
    /// that fails, as Backstage), then secrets against `spec.secrets.schema`.
    fn validate_inputs(
        loaded: &LoadedTemplate,
        values: &Value,
        secrets: &Map<String, Value>,
    ) -> Result<(), ServiceError> {
        validate_parameters(&loaded.spec.parameter_pages(), values, |_| true).map_err(ServiceError::Validation)?;
        super::tasks::check_secrets(loaded, Some(secrets))
    }

    /// Runs a loaded template in dry-run mode with `workspace` as its
    /// workspace (which it leaves in place: the CLI writes the result there).
    pub async fn run_template(
        &self,
        loaded: &LoadedTemplate,
        values: &Value,
        secrets: &Map<String, Value>,
        workspace: &Path,
        progress: Option<Arc<dyn RunSink>>,
    ) -> Result<Result<DryRunResult, DryRunFailure>, ServiceError> {
        Self::validate_inputs(loaded, values, secrets)?;
        self.execute(loaded, values, secrets, workspace, progress).await
    }

    async fn execute(
        &self,
        loaded: &LoadedTemplate,
        values: &Value,
        secrets: &Map<String, Value>,
        workspace: &Path,
        progress: Option<Arc<dyn RunSink>>,
    ) -> Result<Result<DryRunResult, DryRunFailure>, ServiceError> {
        let mut spec = loaded.task_spec(values, &json!({}));
        // Backstage names every dry-run's template `template:default/dry-run`
        // (catalog:write writes it as the source template).
        spec["templateInfo"] = json!({
            "entityRef": "template:default/dry-run",
            "entity": { "metadata": loaded.metadata() },
            "baseUrl": loaded.base_url.as_str(),
        });
        let steps = spec["steps"].clone();
        let sink = Arc::new(MemorySink {
            log: Mutex::new(Vec::new()),
            secrets: secrets.clone(),
            forward: progress,
        });
        let outcome = self
            .runner
            .run(
                RunRequest {
                    task_id: RunId::DryRun(uuid::Uuid::new_v4()),
                    spec,
                    secrets: secrets.clone(),
                    workspace: workspace.to_path_buf(),
                    dry_run: true,
                    cancel: CancellationToken::new(),
                    abort: CancellationToken::new(),
                    resume: Default::default(),
                    notes: Vec::new(),
                    deadline: Some(tokio::time::Instant::now() + self.timeout),
                    answers: None,
                    approval: None,
                },
                sink.clone(),
            )
            .await;
        // A dry-run has no lease and no shutdown hand-over: never aborted.
        let outcome = match outcome {
            RunOutcome::Finished(end) => end,
            RunOutcome::Aborted => RunEnd::failed("Error", "the dry-run was stopped".into()),
            // `approval:wait` passes in a dry-run; only a real run waits.
            RunOutcome::Waiting(gate) => RunEnd::failed(
                "Error",
                format!("step {} cannot wait for approval in a dry-run", gate.step_id),
            ),
        };
        if outcome.status != FinalStatus::Completed {
            let error = outcome
                .final_events
                .iter()
                .find_map(|e| e.body.get("error").cloned())
                .unwrap_or_else(|| json!({ "name": "Error", "message": "the dry-run was cancelled" }));
            return Ok(Err(DryRunFailure {
                name: error["name"].as_str().unwrap_or("Error").to_owned(),
                message: error["message"].as_str().unwrap_or_default().to_owned(),
            }));
        }
        let directory_contents = serialize_workspace(workspace, &Redactor::new(secrets))
            .map_err(|e| ServiceError::Input(format!("cannot read the dry-run workspace: {e}")))?;
        let log = sink.log.lock().map(|l| l.clone()).unwrap_or_default();
        Ok(Ok(DryRunResult {
            log,
            directory_contents,
            output: outcome.output,
            steps,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_tmpfs_mount_point_counts_as_ram_backed() {
        let mounts = "/dev/vda / ext4 rw 0 0\nshm /dev/shm tmpfs rw,nosuid 0 0\ntmpfs /run tmpfs rw 0 0\n";
        assert!(is_tmpfs_mount(mounts, "/dev/shm"));
        assert!(!is_tmpfs_mount(mounts, "/"));
        assert!(!is_tmpfs_mount("/dev/vda /dev/shm ext4 rw 0 0\n", "/dev/shm"));
        assert!(!is_tmpfs_mount("", "/dev/shm"));
    }

    #[test]
    fn a_configured_dry_run_dir_or_a_shared_workspace_wins_over_memory() {
        let configured = Path::new("/srv/dry");
        assert_eq!(dry_run_dir(Some(configured), None, true), configured);
        let work = Path::new("/srv/work");
        assert_eq!(dry_run_dir(None, Some(work), true), work);
    }

    #[test]
    fn uploads_outside_the_template_directory_are_not_allowed() {
        assert_eq!(safe_child_path("a/b").ok(), Some(PathBuf::from("a/b")));
        assert_eq!(safe_child_path("./a/../b").ok(), Some(PathBuf::from("b")));
        for escaping in ["../s/x", "a/../../x", "/etc/passwd"] {
            match safe_child_path(escaping) {
                Err(ServiceError::Forbidden(m)) => {
                    assert_eq!(
                        m,
                        "Relative path is not allowed to refer to a directory outside its parent"
                    )
                }
                other => panic!("{escaping}: {other:?}"),
            }
        }
        for not_a_file in ["", ".", "a/..", "a\0b"] {
            assert!(
                matches!(safe_child_path(not_a_file), Err(ServiceError::Input(_))),
                "{not_a_file:?}"
            );
        }
    }
}
