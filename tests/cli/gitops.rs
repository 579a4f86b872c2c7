//! `scaffolder gitops init` with typed cluster settings: flags (and a
//! settings file) map onto the `cluster.yaml` that `gitops:init` writes;
//! bad values are refused before anything is pushed.

use crate::cli::helpers::{clone, git, run};

const REPO: &str = "git.local?owner=soft-yt&repo=infra-gitops";
const AGE: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

fn read(dir: &std::path::Path, path: &str) -> String {
    std::fs::read_to_string(dir.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test]
async fn gitops_init_takes_typed_settings_from_flags_and_a_file() {
    let data = tempfile::tempdir().unwrap();
    let settings = data.path().join("settings.yaml");
    std::fs::write(
        &settings,
        "- name: sber-prod\n  ingress: traefik\n  tlsIssuer: sber-ca\n  workloads:\n    replicas: 5\n    resources: {requests: {cpu: 500m}}\n    podDisruptionBudget: true\n",
    )
    .unwrap();
    let out = run(
        data.path(),
        &[
            "gitops",
            "init",
            "--repo",
            REPO,
            "--cluster",
            "yc-prod,sber-prod",
            "--provider",
            "vk",
            "--stage",
            "staging",
            "--ingress",
            "istio",
            "--age-recipient",
            AGE,
            "--vault-server",
            "https://vault.soft-yt.internal:8200",
            "--pull-secret",
            "registry-creds",
            "--registry-vault-key",
            "platform/registry/soft-yt",
            "--otlp-endpoint",
            "http://tempo-distributor.tempo:4318",
            "--dns-ttl",
            "60",
            "--dns-target",
            "203.0.113.7",
            "--settings",
            settings.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["changed"], serde_json::json!(true));
    let tree = clone(
        &data.path().join("git/soft-yt/infra-gitops.git"),
        &data.path().join("clone"),
    );

    let yc = read(&tree, "clusters/yc-prod/cluster.yaml");
    for line in [
        "provider: vk",
        "stage: staging",
        "ingress: istio",
        &format!("ageRecipient: {AGE}"),
        "vaultServer: https://vault.soft-yt.internal:8200",
        "registryPullSecret: registry-creds",
        "vaultKey: platform/registry/soft-yt",
        "otlpEndpoint: http://tempo-distributor.tempo:4318",
        "ttl: 60",
        "target: 203.0.113.7",
        "txtOwnerId: yc-prod",
        "replicas: 2",
    ] {
        assert!(yc.contains(line), "{line}:\n{yc}");
    }
    // The file wins over the flags for its cluster; the flags fill the rest.
    let sber = read(&tree, "clusters/sber-prod/cluster.yaml");
    for line in [
        "ingress: traefik",
        "tlsIssuer: sber-ca",
        "replicas: 5",
        "provider: vk",
        "ttl: 60",
    ] {
        assert!(sber.contains(line), "{line}:\n{sber}");
    }
    // What the settings bring: the pull Secret from Vault, the age key and
    // the KSOPS component, the .sops.yaml rules.
    assert!(read(&tree, "clusters/yc-prod/platform/pull-secret.yaml").contains("key: platform/registry/soft-yt"));
    assert!(read(&tree, "clusters/yc-prod/platform/sops-age.yaml").contains("key: clusters/yc-prod/sops-age"));
    assert!(read(&tree, "clusters/yc-prod/argocd/ksops/kustomization.yaml").contains("kind: Component"));
    assert!(read(&tree, ".sops.yaml").contains(AGE));
    let kustomization = read(&tree, "clusters/yc-prod/kustomization.yaml");
    assert!(
        kustomization.contains("platform/sops-age.yaml") && !kustomization.contains("ksops"),
        "{kustomization}"
    );
}

#[tokio::test]
async fn gitops_init_refuses_bad_settings_and_pushes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let bare = data.path().join("git/soft-yt/infra-gitops.git");
    let settings = data.path().join("settings.yaml");
    std::fs::write(&settings, "- name: onprem-dev\n  provider: aws\n").unwrap();
    let other = data.path().join("other.yaml");
    std::fs::write(&other, "- name: vk-prod\n  stage: prod\n").unwrap();
    for (args, exit, message) in [
        (
            vec!["--provider", "aws"],
            2,
            "\"aws\" is not one of yc, sber, vk, onprem",
        ),
        (
            vec!["--ingress", "nginx"],
            2,
            "is not one of traefik, istio, gateway-api",
        ),
        (vec!["--stage", "qa"], 2, "is not one of dev, staging, prod"),
        (vec!["--dns-ttl", "0"], 2, "--dns-ttl"),
        (
            vec!["--domain", "localhost"],
            1,
            "baseDomain \"localhost\" is not a DNS name",
        ),
        (vec!["--age-recipient", "age1nope"], 1, "is not an age public key"),
        (
            vec!["--vault-server", "http://vault:8200"],
            1,
            "must be an https:// URL",
        ),
        (vec!["--otlp-endpoint", "collector:4318"], 1, "otlpEndpoint"),
        (vec!["--tls-issuer", "Lets Encrypt"], 1, "is not a Kubernetes name"),
        (
            vec!["--domain", "apps.example.org", "--dns-zone", "example.com"],
            1,
            "externalDns.zone",
        ),
        (
            vec!["--settings", settings.to_str().unwrap()],
            1,
            "is not a list of cluster settings",
        ),
        (
            vec!["--settings", other.to_str().unwrap()],
            1,
            "names the cluster \"vk-prod\"",
        ),
    ] {
        let mut all = vec!["gitops", "init", "--repo", REPO, "--cluster", "onprem-dev"];
        all.extend(args.iter().copied());
        let out = run(data.path(), &all).await;
        assert_eq!(out.code, Some(exit), "{args:?}:\n{}", out.stderr);
        assert!(
            out.stderr.contains(message),
            "{args:?}: want {message:?} in:\n{}",
            out.stderr
        );
        assert!(!bare.exists(), "{args:?}: nothing may be created or pushed");
    }
    // Without settings, init infers them from the name as before.
    let out = run(
        data.path(),
        &["gitops", "init", "--repo", REPO, "--cluster", "onprem-dev"],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(git(&bare, &["rev-list", "--count", "main"]).trim(), "1");
}
