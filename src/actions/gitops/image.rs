//! `gitops:image:verify` and `gitops:image:promote`: the steps of a
//! promotion (docs/gitops.md, "Promotion"). Verify checks every digest of a
//! bundle in its registry for a trusted cosign signature; promote pins the
//! bundle in the overlays of every cluster of one stage (`crate::promotion::plan`).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{commit_message, open_repo, signature, strings, Kind};
use crate::actions::{ActionContext, ActionError, ActionExample, ActionHandler};
use crate::backoff::{Backoff, Jitter};
use crate::gitops::cluster::Stage;
use crate::gitops::layout;
use crate::gitops::plan::{Plan, RepoView};
use crate::gitops::repo::{commit_plan, CommitRequest, PushRetry, RepoLocks};
use crate::gitops::GitopsError;
use crate::model::approval::{ApprovalGate, Verdict};
use crate::promotion::cosign::verify_image;
use crate::promotion::oci::{ImageDigest, ImageName};
use crate::promotion::plan::{plan_promotion, Bundle, BundleImage, Planned, Promotion};
use crate::promotion::PromotionDeps;
use crate::scm::ScmIntegrations;

fn not_configured() -> ActionError {
    ActionError::Failed(
        "Promotion is not configured in this installation (the `promotion` settings: trusted keys or keyless roots)"
            .into(),
    )
}

pub struct GitopsImageVerify {
    deps: Option<Arc<PromotionDeps>>,
}

impl GitopsImageVerify {
    pub fn new(deps: Option<Arc<PromotionDeps>>) -> GitopsImageVerify {
        GitopsImageVerify { deps }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VerifyInput {
    /// The bundle's images, each `{name, digest}`
    pub images: Vec<BundleImage>,
    /// The identity a keyless signature's certificate must name, e.g. `https://github.com/acme/web/.github/workflows/ci.yml@refs/heads/main`
    pub identity: Option<String>,
}

#[async_trait]
impl ActionHandler for GitopsImageVerify {
    type Input = VerifyInput;
    const ID: &'static str = "gitops:image:verify";
    const DESCRIPTION: &'static str = "Checks that every image digest exists in its registry and carries a cosign signature the installation trusts (a configured public key, or a keyless certificate for the expected workflow chaining to the configured root). Refuses naming each digest and why.";

    fn output_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": {
                "signers": {"type": "array", "items": {"type": "string"}, "description": "Who signed each image, in order"}
            }
        }))
    }

    fn examples(&self) -> Vec<ActionExample> {
        vec![ActionExample {
            description: "Verify a bundle signed by a workflow (keyless)",
            example: "steps:\n  - id: verify\n    action: gitops:image:verify\n    input:\n      images:\n        - name: ghcr.io/acme/web-backend\n          digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\n      identity: https://github.com/acme/web/.github/workflows/ci.yml@refs/heads/main\n",
        }]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: VerifyInput) -> Result<(), ActionError> {
        let deps = self.deps.as_ref().ok_or_else(not_configured)?;
        if deps.trust.is_empty() {
            return Err(not_configured());
        }
        if input.images.is_empty() {
            return Err(ActionError::InvalidInput("The bundle names no image".into()));
        }
        let mut refusals = Vec::new();
        let mut signers = Vec::new();
        for image in &input.images {
            let name = ImageName::parse(&image.name).map_err(|e| ActionError::InvalidInput(e.to_string()))?;
            let digest = ImageDigest::parse(&image.digest).map_err(|e| ActionError::InvalidInput(e.to_string()))?;
            let checked = tokio::select! {
                _ = ctx.cancel.cancelled() => return Err(ActionError::Cancelled),
                checked = verify_image(&deps.registry, &deps.trust, &name, &digest, input.identity.as_deref()) => checked,
            };
            match checked {
                Ok(signer) => {
                    ctx.logger.info(format!("{name}@{digest}: signed by {signer}")).await;
                    signers.push(signer.to_string());
                }
                Err(e) => {
                    ctx.logger.warn(e.to_string()).await;
                    refusals.push(e.to_string());
                }
            }
        }
        if !refusals.is_empty() {
            return Err(ActionError::NotAllowed(refusals.join("; ")));
        }
        ctx.output("signers", strings(&signers));
        Ok(())
    }
}

pub struct GitopsImagePromote {
    integrations: Arc<ScmIntegrations>,
    deps: Option<Arc<PromotionDeps>>,
    retry: PushRetry,
    locks: Arc<RepoLocks>,
}

impl GitopsImagePromote {
    /// The gate a promotion into a stage that asks for approval waits at:
    /// the configured approvers (`promotion.approvers`), never the requester.
    fn gate(&self, ctx: &ActionContext, input: &PromoteInput) -> ApprovalGate {
        let (users, groups, timeout) = match &self.deps {
            Some(deps) => (
                deps.approver_users.clone(),
                deps.approver_groups.clone(),
                deps.approval_timeout_seconds,
            ),
            None => (Vec::new(), vec!["group:default/platform".to_owned()], 72 * 3600),
        };
        ApprovalGate {
            step_id: ctx.step_id.clone(),
            users: users.iter().map(|u| u.to_ascii_lowercase()).collect(),
            groups: groups.iter().map(|g| g.to_ascii_lowercase()).collect(),
            permission: None,
            message: Some(format!(
                "Promote {} to {}: {} (commit {}, run {})",
                input.service,
                input.stage.as_str(),
                input
                    .images
                    .iter()
                    .map(|i| format!("{}@{}", i.name, short(&i.digest)))
                    .collect::<Vec<_>>()
                    .join(", "),
                input.source_commit,
                input.workflow_run
            )),
            timeout_seconds: Some(timeout),
            allow_self_approval: false,
        }
    }

    pub fn new(integrations: Arc<ScmIntegrations>, deps: Option<Arc<PromotionDeps>>) -> GitopsImagePromote {
        GitopsImagePromote {
            integrations,
            deps,
            retry: PushRetry::default(),
            locks: Arc::default(),
        }
    }

    pub fn with_locks(mut self, locks: Arc<RepoLocks>) -> GitopsImagePromote {
        self.locks = locks;
        self
    }
}

fn default_branch() -> String {
    "main".into()
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromoteInput {
    /// The GitOps repository, e.g. `github.com?owner=acme&repo=infra-gitops`
    pub repo_url: String,
    /// The branch Argo CD follows. Defaults to `main`
    #[serde(default = "default_branch")]
    pub branch: String,
    /// The service (as registered by gitops:overlay:register)
    pub service: String,
    /// The stage promoted into: every cluster of the service in this stage gets the bundle
    pub stage: Stage,
    /// The bundle's images, each `{name, digest}`; `name` is the overlay image's `newName`
    pub images: Vec<BundleImage>,
    /// The commit the images were built from
    pub source_commit: String,
    /// The workflow run that built them (GitHub's run id; a later run is a newer build)
    pub workflow_run: u64,
    /// Promote an older bundle on purpose (a rollback): skips the previous-stage check and the newer-build check
    #[serde(default)]
    pub rollback: bool,
    /// The owner the service's marker must name (a CI caller's `repository:<host>/<owner>/<repo>`); empty: not checked (operators)
    pub owner: Option<String>,
    /// Who approved the promotion, for a stage whose clusters need approval
    pub approved_by: Option<String>,
    /// The commit author's name. Defaults to `Scaffolder`
    pub git_author_name: Option<String>,
    /// The commit author's email. Defaults to `scaffolder@backstage.io`
    pub git_author_email: Option<String>,
}

#[async_trait]
impl ActionHandler for GitopsImagePromote {
    type Input = PromoteInput;
    const ID: &'static str = "gitops:image:promote";
    const DESCRIPTION: &'static str = "Pins a bundle of image digests in the overlays of every cluster of one stage (images: [{name, newName, digest}]) and records it (source commit, workflow run, time). The first stage is committed directly; a later stage accepts only the bundle running in the stage before it and goes through a branch (local git host) or a pull request (GitHub). An older build never replaces a newer one unless the promotion is a rollback.";

    fn output_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": {
                "commitHash": {"type": "string"},
                "commitUrl": {"type": "string"},
                "branch": {"type": "string", "description": "Where the change is: the followed branch, or the promotion branch of a later stage"},
                "pullRequestUrl": {"type": "string"},
                "clusters": {"type": "array", "items": {"type": "string"}},
                "previousStage": {"type": "string"},
                "rollback": {"type": "boolean"},
                "changed": {"type": "boolean"}
            }
        }))
    }

    fn examples(&self) -> Vec<ActionExample> {
        vec![ActionExample {
            description: "Promote a bundle to dev",
            example: "steps:\n  - id: promote\n    action: gitops:image:promote\n    input:\n      repoUrl: github.com?owner=acme&repo=infra-gitops\n      service: web\n      stage: dev\n      images:\n        - name: ghcr.io/acme/web-backend\n          digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\n      sourceCommit: 3f1c2a9\n      workflowRun: 9184467211\n",
        }]
    }

    async fn handle(&self, ctx: &mut ActionContext, input: PromoteInput) -> Result<(), ActionError> {
        if input.images.is_empty() {
            return Err(ActionError::InvalidInput("The bundle names no image".into()));
        }
        for image in &input.images {
            ImageName::parse(&image.name).map_err(|e| ActionError::InvalidInput(e.to_string()))?;
            ImageDigest::parse(&image.digest).map_err(|e| ActionError::InvalidInput(e.to_string()))?;
        }
        // A stage that asks for approval: the step waits at a gate
        // (`approval:wait`'s mechanism, no worker held) and runs again with
        // the decision.
        let approved_by = match ctx.approval.take() {
            Some(decision) => match decision.verdict {
                Verdict::Approved => {
                    let by = decision.by.unwrap_or_else(|| "an approver".into());
                    ctx.logger
                        .info(match &decision.comment {
                            Some(comment) if !comment.is_empty() => format!("Approved by {by}: {comment}"),
                            _ => format!("Approved by {by}"),
                        })
                        .await;
                    Some(by)
                }
                Verdict::Rejected => {
                    return Err(ActionError::NotAllowed(format!(
                        "Rejected by {}: {}",
                        decision.by.as_deref().unwrap_or("an approver"),
                        decision.comment.as_deref().unwrap_or("no comment")
                    )))
                }
                Verdict::TimedOut => {
                    return Err(ActionError::NotAllowed(format!(
                        "No approval to promote {} to {} came in time",
                        input.service,
                        input.stage.as_str()
                    )))
                }
            },
            None => input.approved_by.clone().filter(|a| !a.trim().is_empty()),
        };
        let repo = open_repo(&self.integrations, ctx, &input.repo_url, None, &input.branch, true).await?;
        let promotion = Promotion {
            service: input.service.clone(),
            stage: input.stage,
            bundle: Bundle {
                images: input.images.clone(),
                source_commit: input.source_commit.clone(),
                workflow_run: input.workflow_run,
            },
            owner: input.owner.clone().filter(|o| !o.trim().is_empty()),
            rollback: input.rollback,
            approved_by,
            promoted_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            task_id: ctx.task_id.clone(),
        };
        let author = signature(input.git_author_name.as_deref(), input.git_author_email.as_deref());
        let stage = input.stage.as_str();

        // The first stage is committed directly; a planner that finds a
        // stage before this one writes nothing on the followed branch, and
        // the change goes to a promotion branch instead (after the previous
        // stage is healthy, where the stage asks for it).
        let planned: Mutex<Option<Planned>> = Mutex::new(None);
        let needs_approval = std::sync::atomic::AtomicBool::new(false);
        let direct = |view: &dyn RepoView| -> Result<Plan, GitopsError> {
            let (plan, info) = plan_promotion(view, &promotion).inspect_err(|e| {
                if matches!(e, GitopsError::NeedsApproval { .. }) {
                    needs_approval.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            })?;
            let later_stage = info.previous_stage.is_some();
            if let Ok(mut p) = planned.lock() {
                *p = Some(info);
            }
            Ok(if later_stage { Plan::default() } else { plan })
        };
        let message = commit_message(
            None,
            || {
                format!(
                    "promote: {} {} to {stage} (commit {}, run {}){}",
                    input.service,
                    input
                        .images
                        .iter()
                        .map(|i| short(&i.digest))
                        .collect::<Vec<_>>()
                        .join(" "),
                    input.source_commit,
                    input.workflow_run,
                    if input.rollback { ", rollback" } else { "" }
                )
            },
            &ctx.task_id,
        );
        let request = CommitRequest {
            remote: &repo.remote,
            base_branch: &input.branch,
            push_branch: None,
            message: &message,
            author: &author,
            unchanged_path: None,
            guard_path: None,
        };
        let first_pass = commit_plan(
            &repo.git,
            &ctx.cancel,
            &self.locks,
            &request,
            &self.retry,
            &|_| Ok(()),
            direct,
        )
        .await;
        let mut outcome = match first_pass {
            Err(_) if needs_approval.load(std::sync::atomic::Ordering::Relaxed) && promotion.approved_by.is_none() => {
                return Err(ActionError::AwaitApproval(Box::new(self.gate(ctx, &input))));
            }
            other => other?,
        };
        let first = planned
            .lock()
            .ok()
            .and_then(|p| p.clone())
            .ok_or_else(|| ActionError::Failed("the promotion was not planned".into()))?;
        let pr_branch = format!("promote/{}-{stage}", input.service);
        let later_stage = first.previous_stage.is_some();
        if let Some(previous) = first.previous_stage {
            if first.wait_for_healthy {
                self.wait_for_previous(ctx, &input, previous, &first.previous_clusters)
                    .await?;
            }
            let request = CommitRequest {
                push_branch: Some(pr_branch.as_str()),
                ..request
            };
            let planner = |view: &dyn RepoView| -> Result<Plan, GitopsError> {
                let (plan, info) = plan_promotion(view, &promotion)?;
                if let Ok(mut p) = planned.lock() {
                    *p = Some(info);
                }
                Ok(plan)
            };
            outcome = commit_plan(
                &repo.git,
                &ctx.cancel,
                &self.locks,
                &request,
                &self.retry,
                &|_| Ok(()),
                planner,
            )
            .await?;
        }
        let info = planned
            .into_inner()
            .ok()
            .flatten()
            .ok_or_else(|| ActionError::Failed("the promotion was not planned".into()))?;
        let commit = outcome.commit.clone().unwrap_or_default();
        if outcome.changed {
            ctx.logger
                .info(format!(
                    "{} {} to {stage} ({}): committed {commit} to {} after {} attempt(s)",
                    if info.rollback { "Rolled back" } else { "Promoted" },
                    input.service,
                    info.clusters.join(", "),
                    outcome.branch,
                    outcome.attempts
                ))
                .await;
        } else {
            ctx.logger
                .info(format!(
                    "{stage} ({}) already runs this bundle of {}; nothing to commit",
                    info.clusters.join(", "),
                    input.service
                ))
                .await;
        }
        ctx.output("commitHash", json!(commit));
        ctx.output("commitUrl", json!(repo.commit_url(&commit)));
        ctx.output("branch", json!(outcome.branch));
        ctx.output("clusters", strings(&info.clusters));
        ctx.output("rollback", json!(info.rollback));
        ctx.output("changed", json!(outcome.changed));
        if let Some(previous) = info.previous_stage {
            ctx.output("previousStage", json!(previous.as_str()));
        }
        if later_stage && outcome.changed {
            match &repo.kind {
                Kind::Local { path, .. } => {
                    ctx.logger
                        .info(format!(
                            "The local git host has no pull requests: branch {pr_branch} of {} holds the promotion; merge it into {} to deploy",
                            path.display(),
                            input.branch
                        ))
                        .await;
                }
                Kind::Github {
                    client: Some(client),
                    owner,
                    repo: name,
                    ..
                } => {
                    let pr = match client.open_pull_for_branch(owner, name, owner, &pr_branch).await? {
                        Some(pr) => pr,
                        None => {
                            let body = format!(
                                "Promotes {} to {stage} ({}): the bundle running in {} (source commit {}, workflow run {}).\n\n{}\n\nOpened by the scaffolder (task {}).",
                                input.service,
                                info.clusters.join(", "),
                                info.previous_stage.map_or("-", Stage::as_str),
                                input.source_commit,
                                input.workflow_run,
                                input
                                    .images
                                    .iter()
                                    .map(|i| format!("- `{}@{}`", i.name, i.digest))
                                    .collect::<Vec<_>>()
                                    .join("\n"),
                                ctx.task_id
                            );
                            client
                                .create_pull(
                                    owner,
                                    name,
                                    &json!({"title": message.lines().next().unwrap_or_default(), "body": body, "head": pr_branch, "base": input.branch}),
                                )
                                .await?
                        }
                    };
                    ctx.logger.info(format!("Pull request {}", pr.html_url)).await;
                    ctx.output("pullRequestUrl", json!(pr.html_url));
                }
                Kind::Github { client: None, .. } => {}
            }
        }
        Ok(())
    }
}

fn short(digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    format!("sha256:{}", &hex[..hex.len().min(12)])
}

impl GitopsImagePromote {
    /// Waits until every application of the previous stage is Synced and
    /// Healthy in Argo CD, up to the configured time.
    async fn wait_for_previous(
        &self,
        ctx: &ActionContext,
        input: &PromoteInput,
        previous: Stage,
        clusters: &[String],
    ) -> Result<(), ActionError> {
        let deps = self.deps.as_ref().ok_or_else(not_configured)?;
        let argocd = deps.argocd.as_ref().ok_or_else(|| {
            ActionError::Failed(format!(
                "Stage {} waits for {} to be healthy, but no Argo CD is configured (promotion.argocd_url)",
                input.stage.as_str(),
                previous.as_str()
            ))
        })?;
        let apps = clusters.iter().map(|c| layout::app_name(&input.service, c));
        let deadline = Instant::now() + deps.health_timeout;
        let backoff = Backoff::doubling(std::time::Duration::from_millis(200))
            .capped(std::time::Duration::from_secs(10))
            .jittered(Jitter::UpToHalfMore);
        for app in apps {
            let mut attempt = 0;
            loop {
                let state = argocd
                    .application(&app)
                    .await
                    .map_err(|e| ActionError::Failed(e.to_string()))?;
                if state.ready() {
                    ctx.logger.info(format!("{app} is Synced and Healthy")).await;
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(ActionError::Failed(format!(
                        "{app} in {} is {} after {} s; not promoting {} to {}",
                        previous.as_str(),
                        state.summary(),
                        deps.health_timeout.as_secs(),
                        input.service,
                        input.stage.as_str()
                    )));
                }
                if attempt % 5 == 0 {
                    ctx.logger
                        .info(format!(
                            "Waiting for {app} to be Synced and Healthy (now {})",
                            state.summary()
                        ))
                        .await;
                }
                attempt += 1;
                tokio::select! {
                    _ = ctx.cancel.cancelled() => return Err(ActionError::Cancelled),
                    _ = tokio::time::sleep(backoff.delay(attempt)) => {}
                }
            }
        }
        Ok(())
    }
}
