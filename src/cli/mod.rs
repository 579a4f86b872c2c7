//! Command-line front ends: `run` and `dry-run` reuse the engine without a
//! server; `create`, `tasks`, `templates` and `actions` talk to a running
//! server (`--server`); `admin` holds `serve`, `migrate`, `secrets`,
//! `gitops` and `openapi`. `src/main.rs` parses the command line and calls
//! one of them on its single runtime.

pub mod admin;
pub mod client;
pub mod commands;
pub mod dry_run;
pub mod gitops;
pub mod output;
pub mod progress;
pub mod promotions;
pub mod run;
pub mod update;
pub mod values;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

/// The exit codes of every command, as the README's table lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The task completed, or the command did what it was asked.
    Ok,
    /// The task (or local run) failed, or the server refused the request
    /// (an error answer other than invalid values or not found).
    Failed,
    /// Bad usage: arguments, `--set` keys the template does not declare,
    /// values that fail the template's schema (clap's own errors are 2 too).
    Usage,
    /// What was named does not exist: a template (path or reference), a task.
    NotFound,
    /// The server could not be reached, or its answer was not the API's.
    Unreachable,
    /// Interrupted (Ctrl-C), or the task was cancelled.
    Cancelled,
    /// Whoever read stdout (or stderr) closed it: 128 + SIGPIPE, as a shell
    /// reports `git log | head`.
    BrokenPipe,
}

impl Exit {
    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::NotFound => 3,
            Exit::Unreachable => 4,
            Exit::Cancelled => 130,
            Exit::BrokenPipe => 141,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    /// Progress on stderr, the result for people on stdout.
    #[default]
    Text,
    /// One JSON object on stdout at the end, nothing else on stdout.
    Json,
}

/// Where the client commands find the server.
#[derive(Debug, Clone, Args)]
pub struct ClientOptions {
    /// URL of a running scaffolder for create/tasks/templates/actions
    /// (default http://127.0.0.1:7007).
    #[arg(long, global = true, env = "SCAFFOLDER_SERVER")]
    pub server: Option<String>,
    /// Bearer token sent to the server.
    #[arg(long, global = true, env = "SCAFFOLDER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run a template for real on this machine (no server, no database).
    ///
    /// Every step runs; publishing goes to the configured integrations (by
    /// default the local git host). Exit code 0 completed, 1 failed, 2 usage
    /// or invalid values, 3 template not found, 130 cancelled, 141 output
    /// closed (the README's table).
    Run {
        /// Template file, a directory holding `template.yaml`, or a template
        /// reference (`template:default/x`, `x`) looked up in `templates.dirs`.
        template: String,
        /// YAML file with the parameter values.
        #[arg(long)]
        values: Option<PathBuf>,
        /// A value `key=value` (YAML scalar or list), after `--values`; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// A secret `key=value` (also `SCAFFOLDER_SECRET_<NAME>`); repeatable.
        #[arg(long = "secret", value_name = "KEY=VALUE")]
        secrets: Vec<String>,
        /// Keep the workspace in this directory (new or empty).
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// Show the actions' log lines under each step.
        #[arg(long, short)]
        verbose: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Start a task on the server and follow it to its end.
    Create {
        /// Template reference: `template:default/x`, `default/x` or `x`.
        template_ref: String,
        /// YAML file with the parameter values.
        #[arg(long)]
        values: Option<PathBuf>,
        /// A value `key=value` (YAML scalar or list), after `--values`; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// A secret `key=value` (also `SCAFFOLDER_SECRET_<NAME>`); repeatable.
        #[arg(long = "secret", value_name = "KEY=VALUE")]
        secrets: Vec<String>,
        /// Show the actions' log lines under each step.
        #[arg(long, short)]
        verbose: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Tasks on the server.
    Tasks {
        #[command(subcommand)]
        command: TasksCommand,
    },
    /// Templates on the server.
    Templates {
        #[command(subcommand)]
        command: TemplatesCommand,
    },
    /// Actions installed on the server.
    Actions {
        #[command(subcommand)]
        command: ActionsCommand,
    },
    /// Bring every repository generated from a template to its current
    /// version (a fleet update on the server), followed to its end.
    ///
    /// Each repository gets a branch `scaffolder/update-<template>` with the
    /// three-way merge of the template's change (a pull request on GitHub).
    /// Ctrl-C cancels the run. Exit code 0 done, 1 some repository failed,
    /// 2 usage, 3 template or run not found, 130 cancelled.
    Update {
        /// Template reference: `template:default/x`, `default/x` or `x`.
        #[arg(required_unless_present_any = ["retry", "cancel"])]
        template_ref: Option<String>,
        /// Only this repository (`repoUrl`); repeatable. Default: every
        /// repository generated from the template.
        #[arg(long = "repo", value_name = "REPO_URL")]
        repositories: Vec<String>,
        /// A value `key=value` for parameters the new version added (or to
        /// change); repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Print each repository's diff; push nothing.
        #[arg(long)]
        dry_run: bool,
        /// Repositories updated at once (1 to 16).
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Run the failed and cancelled repositories of this run again.
        #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["template_ref", "cancel"])]
        retry: Option<String>,
        /// Cancel this run.
        #[arg(long, value_name = "RUN_ID", conflicts_with = "template_ref")]
        cancel: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// The server's audit trail, newest first (administrators only).
    Audit {
        /// Only events by this user entity ref or token subject.
        #[arg(long)]
        actor: Option<String>,
        /// Only this event (`task:create`, `approval:approve`, …); repeatable.
        #[arg(long = "event")]
        events: Vec<String>,
        /// Only events about this task.
        #[arg(long)]
        task: Option<String>,
        /// Only events at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only events before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Only events older than this id (the next page).
        #[arg(long)]
        before: Option<i64>,
        /// At most this many events (default 100, at most 500).
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Promotions of signed images through infra-gitops: history and rollback.
    Promotions {
        #[command(subcommand)]
        command: PromotionsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum PromotionsCommand {
    /// Promotions, newest first: which bundle went where, from which commit and run, when.
    List {
        /// Only this service's.
        #[arg(long)]
        service: Option<String>,
        /// Only promotions into this stage (dev, staging, prod).
        #[arg(long)]
        stage: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// One promotion (by its task id): bundle, commit, run, links.
    Show {
        task_id: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Promote the bundle of an earlier promotion again, as a rollback.
    Rollback {
        /// The earlier promotion's task id.
        task_id: String,
        /// The stage to roll back (default: the earlier promotion's).
        #[arg(long)]
        stage: Option<String>,
        /// Follow the rollback task to its end.
        #[arg(long, short)]
        follow: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Tasks, newest first.
    List {
        /// Only tasks with this status (open, processing, completed, failed, cancelled); repeatable.
        #[arg(long)]
        status: Vec<String>,
        /// At most this many tasks.
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// A task: status, parameters, steps, output.
    Show {
        id: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// A task's log; `--follow` waits for its end.
    Logs {
        id: String,
        #[arg(long, short)]
        follow: bool,
    },
    /// Cancel a task.
    Cancel { id: String },
    /// Approve the approval gate (`approval:wait`) a task waits at.
    Approve {
        id: String,
        /// Why; goes to the task log and the audit trail.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject the approval gate a task waits at: the step fails with the comment.
    Reject {
        id: String,
        /// Why; the failed step's error.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Run a finished task again.
    Retry {
        id: String,
        /// Follow the new attempt to its end.
        #[arg(long, short)]
        follow: bool,
        #[arg(long, short)]
        verbose: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// A template's parameters (its form).
    Show {
        /// Template reference: `template:default/x`, `default/x` or `x`.
        template_ref: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum ActionsCommand {
    /// The installed actions.
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
}

/// Runs one of these commands to its exit code. It may leave tasks behind
/// (a blocked read of stdin, idle connections): the caller's runtime should
/// not wait for them.
pub async fn dispatch(command: CliCommand, options: ClientOptions, config: Option<PathBuf>) -> Exit {
    let client_command = match command {
        CliCommand::Run {
            template,
            values,
            set,
            secrets,
            workspace,
            verbose,
            output,
        } => {
            return run::run(run::RunArgs {
                template,
                values,
                set,
                secrets,
                workspace,
                config,
                verbose,
                output,
            })
            .await
        }
        other => other,
    };
    let client = match client::Client::new(options.server.as_deref(), options.token) {
        Ok(c) => c,
        Err(e) => {
            e.report();
            return e.exit_code();
        }
    };
    let result = match client_command {
        CliCommand::Run { .. } => Ok(Exit::Usage),
        CliCommand::Create {
            template_ref,
            values,
            set,
            secrets,
            verbose,
            output,
        } => {
            commands::create(
                &client,
                commands::CreateArgs {
                    template_ref,
                    values,
                    set,
                    secrets,
                    verbose,
                    output,
                },
            )
            .await
        }
        CliCommand::Tasks { command } => match command {
            TasksCommand::List { status, limit, output } => commands::tasks_list(&client, &status, limit, output).await,
            TasksCommand::Show { id, output } => commands::tasks_show(&client, &id, output).await,
            TasksCommand::Logs { id, follow } => commands::tasks_logs(&client, &id, follow).await,
            TasksCommand::Cancel { id } => commands::tasks_cancel(&client, &id).await,
            TasksCommand::Approve { id, comment } => commands::tasks_decide(&client, &id, true, comment).await,
            TasksCommand::Reject { id, comment } => commands::tasks_decide(&client, &id, false, comment).await,
            TasksCommand::Retry {
                id,
                follow,
                verbose,
                output,
            } => commands::tasks_retry(&client, &id, follow, verbose, output).await,
        },
        CliCommand::Templates {
            command: TemplatesCommand::Show { template_ref, output },
        } => commands::templates_show(&client, &template_ref, output).await,
        CliCommand::Promotions { command } => match command {
            PromotionsCommand::List {
                service,
                stage,
                limit,
                output,
            } => promotions::list(&client, service.as_deref(), stage.as_deref(), limit, output).await,
            PromotionsCommand::Show { task_id, output } => promotions::show(&client, &task_id, output).await,
            PromotionsCommand::Rollback {
                task_id,
                stage,
                follow,
                output,
            } => promotions::rollback(&client, &task_id, stage.as_deref(), follow, output).await,
        },
        CliCommand::Actions {
            command: ActionsCommand::List { output },
        } => commands::actions_list(&client, output).await,
        CliCommand::Update {
            template_ref,
            repositories,
            set,
            dry_run,
            concurrency,
            retry,
            cancel,
            output,
        } => {
            update::update(
                &client,
                update::UpdateArgs {
                    template_ref,
                    repositories,
                    set,
                    dry_run,
                    concurrency,
                    retry,
                    cancel,
                    output,
                },
            )
            .await
        }
        CliCommand::Audit {
            actor,
            events,
            task,
            since,
            until,
            before,
            limit,
            output,
        } => {
            commands::audit(
                &client,
                commands::AuditArgs {
                    actor,
                    events,
                    task,
                    since,
                    until,
                    before,
                    limit,
                    output,
                },
            )
            .await
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            e.report();
            e.exit_code()
        }
    }
}
