//! `scaffolder dry-run TEMPLATE --values FILE [--out DIR]`: the dry-run
//! engine without a server or database, for template authors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use super::progress::{Display, DisplaySink};
use super::values::{load_secrets, load_values};
use crate::actions::{builtin_actions_with, ActionRegistry};
use crate::config::Settings;
use crate::engine::Runner;
use crate::service::DryRunService;
use crate::startup::action_deps;
use crate::template::source::load_template_file;
use crate::templating::Renderer;

pub struct DryRunArgs {
    /// A template file, or a directory holding `template.yaml`.
    pub template: PathBuf,
    pub values: Option<PathBuf>,
    pub set: Vec<String>,
    pub secrets: Vec<String>,
    pub out: Option<PathBuf>,
    pub verbose: bool,
    /// The same configuration file `serve` reads (SCM integrations, catalog).
    pub config: Option<PathBuf>,
}

pub async fn run(args: DryRunArgs) -> Result<bool, String> {
    let file = if args.template.is_dir() {
        args.template.join("template.yaml")
    } else {
        args.template.clone()
    };
    let mut templates = load_template_file(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let template = templates.remove(0);

    let values = load_values(args.values.as_deref(), &args.set)?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let secrets = load_secrets(&env, &args.secrets)?;

    let (workspace, _scratch) = match &args.out {
        Some(out) => {
            prepare_out(out)?;
            (out.clone(), None)
        }
        None => {
            let dir = tempfile::tempdir().map_err(|e| format!("cannot create a workspace: {e}"))?;
            (dir.path().to_path_buf(), Some(dir))
        }
    };
    let settings = Settings::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    let deps = action_deps(&settings).map_err(|e| e.to_string())?;
    let renderer = Renderer::builder().integrations(deps.integrations.templating()).build();
    let runner = Runner::new(ActionRegistry::new(builtin_actions_with(&deps)), Arc::new(renderer));
    let service = DryRunService::new(runner, None);
    let display = Display::new(
        &template.task_spec(&Value::Object(values.clone()), &json!({})),
        args.verbose,
    );
    let ticker = display.start_ticker();
    let progress = Arc::new(DisplaySink(display.clone()));
    let outcome = service
        .run_template(&template, &Value::Object(values), &secrets, &workspace, Some(progress))
        .await
        .map_err(|e| match e {
            crate::service::ServiceError::Validation(errors) => {
                let lines: Vec<String> = errors
                    .iter()
                    .filter_map(|e| e.get("stack").and_then(Value::as_str).map(|s| format!("  - {s}")))
                    .collect();
                format!(
                    "the values do not match the template's parameters:\n{}",
                    lines.join("\n")
                )
            }
            other => other.to_string(),
        });
    ticker.cancel();
    display.finish();
    let outcome = outcome?;
    match outcome {
        Ok(result) => {
            eprintln!();
            for file in &result.directory_contents {
                eprintln!("  {}{}", file.path, if file.executable { " (executable)" } else { "" });
            }
            match &args.out {
                Some(out) => eprintln!("{} files written to {}", result.directory_contents.len(), out.display()),
                None => eprintln!(
                    "{} files rendered (use --out DIR to keep them)",
                    result.directory_contents.len()
                ),
            }
            println!("{}", serde_json::to_string_pretty(&result.output).unwrap_or_default());
            Ok(true)
        }
        Err(failure) => {
            eprintln!("dry-run failed: {}: {}", failure.name, failure.message);
            Ok(false)
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
