//! The action bridge (`bridge/`) as a real Node process next to the service:
//! a team's own module and Backstage's official ones, run unchanged.

mod custom;
mod helpers;
mod kill;
mod official;
