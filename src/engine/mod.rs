//! The task engine: the worker (claim, lease heartbeat, cancel) and the
//! runner (steps, `if`/`each`, outputs), the step executor and the durable
//! workspace.

pub mod durable;
pub mod redact;
pub mod runner;
mod step;
pub mod worker;

pub use runner::{FinalStatus, JournalError, RunEnd, RunId, RunOutcome, RunRequest, RunSink, Runner, StepReport};
pub use worker::{Worker, WorkerHealth};
