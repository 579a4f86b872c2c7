//! The PostgreSQL server the tests create their databases on.

use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432";

/// The server URL, without a database name: `TEST_DATABASE_URL`, else
/// `postgres://postgres@127.0.0.1:5432`.
///
/// The first call in a test binary checks that something accepts connections
/// there. When nothing does, the binary stops at once with one line saying
/// what it needs, rather than every database test failing on its own with a
/// long panic (or waiting for a deadline while `serve` retries).
pub fn admin_url() -> String {
    let url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    static PROBED: OnceLock<()> = OnceLock::new();
    PROBED.get_or_init(|| {
        if let Err(cause) = probe(&url) {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "error: PostgreSQL is not reachable at {} ({cause}); the database tests need it: start it \
                 (e.g. `pg_ctlcluster 15 main start`) or set TEST_DATABASE_URL to one \
                 (postgres://USER[:PASSWORD]@HOST:PORT, a user that may create databases)",
                without_password(&url)
            );
            std::process::exit(1);
        }
    });
    url
}

/// Connects once over TCP. A URL this cannot read (malformed, or a Unix
/// socket) passes: the connection itself reports it, with sqlx's error.
fn probe(url: &str) -> Result<(), String> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(());
    };
    if parsed.host().is_none() {
        return Ok(());
    }
    let addrs = parsed
        .socket_addrs(|| Some(5432))
        .map_err(|e| format!("cannot resolve it: {e}"))?;
    let mut cause = String::from("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(_) => return Ok(()),
            Err(e) => cause = e.to_string(),
        }
    }
    Err(cause)
}

fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
