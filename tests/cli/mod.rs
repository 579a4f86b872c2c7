//! The command line: `scaffolder run` (local, no server) and the client
//! commands against a running server, through the real binary.

mod client;
mod edges;
mod gitops;
mod helpers;
mod run;
