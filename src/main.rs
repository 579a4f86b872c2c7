//! The `scaffolder` binary: parses the command line once, sets up what the
//! command needs before the async runtime starts (the settings and the span
//! exporter, for the commands that serve or touch the database), then runs
//! the command on one tokio runtime. The commands themselves live in
//! `scaffolder::cli`; the exit codes are `cli::Exit` (the README's table).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use scaffolder::cli::{admin, dry_run, Exit};
use scaffolder::config::Settings;
use scaffolder::errln;
use scaffolder::telemetry::TelemetryGuard;

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
    match plan(Cli::parse()) {
        Ok(job) => job.run().into(),
        Err(exit) => exit.into(),
    }
}

/// Matches the command once and prepares what it needs before the runtime
/// starts; nothing in the returned job has run yet.
fn plan(cli: Cli) -> Result<Job, Exit> {
    let Cli {
        config,
        client,
        command,
    } = cli;
    Ok(match command {
        Command::Openapi => Job::new(async { admin::openapi() }),
        Command::Secrets {
            command: SecretsCommand::GenerateKey { id },
        } => Job::new(async move { admin::generate_key(&id) }),
        Command::DryRun {
            template,
            values,
            set,
            secrets,
            out,
            verbose,
        } => Job::new(dry_run::run(dry_run::DryRunArgs {
            template,
            values,
            set,
            secrets,
            out,
            verbose,
            config,
        })),
        // Do not wait for blocked reads of stdin or lingering connections.
        Command::Cli(command) => Job::new(scaffolder::cli::dispatch(command, client, config))
            .abandoning_leftovers_after(Duration::from_millis(100)),
        Command::Serve { bind, templates } => {
            let (settings, telemetry) = with_settings(config.as_deref())?;
            Job::reported(telemetry, admin::serve(settings, bind, templates))
        }
        Command::Migrate => {
            let (settings, telemetry) = with_settings(config.as_deref())?;
            Job::reported(telemetry, admin::migrate(settings))
        }
        Command::Secrets {
            command: SecretsCommand::Rotate,
        } => {
            let (settings, telemetry) = with_settings(config.as_deref())?;
            Job::reported(telemetry, admin::rotate_secrets(settings))
        }
        Command::Gitops { command } => {
            let (settings, telemetry) = with_settings(config.as_deref())?;
            Job::reported(telemetry, admin::gitops(settings, command))
        }
    })
}

/// The settings, and the global subscriber with the span exporter they
/// configure. The exporter is set up here, outside the async runtime.
fn with_settings(config: Option<&Path>) -> Result<(Settings, TelemetryGuard), Exit> {
    let settings = Settings::load(config).map_err(|e| {
        errln!("scaffolder: {e}");
        Exit::Usage
    })?;
    let telemetry = scaffolder::telemetry::init_with_export(&settings.log, &settings.telemetry).map_err(|e| {
        errln!("scaffolder: {e}");
        Exit::Usage
    })?;
    Ok((settings, telemetry))
}

/// A command ready to run on the runtime.
struct Job {
    work: Pin<Box<dyn Future<Output = Exit>>>,
    /// How long the stopping runtime waits for tasks the command left
    /// running; `None` waits for all of them.
    leftovers: Option<Duration>,
    /// Dropped after the runtime has stopped, so the last spans are flushed
    /// once every task and request has ended.
    telemetry: Option<TelemetryGuard>,
}

impl Job {
    fn new(work: impl Future<Output = Exit> + 'static) -> Job {
        Job {
            work: Box::pin(work),
            leftovers: None,
            telemetry: None,
        }
    }

    /// A command given the settings: its error is logged and printed.
    fn reported(telemetry: TelemetryGuard, work: impl Future<Output = Result<(), admin::AdminError>> + 'static) -> Job {
        Job {
            telemetry: Some(telemetry),
            ..Job::new(async move { admin::finish(work.await) })
        }
    }

    fn abandoning_leftovers_after(self, wait: Duration) -> Job {
        Job {
            leftovers: Some(wait),
            ..self
        }
    }

    /// Runs the command on one multi-threaded runtime, stops the runtime,
    /// then drops the telemetry guard.
    fn run(self) -> Exit {
        let Job {
            work,
            leftovers,
            telemetry,
        } = self;
        let runtime = match tokio::runtime::Runtime::new() {
            Ok(r) => r,
            Err(e) => {
                errln!("scaffolder: cannot start the async runtime: {e}");
                return Exit::Failed;
            }
        };
        let exit = runtime.block_on(work);
        match leftovers {
            Some(wait) => runtime.shutdown_timeout(wait),
            None => drop(runtime),
        }
        drop(telemetry);
        exit
    }
}
