//! `scaffolder promotions list|show|rollback`: the promotion history of a
//! running server, and a rollback (promoting an earlier bundle again,
//! recorded as a rollback).

use serde_json::{json, Value};

use super::client::{Client, ClientError};
use super::commands::follow_with_display;
use super::{Exit, OutputFormat};
use crate::{errln, outln};

async fn history(
    client: &Client,
    service: Option<&str>,
    stage: Option<&str>,
    limit: u32,
) -> Result<Vec<Value>, ClientError> {
    let mut query = vec![("limit", limit.to_string())];
    if let Some(service) = service {
        query.push(("service", service.to_owned()));
    }
    if let Some(stage) = stage {
        query.push(("stage", stage.to_owned()));
    }
    let answer = client.get(&["v2", "promotions"], &query).await?;
    Ok(answer
        .get("promotions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

fn text(record: &Value, key: &str) -> String {
    match record.get(key) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "-".into(),
    }
}

fn short_digests(record: &Value) -> String {
    record
        .get("images")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|i| {
            let digest = i.get("digest").and_then(Value::as_str).unwrap_or("-");
            let hex = digest.trim_start_matches("sha256:");
            format!(
                "{}@{}",
                i.get("name").and_then(Value::as_str).unwrap_or("-"),
                &hex[..hex.len().min(12)]
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn list(
    client: &Client,
    service: Option<&str>,
    stage: Option<&str>,
    limit: u32,
    output: OutputFormat,
) -> Result<Exit, ClientError> {
    let records = history(client, service, stage, limit).await?;
    if output == OutputFormat::Json {
        outln!("{}", Value::Array(records));
        return Ok(Exit::Ok);
    }
    outln!(
        "{:<36}  {:<10}  {:<16}  {:<8}  {:<12}  {:<12}  {:<24}  IMAGES",
        "TASK",
        "STATUS",
        "SERVICE",
        "STAGE",
        "COMMIT",
        "RUN",
        "WHEN"
    );
    for r in &records {
        let rollback = r.get("rollback").and_then(Value::as_bool) == Some(true);
        outln!(
            "{:<36}  {:<10}  {:<16}  {:<8}  {:<12}  {:<12}  {:<24}  {}{}",
            text(r, "taskId"),
            text(r, "status"),
            text(r, "service"),
            text(r, "stage"),
            text(r, "sourceCommit").chars().take(12).collect::<String>(),
            text(r, "workflowRun"),
            text(r, "createdAt"),
            short_digests(r),
            if rollback { "  (rollback)" } else { "" }
        );
    }
    errln!("{} promotions", records.len());
    Ok(Exit::Ok)
}

async fn find(client: &Client, task_id: &str) -> Result<Value, ClientError> {
    history(client, None, None, 1000)
        .await?
        .into_iter()
        .find(|r| r.get("taskId").and_then(Value::as_str) == Some(task_id))
        .ok_or_else(|| ClientError::Usage(format!("no promotion with task id {task_id} among the last 1000")))
}

pub async fn show(client: &Client, task_id: &str, output: OutputFormat) -> Result<Exit, ClientError> {
    let r = find(client, task_id).await?;
    if output == OutputFormat::Json {
        outln!("{r}");
        return Ok(Exit::Ok);
    }
    outln!("Promotion     {}", text(&r, "taskId"));
    outln!("Status        {}", text(&r, "status"));
    outln!("Service       {}", text(&r, "service"));
    outln!(
        "Stage         {} ({})",
        text(&r, "stage"),
        r.get("clusters").map(Value::to_string).unwrap_or_default()
    );
    outln!("Source commit {}", text(&r, "sourceCommit"));
    outln!(
        "Workflow run  {} {}",
        text(&r, "workflowRun"),
        text(&r, "workflowRunUrl")
    );
    outln!("By            {}", text(&r, "createdBy"));
    outln!("When          {}", text(&r, "createdAt"));
    outln!(
        "Rollback      {}",
        r.get("rollback").and_then(Value::as_bool).unwrap_or(false)
    );
    outln!("Commit        {}", text(&r, "commitUrl"));
    outln!("Branch        {}", text(&r, "branch"));
    outln!("Pull request  {}", text(&r, "pullRequestUrl"));
    outln!("Images:");
    for image in r.get("images").and_then(Value::as_array).into_iter().flatten() {
        outln!(
            "  {}@{}",
            image.get("name").and_then(Value::as_str).unwrap_or("-"),
            image.get("digest").and_then(Value::as_str).unwrap_or("-")
        );
    }
    Ok(Exit::Ok)
}

/// Promotes the bundle of the earlier promotion `task_id` again to its
/// stage (or `stage`), as a rollback.
pub async fn rollback(
    client: &Client,
    task_id: &str,
    stage: Option<&str>,
    follow: bool,
    output: OutputFormat,
) -> Result<Exit, ClientError> {
    let r = find(client, task_id).await?;
    let stage = stage.map(str::to_owned).unwrap_or_else(|| text(&r, "stage"));
    let run = r
        .get("workflowRun")
        .and_then(Value::as_u64)
        .ok_or_else(|| ClientError::Usage(format!("promotion {task_id} names no workflow run")))?;
    let body = json!({
        "service": r.get("service"),
        "stage": stage,
        "rollback": true,
        "bundle": {
            "images": r.get("images"),
            "sourceCommit": r.get("sourceCommit"),
            "workflowRun": run,
        },
    });
    let answer = client.post(&["v2", "promotions"], &body).await?;
    let id = answer
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| ClientError::Usage("the server answered without a task id".into()))?
        .to_owned();
    errln!(
        "Rolling {} back on {stage} to the bundle of {task_id} (commit {}): task {id}",
        text(&r, "service"),
        text(&r, "sourceCommit")
    );
    if follow {
        return follow_with_display(client, &id, None, false, output).await;
    }
    outln!("{id}");
    Ok(Exit::Ok)
}
