//! A Backstage-compatible scaffolder backend. See ARCHITECTURE.md for the map.

pub mod actions;
pub mod auth;
pub mod backoff;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod gitops;
pub mod http;
pub mod metrics;
pub mod model;
pub mod promotion;
pub mod scm;
pub mod secrets;
pub mod service;
pub mod sse;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod template;
pub mod templating;
pub mod validation;

/// Where the unit tests find their data; shared with the integration tests.
#[cfg(test)]
#[path = "../tests/common/data.rs"]
mod test_data;
