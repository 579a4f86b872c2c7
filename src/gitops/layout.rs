//! Names and paths of the GitOps repository layout.

use super::GitopsError;

pub const APPS_DIR: &str = "apps";
pub const CLUSTERS_DIR: &str = "clusters";
/// SOPS creation rules (age recipients per cluster).
pub const SOPS_FILE: &str = ".sops.yaml";
/// The file recording who registered a service (`apps/<service>/.scaffolder.yaml`).
pub const MARKER_FILE: &str = ".scaffolder.yaml";
/// The namespace the generated Applications deploy into.
pub const DESTINATION_NAMESPACE: &str = "default";
/// The in-cluster API server, as Argo CD names it.
pub const IN_CLUSTER: &str = "https://kubernetes.default.svc";
/// Argo CD writes the Application name into the `app.kubernetes.io/instance`
/// label of every resource, so it must fit a label value.
pub const MAX_APP_NAME: usize = 63;

/// Checks an RFC 1123 label: lowercase letters, digits and `-`, starting
/// and ending with a letter or digit, at most 63 characters.
pub fn check_dns_label(kind: &str, name: &str) -> Result<(), GitopsError> {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if valid {
        Ok(())
    } else {
        Err(GitopsError::Invalid(format!(
            "Invalid {kind} name {name:?}: use a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)"
        )))
    }
}

/// The Argo CD Application of `service` on `cluster`: `<service>-<cluster>`.
pub fn app_name(service: &str, cluster: &str) -> String {
    format!("{service}-{cluster}")
}

/// Checks `service` and `cluster` and that their Application name fits.
pub fn check_app(service: &str, cluster: &str) -> Result<String, GitopsError> {
    check_dns_label("service", service)?;
    check_dns_label("cluster", cluster)?;
    let name = app_name(service, cluster);
    if name.len() > MAX_APP_NAME {
        return Err(GitopsError::Invalid(format!(
            "The Argo CD application name {name:?} is longer than {MAX_APP_NAME} characters (Argo CD puts it in a label); use a shorter service or cluster name"
        )));
    }
    Ok(name)
}

pub fn service_dir(service: &str) -> String {
    format!("{APPS_DIR}/{service}")
}

pub fn marker_path(service: &str) -> String {
    format!("{APPS_DIR}/{service}/{MARKER_FILE}")
}

pub fn base_dir(service: &str) -> String {
    format!("{APPS_DIR}/{service}/base")
}

pub fn overlays_dir(service: &str) -> String {
    format!("{APPS_DIR}/{service}/overlays")
}

pub fn overlay_dir(service: &str, cluster: &str) -> String {
    format!("{APPS_DIR}/{service}/overlays/{cluster}")
}

pub fn overlay_path(service: &str, cluster: &str) -> String {
    format!("{}/kustomization.yaml", overlay_dir(service, cluster))
}

pub fn cluster_dir(cluster: &str) -> String {
    format!("{CLUSTERS_DIR}/{cluster}")
}

pub fn cluster_file(cluster: &str) -> String {
    format!("{CLUSTERS_DIR}/{cluster}/cluster.yaml")
}

pub fn cluster_kustomization(cluster: &str) -> String {
    format!("{CLUSTERS_DIR}/{cluster}/kustomization.yaml")
}

/// Relative to the cluster directory, as its kustomization lists it.
pub const APPSET_RELATIVE: &str = "argocd/apps-appset.yaml";

pub fn appset_path(cluster: &str) -> String {
    format!("{CLUSTERS_DIR}/{cluster}/{APPSET_RELATIVE}")
}

/// The directory pattern the cluster's ApplicationSet watches.
pub fn overlays_glob(cluster: &str) -> String {
    format!("{APPS_DIR}/*/overlays/{cluster}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["webapp", "yc-prod", "a", "a1-b2", &"x".repeat(63)] {
            assert!(check_dns_label("service", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a.b",
            "../x",
            "a/b",
            "é",
            &"x".repeat(64),
            "a b",
        ] {
            assert!(check_dns_label("service", bad).is_err(), "{bad}");
        }
        assert_eq!(check_app("webapp", "yc-prod").unwrap(), "webapp-yc-prod");
        assert!(check_app(&"s".repeat(40), &"c".repeat(30)).is_err());
        assert_eq!(
            overlay_path("webapp", "yc-prod"),
            "apps/webapp/overlays/yc-prod/kustomization.yaml"
        );
        assert_eq!(appset_path("yc-prod"), "clusters/yc-prod/argocd/apps-appset.yaml");
    }
}
