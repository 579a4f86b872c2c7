//! Cosign signatures of image digests, read the way `cosign verify` reads
//! them: the signature manifest is tagged `sha256-<hex>.sig` in the image's
//! repository; each of its layers is a simple-signing payload
//! (`application/vnd.dev.cosign.simplesigning.v1+json`) whose ECDSA
//! signature is the annotation `dev.cosignproject.cosign/signature`.
//!
//! Two ways to trust a signature:
//! - **keyed**: it verifies with one of the configured P-256 public keys;
//! - **keyless**: the layer carries a certificate
//!   (`dev.sigstore.cosign/certificate`, intermediates in
//!   `dev.sigstore.cosign/chain`) that chains to a configured root, names the
//!   expected identity as a URI subject alternative name (GitHub Actions:
//!   `https://github.com/<workflow_ref>`) and the expected OIDC issuer in
//!   Fulcio's extensions (`1.3.6.1.4.1.57264.1.8`, or the older `…1.1`); the
//!   payload verifies with the certificate's key.
//!
//! Not checked (stated in docs/gitops.md): the Rekor transparency log entry
//! (`dev.sigstore.cosign/bundle`) and with it the signing time, so a
//! short-lived Fulcio certificate is accepted after its expiry; the code
//! signing extended key usage of the certificate.

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;
use sha2::{Digest as _, Sha256, Sha384};
use x509_cert::der::{self, Decode, DecodePem, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

use super::oci::{ImageDigest, ImageName, OciError, RegistryClient};

pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// Fulcio's OIDC issuer extension (DER UTF8String).
const OID_ISSUER_V2: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
/// Fulcio's first OIDC issuer extension (the raw string).
const OID_ISSUER_V1: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
const OID_SAN: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("2.5.29.17");
const OID_ECDSA_SHA256: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
/// Intermediates followed from a leaf to a root at most.
const MAX_CHAIN: usize = 5;

/// Why a digest is refused. Each says which image and digest, and why.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{image}@{digest} is refused: the registry does not know this digest")]
    UnknownDigest { image: String, digest: String },
    #[error("{image}@{digest} is refused: it has no cosign signature (no {tag} in the repository)")]
    NoSignature { image: String, digest: String, tag: String },
    #[error("{image}@{digest} is refused: no signature verifies ({reasons})")]
    BadSignature {
        image: String,
        digest: String,
        reasons: String,
    },
    #[error("{image}@{digest} is refused: it is signed, but not by {expected} ({reasons})")]
    WrongIdentity {
        image: String,
        digest: String,
        expected: String,
        reasons: String,
    },
    #[error("{image}@{digest} cannot be checked: {source}")]
    Registry {
        image: String,
        digest: String,
        #[source]
        source: OciError,
    },
}

/// The configured trust: public keys, and for keyless signatures the
/// roots certificates must chain to and the OIDC issuer they must name.
#[derive(Clone, Default)]
pub struct TrustPolicy {
    pub keys: Vec<p256::ecdsa::VerifyingKey>,
    pub keyless: Option<KeylessTrust>,
}

#[derive(Clone)]
pub struct KeylessTrust {
    pub roots: Vec<Certificate>,
    /// e.g. `https://token.actions.githubusercontent.com`
    pub issuer: String,
}

impl TrustPolicy {
    /// Reads PEM public keys (`-----BEGIN PUBLIC KEY-----`, as `cosign
    /// generate-key-pair` writes `cosign.pub`).
    pub fn parse_key(pem: &str) -> Result<p256::ecdsa::VerifyingKey, String> {
        p256::ecdsa::VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|e| format!("not a PEM P-256 public key (cosign.pub): {e}"))
    }

    /// Reads a PEM bundle of root certificates.
    pub fn parse_roots(pem: &str) -> Result<Vec<Certificate>, String> {
        let roots = Certificate::load_pem_chain(pem.as_bytes()).map_err(|e| format!("not PEM certificates: {e}"))?;
        if roots.is_empty() {
            return Err("no certificate in the trust root".into());
        }
        Ok(roots)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.keyless.is_none()
    }
}

/// Who signed a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// The configured key with this index.
    Key(usize),
    /// A keyless certificate for `identity` from `issuer`.
    Certificate { identity: String, issuer: String },
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Key(i) => write!(f, "configured key #{}", i + 1),
            Signer::Certificate { identity, issuer } => write!(f, "{identity} (issuer {issuer})"),
        }
    }
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    identity: PayloadIdentity,
    image: PayloadImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PayloadIdentity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// Why one signature layer does not do.
#[derive(Debug)]
enum LayerRefusal {
    /// Not a valid signature of this digest.
    Bad(String),
    /// A valid signature by someone else.
    Identity(String),
}

/// Checks that `digest` exists in `name`'s repository and carries a
/// signature the policy trusts; `identity` is the certificate identity a
/// keyless signature must name (keyed signatures are identified by their key).
pub async fn verify_image(
    client: &RegistryClient,
    policy: &TrustPolicy,
    name: &ImageName,
    digest: &ImageDigest,
    identity: Option<&str>,
) -> Result<Signer, VerifyError> {
    let registry = |source| VerifyError::Registry {
        image: name.to_string(),
        digest: digest.to_string(),
        source,
    };
    if client
        .manifest(name, digest.as_str())
        .await
        .map_err(registry)?
        .is_none()
    {
        return Err(VerifyError::UnknownDigest {
            image: name.to_string(),
            digest: digest.to_string(),
        });
    }
    let tag = digest.signature_tag();
    let Some((signatures, _)) = client.manifest(name, &tag).await.map_err(registry)? else {
        return Err(VerifyError::NoSignature {
            image: name.to_string(),
            digest: digest.to_string(),
            tag,
        });
    };
    let mut bad = Vec::new();
    let mut foreign = Vec::new();
    for layer in signatures
        .layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
    {
        let Some(signature) = layer.annotations.get(SIGNATURE_ANNOTATION) else {
            bad.push(format!("layer {} has no {SIGNATURE_ANNOTATION}", layer.digest));
            continue;
        };
        let payload = client.blob(name, &layer.digest).await.map_err(registry)?;
        let certificate = layer.annotations.get(CERTIFICATE_ANNOTATION).map(String::as_str);
        let chain = layer.annotations.get(CHAIN_ANNOTATION).map(String::as_str);
        match verify_layer(policy, name, digest, &payload, signature, certificate, chain, identity) {
            Ok(signer) => return Ok(signer),
            Err(LayerRefusal::Bad(why)) => bad.push(why),
            Err(LayerRefusal::Identity(why)) => foreign.push(why),
        }
    }
    if bad.is_empty() && foreign.is_empty() {
        return Err(VerifyError::NoSignature {
            image: name.to_string(),
            digest: digest.to_string(),
            tag: format!("{tag} with a {SIMPLE_SIGNING_MEDIA_TYPE} layer"),
        });
    }
    if !foreign.is_empty() {
        return Err(VerifyError::WrongIdentity {
            image: name.to_string(),
            digest: digest.to_string(),
            expected: identity.map_or_else(|| "a configured key".to_owned(), str::to_owned),
            reasons: foreign.into_iter().chain(bad).collect::<Vec<_>>().join("; "),
        });
    }
    Err(VerifyError::BadSignature {
        image: name.to_string(),
        digest: digest.to_string(),
        reasons: bad.join("; "),
    })
}

#[allow(clippy::too_many_arguments)]
fn verify_layer(
    policy: &TrustPolicy,
    name: &ImageName,
    digest: &ImageDigest,
    payload: &[u8],
    signature_b64: &str,
    certificate: Option<&str>,
    chain: Option<&str>,
    identity: Option<&str>,
) -> Result<Signer, LayerRefusal> {
    use base64::Engine as _;
    let parsed: Payload = serde_json::from_slice(payload)
        .map_err(|e| LayerRefusal::Bad(format!("the payload is not a simple-signing document: {e}")))?;
    if parsed.critical.kind != PAYLOAD_TYPE {
        return Err(LayerRefusal::Bad(format!(
            "the payload's type is {:?}, not {PAYLOAD_TYPE:?}",
            parsed.critical.kind
        )));
    }
    if parsed.critical.image.docker_manifest_digest != digest.as_str() {
        return Err(LayerRefusal::Bad(format!(
            "the payload signs {}, another digest",
            parsed.critical.image.docker_manifest_digest
        )));
    }
    let reference = parsed.critical.identity.docker_reference.as_str();
    let reference = reference.split_once('@').map_or(reference, |(n, _)| n);
    if !reference_names(reference, name) {
        return Err(LayerRefusal::Bad(format!(
            "the payload names the image {reference}, not {name}"
        )));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(signature_b64.trim())
        .map_err(|_| LayerRefusal::Bad("the signature is not base64".into()))?;
    let signature = p256::ecdsa::Signature::from_der(&der)
        .map_err(|_| LayerRefusal::Bad("the signature is not a DER ECDSA P-256 signature".into()))?;
    let prehash = Sha256::digest(payload);
    if let Some(certificate) = certificate {
        return verify_keyless(policy, &prehash, &signature, certificate, chain, identity);
    }
    if policy.keys.is_empty() {
        return Err(LayerRefusal::Identity(
            "signed with a key, and no public key is configured".into(),
        ));
    }
    policy
        .keys
        .iter()
        .position(|key| key.verify_prehash(&prehash, &signature).is_ok())
        .map(Signer::Key)
        .ok_or_else(|| LayerRefusal::Identity("the signature verifies with none of the configured keys".into()))
}

/// Whether a payload's `docker-reference` names this image (Docker Hub's
/// short forms included).
fn reference_names(reference: &str, name: &ImageName) -> bool {
    let reference = match reference.rsplit_once(':') {
        Some((n, tag)) if !tag.contains('/') => n,
        _ => reference,
    };
    ImageName::parse(reference).is_ok_and(|r| r == *name)
}

fn verify_keyless(
    policy: &TrustPolicy,
    prehash: &[u8],
    signature: &p256::ecdsa::Signature,
    certificate: &str,
    chain: Option<&str>,
    identity: Option<&str>,
) -> Result<Signer, LayerRefusal> {
    let Some(trust) = &policy.keyless else {
        return Err(LayerRefusal::Identity(
            "signed keyless, and no keyless trust root is configured".into(),
        ));
    };
    let leaf = Certificate::from_pem(certificate.trim().as_bytes())
        .map_err(|e| LayerRefusal::Bad(format!("the signing certificate cannot be read: {e}")))?;
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki_der(&leaf)?)
        .map_err(|_| LayerRefusal::Bad("the signing certificate's key is not P-256".into()))?;
    key.verify_prehash(prehash, signature)
        .map_err(|_| LayerRefusal::Bad("the signature does not verify with its certificate".into()))?;
    let intermediates = match chain {
        Some(pem) if !pem.trim().is_empty() => Certificate::load_pem_chain(pem.as_bytes())
            .map_err(|e| LayerRefusal::Bad(format!("the certificate chain cannot be read: {e}")))?,
        _ => Vec::new(),
    };
    chains_to_root(&leaf, &intermediates, &trust.roots).map_err(LayerRefusal::Identity)?;
    let issuer = oidc_issuer(&leaf).ok_or_else(|| {
        LayerRefusal::Identity("the certificate names no OIDC issuer (Fulcio extension 1.3.6.1.4.1.57264.1.8)".into())
    })?;
    let uris = san_uris(&leaf);
    if issuer != trust.issuer {
        return Err(LayerRefusal::Identity(format!(
            "the certificate was issued for tokens of {issuer}, not {}",
            trust.issuer
        )));
    }
    let Some(expected) = identity else {
        return Err(LayerRefusal::Identity(
            "keyless signatures need an expected identity".into(),
        ));
    };
    if !uris.iter().any(|u| u == expected) {
        return Err(LayerRefusal::Identity(format!(
            "the certificate names {}",
            if uris.is_empty() {
                "no URI identity".to_owned()
            } else {
                uris.join(", ")
            }
        )));
    }
    Ok(Signer::Certificate {
        identity: expected.to_owned(),
        issuer,
    })
}

fn spki_der(cert: &Certificate) -> Result<Vec<u8>, LayerRefusal> {
    cert.tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| LayerRefusal::Bad(format!("a certificate's key cannot be encoded: {e}")))
}

/// Follows issuers from `leaf` through `intermediates` to one of `roots`,
/// checking each signature. Only a configured root ends the walk: a root
/// sent along in the chain is not trusted for being there.
fn chains_to_root(leaf: &Certificate, intermediates: &[Certificate], roots: &[Certificate]) -> Result<(), String> {
    let mut current = leaf.clone();
    for _ in 0..=MAX_CHAIN {
        let issuer_name = &current.tbs_certificate.issuer;
        if roots
            .iter()
            .any(|root| &root.tbs_certificate.subject == issuer_name && signed_by(&current, root).is_ok())
        {
            return Ok(());
        }
        let Some(next) = intermediates.iter().find(|c| {
            &c.tbs_certificate.subject == issuer_name && c.tbs_certificate.subject != current.tbs_certificate.subject
        }) else {
            return Err(format!(
                "the certificate does not chain to the configured trust root (issuer {issuer_name})"
            ));
        };
        signed_by(&current, next).map_err(|why| format!("the certificate chain does not verify: {why}"))?;
        current = next.clone();
    }
    Err("the certificate chain is too long".into())
}

/// Whether `issuer`'s key signed `cert` (ECDSA P-256 or P-384, SHA-256 or
/// SHA-384, as Fulcio and common CAs issue).
fn signed_by(cert: &Certificate, issuer: &Certificate) -> Result<(), String> {
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(|e| format!("cannot encode the certificate: {e}"))?;
    let prehash = match cert.signature_algorithm.oid {
        OID_ECDSA_SHA256 => Sha256::digest(&tbs).to_vec(),
        OID_ECDSA_SHA384 => Sha384::digest(&tbs).to_vec(),
        other => {
            return Err(format!(
                "signature algorithm {other} is not supported (ECDSA with SHA-256/384 only)"
            ))
        }
    };
    let signature = cert
        .signature
        .as_bytes()
        .ok_or_else(|| "the certificate's signature is not whole bytes".to_owned())?;
    let spki = issuer
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("cannot encode the issuer's key: {e}"))?;
    if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(&spki) {
        let sig = p256::ecdsa::Signature::from_der(signature).map_err(|_| "not a DER ECDSA signature".to_owned())?;
        return key
            .verify_prehash(&prehash, &sig)
            .map_err(|_| format!("{} did not sign it", issuer.tbs_certificate.subject));
    }
    if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_der(&spki) {
        let sig = p384::ecdsa::Signature::from_der(signature).map_err(|_| "not a DER ECDSA signature".to_owned())?;
        return key
            .verify_prehash(&prehash, &sig)
            .map_err(|_| format!("{} did not sign it", issuer.tbs_certificate.subject));
    }
    Err(format!(
        "the key of {} is not ECDSA P-256 or P-384",
        issuer.tbs_certificate.subject
    ))
}

fn san_uris(cert: &Certificate) -> Vec<String> {
    let mut uris = Vec::new();
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id != OID_SAN {
            continue;
        }
        if let Ok(san) = SubjectAltName::from_der(ext.extn_value.as_bytes()) {
            for name in san.0 {
                if let GeneralName::UniformResourceIdentifier(uri) = name {
                    uris.push(uri.to_string());
                }
            }
        }
    }
    uris
}

fn oidc_issuer(cert: &Certificate) -> Option<String> {
    let extensions = cert.tbs_certificate.extensions.as_ref()?;
    if let Some(ext) = extensions.iter().find(|e| e.extn_id == OID_ISSUER_V2) {
        return der::asn1::Utf8StringRef::from_der(ext.extn_value.as_bytes())
            .ok()
            .map(|s| s.as_str().to_owned());
    }
    extensions
        .iter()
        .find(|e| e.extn_id == OID_ISSUER_V1)
        .and_then(|e| String::from_utf8(e.extn_value.as_bytes().to_vec()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_match_with_tags_and_short_forms() {
        let name = ImageName::parse("127.0.0.1:5000/soft-yt/svc").unwrap();
        assert!(reference_names("127.0.0.1:5000/soft-yt/svc", &name));
        assert!(reference_names("127.0.0.1:5000/soft-yt/svc:v1", &name));
        assert!(!reference_names("127.0.0.1:5000/soft-yt/other", &name));
        let hub = ImageName::parse("nginx").unwrap();
        assert!(reference_names("docker.io/library/nginx", &hub) || reference_names("nginx", &hub));
    }
}
