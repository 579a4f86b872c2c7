use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use scaffolder::cli::Exit;
use scaffolder::config::Settings;
use scaffolder::startup::Application;
use scaffolder::store::Store;
use scaffolder::{errln, out, outln};

#[derive(Parser)]
#[command(name = "scaffolder", version, about = "A Backstage-compatible scaffolder backend")]
struct Cli {
    /// Configuration file (YAML); environment variables override it.
    #[arg(long, global = true, env = "SCAFFOLDER_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    client: scaffolder::cli::ClientOptions,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and run tasks.
    Serve {
        /// Address to bind (default 127.0.0.1:7007).
        #[arg(long, env = "SCAFFOLDER_BIND")]
        bind: Option<String>,
        /// Template directory (repeatable); replaces `templates.dirs` from the config.
        #[arg(long = "templates")]
        templates: Vec<PathBuf>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (YAML).
    Openapi,
    /// Run a template in dry-run mode locally (no server, no database) and
    /// write the files it produces.
    DryRun {
        /// Template file, a directory holding `template.yaml`, or a template
        /// reference (`template:default/x`, `x`) looked up in `templates.dirs`.
        template: String,
        /// YAML file with the parameter values.
        #[arg(long)]
        values: Option<PathBuf>,
        /// A value `key=value` (YAML scalar or list), after `--values`; repeatable.
        #[arg(long = "set")]
        set: Vec<String>,
        /// A secret `key=value`; repeatable.
        #[arg(long = "secret")]
        secrets: Vec<String>,
        /// Directory to write the workspace to (new or empty).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Show the actions' log lines under each step.
        #[arg(long, short)]
        verbose: bool,
    },
    #[command(flatten)]
    Cli(scaffolder::cli::CliCommand),
    /// Keys of the task secrets stored encrypted in the database.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Manage the GitOps repository (infra-gitops) Argo CD deploys from.
    Gitops {
        #[command(subcommand)]
        command: scaffolder::cli::gitops::GitopsCommand,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Print a new `id:base64key` entry for `secrets.keys`.
    GenerateKey {
        /// The key id (letters, digits, `-`, `_`, `.`).
        #[arg(long, default_value = "key")]
        id: String,
    },
    /// Re-encrypt every stored secret with the first key of `secrets.keys`
    /// (and encrypt any left in plaintext), so older keys can be removed.
    Rotate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        out!("{}", scaffolder::http::openapi::yaml());
        return Exit::Ok.into();
    }
    if let Command::Secrets {
        command: SecretsCommand::GenerateKey { id },
    } = &cli.command
    {
        let entry = scaffolder::secrets::generate_key_entry(id);
        if let Err(e) = scaffolder::secrets::Keyring::from_entries(&[&entry]) {
            errln!("scaffolder: {e}");
            return Exit::Usage.into();
        }
        outln!("{entry}");
        return Exit::Ok.into();
    }
    if let Command::Cli(command) = cli.command {
        return scaffolder::cli::main(command, cli.client, cli.config);
    }
    if let Command::DryRun {
        template,
        values,
        set,
        secrets,
        out,
        verbose,
    } = cli.command
    {
        return dry_run(scaffolder::cli::dry_run::DryRunArgs {
            template,
            values,
            set,
            secrets,
            out,
            verbose,
            config: cli.config,
        });
    }
    let mut settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            errln!("scaffolder: {e}");
            return Exit::Usage.into();
        }
    };
    // Declared before the runtime so it is dropped after it: the last spans
    // are flushed once every task and request has ended.
    let _telemetry = match scaffolder::telemetry::init_with_export(&settings.log, &settings.telemetry) {
        Ok(guard) => guard,
        Err(e) => {
            errln!("scaffolder: {e}");
            return Exit::Usage.into();
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            errln!("scaffolder: cannot start the async runtime: {e}");
            return Exit::Failed.into();
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { bind, templates } => {
                if let Some(bind) = bind {
                    settings.server.bind = bind;
                }
                if !templates.is_empty() {
                    settings.templates.dirs = templates;
                }
                serve(settings).await
            }
            Command::Migrate => {
                let store = Store::connect(&settings.database).await.map_err(|e| e.to_string())?;
                store.migrate().await.map_err(|e| e.to_string())?;
                tracing::info!("migrations applied");
                Ok(())
            }
            Command::Gitops { command } => {
                let integrations = scaffolder::scm::ScmIntegrations::from_settings(&settings.integrations)
                    .map_err(|e| e.to_string())?;
                let outputs = scaffolder::cli::gitops::run(command, std::sync::Arc::new(integrations)).await?;
                outln!("{}", serde_json::to_string_pretty(&outputs).unwrap_or_default());
                Ok(())
            }
            Command::Secrets {
                command: SecretsCommand::Rotate,
            } => {
                let keyring =
                    scaffolder::secrets::Keyring::from_settings(&settings.secrets).map_err(|e| e.to_string())?;
                let store = Store::connect(&settings.database).await.map_err(|e| e.to_string())?;
                store.migrate().await.map_err(|e| e.to_string())?;
                let report = scaffolder::service::reseal_stored(&keyring, &store, false)
                    .await
                    .map_err(|e| e.to_string())?;
                outln!(
                    "re-encrypted {} task secrets with key '{}'; {} could not be opened with the configured keys",
                    report.resealed,
                    keyring.primary_id(),
                    report.unreadable
                );
                if report.unreadable > 0 {
                    return Err(format!(
                        "{} task secrets could not be re-encrypted; keep the old keys until those tasks end",
                        report.unreadable
                    ));
                }
                Ok(())
            }
            Command::Openapi | Command::DryRun { .. } | Command::Cli(_) | Command::Secrets { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => Exit::Ok.into(),
        Err(e) => {
            tracing::error!(error = %e, "scaffolder stopped");
            errln!("scaffolder: {e}");
            Exit::Failed.into()
        }
    }
}

fn dry_run(args: scaffolder::cli::dry_run::DryRunArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            errln!("scaffolder: cannot start the async runtime: {e}");
            return Exit::Failed.into();
        }
    };
    ExitCode::from(runtime.block_on(scaffolder::cli::dry_run::run(args)))
}

async fn serve(settings: Settings) -> Result<(), String> {
    let bind = settings.server.bind.clone();
    let app = Application::build_waiting_for_database(settings)
        .await
        .map_err(|e| e.to_string())?;
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.cancel();
    });
    tracing::info!(%bind, port = app.port(), "scaffolder listening");
    app.run_until_stopped().await.map_err(|e| e.to_string())
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
