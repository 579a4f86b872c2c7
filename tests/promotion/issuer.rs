//! A test OIDC issuer standing in for GitHub Actions' token service:
//! an HTTP server with `/.well-known/openid-configuration` and the JWKS it
//! names, and RS256 ID tokens signed with a key `openssl` makes.

use std::process::Command;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::auth::helpers::FakeServer;
use crate::common::tools::tool;

pub const AUDIENCE: &str = "scaffolder-promotion";

pub struct Issuer {
    pub server: FakeServer,
    key: EncodingKey,
    kid: String,
}

/// Whether `openssl` is here to make the RSA key.
pub fn available() -> bool {
    tool("openssl", "an RSA key for the test OIDC issuer")
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Issuer {
    pub fn start() -> Issuer {
        let dir = tempfile::tempdir().expect("tempdir");
        let key_path = dir.path().join("key.pem");
        let made = Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&key_path)
            .arg("2048")
            .output()
            .expect("openssl runs");
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let modulus = Command::new("openssl")
            .args(["rsa", "-noout", "-modulus", "-in"])
            .arg(&key_path)
            .output()
            .expect("openssl runs");
        let modulus = String::from_utf8_lossy(&modulus.stdout);
        let hex = modulus.trim().trim_start_matches("Modulus=");
        let n: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let pem = std::fs::read(&key_path).expect("key");
        let server = FakeServer::start(Default::default());
        let kid = "test-key-1".to_owned();
        server.set(
            "/.well-known/openid-configuration",
            json!({"issuer": server.url, "jwks_uri": format!("{}/.well-known/jwks", server.url)}),
        );
        server.set(
            "/.well-known/jwks",
            json!({"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": b64url(&n), "e": "AQAB"}]}),
        );
        Issuer {
            server,
            key: EncodingKey::from_rsa_pem(&pem).expect("rsa key"),
            kid,
        }
    }

    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// The claims GitHub puts in a workflow run's token, for `repository`
    /// running `workflow` on `git_ref`.
    pub fn claims(&self, repository: &str, workflow: &str, git_ref: &str, run_id: u64) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.server.url, "aud": AUDIENCE,
            "sub": format!("repo:{repository}:ref:{git_ref}"),
            "repository": repository, "repository_owner": repository.split('/').next(),
            "ref": git_ref, "sha": format!("{:040x}", run_id),
            "workflow_ref": format!("{repository}/{workflow}@{git_ref}"),
            "run_id": run_id.to_string(), "run_attempt": "1",
            "iat": now, "nbf": now, "exp": now + 300,
        })
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).expect("token")
    }

    pub fn token(&self, repository: &str, workflow: &str, git_ref: &str, run_id: u64) -> String {
        self.sign(&self.claims(repository, workflow, git_ref, run_id))
    }
}
