//! The commands that run the server or look after what it owns: `serve`,
//! `migrate`, `secrets rotate`, `gitops`, and the two that need no settings,
//! `openapi` and `secrets generate-key`.
//!
//! The commands given [`Settings`] return `Result<(), AdminError>`;
//! [`finish`] turns that into the exit code and the one error line, so every
//! one of them fails the same way (logged, `scaffolder: …` on stderr, exit 1).

use std::path::PathBuf;
use std::sync::Arc;

use super::gitops::GitopsRunError;
use super::Exit;
use crate::config::Settings;
use crate::scm::{IntegrationError, ScmIntegrations};
use crate::secrets::{Keyring, SecretsError};
use crate::service::ResealError;
use crate::startup::{Application, StartupError};
use crate::store::{Store, StoreError};
use crate::{errln, out, outln};

/// The target these lines have always had: they were logged by the binary.
const LOG_TARGET: &str = "scaffolder";

/// `openapi`: prints the OpenAPI document (YAML).
pub fn openapi() -> Exit {
    out!("{}", crate::http::openapi::yaml());
    Exit::Ok
}

/// `secrets generate-key`: prints a new `id:base64key` entry for
/// `secrets.keys`; an id the keyring would refuse is a usage error.
pub fn generate_key(id: &str) -> Exit {
    let entry = crate::secrets::generate_key_entry(id);
    if let Err(e) = Keyring::from_entries(&[&entry]) {
        errln!("scaffolder: {e}");
        return Exit::Usage;
    }
    outln!("{entry}");
    Exit::Ok
}

/// Why a command given [`Settings`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("the server stopped: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Reseal(#[from] ResealError),
    #[error("{0} task secrets could not be re-encrypted; keep the old keys until those tasks end")]
    Unresealed(usize),
    #[error(transparent)]
    Integrations(#[from] IntegrationError),
    #[error(transparent)]
    Gitops(#[from] GitopsRunError),
}

/// The exit code of a command given [`Settings`]; its error is logged and
/// printed.
pub fn finish(result: Result<(), AdminError>) -> Exit {
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            tracing::error!(target: LOG_TARGET, error = %e, "scaffolder stopped");
            errln!("scaffolder: {e}");
            Exit::Failed
        }
    }
}

/// `serve`: the API and the worker until SIGINT or SIGTERM. `bind` and a
/// non-empty `templates` replace the configured ones.
pub async fn serve(mut settings: Settings, bind: Option<String>, templates: Vec<PathBuf>) -> Result<(), AdminError> {
    if let Some(bind) = bind {
        settings.server.bind = bind;
    }
    if !templates.is_empty() {
        settings.templates.dirs = templates;
    }
    let bind = settings.server.bind.clone();
    let app = Application::build_waiting_for_database(settings).await?;
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.cancel();
    });
    tracing::info!(target: LOG_TARGET, %bind, port = app.port(), "scaffolder listening");
    app.run_until_stopped().await.map_err(AdminError::Serve)
}

/// `migrate`: applies the database migrations.
pub async fn migrate(settings: Settings) -> Result<(), AdminError> {
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    tracing::info!(target: LOG_TARGET, "migrations applied");
    Ok(())
}

/// `secrets rotate`: re-encrypts every stored secret with the first key;
/// secrets no configured key opens make it fail, so the old keys are kept.
pub async fn rotate_secrets(settings: Settings) -> Result<(), AdminError> {
    let keyring = Keyring::from_settings(&settings.secrets)?;
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    let report = crate::service::reseal_stored(&keyring, &store, false).await?;
    outln!(
        "re-encrypted {} task secrets with key '{}'; {} could not be opened with the configured keys",
        report.resealed,
        keyring.primary_id(),
        report.unreadable
    );
    if report.unreadable > 0 {
        return Err(AdminError::Unresealed(report.unreadable));
    }
    Ok(())
}

/// `gitops …`: runs one GitOps repository command and prints its outputs
/// (JSON).
pub async fn gitops(settings: Settings, command: crate::cli::gitops::GitopsCommand) -> Result<(), AdminError> {
    let integrations = ScmIntegrations::from_settings(&settings.integrations)?;
    let outputs =
        crate::cli::gitops::run(command, Arc::new(integrations), settings.gitops.argocd_repo_url.clone()).await?;
    outln!("{}", serde_json::to_string_pretty(&outputs).unwrap_or_default());
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
