//! Authentication (Backstage user tokens, static tokens, anonymous access),
//! task ownership, catalog and git template sources, and CORS.

mod cors;
pub mod helpers;
mod jwt;
mod ownership;
mod sources;
mod startup;
