//! Per-cluster platform resources, from the cluster's settings, written by
//! `gitops init` under `clusters/<cluster>/platform/` (managed: rewritten by
//! init) and listed by the cluster's kustomization:
//!
//! - `image-policy.yaml`: a Kyverno `ClusterPolicy` whose `verifyImages`
//!   admits `ghcr.io/soft-yt/*` only when signed keylessly by a workflow of
//!   the organisation on `main` (the cosign signatures the service CI makes);
//! - `secret-store.yaml`: the External Secrets `ClusterSecretStore` for Vault;
//! - `ingress.yaml`: the wildcard cert-manager `Certificate` of the cluster's
//!   domain and its entry point: a Gateway API `Gateway`, an Istio `Gateway`,
//!   or the `traefik` `IngressClass`.
//!
//! Pure: values in, YAML out.

use serde_json::{json, Value};

use super::cluster::{ClusterConfig, IngressFlavour};
use super::overlay::yaml_documents as documents;
use super::GitopsError;

pub const PLATFORM_DIR: &str = "platform";
pub const IMAGE_POLICY: &str = "platform/image-policy.yaml";
pub const SECRET_STORE: &str = "platform/secret-store.yaml";
pub const INGRESS: &str = "platform/ingress.yaml";
/// Every file, as the cluster's kustomization lists them.
pub const FILES: [&str; 3] = [IMAGE_POLICY, SECRET_STORE, INGRESS];

/// The images the policy guards and who may sign them.
pub const IMAGES: &str = "ghcr.io/soft-yt/*";
pub const OIDC_ISSUER: &str = "https://token.actions.githubusercontent.com";
pub const SIGNER: &str = r"^https://github\.com/soft-yt/[^/]+/\.github/workflows/[^@]+@refs/heads/main$";
/// The wildcard certificate's Secret (the Gateways terminate TLS with it).
pub const WILDCARD_SECRET: &str = "wildcard-tls";
/// The shared entry point (Gateway API and Istio) in `default`.
pub const GATEWAY: &str = "platform";
pub const GATEWAY_NAMESPACE: &str = "default";

fn image_policy() -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": "verify-soft-yt-images",
            "annotations": {"policies.kyverno.io/description": "Pods may run ghcr.io/soft-yt images only when cosign signed them keylessly in a GitHub Actions workflow of soft-yt on main."},
        },
        "spec": {
            "validationFailureAction": "Enforce",
            "webhookTimeoutSeconds": 30,
            "background": false,
            "rules": [{
                "name": "keyless-signature",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [{
                    "imageReferences": [IMAGES],
                    "mutateDigest": true,
                    "verifyDigest": true,
                    "required": true,
                    "attestors": [{
                        "count": 1,
                        "entries": [{
                            "keyless": {
                                "issuer": OIDC_ISSUER,
                                "subjectRegExp": SIGNER,
                                "rekor": {"url": "https://rekor.sigstore.dev"},
                            },
                        }],
                    }],
                }],
            }],
        },
    })
}

fn secret_store(config: &ClusterConfig) -> Value {
    let store = &config.secret_store;
    json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ClusterSecretStore",
        "metadata": {"name": store.name},
        "spec": {
            "provider": {
                "vault": {
                    "server": store.vault_server,
                    "path": store.vault_path,
                    "version": "v2",
                    "auth": {
                        "kubernetes": {
                            "mountPath": format!("kubernetes-{}", config.name),
                            "role": store.vault_role,
                            "serviceAccountRef": {"name": "external-secrets", "namespace": "external-secrets"},
                        },
                    },
                },
            },
        },
    })
}

fn ingress(config: &ClusterConfig) -> Vec<Value> {
    let wildcard = format!("*.{}", config.base_domain);
    let certificate = json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "wildcard", "namespace": GATEWAY_NAMESPACE},
        "spec": {
            "secretName": WILDCARD_SECRET,
            "dnsNames": [wildcard],
            "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": config.tls_issuer},
        },
    });
    let entry = match config.ingress {
        IngressFlavour::GatewayApi => json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY, "namespace": GATEWAY_NAMESPACE},
            "spec": {
                "gatewayClassName": "platform",
                "listeners": [{
                    "name": "https",
                    "protocol": "HTTPS",
                    "port": 443,
                    "hostname": wildcard,
                    "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": WILDCARD_SECRET}]},
                    "allowedRoutes": {"namespaces": {"from": "Same"}},
                }],
            },
        }),
        IngressFlavour::Istio => json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY, "namespace": GATEWAY_NAMESPACE},
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [{
                    "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                    "hosts": [wildcard],
                    "tls": {"mode": "SIMPLE", "credentialName": WILDCARD_SECRET},
                }],
            },
        }),
        IngressFlavour::Traefik => json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "traefik"},
            "spec": {"controller": "traefik.io/ingress-controller"},
        }),
    };
    vec![certificate, entry]
}

/// The files under `clusters/<cluster>/` (paths relative to it).
pub fn cluster_files(config: &ClusterConfig) -> Result<Vec<(&'static str, String)>, GitopsError> {
    let header = |what: &str| {
        format!(
            "# {what} of {} (from cluster.yaml). Written by `scaffolder gitops init`; edits are overwritten.\n",
            config.name
        )
    };
    Ok(vec![
        (
            IMAGE_POLICY,
            documents(&header("Image signature policy"), &[image_policy()])?,
        ),
        (
            SECRET_STORE,
            documents(&header("Vault secret store"), &[secret_store(config)])?,
        ),
        (INGRESS, documents(&header("Ingress entry point"), &ingress(config))?),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitops::cluster::ClusterInput;

    #[test]
    fn each_flavour_has_its_entry_point() {
        for (cluster, kind, api) in [
            ("onprem-dev", "IngressClass", "networking.k8s.io/v1"),
            ("sber-prod", "Gateway", "networking.istio.io/v1"),
            ("yc-prod", "Gateway", "gateway.networking.k8s.io/v1"),
        ] {
            let config = ClusterConfig::build(cluster, &ClusterInput::default(), "argocd").unwrap();
            let files = cluster_files(&config).unwrap();
            let ingress = &files.iter().find(|(p, _)| *p == INGRESS).unwrap().1;
            assert!(
                ingress.contains(&format!("kind: {kind}")) && ingress.contains(api),
                "{ingress}"
            );
            assert!(
                ingress.contains(&format!("'*.{cluster}.apps.soft-yt.internal'")),
                "{ingress}"
            );
            let policy = &files.iter().find(|(p, _)| *p == IMAGE_POLICY).unwrap().1;
            assert!(policy.contains("ghcr.io/soft-yt/*") && policy.contains(OIDC_ISSUER));
            for (path, text) in &files {
                crate::gitops::base::parse_documents(path, text.as_bytes()).unwrap();
            }
        }
    }
}
