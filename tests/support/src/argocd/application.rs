//! The Application: a sync (gitops-engine `sync_context.go`) and a deletion (argo-cd
//! `controller/appcontroller.go` finalizeApplicationDeletion, `controller/hook.go`
//! executeHooks and cleanupHooks), driving the Jobs through [`super::run_job`].

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::{
    delete_policies, in_sync_targets, is_delete_hook, is_hook, kind, kind_order, name, run_job,
    sync_phases, wave, ArgoCd, JobRun, Key, Phase,
};
use crate::world::World;

/// What the stand-in did, in order.
#[derive(Debug, Clone)]
pub enum Step {
    Created(Phase, Key),
    /// Deleted, and why: `BeforeHookCreation`, `HookSucceeded`, `HookFailed`, `cascade`.
    Deleted(&'static str, Key),
    Ran(Box<JobRun>),
}

/// Options of an Application's deletion.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deletion {
    /// argo-cd issue #29100 (open in 3.5.0): a finalization pass working from a stale cache
    /// declares the PreDelete phase done right after the hooks were created, and cascade
    /// deletion removes the PreDelete Job before it runs.
    pub pre_delete_race: bool,
}

/// An Argo CD Application whose manifests are `manifests` (our chart as `helm template`
/// renders it, and Epinio's objects when the Application installs both charts), in the
/// World's namespace.
pub struct Application<'w> {
    world: &'w World,
    pub version: ArgoCd,
    manifests: Vec<Value>,
    /// Live objects carrying the Application's tracking (what cascade deletion removes).
    tracked: BTreeSet<Key>,
    pub steps: Vec<Step>,
}

impl<'w> Application<'w> {
    pub fn new(world: &'w World, version: ArgoCd, mut manifests: Vec<Value>) -> Application<'w> {
        manifests.iter_mut().for_each(yaml_1_1_octal);
        Application {
            world,
            version,
            manifests,
            tracked: BTreeSet::new(),
            steps: Vec::new(),
        }
    }

    fn live(&self, key: &Key) -> Option<Value> {
        self.world
            .kube
            .get(&key.api_version, &key.kind, &key.namespace, &key.name)
    }

    fn create(&mut self, phase: Phase, obj: &Value) {
        let key = Key::of(obj);
        self.world.kube.seed(obj.clone());
        self.tracked.insert(key.clone());
        self.steps.push(Step::Created(phase, key));
    }

    fn remove(&mut self, why: &'static str, key: &Key) {
        if self.live(key).is_some() {
            self.world
                .kube
                .delete(&key.api_version, &key.kind, &key.namespace, &key.name);
            self.steps.push(Step::Deleted(why, key.clone()));
        }
        self.tracked.remove(key);
    }

    /// One sync operation (gitops-engine sync_context.go): tasks by phase, wave, kind and name;
    /// a wave's objects are applied, then its Jobs run (each must succeed before the next wave);
    /// once all succeeded, hooks with HookSucceeded are deleted. Returns the Jobs run.
    pub async fn sync(&mut self) -> Result<Vec<JobRun>, String> {
        let mut tasks: Vec<(Phase, i64, Value)> = Vec::new();
        for obj in &self.manifests {
            if !in_sync_targets(obj, self.version) {
                continue;
            }
            for phase in sync_phases(obj) {
                if phase != Phase::SyncFail {
                    tasks.push((phase, wave(obj), obj.clone()));
                }
            }
        }
        tasks.sort_by(|a, b| {
            (a.0.order(), a.1, kind_order(kind(&a.2)), name(&a.2)).cmp(&(
                b.0.order(),
                b.1,
                kind_order(kind(&b.2)),
                name(&b.2),
            ))
        });
        let mut runs = Vec::new();
        let mut i = 0;
        while i < tasks.len() {
            let (phase, w) = (tasks[i].0, tasks[i].1);
            let group: Vec<Value> = tasks[i..]
                .iter()
                .take_while(|t| t.0 == phase && t.1 == w)
                .map(|t| t.2.clone())
                .collect();
            i += group.len();
            for obj in &group {
                let key = Key::of(obj);
                if is_hook(obj) {
                    if self.live(&key).is_some()
                        && delete_policies(obj).contains("BeforeHookCreation")
                    {
                        self.remove("BeforeHookCreation", &key);
                    }
                    if self.live(&key).is_none() {
                        self.create(phase, obj);
                    }
                } else if self.live(&key).is_none() {
                    self.create(phase, obj);
                } else {
                    // A release object that is live already (Epinio's, or ours from an earlier
                    // sync): in sync as far as this stand-in goes, and tracked.
                    self.tracked.insert(key);
                }
            }
            for obj in group.iter().filter(|o| kind(o) == "Job") {
                let run = self.run_job(phase, obj).await;
                match run {
                    Ok(run) if run.output.success() => runs.push(run),
                    other => {
                        let why = describe(&other);
                        self.delete_hooks_by_policy(&tasks, "HookFailed");
                        return Err(format!(
                            "{phase:?} wave {w}: Job {} failed: {why}",
                            name(obj)
                        ));
                    }
                }
            }
        }
        self.delete_hooks_by_policy(&tasks, "HookSucceeded");
        Ok(runs)
    }

    fn delete_hooks_by_policy(&mut self, tasks: &[(Phase, i64, Value)], policy: &'static str) {
        for (_, _, obj) in tasks {
            if is_hook(obj) && delete_policies(obj).contains(policy) {
                self.remove(policy, &Key::of(obj));
            }
        }
    }

    /// The Application is deleted with the resources finalizer (cascade), as
    /// finalizeApplicationDeletion handles it: PreDelete hooks (3.3+), cascade deletion,
    /// PostDelete hooks, then the clean-up of PreDelete and PostDelete hooks by policy.
    /// Returns the Jobs run; an error where Argo CD would keep the Application in deletion.
    pub async fn delete(&mut self, opts: Deletion) -> Result<Vec<JobRun>, String> {
        let mut runs = Vec::new();
        let pre = self.manifests_of(Phase::PreDelete);
        if self.version.has_pre_delete() && !pre.is_empty() {
            let jobs = self.execute_hooks(Phase::PreDelete, &pre);
            if !opts.pre_delete_race {
                for job in jobs {
                    runs.push(self.run_delete_job(Phase::PreDelete, &job).await?);
                }
            }
        }
        // Cascade: everything the Application tracks, its hooks included.
        for key in self.tracked.clone() {
            self.remove("cascade", &key);
        }
        let post = self.manifests_of(Phase::PostDelete);
        if !post.is_empty() {
            let jobs = self.execute_hooks(Phase::PostDelete, &post);
            for job in jobs {
                runs.push(self.run_delete_job(Phase::PostDelete, &job).await?);
            }
        }
        if self.version.has_pre_delete() {
            self.cleanup_hooks(Phase::PreDelete);
        }
        self.cleanup_hooks(Phase::PostDelete);
        Ok(runs)
    }

    fn manifests_of(&self, phase: Phase) -> Vec<Value> {
        self.manifests
            .iter()
            .filter(|o| is_delete_hook(o, phase, self.version))
            .cloned()
            .collect()
    }

    /// executeHooks: every hook of the kind that is not live is created, in one pass; returns
    /// the Jobs among them.
    fn execute_hooks(&mut self, phase: Phase, hooks: &[Value]) -> Vec<Value> {
        for obj in hooks {
            if self.live(&Key::of(obj)).is_none() {
                self.create(phase, obj);
            }
        }
        hooks.iter().filter(|o| kind(o) == "Job").cloned().collect()
    }

    async fn run_delete_job(&mut self, phase: Phase, job: &Value) -> Result<JobRun, String> {
        match self.run_job(phase, job).await {
            Ok(run) if run.output.success() => Ok(run),
            other => Err(format!(
                "{phase:?} Job {} failed (Argo CD keeps the Application in deletion and retries): {}",
                name(job),
                describe(&other)
            )),
        }
    }

    /// cleanupHooks: the live hooks of the kind, their aggregated health (a Job's by its
    /// status, every other kind healthy), and deletion of those whose policy matches it.
    fn cleanup_hooks(&mut self, phase: Phase) {
        let hooks: Vec<(Key, Value)> = self
            .tracked
            .iter()
            .filter_map(|k| self.live(k).map(|v| (k.clone(), v)))
            .filter(|(_, v)| is_delete_hook(v, phase, self.version))
            .collect();
        let degraded = hooks
            .iter()
            .any(|(_, v)| v.pointer("/status/failed").is_some());
        let progressing = hooks.iter().any(|(_, v)| {
            kind(v) == "Job"
                && v.pointer("/status/succeeded").is_none()
                && v.pointer("/status/failed").is_none()
        });
        for (key, obj) in hooks {
            let policies = delete_policies(&obj);
            if (degraded && policies.contains("HookFailed"))
                || (!degraded && !progressing && policies.contains("HookSucceeded"))
            {
                self.remove(
                    if degraded {
                        "HookFailed"
                    } else {
                        "HookSucceeded"
                    },
                    &key,
                );
            }
        }
    }

    async fn run_job(&mut self, phase: Phase, job: &Value) -> Result<JobRun, String> {
        let run = run_job(self.world, phase, job, &self.manifests).await?;
        // The Job's status, for health (cleanupHooks).
        if self.live(&Key::of(job)).is_some() {
            let mut done = job.clone();
            done["status"] = if run.output.success() {
                json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
            } else {
                json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True"}]})
            };
            self.world.kube.seed(done);
        }
        self.steps.push(Step::Ran(Box::new(run.clone())));
        Ok(run)
    }

    /// The Application's objects still live.
    pub fn tracked(&self) -> &BTreeSet<Key> {
        &self.tracked
    }
}

/// Argo CD reads manifests with sigs.k8s.io/yaml, a YAML 1.1 parser, where an unquoted `0444`
/// is the octal number 292; `helm template`'s output is parsed here as YAML 1.2, where it is a
/// string. File modes (`defaultMode`, `mode`) are the chart's only such values.
fn yaml_1_1_octal(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                let octal = child
                    .as_str()
                    .filter(|s| s.len() > 1 && s.starts_with('0'))
                    .and_then(|s| i64::from_str_radix(&s[1..], 8).ok());
                match octal {
                    Some(n) if k == "defaultMode" || k == "mode" => *child = json!(n),
                    _ => yaml_1_1_octal(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(yaml_1_1_octal),
        _ => {}
    }
}

fn describe(run: &Result<JobRun, String>) -> String {
    match run {
        Ok(run) => format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}\ndenied: {:?}",
            run.output.code, run.output.stdout, run.output.stderr, run.denied
        ),
        Err(why) => why.clone(),
    }
}
