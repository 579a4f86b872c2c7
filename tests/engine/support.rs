//! Real `scaffolder serve` processes for the engine tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::common::db::admin_url;

/// The URL of a database that does not exist yet (`serve` creates it).
pub fn fresh_db() -> String {
    format!("{}/scaffolder_test_{}", admin_url(), uuid::Uuid::new_v4().simple())
}

/// A `scaffolder serve` process; killed (SIGKILL) when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts `scaffolder serve` on a free port with the test templates, the
/// database `db_url` and `env` (which wins over the environment it inherits),
/// its stderr going to `stderr`; returns once `/readyz` answers 200.
pub async fn serve(db_url: &str, env: &[(&str, &str)], stderr: Stdio) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_scaffolder"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--templates"])
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/templates"))
        .env("DATABASE_URL", db_url)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("scaffolder starts");
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}/api/scaffolder"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + crate::common::PATIENCE;
    loop {
        let ready = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return server;
        }
        assert!(Instant::now() < deadline, "scaffolder did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
