//! Helpers every test binary includes (`#[path = "../common/mod.rs"] mod common;`);
//! the library's unit tests include `data.rs` alone. Not every binary uses
//! every helper.
#![allow(dead_code)]

pub mod data;
pub mod db;
