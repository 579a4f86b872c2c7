//! The task engine: the worker (claim, lease heartbeat, cancel) and the
//! runner (steps, `if`/`each`, outputs).

pub mod durable;
pub mod redact;
pub mod runner;
pub mod worker;

pub use runner::{JournalError, RunOutcome, RunRequest, RunSink, Runner, StepReport, StepResult};
pub use worker::{Worker, WorkerHealth};
