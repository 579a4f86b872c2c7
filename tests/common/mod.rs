//! Helpers the integration tests share (`crate::common`, declared in `tests/integration.rs`);
//! the library's unit tests include `data.rs` alone. Not every binary uses
//! every helper.
#![allow(dead_code)]

pub mod data;
pub mod db;
pub mod git;
pub mod tools;

/// How long a test waits for something that must happen (a task ending, a
/// server becoming ready) before it calls it a hang. A guard, never a speed
/// check: generous, because CI machines run many tests at once.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);
