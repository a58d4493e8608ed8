//! The chart's RBAC, enforced by the stand-in: `helm template` of `chart/`, and a world whose
//! job runs as the hook's ServiceAccount.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::{World, CLUSTER, NAMESPACE};

/// The helm binary `scripts/setup.sh` installs.
pub fn helm() -> PathBuf {
    let helm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/helm");
    assert!(
        helm.exists(),
        "helm not found at {}: run scripts/setup.sh (it installs the pinned helm)",
        helm.display()
    );
    helm
}

/// `helm template` of `chart/` with Epinio's `values` (plus a cluster name and an image), as
/// JSON documents.
pub fn render_chart(values: &Value, dir: &Path) -> Vec<Value> {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../chart");
    let file = dir.join("chart-values.yaml");
    std::fs::write(
        &file,
        serde_norway::to_string(values).expect("values to YAML"),
    )
    .expect("write values");
    let out = std::process::Command::new(helm())
        .args(["template", "epinio-irsa"])
        .arg(&chart)
        .args(["-n", NAMESPACE, "-f"])
        .arg(&file)
        .args(["--set", &format!("irsa.clusterName={CLUSTER}")])
        .args([
            "--set",
            "irsa.image.repository=registry.example.com/epinio-irsa",
        ])
        .output()
        .expect("run helm template");
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_norway::Deserializer::from_str(&text)
        .filter_map(|doc| Value::deserialize(doc).ok())
        .filter(|v| !v.is_null())
        .collect()
}

/// The hook's identity: the chart's installer ServiceAccount (release `epinio-irsa`).
pub const HOOK_USER: &str = "system:serviceaccount:epinio:epinio-irsa";

impl World {
    /// Like [`World::with_objects`], but the stand-in authenticates and authorizes every
    /// request against the Role and RoleBinding `helm template` renders from `chart/` for
    /// `values`, and the job runs as the hook's ServiceAccount.
    pub async fn with_rbac(bin: impl Into<PathBuf>, objects: Vec<Value>, values: &Value) -> World {
        let w = World::with_objects(bin, objects).await;
        let docs = render_chart(values, &w.dir);
        assert!(
            docs.iter().any(|d| d["kind"] == "Role"),
            "the chart rendered no Role"
        );
        let token = w.kube.enable_rbac(&docs, HOOK_USER);
        let text = std::fs::read_to_string(&w.kubeconfig).expect("kubeconfig");
        let text = text.replace("  user: {}\n", &format!("  user:\n    token: {token}\n"));
        std::fs::write(&w.kubeconfig, text).expect("write kubeconfig");
        w
    }
}
