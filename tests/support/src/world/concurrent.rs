//! Helpers for the reliability and security tests: concurrent runs of the binary, and
//! kubeconfigs that authenticate with a token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{RunOutput, World, NAMESPACE};

/// One run of [`World::run_concurrently`]: a command, extra environment, and how long after
/// the others' start it begins.
#[derive(Debug, Clone)]
pub struct ConcurrentRun {
    pub command: String,
    pub extra: Vec<(String, String)>,
    pub start_after: Duration,
}

impl World {
    /// Start several runs of the binary at (nearly) the same time and wait for all of them.
    /// The proxies' call logs are cleared once, before the first start, so every returned
    /// [`RunOutput`] carries the calls of all runs together.
    pub async fn run_concurrently(&self, runs: &[ConcurrentRun]) -> Vec<RunOutput> {
        self.aws_proxy.clear_calls();
        self.kube_proxy.clear_calls();
        let env = self.env();
        let children = runs.iter().map(|run| {
            let mut cmd = tokio::process::Command::new(&self.bin);
            cmd.arg(&run.command)
                .env_clear()
                .envs(env.iter().cloned())
                .envs(run.extra.iter().cloned())
                .kill_on_drop(true);
            let delay = run.start_after;
            async move {
                tokio::time::sleep(delay).await;
                tokio::time::timeout(Duration::from_secs(120), cmd.output())
                    .await
                    .expect("epinio-irsa did not finish within 120 s")
                    .expect("cannot run epinio-irsa")
            }
        });
        let outputs = futures_join_all(children).await;
        let (aws_calls, kube_calls) = (self.aws_proxy.calls(), self.kube_proxy.calls());
        outputs
            .into_iter()
            .map(|out| RunOutput {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                aws_calls: aws_calls.clone(),
                kube_calls: kube_calls.clone(),
            })
            .collect()
    }

    /// The kubeconfig every run uses (under RBAC, it authenticates as the hook).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Write a kubeconfig like the world's, whose user authenticates with `token` (a bearer
    /// token, as a ServiceAccount token would be), and return its path; pass it as
    /// `KUBECONFIG` in a run's extra environment.
    pub fn kubeconfig_with_token(&self, token: &str) -> PathBuf {
        let path = self.dir.join("kubeconfig-token");
        let server = self.kube_proxy.url();
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {server}\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: standin\n    namespace: {NAMESPACE}\ncurrent-context: standin\nusers:\n- name: standin\n  user:\n    token: {token}\n"
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }
}

/// `futures::future::join_all` without the dependency: run every future to completion,
/// concurrently, and keep their order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("run task panicked"));
    }
    out
}
