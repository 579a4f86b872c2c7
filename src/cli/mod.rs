//! Command-line front ends that run the engine without a server.

pub mod dry_run;
mod progress;
