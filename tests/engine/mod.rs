//! The durable engine with real processes: several `scaffolder serve`
//! replicas on one database, replicas killed with SIGKILL, connections cut.

mod panics;
mod replicas;
mod sentinel;
mod store;
mod support;
