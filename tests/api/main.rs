//! One test binary for the HTTP API (see helpers::spawn_app).

mod app_base;
mod dry_run;
mod errors;
mod events;
mod health;
mod helpers;
mod lifecycle;
mod limits;
mod list;
mod meta;
mod metrics;
mod openapi;
mod secrets;
mod tasks;
mod telemetry;
