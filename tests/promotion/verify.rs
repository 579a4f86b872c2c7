//! `promotion::cosign::verify_image` against a real registry.

use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePublicKey, LineEnding};
use scaffolder::promotion::cosign::{verify_image, KeylessTrust, Signer, TrustPolicy, VerifyError};
use scaffolder::promotion::oci::{ImageDigest, ImageName, RegistryClient};

use super::ca::TestCa;
use super::registry::{available, payload, signed_layer, Registry};

const ISSUER: &str = "https://token.actions.githubusercontent.com";
const WORKFLOW: &str = "https://github.com/acme/web/.github/workflows/ci.yaml@refs/heads/main";

fn key() -> SigningKey {
    SigningKey::random(&mut rand::rngs::OsRng)
}

async fn check(
    registry: &Registry,
    policy: &TrustPolicy,
    repository: &str,
    digest: &str,
    identity: Option<&str>,
) -> Result<Signer, VerifyError> {
    let client = RegistryClient::new(vec![registry.host.clone()]).expect("client");
    let name = ImageName::parse(&format!("{}/{repository}", registry.host)).expect("name");
    verify_image(
        &client,
        policy,
        &name,
        &ImageDigest::parse(digest).expect("digest"),
        identity,
    )
    .await
}

#[tokio::test]
async fn keyed_signatures_verify_and_refusals_say_which_digest_and_why() {
    if !available() {
        return;
    }
    let registry = Registry::start().await;
    let signer = key();
    let pem = signer.verifying_key().to_public_key_pem(LineEnding::LF).expect("pem");
    let policy = TrustPolicy {
        keys: vec![TrustPolicy::parse_key(&pem).expect("cosign.pub")],
        keyless: None,
    };
    let image = format!("{}/soft-yt/web-backend", registry.host);

    let signed = registry.push_image("soft-yt/web-backend", "v1", "signed").await;
    registry
        .push_signatures(
            "soft-yt/web-backend",
            &signed,
            &[signed_layer(&signer, payload(&image, &signed), None)],
        )
        .await;
    assert_eq!(
        check(&registry, &policy, "soft-yt/web-backend", &signed, None)
            .await
            .expect("verifies"),
        Signer::Key(0)
    );

    // Unknown digest.
    let unknown = format!("sha256:{}", "0".repeat(64));
    let err = check(&registry, &policy, "soft-yt/web-backend", &unknown, None)
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::UnknownDigest { .. }), "{err}");
    assert!(
        err.to_string().contains(&unknown) && err.to_string().contains("does not know"),
        "{err}"
    );

    // Pushed but never signed.
    let unsigned = registry.push_image("soft-yt/web-backend", "v2", "unsigned").await;
    let err = check(&registry, &policy, "soft-yt/web-backend", &unsigned, None)
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::NoSignature { .. }), "{err}");
    assert!(
        err.to_string().contains(&unsigned) && err.to_string().contains("no cosign signature"),
        "{err}"
    );

    // Signed by someone else's key.
    let foreign = registry.push_image("soft-yt/web-backend", "v3", "foreign").await;
    registry
        .push_signatures(
            "soft-yt/web-backend",
            &foreign,
            &[signed_layer(&key(), payload(&image, &foreign), None)],
        )
        .await;
    let err = check(&registry, &policy, "soft-yt/web-backend", &foreign, None)
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::WrongIdentity { .. }), "{err}");
    assert!(
        err.to_string().contains(&foreign) && err.to_string().contains("none of the configured keys"),
        "{err}"
    );

    // A valid signature of another digest copied onto this one.
    let copied = registry.push_image("soft-yt/web-backend", "v4", "copied").await;
    registry
        .push_signatures(
            "soft-yt/web-backend",
            &copied,
            &[signed_layer(&signer, payload(&image, &signed), None)],
        )
        .await;
    let err = check(&registry, &policy, "soft-yt/web-backend", &copied, None)
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");
    assert!(
        err.to_string().contains(&signed) && err.to_string().contains("another digest"),
        "{err}"
    );

    // A signature of this digest for another repository.
    let moved = registry.push_image("soft-yt/web-frontend", "v1", "moved").await;
    registry
        .push_signatures(
            "soft-yt/web-frontend",
            &moved,
            &[signed_layer(&signer, payload(&image, &moved), None)],
        )
        .await;
    let err = check(&registry, &policy, "soft-yt/web-frontend", &moved, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("names the image"), "{err}");
}

#[tokio::test]
async fn keyless_signatures_chain_to_the_root_and_name_the_workflow() {
    if !available() {
        return;
    }
    let registry = Registry::start().await;
    let ca = TestCa::new("fulcio-test");
    let policy = TrustPolicy {
        keys: Vec::new(),
        keyless: Some(KeylessTrust {
            roots: TrustPolicy::parse_roots(&ca.root_pem()).expect("roots"),
            issuer: ISSUER.into(),
        }),
    };
    let image = format!("{}/soft-yt/web-backend", registry.host);
    let sign = |seed: &'static str, identity: &'static str, issuer: &'static str, ca: &TestCa| {
        let (cert, leaf_key) = ca.leaf(identity, issuer);
        (seed, cert, leaf_key, ca.chain_pem())
    };

    let mut digests = Vec::new();
    for (seed, cert, leaf_key, chain) in [
        sign("workflow", WORKFLOW, ISSUER, &ca),
        sign(
            "other-workflow",
            "https://github.com/evil/fork/.github/workflows/ci.yaml@refs/heads/main",
            ISSUER,
            &ca,
        ),
        sign("other-issuer", WORKFLOW, "https://accounts.example.com", &ca),
        sign("other-ca", WORKFLOW, ISSUER, &TestCa::new("rogue")),
    ] {
        let digest = registry.push_image("soft-yt/web-backend", seed, seed).await;
        registry
            .push_signatures(
                "soft-yt/web-backend",
                &digest,
                &[signed_layer(&leaf_key, payload(&image, &digest), Some((&cert, &chain)))],
            )
            .await;
        digests.push(digest);
    }

    let signer = check(&registry, &policy, "soft-yt/web-backend", &digests[0], Some(WORKFLOW))
        .await
        .expect("verifies");
    assert_eq!(
        signer,
        Signer::Certificate {
            identity: WORKFLOW.into(),
            issuer: ISSUER.into()
        }
    );
    // The same signature is not another workflow's.
    let err = check(
        &registry,
        &policy,
        "soft-yt/web-backend",
        &digests[0],
        Some("https://github.com/acme/other/.github/workflows/ci.yaml@refs/heads/main"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, VerifyError::WrongIdentity { .. }), "{err}");

    let err = check(&registry, &policy, "soft-yt/web-backend", &digests[1], Some(WORKFLOW))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("evil/fork") && err.to_string().contains(&digests[1]),
        "{err}"
    );

    let err = check(&registry, &policy, "soft-yt/web-backend", &digests[2], Some(WORKFLOW))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("accounts.example.com"), "{err}");

    let err = check(&registry, &policy, "soft-yt/web-backend", &digests[3], Some(WORKFLOW))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not chain"), "{err}");

    // Keyless signatures are refused where only keys are trusted.
    let keyed_only = TrustPolicy {
        keys: vec![*key().verifying_key()],
        keyless: None,
    };
    let err = check(
        &registry,
        &keyed_only,
        "soft-yt/web-backend",
        &digests[0],
        Some(WORKFLOW),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no keyless trust root"), "{err}");
}
