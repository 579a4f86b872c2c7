//! `scaffolder dry-run TEMPLATE --values FILE [--out DIR]`: the dry-run
//! engine without a server or database, for template authors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

use super::progress::{Display, DisplaySink};
use super::run::{complete_values, refuse, resolve_template, Refusal};
use super::values::{can_prompt, load_secrets, load_values};
use super::{Exit, OutputFormat};
use crate::actions::{builtin_actions_with, ActionRegistry};
use crate::config::Settings;
use crate::engine::Runner;
use crate::service::DryRunService;
use crate::startup::action_deps;
use crate::templating::Renderer;
use crate::{errln, outln};

pub struct DryRunArgs {
    /// A template file, a directory holding `template.yaml`, or a template
    /// reference looked up in `templates.dirs` (as `run` takes it).
    pub template: String,
    pub values: Option<PathBuf>,
    pub set: Vec<String>,
    pub secrets: Vec<String>,
    pub out: Option<PathBuf>,
    pub verbose: bool,
    /// The same configuration file `serve` reads (SCM integrations, catalog).
    pub config: Option<PathBuf>,
}

/// Runs the dry-run; returns the exit code (the README's table).
pub async fn run(args: DryRunArgs) -> Exit {
    match run_inner(args).await {
        Ok(exit) => exit,
        Err(refusal) => refuse(refusal, OutputFormat::Text),
    }
}

async fn run_inner(args: DryRunArgs) -> Result<Exit, Refusal> {
    let settings = Settings::load(args.config.as_deref()).map_err(|e| Refusal::Usage(e.to_string()))?;
    let template = resolve_template(&args.template, &settings)?;
    let values = load_values(args.values.as_deref(), &args.set).map_err(|e| Refusal::Usage(e.to_string()))?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let secrets = load_secrets(&env, &args.secrets).map_err(|e| Refusal::Usage(e.to_string()))?;

    let (workspace, _scratch) = match &args.out {
        Some(out) => {
            prepare_out(out).map_err(|e| Refusal::Usage(e.to_string()))?;
            (out.clone(), None)
        }
        None => {
            let dir = tempfile::tempdir().map_err(|e| Refusal::Usage(format!("cannot create a workspace: {e}")))?;
            (dir.path().to_path_buf(), Some(dir))
        }
    };
    let deps = action_deps(&settings).map_err(|e| Refusal::Usage(e.to_string()))?;
    let renderer = Arc::new(Renderer::builder().integrations(deps.integrations.templating()).build());
    // As `run` treats them: unknown `--set` keys, prompts, every page's errors.
    let values = complete_values(&template, values, &args.set, &renderer, can_prompt())?;
    let runner = Runner::new(ActionRegistry::new(builtin_actions_with(&deps)), renderer)
        .with_limits(&settings.limits)
        // Remote skeletons (GitHub, the local git host) as `serve` reads them.
        .with_reader(Arc::new(crate::scm::reader::UrlReader::new(
            deps.integrations.clone(),
            settings.templates.cache_dir(),
        )));
    let service = DryRunService::new(runner, None);
    let display = Display::new(&template.task_spec(&values, &json!({})), args.verbose);
    let ticker = display.start_ticker();
    let progress = Arc::new(DisplaySink(display.clone()));
    let outcome = service
        .run_template(&template, &values, &secrets, &workspace, Some(progress))
        .await
        .map_err(|e| match e {
            crate::service::ServiceError::Validation(errors) => Refusal::Invalid(errors),
            other => Refusal::Usage(other.to_string()),
        });
    ticker.cancel();
    display.finish();
    let outcome = outcome?;
    match outcome {
        Ok(result) => {
            errln!();
            for file in &result.directory_contents {
                errln!("  {}{}", file.path, if file.executable { " (executable)" } else { "" });
            }
            match &args.out {
                Some(out) => errln!("{} files written to {}", result.directory_contents.len(), out.display()),
                None => errln!(
                    "{} files rendered (use --out DIR to keep them)",
                    result.directory_contents.len()
                ),
            }
            outln!("{}", serde_json::to_string_pretty(&result.output).unwrap_or_default());
            Ok(Exit::Ok)
        }
        Err(failure) => {
            errln!("dry-run failed: {}: {}", failure.name, failure.message);
            Ok(Exit::Failed)
        }
    }
}

/// The output directory must be new or empty: a dry-run never mixes its
/// files with others.
fn prepare_out(out: &Path) -> Result<(), String> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(|e| format!("cannot read {}: {e}", out.display()))?;
        if entries.next().is_some() {
            return Err(format!(
                "{} is not empty; choose a new or empty directory",
                out.display()
            ));
        }
    } else {
        std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    }
    Ok(())
}
