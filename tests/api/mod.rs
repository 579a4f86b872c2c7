//! The HTTP API in-process (see helpers::spawn_app).

mod app_base;
mod bodies;
mod dry_run;
mod errors;
mod events;
mod failures;
mod health;
pub(crate) mod helpers;
mod hostile_paths;
mod lifecycle;
mod limits;
mod list;
mod meta;
mod metrics;
mod openapi;
mod request_hygiene;
mod resume;
mod secrets;
mod serve_env;
mod startup_db;
mod tasks;
mod telemetry;
mod wire;
