//! `scaffolder update`: a fleet update on a running server — every
//! repository generated from a template brought to its current version —
//! followed to its end with a progress line, then each repository's
//! outcome (the pull request's body, or with `--dry-run` the diff).

use serde_json::{json, Value};

use super::client::{Client, ClientError};
use super::values::load_values;
use super::{Exit, OutputFormat};
use crate::{errln, outln};

/// How long one long-poll of a running update may wait for news.
const WAIT_SECONDS: &str = "10";

#[derive(Debug)]
pub struct UpdateArgs {
    pub template_ref: Option<String>,
    pub repositories: Vec<String>,
    pub set: Vec<String>,
    pub dry_run: bool,
    pub concurrency: usize,
    pub retry: Option<String>,
    pub cancel: Option<String>,
    pub output: OutputFormat,
}

pub async fn update(client: &Client, args: UpdateArgs) -> Result<Exit, ClientError> {
    if let Some(id) = &args.cancel {
        let run = client.post(&["v2", "updates", id, "cancel"], &json!({})).await?;
        errln!("Update {id}: {}", status_line(&run));
        return Ok(Exit::Ok);
    }
    let run = match (&args.retry, &args.template_ref) {
        (Some(id), _) => client.post(&["v2", "updates", id, "retry"], &json!({})).await?,
        (None, Some(template_ref)) => {
            let set = load_values(None, &args.set).map_err(|e| ClientError::Usage(e.to_string()))?;
            let body = json!({
                "templateRef": template_ref,
                "repositories": args.repositories,
                "set": set,
                "dryRun": args.dry_run,
                "concurrency": args.concurrency,
            });
            client.post(&["v2", "updates"], &body).await?
        }
        (None, None) => {
            return Err(ClientError::Usage(
                "name a template to update (or --retry/--cancel a run)".into(),
            ))
        }
    };
    let id = run["id"]
        .as_str()
        .ok_or_else(|| ClientError::Transport("the server's answer has no run id".into()))?
        .to_owned();
    if args.output == OutputFormat::Text {
        errln!(
            "Update {id}: {} to version {}{}",
            run["templateRef"].as_str().unwrap_or_default(),
            run["version"].as_str().unwrap_or_default(),
            if run["dryRun"].as_bool() == Some(true) {
                " (dry run: nothing is pushed)"
            } else {
                ""
            }
        );
    }
    let mut interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| ClientError::Local(format!("cannot watch for Ctrl-C: {e}")))?;
    let mut shown = String::new();
    let mut run = run;
    let wait = [("wait", WAIT_SECONDS.to_owned())];
    let path = ["v2", "updates", id.as_str()];
    loop {
        let line = status_line(&run);
        if line != shown && args.output == OutputFormat::Text {
            errln!("{line}");
            shown = line;
        }
        if run["status"].as_str() != Some("running") {
            break;
        }
        tokio::select! {
            next = client.get(&path, &wait) => run = next?,
            _ = interrupts.recv() => {
                client.post(&["v2", "updates", &id, "cancel"], &json!({})).await?;
                errln!("Update {id}: cancellation requested; `scaffolder update --retry {id}` runs what is left");
                return Ok(Exit::Cancelled);
            }
        }
    }
    match args.output {
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(&run).unwrap_or_default()),
        OutputFormat::Text => print_repositories(&run),
    }
    let failed = run["progress"]["failed"].as_u64().unwrap_or(0);
    Ok(match run["status"].as_str() {
        Some("cancelled") => Exit::Cancelled,
        _ if failed > 0 => Exit::Failed,
        _ => Exit::Ok,
    })
}

fn status_line(run: &Value) -> String {
    format!(
        "[{}] {}",
        run["status"].as_str().unwrap_or("unknown"),
        run["progress"]["summary"].as_str().unwrap_or_default()
    )
}

fn print_repositories(run: &Value) {
    let empty = Vec::new();
    for repo in run["repositories"].as_array().unwrap_or(&empty) {
        outln!();
        outln!(
            "== {} — {}",
            repo["repoUrl"].as_str().unwrap_or_default(),
            repo["status"].as_str().unwrap_or_default()
        );
        if let Some(proposal) = repo["proposal"].as_str() {
            outln!("proposal: {proposal}");
        }
        if let Some(error) = repo["error"].as_str() {
            outln!("error: {error}");
        }
        if let Some(body) = repo["body"].as_str() {
            outln!();
            for line in body.lines() {
                outln!("    {line}");
            }
        }
        if run["dryRun"].as_bool() == Some(true) {
            if let Some(diff) = repo["diff"].as_str().filter(|d| !d.is_empty()) {
                outln!();
                for line in diff.lines() {
                    outln!("{line}");
                }
            }
        }
    }
}
