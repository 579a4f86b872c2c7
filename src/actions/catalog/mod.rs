//! `catalog:register`, `catalog:write` and `catalog:fetch`, against the
//! Backstage catalog configured in `catalog.base_url`. Requests carry the
//! task initiator's token (`secrets.backstageToken`, as Backstage passes
//! it) when there is one, else the configured service token.

mod fetch;
mod register;
mod write;

pub use crate::catalog::{CatalogClient, CatalogError};
pub use fetch::CatalogFetch;
pub use register::CatalogRegister;
pub use write::CatalogWrite;

use crate::actions::ActionContext;

/// The initiator's Backstage token, if the task was started with one.
fn user_token(ctx: &ActionContext) -> Option<String> {
    ctx.secrets
        .get("backstageToken")
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}
