//! A real OCI registry for the tests: Debian's `docker-registry` (the CNCF
//! distribution registry) on a free port with its storage in a temporary
//! directory; images pushed into it by `skopeo` from an OCI layout the test
//! writes; cosign signatures written by the test in cosign's format and
//! pushed through the distribution API, as `cosign sign` does.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use p256::ecdsa::signature::Signer as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::tools::tool;
use crate::common::PATIENCE;

pub struct Registry {
    child: Child,
    /// `127.0.0.1:<port>`
    pub host: String,
    _storage: tempfile::TempDir,
}

impl Drop for Registry {
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

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Whether `docker-registry` and `skopeo` are here (else the test is skipped
/// with one line, or fails under SCAFFOLDER_REQUIRE_SHARED).
pub fn available() -> bool {
    tool("docker-registry", "an OCI registry (Debian package docker-registry)")
        && tool("skopeo", "pushing images to the registry (Debian package skopeo)")
}

impl Registry {
    /// Starts a registry and waits until `/v2/` answers.
    pub async fn start() -> Registry {
        let storage = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.path().join("data").display()
            ),
        )
        .expect("config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let registry = Registry {
            child,
            host: format!("127.0.0.1:{port}"),
            _storage: storage,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let ready = client
                .get(format!("http://{}/v2/", registry.host))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return registry;
            }
            assert!(Instant::now() < deadline, "docker-registry did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Pushes a small image (unique content: `seed`) as `<repository>:<tag>`
    /// with skopeo; returns its manifest digest.
    pub async fn push_image(&self, repository: &str, tag: &str, seed: &str) -> String {
        let layout = tempfile::tempdir().expect("tempdir");
        write_layout(layout.path(), seed);
        let digest_file = layout.path().join("digest");
        let host = self.host.clone();
        let repository = repository.to_owned();
        let tag = tag.to_owned();
        let source = format!("oci:{}:latest", layout.path().join("image").display());
        let out = tokio::task::spawn_blocking(move || {
            Command::new("skopeo")
                .args(["copy", "--quiet", "--dest-tls-verify=false", "--digestfile"])
                .arg(&digest_file)
                .arg(source)
                .arg(format!("docker://{host}/{repository}:{tag}"))
                .output()
                .expect("skopeo runs")
        })
        .await
        .expect("join");
        assert!(
            out.status.success(),
            "skopeo copy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // skopeo compresses the layer on the way, so the pushed manifest is
        // not the layout's: the digest file says which one the registry has.
        let pushed = std::fs::read_to_string(layout.path().join("digest")).expect("digest file");
        assert!(pushed.starts_with("sha256:"), "{pushed}");
        pushed.trim().to_owned()
    }

    /// Uploads a blob through the distribution API (monolithic upload).
    async fn put_blob(&self, repository: &str, bytes: &[u8]) -> String {
        let client = reqwest::Client::new();
        let digest = sha256(bytes);
        let started = client
            .post(format!("http://{}/v2/{repository}/blobs/uploads/", self.host))
            .send()
            .await
            .expect("upload starts");
        assert_eq!(started.status().as_u16(), 202, "upload start");
        let location = started
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("location")
            .to_owned();
        let mut url = if location.starts_with("http") {
            url::Url::parse(&location).expect("url")
        } else {
            url::Url::parse(&format!("http://{}{location}", self.host)).expect("url")
        };
        url.query_pairs_mut().append_pair("digest", &digest);
        let put = client.put(url).body(bytes.to_vec()).send().await.expect("upload");
        assert_eq!(put.status().as_u16(), 201, "blob upload");
        digest
    }

    async fn put_manifest(&self, repository: &str, reference: &str, manifest: &Value) {
        let bytes = serde_json::to_vec(manifest).expect("json");
        let response = reqwest::Client::new()
            .put(format!("http://{}/v2/{repository}/manifests/{reference}", self.host))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(bytes)
            .send()
            .await
            .expect("manifest put");
        assert_eq!(
            response.status().as_u16(),
            201,
            "manifest put: {:?}",
            response.text().await
        );
    }

    /// Pushes cosign signature layers for `digest` (tag `sha256-<hex>.sig`).
    pub async fn push_signatures(&self, repository: &str, digest: &str, layers: &[SignatureLayer]) {
        let config = self.put_blob(repository, b"{}").await;
        let mut descriptors = Vec::new();
        for layer in layers {
            let blob = self.put_blob(repository, &layer.payload).await;
            descriptors.push(json!({
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "digest": blob,
                "size": layer.payload.len(),
                "annotations": layer.annotations,
            }));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": descriptors,
        });
        let tag = format!("sha256-{}.sig", digest.trim_start_matches("sha256:"));
        self.put_manifest(repository, &tag, &manifest).await;
    }
}

/// One simple-signing layer of a signature manifest.
pub struct SignatureLayer {
    pub payload: Vec<u8>,
    pub annotations: Value,
}

/// Cosign's simple-signing payload for `image@digest`.
pub fn payload(image: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": image},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .expect("json")
}

/// A layer signed with `key` (keyed) and, when given, carrying a
/// certificate and chain (keyless).
pub fn signed_layer(
    key: &p256::ecdsa::SigningKey,
    payload: Vec<u8>,
    certificate: Option<(&str, &str)>,
) -> SignatureLayer {
    let signature: p256::ecdsa::Signature = key.sign(&payload);
    let encoded = base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes());
    let mut annotations = json!({"dev.cosignproject.cosign/signature": encoded});
    if let Some((cert, chain)) = certificate {
        annotations["dev.sigstore.cosign/certificate"] = json!(cert);
        annotations["dev.sigstore.cosign/chain"] = json!(chain);
    }
    SignatureLayer { payload, annotations }
}

/// Writes an OCI layout under `dir/image` holding one image whose content
/// depends on `seed`; returns its manifest digest.
fn write_layout(dir: &Path, seed: &str) -> String {
    let root = dir.join("image");
    let blobs = root.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("layout");
    let put = |bytes: &[u8]| {
        let digest = sha256(bytes);
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes).expect("blob");
        digest
    };
    let mut tar = tar::Builder::new(Vec::new());
    let content = format!("built from {seed}\n");
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "app/version.txt", content.as_bytes())
        .expect("tar");
    let layer = tar.into_inner().expect("tar");
    let layer_digest = put(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"seed": seed}},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .expect("json");
    let config_digest = put(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    }))
    .expect("json");
    let manifest_digest = put(&manifest);
    std::fs::write(root.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("layout");
    std::fs::write(
        root.join("index.json"),
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest, "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }],
        }))
        .expect("json"),
    )
    .expect("index");
    manifest_digest
}
