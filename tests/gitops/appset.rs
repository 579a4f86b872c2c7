//! `gitops:init` and `scaffolder gitops init`: the layout, idempotency, the
//! ApplicationSets against a JSON Schema of the Argo CD CRD, and what their
//! generator makes of an overlay directory.

use std::process::Command;

use scaffolder::actions::gitops::GitopsInit;
use serde_json::{json, Value};

use crate::gitops::helpers::{commit_count, export, git, integrations, local_repo, Task, LOCAL_URL};

const CLUSTERS: [&str; 4] = ["onprem-dev", "yc-prod", "sber-prod", "vk-prod"];

/// The part of the Argo CD `ApplicationSet` CRD (argoproj.io/v1alpha1)
/// these files use, as JSON Schema: known fields typed, required fields
/// required, unknown fields refused (a structural schema prunes them).
fn appset_schema() -> Value {
    let string_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let template_meta = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string"},
            "namespace": {"type": "string"},
            "labels": string_map,
            "annotations": string_map,
            "finalizers": {"type": "array", "items": {"type": "string"}},
        },
    });
    let source = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["repoURL"],
        "properties": {
            "repoURL": {"type": "string"},
            "targetRevision": {"type": "string"},
            "path": {"type": "string"},
            "chart": {"type": "string"},
            "kustomize": {"type": "object"},
            "helm": {"type": "object"},
            "directory": {"type": "object"},
        },
    });
    let app_spec = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["destination", "project"],
        "properties": {
            "project": {"type": "string"},
            "source": source,
            "sources": {"type": "array", "items": source},
            "destination": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "server": {"type": "string"},
                    "namespace": {"type": "string"},
                    "name": {"type": "string"},
                },
            },
            "syncPolicy": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "automated": {
                        "type": "object",
                        "additionalProperties": false,
                        "properties": {
                            "prune": {"type": "boolean"},
                            "selfHeal": {"type": "boolean"},
                            "allowEmpty": {"type": "boolean"},
                        },
                    },
                    "syncOptions": {"type": "array", "items": {"type": "string"}},
                    "retry": {"type": "object"},
                    "managedNamespaceMetadata": {"type": "object"},
                },
            },
            "ignoreDifferences": {"type": "array"},
            "info": {"type": "array"},
            "revisionHistoryLimit": {"type": "integer"},
        },
    });
    let git_generator = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["repoURL", "revision"],
        "properties": {
            "repoURL": {"type": "string"},
            "revision": {"type": "string"},
            "directories": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["path"],
                    "properties": {"path": {"type": "string"}, "exclude": {"type": "boolean"}},
                },
            },
            "files": {"type": "array"},
            "pathParamPrefix": {"type": "string"},
            "requeueAfterSeconds": {"type": "integer"},
            "template": {"type": "object"},
            "values": string_map,
        },
    });
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": false,
        "properties": {
            "apiVersion": {"const": "argoproj.io/v1alpha1"},
            "kind": {"const": "ApplicationSet"},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", "maxLength": 253},
                    "namespace": {"type": "string"},
                    "labels": string_map,
                    "annotations": string_map,
                },
            },
            "spec": {
                "type": "object",
                "additionalProperties": false,
                "required": ["generators", "template"],
                "properties": {
                    "goTemplate": {"type": "boolean"},
                    "goTemplateOptions": {"type": "array", "items": {"type": "string"}},
                    "generators": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": false,
                            "properties": {
                                "git": git_generator,
                                "list": {"type": "object"},
                                "clusters": {"type": "object"},
                                "matrix": {"type": "object"},
                                "merge": {"type": "object"},
                                "scmProvider": {"type": "object"},
                                "pullRequest": {"type": "object"},
                                "clusterDecisionResource": {"type": "object"},
                                "plugin": {"type": "object"},
                                "selector": {"type": "object"},
                            },
                        },
                    },
                    "syncPolicy": {
                        "type": "object",
                        "additionalProperties": false,
                        "properties": {
                            "preserveResourcesOnDeletion": {"type": "boolean"},
                            "applicationsSync": {"enum": ["create-only", "create-update", "create-delete", "sync"]},
                        },
                    },
                    "strategy": {"type": "object"},
                    "preservedFields": {"type": "object"},
                    "ignoreApplicationDifferences": {"type": "array"},
                    "templatePatch": {"type": "string"},
                    "template": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["metadata", "spec"],
                        "properties": {"metadata": template_meta, "spec": app_spec},
                    },
                },
            },
        },
    })
}

fn schema_errors(doc: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(&appset_schema()).expect("the schema compiles");
    validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Go-template evaluation of what the ApplicationSet's templates use:
/// `{{ index .path.segments N }}`, `{{ .path.basename }}` and
/// `{{ .path.path }}`; anything else is an error (`missingkey=error`).
fn go_template(template: &str, path: &str) -> Result<String, String> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed action in {template:?}"))?;
        let words: Vec<&str> = after[..end].split_whitespace().collect();
        let value = match words.as_slice() {
            [".path.path"] => path.to_owned(),
            [".path.basename"] => segments.last().copied().unwrap_or_default().to_owned(),
            ["index", ".path.segments", n] => {
                let n: usize = n.parse().map_err(|_| format!("bad index {n}"))?;
                segments
                    .get(n)
                    .map(|s| (*s).to_owned())
                    .ok_or_else(|| format!("index {n} out of range"))?
            }
            other => return Err(format!("map has no entry for {other:?}")),
        };
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Every string of `value` evaluated as a Go template for `path`.
fn render(value: &Value, path: &str) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => Value::String(go_template(s, path)?),
        Value::Array(items) => Value::Array(items.iter().map(|v| render(v, path)).collect::<Result<_, _>>()?),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render(v, path)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn read_yaml(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).expect("yaml")
}

#[test]
fn the_schema_and_the_template_evaluator_refuse_what_they_should() {
    assert!(
        !schema_errors(&json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "x"}, "spec": {"generators": []}}))
        .is_empty()
    );
    assert_eq!(
        go_template("{{ index .path.segments 1 }}-{{ .path.basename }}", "apps/a/overlays/b").unwrap(),
        "a-b"
    );
    assert!(go_template("{{ .path.nope }}", "a").is_err());
    assert!(go_template("{{ index .path.segments 9 }}", "a").is_err());
}

#[tokio::test]
async fn init_writes_valid_application_sets_and_is_idempotent() {
    let hosts = tempfile::tempdir().unwrap();
    let action = GitopsInit::new(integrations(hosts.path(), None));
    let task = Task::new();
    let input = json!({"repoUrl": LOCAL_URL, "clusters": CLUSTERS});
    let out = task
        .run(&action, input.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", task.log_text()));
    let repo = local_repo(hosts.path());
    let head = git(&repo, &["rev-parse", "main"]).trim().to_owned();
    assert_eq!(out["commitHash"], json!(head));
    assert_eq!(out["changed"], json!(true));
    assert!(task.log_text().contains("Created the GitOps repository"));
    let tree = export(&repo, "main");
    // Argo CD clones the https URL, never the local host's path.
    let clone_url = "https://git.local/acme/infra-gitops.git";

    for cluster in CLUSTERS {
        let dir = tree.path().join("clusters").join(cluster);
        assert!(dir.join("cluster.yaml").is_file());
        let kustomization = read_yaml(&dir.join("kustomization.yaml"));
        assert_eq!(
            kustomization["resources"],
            json!([
                "argocd/apps-appset.yaml",
                "platform/image-policy.yaml",
                "platform/secret-store.yaml",
                "platform/ingress.yaml",
                "platform/pull-secret.yaml"
            ])
        );
        let appset = read_yaml(&dir.join("argocd/apps-appset.yaml"));
        let errors = schema_errors(&appset);
        assert!(errors.is_empty(), "{cluster}: {errors:?}");
        let spec = &appset["spec"];
        assert_eq!(spec["goTemplate"], json!(true));
        assert_eq!(spec["goTemplateOptions"], json!(["missingkey=error"]));
        assert_eq!(spec["syncPolicy"]["preserveResourcesOnDeletion"], json!(true));
        let generator = &spec["generators"][0]["git"];
        assert_eq!(generator["repoURL"], json!(clone_url));
        assert_eq!(generator["revision"], json!("main"));
        assert_eq!(
            generator["directories"],
            json!([{"path": format!("apps/*/overlays/{cluster}")}])
        );
        let template = &spec["template"];
        assert_eq!(
            template["spec"]["destination"],
            json!({"server": "https://kubernetes.default.svc", "namespace": "default"})
        );
        assert_eq!(
            template["spec"]["syncPolicy"],
            json!({"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"]})
        );

        // What Argo CD makes of an overlay directory of this cluster.
        let path = format!("apps/webapp/overlays/{cluster}");
        let app = render(template, &path).unwrap();
        assert_eq!(app["metadata"]["name"], json!(format!("webapp-{cluster}")));
        assert_eq!(app["metadata"]["labels"]["backstage.io/kubernetes-id"], json!("webapp"));
        assert_eq!(app["spec"]["source"]["path"], json!(path));
        assert_eq!(app["spec"]["source"]["repoURL"], json!(clone_url));
    }
    let prod = read_yaml(&tree.path().join("clusters/yc-prod/argocd/apps-appset.yaml"));
    let app = render(&prod["spec"]["template"], "apps/webapp/overlays/yc-prod").unwrap();
    assert_eq!(app["metadata"]["name"], json!("webapp-yc-prod"));
    assert_eq!(app["spec"]["source"]["path"], json!("apps/webapp/overlays/yc-prod"));

    // Invalid documents fail the schema.
    let mut broken = prod.clone();
    broken["spec"]["goTemplate"] = json!("yes");
    assert!(!schema_errors(&broken).is_empty());
    let mut broken = prod.clone();
    broken["spec"]["template"]["spec"]["syncPolicy"]["automated"]["prune"] = json!("true");
    assert!(!schema_errors(&broken).is_empty());
    let mut broken = prod.clone();
    broken["spec"]["generators"][0]["git"]["directory"] = json!([{"path": "x"}]);
    assert!(!schema_errors(&broken).is_empty());
    let mut broken = prod;
    if let Some(spec) = broken["spec"]["template"]["spec"].as_object_mut() {
        spec.remove("destination");
    }
    assert!(!schema_errors(&broken).is_empty());

    // Running it again changes nothing and commits nothing.
    let commits = commit_count(&repo, "main");
    let again = Task::new().run(&action, input).await.unwrap();
    assert_eq!(again["changed"], json!(false));
    assert_eq!(again["commitHash"], json!(head));
    assert_eq!(commit_count(&repo, "main"), commits);
}

#[test]
fn the_cli_initialises_a_repository_idempotently() {
    let hosts = tempfile::tempdir().unwrap();
    let config = hosts.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "integrations:\n  local_git:\n    dir: {}\nlog:\n  level: warn\n",
            hosts.path().join("git").display()
        ),
    )
    .unwrap();
    let run = |clusters: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scaffolder"));
        cmd.args(["gitops", "init", "--repo", LOCAL_URL]);
        for c in clusters {
            cmd.args(["--cluster", c]);
        }
        let out = cmd.arg("--config").arg(&config).output().expect("scaffolder runs");
        assert!(
            out.status.success(),
            "scaffolder gitops init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON outputs")
    };
    let first = run(&["onprem-dev", "yc-prod"]);
    let repo = local_repo(&hosts.path().join("git"));
    assert_eq!(first["changed"], json!(true));
    assert_eq!(
        first["applicationSets"],
        json!([
            "clusters/onprem-dev/argocd/apps-appset.yaml",
            "clusters/yc-prod/argocd/apps-appset.yaml"
        ])
    );
    let second = run(&["onprem-dev", "yc-prod"]);
    assert_eq!(second["changed"], json!(false));
    assert_eq!(second["commitHash"], first["commitHash"]);
    assert_eq!(commit_count(&repo, "main"), 1);

    // Adding a cluster adds its files only.
    let third = run(&["onprem-dev", "yc-prod", "vk-prod"]);
    assert_eq!(third["changed"], json!(true));
    let changed = git(&repo, &["diff", "--name-only", "HEAD~1", "HEAD"]);
    assert!(changed.lines().all(|l| l.starts_with("clusters/vk-prod/")), "{changed}");

    // Invalid names are refused with a clear message.
    let out = Command::new(env!("CARGO_BIN_EXE_scaffolder"))
        .args([
            "gitops",
            "init",
            "--repo",
            LOCAL_URL,
            "--cluster",
            "Bad_Name",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Invalid cluster name"));
}

#[tokio::test]
async fn init_writes_typed_cluster_settings_platform_files_and_sops_rules() {
    const AGE: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    let hosts = tempfile::tempdir().unwrap();
    let action = GitopsInit::new(integrations(hosts.path(), None));
    let task = Task::new();
    let input = json!({
        "repoUrl": LOCAL_URL,
        "clusters": ["sber-prod", "onprem-dev"],
        "settings": [{"name": "sber-prod", "baseDomain": "apps.sber.soft-yt.ru", "ageRecipient": AGE,
                      "registryPullSecret": "ghcr-soft-yt"}],
    });
    task.run(&action, input.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", task.log_text()));
    let repo = local_repo(hosts.path());
    let tree = export(&repo, "main");
    let settings = read_yaml(&tree.path().join("clusters/sber-prod/cluster.yaml"));
    assert_eq!(settings["kind"], json!("ClusterSettings"));
    assert_eq!(settings["provider"], json!("sber"));
    assert_eq!(settings["stage"], json!("prod"));
    assert_eq!(settings["ingress"], json!("istio"));
    assert_eq!(settings["baseDomain"], json!("apps.sber.soft-yt.ru"));
    assert_eq!(settings["registryPullSecret"], json!("ghcr-soft-yt"));
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/cluster.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for cluster in ["sber-prod", "onprem-dev"] {
        let doc = read_yaml(&tree.path().join(format!("clusters/{cluster}/cluster.yaml")));
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{cluster}: {errors:?}");
    }
    let ingress = std::fs::read_to_string(tree.path().join("clusters/sber-prod/platform/ingress.yaml")).unwrap();
    assert!(
        ingress.contains("networking.istio.io/v1") && ingress.contains("'*.apps.sber.soft-yt.ru'"),
        "{ingress}"
    );
    let sops = read_yaml(&tree.path().join(".sops.yaml"));
    let rules = sops["creation_rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "onprem-dev has no age recipient: {sops}");
    assert_eq!(rules[0]["age"], json!(AGE));

    // Again: nothing changes.
    let again = task.run(&action, input).await.unwrap();
    assert_eq!(again["changed"], json!(false));
}
