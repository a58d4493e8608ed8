//! The stand-in's state (objects, their field managers, the global resource
//! version) and the semantics of every verb on it. No HTTP here: the server
//! module turns requests into calls on [`Store`] and its results into
//! responses.
//!
//! Its parts: the types and direct access here, the writes (`write.rs`), server-side apply
//! (`apply.rs`), storing a write and the Deployment controller (`commit.rs`), field
//! ownership (`ownership.rs`), object checks and normalization (`object.rs`), strategic
//! merge patch (`strategic.rs`) and list selectors (`selector.rs`).

mod apply;
mod commit;
mod object;
mod ownership;
mod selector;
mod strategic;
mod write;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::fields::{self, FieldSet};
use super::resources::ResourceType;
use super::status::ApiError;
use ownership::render;
use selector::{parse_selector, SelectorKind};

/// `Apply` sorts before `Update`, which is also the order of `managedFields`
/// entries in the real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Like the real server, a manager that both applies and updates has two
/// independent entries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ManagerKey {
    manager: String,
    operation: Operation,
}

impl ManagerKey {
    /// How conflict messages name a manager (apiserver `printManager`).
    fn printable(&self, api_version: &str) -> String {
        match self.operation {
            Operation::Apply => format!("{:?}", self.manager),
            Operation::Update => format!("{:?} using {api_version}", self.manager),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    fields: FieldSet,
    api_version: String,
    /// Filled in by [`Store::commit`], which alone knows whether it moves.
    time: String,
}

type Managers = BTreeMap<ManagerKey, Entry>;

#[derive(Debug, Clone)]
struct Stored {
    /// The object without `metadata.managedFields`; those are rendered from
    /// `managers` on the way out.
    obj: Value,
    managers: Managers,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
}

impl Key {
    fn new(rt: &ResourceType, namespace: &str, name: &str) -> Key {
        Key {
            api_version: rt.api_version(),
            kind: rt.kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// Who writes, where, and whether for real.
pub(crate) struct Write<'a> {
    pub rt: &'static ResourceType,
    pub namespace: &'a str,
    pub manager: String,
    pub dry_run: bool,
}

#[derive(Debug)]
pub(crate) struct Outcome {
    pub status: u16,
    pub body: Value,
    pub changed: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum PatchKind {
    Merge,
    Strategic,
    Json,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    objects: BTreeMap<Key, Stored>,
    /// The global resource version, as etcd's revision: moves once per real change.
    revision: u64,
    /// uids are a counter, so that two runs of the same test produce the same
    /// snapshot.
    uids: u64,
    /// The Deployment controller, when enabled ([`Store::enable_rollouts`]): how long a
    /// rollout takes, and the rollouts in progress (generation, when it started).
    rollout_delay: Option<std::time::Duration>,
    rollouts: BTreeMap<Key, (i64, std::time::Instant)>,
}

/// Server-maintained metadata, never taken from a request body.
const SERVER_META: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

impl Store {
    // ----- direct access, for test code -------------------------------------------------

    pub fn seed(&mut self, mut obj: Value) {
        let field = |obj: &Value, ptr: &str| {
            obj.pointer(ptr)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("seeded object needs {ptr}: {obj}"))
        };
        let key = Key {
            api_version: field(&obj, "/apiVersion"),
            kind: field(&obj, "/kind"),
            namespace: field(&obj, "/metadata/namespace"),
            name: field(&obj, "/metadata/name"),
        };
        fields::strip_nulls(&mut obj);
        self.revision += 1;
        let uid = self.next_uid();
        let revision = self.revision.to_string();
        let meta = obj["metadata"]
            .as_object_mut()
            .expect("metadata is an object");
        meta.remove("managedFields");
        // A caller-chosen uid or timestamp is kept: tests of delete
        // preconditions or of ages need them.
        meta.entry("uid").or_insert(uid.into());
        meta.entry("creationTimestamp").or_insert(now().into());
        meta.insert("resourceVersion".into(), revision.into());
        meta.insert("generation".into(), 1.into());
        self.objects.insert(
            key,
            Stored {
                obj,
                managers: Managers::new(),
            },
        );
    }

    /// Removes an object as another client (Helm) would, bypassing the API's checks.
    pub fn remove_direct(&mut self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let key = Key {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        if self.objects.remove(&key).is_some() {
            self.revision += 1;
        }
    }

    pub fn get_direct(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let key = Key {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        self.objects.get(&key).map(render)
    }

    /// `namespace == ""` lists all namespaces.
    pub fn list_direct(&self, api_version: &str, kind: &str, namespace: &str) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(k, _)| {
                k.api_version == api_version
                    && k.kind == kind
                    && (namespace.is_empty() || k.namespace == namespace)
            })
            .map(|(_, s)| render(s))
            .collect()
    }

    /// Namespaces that hold objects.
    pub fn namespaces(&self) -> std::collections::BTreeSet<String> {
        self.objects.keys().map(|k| k.namespace.clone()).collect()
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn snapshot(&self) -> Value {
        Value::Array(self.objects.values().map(render).collect())
    }

    // ----- reads -----------------------------------------------------------------------

    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Key::new(rt, namespace, name))
            .map(render)
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Value, ApiError> {
        let labels = parse_selector(label_selector.unwrap_or(""), SelectorKind::Label)?;
        let field_reqs = parse_selector(field_selector.unwrap_or(""), SelectorKind::Field)?;
        let api_version = rt.api_version();
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|(k, _)| {
                k.api_version == api_version
                    && k.kind == rt.kind
                    && namespace.is_none_or(|ns| k.namespace == ns)
            })
            .filter(|(k, s)| {
                let label = |key: &str| {
                    s.obj
                        .pointer("/metadata/labels")
                        .and_then(|l| l.get(key))
                        .and_then(Value::as_str)
                };
                let field = |key: &str| match key {
                    "metadata.name" => Some(k.name.as_str()),
                    _ => Some(k.namespace.as_str()),
                };
                labels.iter().all(|r| r.matches(label))
                    && field_reqs.iter().all(|r| r.matches(field))
            })
            .map(|(_, s)| render(s))
            .collect();
        Ok(json!({
            "kind": format!("{}List", rt.kind),
            "apiVersion": api_version,
            "metadata": {"resourceVersion": self.revision.to_string()},
            "items": items,
        }))
    }
}

fn uid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// RFC 3339 UTC, second precision, like `metav1.Time`.
pub(crate) fn now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_time(secs)
}

pub(crate) fn format_time(secs: u64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
