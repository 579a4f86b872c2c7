//! Publishing against a fake GitHub REST server and real bare repositories.
