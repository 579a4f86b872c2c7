//! A client of the OCI distribution API, as much as verifying a digest
//! needs: manifests by digest or tag, blobs by digest, and the anonymous
//! bearer-token flow registries such as ghcr.io ask for
//! (`WWW-Authenticate: Bearer realm=…,service=…,scope=…`). Every body read
//! by digest is checked against that digest.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;

/// Manifests the client asks for (OCI first, Docker's for older pushes).
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// The largest manifest or signature payload read.
const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("{0}")]
    InvalidReference(String),
    #[error("the registry {registry} cannot be reached: {message}")]
    Unreachable { registry: String, message: String },
    #[error("the registry {registry} answered {status} for {what}")]
    Status {
        registry: String,
        status: u16,
        what: String,
    },
    #[error("the registry {registry} sent {what} that does not match its digest {digest}")]
    DigestMismatch {
        registry: String,
        what: String,
        digest: String,
    },
    #[error("the registry {registry} sent {what} that cannot be read: {message}")]
    Unreadable {
        registry: String,
        what: String,
        message: String,
    },
}

/// `sha256:<64 hex>`, the only digest algorithm accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageDigest(String);

impl ImageDigest {
    pub fn parse(text: &str) -> Result<ImageDigest, OciError> {
        let hex = text.strip_prefix("sha256:").ok_or_else(|| {
            OciError::InvalidReference(format!("{text:?} is not a sha256 digest (sha256:<64 hex digits>)"))
        })?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(OciError::InvalidReference(format!(
                "{text:?} is not a sha256 digest (sha256:<64 lowercase hex digits>)"
            )));
        }
        Ok(ImageDigest(text.to_owned()))
    }

    pub fn of(bytes: &[u8]) -> ImageDigest {
        ImageDigest(format!("sha256:{:x}", Sha256::digest(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// Cosign's tag for this digest's signatures: `sha256-<hex>.sig`.
    pub fn signature_tag(&self) -> String {
        format!("sha256-{}.sig", self.hex())
    }
}

impl std::fmt::Display for ImageDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An image name without tag or digest: `ghcr.io/acme/web-backend`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageName {
    /// `host[:port]`; Docker Hub is `registry-1.docker.io`.
    pub registry: String,
    /// The repository path inside the registry.
    pub repository: String,
}

impl ImageName {
    /// Parses a name by Docker's rules: the first component is a registry
    /// when it has a `.` or `:` or is `localhost`, else the image is on
    /// Docker Hub. A tag or digest is refused: promotions name digests
    /// separately.
    pub fn parse(text: &str) -> Result<ImageName, OciError> {
        let invalid = |why: &str| OciError::InvalidReference(format!("image name {text:?} {why}"));
        if text.contains('@') {
            return Err(invalid("has a digest: give the name and the digest separately"));
        }
        let (first, rest) = text.split_once('/').unwrap_or(("", text));
        let (registry, repository) = if !first.is_empty() && (first.contains(['.', ':']) || first == "localhost") {
            (first.to_owned(), rest.to_owned())
        } else if text.contains('/') {
            ("registry-1.docker.io".to_owned(), text.to_owned())
        } else {
            ("registry-1.docker.io".to_owned(), format!("library/{text}"))
        };
        let registry = match registry.as_str() {
            "docker.io" | "index.docker.io" => "registry-1.docker.io".to_owned(),
            _ => registry,
        };
        if repository.rsplit('/').next().is_some_and(|last| last.contains(':')) {
            return Err(invalid("has a tag: promotions pin digests"));
        }
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
                && c.as_bytes()[0].is_ascii_alphanumeric()
        };
        if repository.is_empty() || !repository.split('/').all(component_ok) {
            return Err(invalid(
                "is not a valid repository path (lowercase components separated by /)",
            ));
        }
        Ok(ImageName { registry, repository })
    }
}

impl std::fmt::Display for ImageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

/// A manifest or index: what the signature lookup reads from it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// Reads registries. Registries listed as `insecure` are spoken to over
/// plain HTTP (a registry on this machine, in tests and development).
pub struct RegistryClient {
    http: reqwest::Client,
    insecure: Vec<String>,
    /// Bearer tokens by `registry/repository`, from the token flow.
    tokens: Mutex<HashMap<String, String>>,
}

impl RegistryClient {
    pub fn new(insecure: Vec<String>) -> Result<RegistryClient, OciError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OciError::Unreachable {
                registry: "-".into(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(RegistryClient {
            http,
            insecure,
            tokens: Mutex::default(),
        })
    }

    fn base(&self, name: &ImageName) -> String {
        let scheme = if self.insecure.contains(&name.registry) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}/v2/{}", name.registry, name.repository)
    }

    /// The manifest `reference` (a digest or a tag) of `name`: `None` when
    /// the registry does not know it. A manifest asked for by digest is
    /// checked against it.
    pub async fn manifest(&self, name: &ImageName, reference: &str) -> Result<Option<(Manifest, Vec<u8>)>, OciError> {
        let url = format!("{}/manifests/{reference}", self.base(name));
        let what = format!("the manifest {name}:{reference}");
        let Some(bytes) = self.get(name, &url, Some(MANIFEST_ACCEPT), &what).await? else {
            return Ok(None);
        };
        if reference.starts_with("sha256:") && ImageDigest::of(&bytes).as_str() != reference {
            return Err(OciError::DigestMismatch {
                registry: name.registry.clone(),
                what,
                digest: reference.to_owned(),
            });
        }
        let manifest = serde_json::from_slice(&bytes).map_err(|e| OciError::Unreadable {
            registry: name.registry.clone(),
            what,
            message: e.to_string(),
        })?;
        Ok(Some((manifest, bytes)))
    }

    /// The blob `digest` of `name`, checked against its digest.
    pub async fn blob(&self, name: &ImageName, digest: &str) -> Result<Vec<u8>, OciError> {
        let url = format!("{}/blobs/{digest}", self.base(name));
        let what = format!("the blob {name}@{digest}");
        let bytes = self
            .get(name, &url, None, &what)
            .await?
            .ok_or_else(|| OciError::Status {
                registry: name.registry.clone(),
                status: 404,
                what: what.clone(),
            })?;
        if ImageDigest::of(&bytes).as_str() != digest {
            return Err(OciError::DigestMismatch {
                registry: name.registry.clone(),
                what,
                digest: digest.to_owned(),
            });
        }
        Ok(bytes)
    }

    async fn get(
        &self,
        name: &ImageName,
        url: &str,
        accept: Option<&str>,
        what: &str,
    ) -> Result<Option<Vec<u8>>, OciError> {
        let key = name.to_string();
        let mut token = self.tokens.lock().await.get(&key).cloned();
        for _ in 0..2 {
            let mut request = self.http.get(url);
            if let Some(accept) = accept {
                request = request.header(reqwest::header::ACCEPT, accept);
            }
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.map_err(|e| self.unreachable(name, e))?;
            let status = response.status();
            if status == reqwest::StatusCode::UNAUTHORIZED && token.is_none() {
                let challenge = response
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let fresh = self.anonymous_token(name, &challenge, what).await?;
                self.tokens.lock().await.insert(key.clone(), fresh.clone());
                token = Some(fresh);
                continue;
            }
            if status == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !status.is_success() {
                return Err(OciError::Status {
                    registry: name.registry.clone(),
                    status: status.as_u16(),
                    what: what.to_owned(),
                });
            }
            return read_limited(response, name, what).await.map(Some);
        }
        Err(OciError::Status {
            registry: name.registry.clone(),
            status: 401,
            what: what.to_owned(),
        })
    }

    /// Follows a `Bearer` challenge anonymously (pull scope).
    async fn anonymous_token(&self, name: &ImageName, challenge: &str, what: &str) -> Result<String, OciError> {
        let refused = || OciError::Status {
            registry: name.registry.clone(),
            status: 401,
            what: what.to_owned(),
        };
        let params = parse_challenge(challenge).ok_or_else(refused)?;
        let realm = params.get("realm").ok_or_else(refused)?;
        let mut url = url::Url::parse(realm).map_err(|_| refused())?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = params.get("service") {
                query.append_pair("service", service);
            }
            let scope = params
                .get("scope")
                .cloned()
                .unwrap_or_else(|| format!("repository:{}:pull", name.repository));
            query.append_pair("scope", &scope);
        }
        let response = self.http.get(url).send().await.map_err(|e| self.unreachable(name, e))?;
        if !response.status().is_success() {
            return Err(refused());
        }
        let bytes = read_limited(response, name, "the token answer").await?;
        let answer: TokenAnswer = serde_json::from_slice(&bytes).map_err(|e| OciError::Unreadable {
            registry: name.registry.clone(),
            what: "the token answer".into(),
            message: e.to_string(),
        })?;
        answer.token.or(answer.access_token).ok_or_else(refused)
    }

    fn unreachable(&self, name: &ImageName, e: reqwest::Error) -> OciError {
        OciError::Unreachable {
            registry: name.registry.clone(),
            message: e.to_string(),
        }
    }
}

async fn read_limited(mut response: reqwest::Response, name: &ImageName, what: &str) -> Result<Vec<u8>, OciError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| OciError::Unreachable {
        registry: name.registry.clone(),
        message: e.to_string(),
    })? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(OciError::Unreadable {
                registry: name.registry.clone(),
                what: what.to_owned(),
                message: format!("larger than {MAX_DOCUMENT_BYTES} bytes"),
            });
        }
    }
    Ok(bytes)
}

/// `Bearer realm="…",service="…",scope="…"` as a map.
fn parse_challenge(header: &str) -> Option<HashMap<String, String>> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(key.trim().to_ascii_lowercase(), value.to_owned());
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rules() {
        let n = ImageName::parse("ghcr.io/acme/web-backend").unwrap();
        assert_eq!(
            (n.registry.as_str(), n.repository.as_str()),
            ("ghcr.io", "acme/web-backend")
        );
        let n = ImageName::parse("127.0.0.1:5000/soft-yt/svc").unwrap();
        assert_eq!(
            (n.registry.as_str(), n.repository.as_str()),
            ("127.0.0.1:5000", "soft-yt/svc")
        );
        assert_eq!(ImageName::parse("nginx").unwrap().repository, "library/nginx");
        assert_eq!(ImageName::parse("acme/web").unwrap().registry, "registry-1.docker.io");
        for bad in [
            "ghcr.io/acme/web:1.0",
            "ghcr.io/acme/web@sha256:00",
            "ghcr.io/Acme/web",
            "ghcr.io/",
        ] {
            assert!(ImageName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digests_are_sha256_only() {
        let d = ImageDigest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        assert_eq!(d.signature_tag(), format!("sha256-{}.sig", "ab".repeat(32)));
        for bad in ["sha512:00", "sha256:XYZ", &format!("sha256:{}", "AB".repeat(32))] {
            assert!(ImageDigest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bearer_challenges_are_read() {
        let p = parse_challenge(
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:acme/web:pull""#,
        )
        .unwrap();
        assert_eq!(p["realm"], "https://ghcr.io/token");
        assert_eq!(p["service"], "ghcr.io");
        assert_eq!(p["scope"], "repository:acme/web:pull");
        assert!(parse_challenge("Basic realm=x").is_none());
    }
}
