//! Application services: what the API does, independent of HTTP. Handlers
//! parse requests, call one function here, and map the result.

mod approvals;
mod audit;
mod autocomplete;
mod dry_run;
mod events;
mod metrics;
mod permissions;
mod promotions;
mod secrets;
mod streams;
mod tasks;
mod updates;

pub use crate::promotion::plan::BundleImage;
pub use crate::store::UpdateItemRecord;
/// The task list's query and cancel's answer, as the service speaks them.
pub use crate::store::{CancelOutcome, ListQuery, SortField};
pub use approvals::ApprovalAnswer;
pub use audit::{AuditFilter, AuditPage, AuditTrail, MAX_AUDIT_PAGE};
pub use autocomplete::{AutocompleteRequest, AutocompleteService, Suggestion};
pub use dry_run::{dry_run_dir, DryRunFailure, DryRunRequest, DryRunResult, DryRunService, InlineFile};
pub use events::{EventHub, EventWatch};
pub use metrics::MetricsService;
pub use promotions::{
    promotion_templates, BundleRequest, PromotionRecord, PromotionRequest, PromotionService, PROMOTION_TEMPLATE_REF,
};
pub use secrets::{reseal_stored, ResealError};
pub use streams::{StreamLimiter, StreamPermit};
pub use tasks::{CreateTask, TaskService};
pub use updates::{StartUpdate, UpdateProgress, UpdateRun, UpdateService, MAX_CONCURRENCY};

use serde_json::Value;

use crate::store::StoreError;
use crate::template::TemplateSourceError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Input(String),
    /// Parameter values that fail the template's schema (Backstage's `{errors}` body).
    #[error("invalid parameter values")]
    Validation(Vec<Value>),
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The caller holds too many of something at once (429).
    #[error("{0}")]
    TooManyRequests(String),
    /// A service we asked (GitHub) failed; its status when it answered one.
    #[error("{message}")]
    Upstream { status: Option<u16>, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    TemplateSource(#[from] TemplateSourceError),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    /// A template version could not be taken or read back.
    #[error(transparent)]
    Version(#[from] crate::template::version::VersionError),
    /// A bug or an impossible state (500).
    #[error("{0}")]
    Internal(String),
}
