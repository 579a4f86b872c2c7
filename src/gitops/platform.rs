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
//!   or the `traefik` `IngressClass` (with ExternalDNS's target annotation
//!   when the settings give one);
//! - `pull-secret.yaml`: an External Secrets `ExternalSecret` that builds
//!   the `kubernetes.io/dockerconfigjson` pull Secret from Vault (with
//!   `registryPullSecret`), so no registry credential is in Git;
//! - `sops-age.yaml`: an `ExternalSecret` that brings the cluster's age
//!   private key from Vault into Argo CD's namespace (with `ageRecipient`),
//!   and `argocd/ksops/`, a kustomize `Component` for the Argo CD
//!   installation that lets its repo server decrypt SOPS files with KSOPS.
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
pub const PULL_SECRET: &str = "platform/pull-secret.yaml";
pub const SOPS_KEY: &str = "platform/sops-age.yaml";
/// The kustomize Component for the Argo CD installation (not a resource
/// of the cluster's kustomization: it patches Argo CD's own objects).
pub const KSOPS_DIR: &str = "argocd/ksops";
pub const KSOPS_KUSTOMIZATION: &str = "argocd/ksops/kustomization.yaml";
pub const KSOPS_REPO_SERVER: &str = "argocd/ksops/repo-server.yaml";
pub const KSOPS_ARGOCD_CM: &str = "argocd/ksops/argocd-cm.yaml";
/// Every file the cluster's kustomization may list, in order.
pub const RESOURCES: [&str; 5] = [IMAGE_POLICY, SECRET_STORE, INGRESS, PULL_SECRET, SOPS_KEY];
/// Every file init manages (written when the settings ask for it, removed
/// when they no longer do).
pub const MANAGED: [&str; 8] = [
    IMAGE_POLICY,
    SECRET_STORE,
    INGRESS,
    PULL_SECRET,
    SOPS_KEY,
    KSOPS_KUSTOMIZATION,
    KSOPS_REPO_SERVER,
    KSOPS_ARGOCD_CM,
];
/// The KSOPS image whose init container installs `ksops` and `kustomize`
/// into the repo server (KSOPS's documented Argo CD integration).
pub const KSOPS_IMAGE: &str = "viaductoss/ksops:v4.3.3";
/// The Secret (in Argo CD's namespace) holding the cluster's age key as `keys.txt`.
pub const SOPS_AGE_SECRET: &str = "sops-age";
/// ExternalDNS annotations.
pub const DNS_HOSTNAME: &str = "external-dns.alpha.kubernetes.io/hostname";
pub const DNS_TTL: &str = "external-dns.alpha.kubernetes.io/ttl";
pub const DNS_TARGET: &str = "external-dns.alpha.kubernetes.io/target";

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
    let target = config.external_dns.as_ref().and_then(|d| d.target.clone());
    let mut entry = match config.ingress {
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
    if let (Some(target), IngressFlavour::GatewayApi | IngressFlavour::Istio) = (target, config.ingress) {
        // ExternalDNS reads the target of a Gateway's routes from the Gateway.
        entry["metadata"]["annotations"] = json!({ DNS_TARGET: target });
    }
    vec![certificate, entry]
}

/// The pull Secret `name` in the services' namespace, built by External
/// Secrets from the registry credentials in Vault.
fn pull_secret(config: &ClusterConfig, name: &str) -> Value {
    let registry = config
        .registry_credentials
        .clone()
        .unwrap_or_else(super::cluster::RegistryCredentials::default_ghcr);
    let dockerconfig = format!(
        r#"{{"auths":{{"{}":{{"username":"{{{{ .username }}}}","password":"{{{{ .password }}}}","auth":"{{{{ printf "%s:%s" .username .password | b64enc }}}}"}}}}}}"#,
        registry.server
    );
    let remote =
        |property: &str| json!({"secretKey": property, "remoteRef": {"key": registry.vault_key, "property": property}});
    json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": super::layout::DESTINATION_NAMESPACE},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": config.secret_store.name},
            "target": {
                "name": name,
                "creationPolicy": "Owner",
                "template": {
                    "type": "kubernetes.io/dockerconfigjson",
                    "engineVersion": "v2",
                    "data": {".dockerconfigjson": dockerconfig},
                },
            },
            "data": [remote("username"), remote("password")],
        },
    })
}

/// The Vault key holding a cluster's age private key (property `keys.txt`).
pub fn sops_vault_key(cluster: &str) -> String {
    format!("clusters/{cluster}/sops-age")
}

fn sops_key(config: &ClusterConfig) -> Value {
    json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": SOPS_AGE_SECRET, "namespace": config.argocd.namespace},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": config.secret_store.name},
            "target": {"name": SOPS_AGE_SECRET, "creationPolicy": "Owner"},
            "data": [{
                "secretKey": "keys.txt",
                "remoteRef": {"key": sops_vault_key(&config.name), "property": "keys.txt"},
            }],
        },
    })
}

/// KSOPS in Argo CD: the repo server gets `ksops` and a `kustomize` that
/// runs it (an init container copies both), the age key from the
/// `sops-age` Secret, and `argocd-cm` lets kustomize run exec plugins.
fn ksops_component(config: &ClusterConfig) -> Vec<(&'static str, Value)> {
    let namespace = config.argocd.namespace.as_str();
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "patches": [
            {"path": "repo-server.yaml"},
            {"path": "argocd-cm.yaml"},
        ],
    });
    let repo_server = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "argocd-repo-server", "namespace": namespace},
        "spec": {"template": {"spec": {
            "volumes": [
                {"name": "custom-tools", "emptyDir": {}},
                {"name": SOPS_AGE_SECRET, "secret": {"secretName": SOPS_AGE_SECRET}},
            ],
            "initContainers": [{
                "name": "install-ksops",
                "image": KSOPS_IMAGE,
                "command": ["/bin/sh", "-c"],
                "args": ["mv ksops /custom-tools/ && mv kustomize /custom-tools/"],
                "volumeMounts": [{"mountPath": "/custom-tools", "name": "custom-tools"}],
            }],
            "containers": [{
                "name": "argocd-repo-server",
                "env": [
                    {"name": "XDG_CONFIG_HOME", "value": "/.config"},
                    {"name": "SOPS_AGE_KEY_FILE", "value": "/.config/sops/age/keys.txt"},
                ],
                "volumeMounts": [
                    {"mountPath": "/usr/local/bin/kustomize", "name": "custom-tools", "subPath": "kustomize"},
                    {"mountPath": "/usr/local/bin/ksops", "name": "custom-tools", "subPath": "ksops"},
                    {"mountPath": "/.config/sops/age", "name": SOPS_AGE_SECRET, "readOnly": true},
                ],
            }],
        }}},
    });
    let argocd_cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "namespace": namespace},
        "data": {"kustomize.buildOptions": "--enable-alpha-plugins --enable-exec"},
    });
    vec![
        (KSOPS_KUSTOMIZATION, kustomization),
        (KSOPS_REPO_SERVER, repo_server),
        (KSOPS_ARGOCD_CM, argocd_cm),
    ]
}

/// The files under `clusters/<cluster>/` (paths relative to it).
pub fn cluster_files(config: &ClusterConfig) -> Result<Vec<(&'static str, String)>, GitopsError> {
    let header = |what: &str| {
        format!(
            "# {what} of {} (from cluster.yaml). Written by `scaffolder gitops init`; edits are overwritten.\n",
            config.name
        )
    };
    let mut files = vec![
        (
            IMAGE_POLICY,
            documents(&header("Image signature policy"), &[image_policy()])?,
        ),
        (
            SECRET_STORE,
            documents(&header("Vault secret store"), &[secret_store(config)])?,
        ),
        (INGRESS, documents(&header("Ingress entry point"), &ingress(config))?),
    ];
    if let Some(name) = &config.registry_pull_secret {
        files.push((
            PULL_SECRET,
            documents(
                &header("Registry pull Secret (credentials from Vault)"),
                &[pull_secret(config, name)],
            )?,
        ));
    }
    if config.age_recipient.is_some() {
        files.push((
            SOPS_KEY,
            documents(
                &header("The age key Argo CD decrypts SOPS files with (from Vault)"),
                &[sops_key(config)],
            )?,
        ));
        let component_header =
            header("KSOPS for the Argo CD installation: add this directory to its kustomization's `components`");
        for (path, doc) in ksops_component(config) {
            files.push((path, documents(&component_header, &[doc])?));
        }
    }
    Ok(files)
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
            let pull = &files.iter().find(|(p, _)| *p == PULL_SECRET).unwrap().1;
            assert!(
                pull.contains("type: kubernetes.io/dockerconfigjson")
                    && pull.contains("key: platform/registry/ghcr")
                    && pull.contains("name: ghcr-pull"),
                "{pull}"
            );
            assert!(
                !files.iter().any(|(p, _)| *p == SOPS_KEY),
                "no age recipient, no SOPS key"
            );
            let policy = &files.iter().find(|(p, _)| *p == IMAGE_POLICY).unwrap().1;
            assert!(policy.contains("ghcr.io/soft-yt/*") && policy.contains(OIDC_ISSUER));
            for (path, text) in &files {
                crate::gitops::base::parse_documents(path, text.as_bytes()).unwrap();
            }
        }
    }

    #[test]
    fn an_age_recipient_brings_the_key_and_the_ksops_component() {
        let input = ClusterInput {
            age_recipient: Some("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into()),
            external_dns: Some(crate::gitops::cluster::ExternalDns {
                zone: "apps.soft-yt.internal".into(),
                txt_owner_id: "yc-prod".into(),
                ttl: 60,
                target: Some("203.0.113.10".into()),
            }),
            ..ClusterInput::default()
        };
        let config = ClusterConfig::build("yc-prod", &input, "argocd").unwrap();
        let files = cluster_files(&config).unwrap();
        let text = |path: &str| files.iter().find(|(p, _)| *p == path).unwrap().1.clone();
        let key = text(SOPS_KEY);
        assert!(
            key.contains("namespace: argocd") && key.contains("key: clusters/yc-prod/sops-age"),
            "{key}"
        );
        assert!(text(KSOPS_KUSTOMIZATION).contains("kind: Component"));
        assert!(text(KSOPS_REPO_SERVER).contains(KSOPS_IMAGE));
        assert!(text(KSOPS_ARGOCD_CM).contains("--enable-alpha-plugins --enable-exec"));
        assert!(text(INGRESS).contains("external-dns.alpha.kubernetes.io/target: 203.0.113.10"));
        // Without a pull secret there is no pull-secret ExternalSecret.
        let public = ClusterConfig {
            registry_pull_secret: None,
            ..config
        };
        assert!(!cluster_files(&public).unwrap().iter().any(|(p, _)| *p == PULL_SECRET));
    }
}
