//! Helpers the integration tests share (`crate::common`, declared in `tests/integration.rs`);
//! the library's unit tests include `data.rs` alone. Not every binary uses
//! every helper.
#![allow(dead_code)]

pub mod data;
pub mod db;
pub mod git;
pub mod tools;
