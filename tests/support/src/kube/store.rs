//! The stand-in's state (objects, their field managers, the global resource
//! version) and the semantics of every verb on it. No HTTP here: the server
//! module turns requests into calls on [`Store`] and its results into
//! responses.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::fields::{self, FieldSet};
use super::resources::ResourceType;
use super::status::{self, ApiError};
use super::validate::{self, FieldError};

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

    // ----- writes ----------------------------------------------------------------------

    pub fn create(&mut self, w: &Write, body: &[u8]) -> Result<Outcome, ApiError> {
        let mut obj = parse_object(body)?;
        check_type_meta(w.rt, &mut obj)?;
        check_namespace(w, &mut obj)?;
        if meta_str(&obj, "name").is_empty() {
            let prefix = meta_str(&obj, "generateName");
            if !prefix.is_empty() {
                let name = self.generate_name(w, &prefix);
                obj["metadata"]["name"] = name.into();
            }
        }
        let name = meta_str(&obj, "name");
        strip_server_meta(&mut obj);
        if w.rt.has_status {
            remove_status(&mut obj);
        }
        normalize(&mut obj);
        let actor = ManagerKey {
            manager: w.manager.clone(),
            operation: Operation::Update,
        };
        let mut managers = Managers::new();
        take_updated_fields(&mut managers, None, &obj, &actor, &w.rt.api_version());
        self.commit(w, &name, None, Stored { obj, managers }, &actor)
    }

    pub fn replace(&mut self, w: &Write, name: &str, body: &[u8]) -> Result<Outcome, ApiError> {
        let mut obj = parse_object(body)?;
        check_type_meta(w.rt, &mut obj)?;
        check_name(w.rt, name, &obj)?;
        check_namespace(w, &mut obj)?;
        let old = self.existing(w, name)?;
        self.replace_with(w, name, old, obj)
    }

    /// The common end of PUT and non-apply PATCH: preconditions from the body, ownership
    /// records, server-owned metadata and status kept, then the update.
    fn replace_with(
        &mut self,
        w: &Write,
        name: &str,
        old: Stored,
        mut doc: Value,
    ) -> Result<Outcome, ApiError> {
        check_preconditions(
            w.rt,
            name,
            &old.obj,
            &meta_str(&doc, "uid"),
            &meta_str(&doc, "resourceVersion"),
        )?;
        let managers = sent_managers(&mut doc, &old)?;
        strip_server_meta(&mut doc);
        if w.rt.has_status {
            keep_status(&mut doc, &old.obj);
        }
        normalize(&mut doc);
        self.update(w, name, old, doc, managers)
    }

    pub fn patch(
        &mut self,
        w: &Write,
        name: &str,
        kind: PatchKind,
        body: &[u8],
    ) -> Result<Outcome, ApiError> {
        let old = self.existing(w, name)?;
        // Patches apply to the object as clients see it, managedFields included.
        let mut doc = render(&old);
        match kind {
            PatchKind::Merge | PatchKind::Strategic => {
                let patch: Value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                if !patch.is_object() {
                    return Err(ApiError::bad_request(format!(
                        "the patch must be a JSON object, not {}",
                        validate::json_type(&patch)
                    )));
                }
                if let PatchKind::Merge = kind {
                    json_patch::merge(&mut doc, &patch);
                } else {
                    strategic_merge(&mut doc, &patch);
                }
            }
            PatchKind::Json => {
                let patch: json_patch::Patch = serde_json::from_slice(body).map_err(|e| {
                    ApiError::bad_request(format!("error decoding JSON patch: {e}"))
                })?;
                json_patch::patch(&mut doc, &patch)
                    .map_err(|e| ApiError::unprocessable(e.to_string()))?;
            }
        }
        if !doc.is_object() || !doc["metadata"].is_object() {
            return Err(ApiError::bad_request(
                "the patched object is not a Kubernetes object",
            ));
        }
        if doc["apiVersion"] != old.obj["apiVersion"] || doc["kind"] != old.obj["kind"] {
            return Err(ApiError::bad_request(
                "a patch may not change apiVersion or kind",
            ));
        }
        check_name(w.rt, name, &doc)?;
        check_namespace(w, &mut doc)?;
        // A resourceVersion in the patch is an optimistic-concurrency precondition.
        self.replace_with(w, name, old, doc)
    }

    pub fn apply(
        &mut self,
        w: &Write,
        name: &str,
        body: &[u8],
        force: bool,
    ) -> Result<Outcome, ApiError> {
        let mut applied: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "error decoding YAML: {e} (the stand-in accepts apply configurations as JSON only)"
            ))
        })?;
        if !applied.is_object() {
            return Err(ApiError::bad_request(
                "an apply configuration must be an object",
            ));
        }
        let mut errs = Vec::new();
        for (field, want) in [
            ("apiVersion", w.rt.api_version()),
            ("kind", w.rt.kind.to_owned()),
        ] {
            let got = applied.get(field).and_then(Value::as_str).unwrap_or("");
            if got != want {
                errs.push(FieldError::invalid(
                    field,
                    got,
                    format!("must be {want:?} for {}", w.rt.qualified_resource()),
                ));
            }
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid(w.rt, name, &errs));
        }
        check_name(w.rt, name, &applied)?;
        check_namespace(w, &mut applied)?;
        let key = Key::new(w.rt, w.namespace, name);
        let old = self.objects.get(&key).cloned();
        if let Some(old) = &old {
            check_preconditions(
                w.rt,
                name,
                &old.obj,
                &meta_str(&applied, "uid"),
                &meta_str(&applied, "resourceVersion"),
            )?;
        }
        strip_server_meta(&mut applied);
        fields::strip_nulls(&mut applied);
        if w.rt.has_status {
            remove_status(&mut applied);
        }
        let applied_fields = fields::leaves(&applied);
        let actor = ManagerKey {
            manager: w.manager.clone(),
            operation: Operation::Apply,
        };

        let current = match &old {
            Some(old) => old.obj.clone(),
            None => json!({
                "apiVersion": w.rt.api_version(),
                "kind": w.rt.kind,
                "metadata": {"name": name, "namespace": w.namespace},
            }),
        };
        let mut merged = current.clone();
        fields::apply_merge(&mut merged, &applied);
        normalize(&mut merged);
        let mut managers = old.as_ref().map(|o| o.managers.clone()).unwrap_or_default();

        // (a) Fields this apply changes that someone else owns.
        let conflicts: Vec<(ManagerKey, fields::Path)> = managers
            .iter()
            .filter(|(k, _)| **k != actor)
            .flat_map(|(k, e)| e.fields.iter().map(move |p| (k, p)))
            .filter(|(_, p)| {
                fields::is_changed(fields::value_at(&current, p), fields::value_at(&merged, p))
            })
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        if !conflicts.is_empty() {
            if !force {
                let api_version = w.rt.api_version();
                let described: Vec<(String, String)> = conflicts
                    .iter()
                    .map(|(k, p)| (k.printable(&api_version), fields::display(p)))
                    .collect();
                return Err(ApiError::apply_conflict(&described));
            }
            for (k, p) in &conflicts {
                if let Some(e) = managers.get_mut(k) {
                    e.fields.remove(p);
                }
            }
        }

        // (c) Fields this manager applied before but no longer does go away,
        // unless someone else still owns them (or something beneath them).
        let previously = managers
            .get(&actor)
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        for dropped in previously.difference(&applied_fields) {
            if applied_fields.iter().any(|p| fields::related(p, dropped)) {
                continue;
            }
            let kept_by_others = managers
                .iter()
                .any(|(k, e)| *k != actor && e.fields.iter().any(|p| p.starts_with(dropped)));
            if !kept_by_others {
                fields::remove_at(&mut merged, dropped);
            }
        }
        normalize(&mut merged);

        // (d) The manager now owns exactly what it applied.
        let time = managers
            .get(&actor)
            .map(|e| e.time.clone())
            .unwrap_or_default();
        managers.insert(
            actor.clone(),
            Entry {
                fields: applied_fields,
                api_version: w.rt.api_version(),
                time,
            },
        );
        self.commit(
            w,
            name,
            old,
            Stored {
                obj: merged,
                managers,
            },
            &actor,
        )
    }

    pub fn delete(&mut self, w: &Write, name: &str, body: &[u8]) -> Result<Outcome, ApiError> {
        let old = self.existing(w, name)?;
        let options: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
        };
        let text = |ptr: &str| {
            options
                .pointer(ptr)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        check_preconditions(
            w.rt,
            name,
            &old.obj,
            &text("/preconditions/uid"),
            &text("/preconditions/resourceVersion"),
        )?;
        // kube-rs sends dryRun in the DeleteOptions body rather than the query.
        let dry_run = w.dry_run
            || options["dryRun"]
                .as_array()
                .is_some_and(|v| v.iter().any(|x| x == "All"));
        if !dry_run {
            self.objects.remove(&Key::new(w.rt, w.namespace, name));
            self.revision += 1;
        }
        Ok(Outcome {
            status: 200,
            body: status::delete_success(w.rt, name, &meta_str(&old.obj, "uid")),
            changed: !dry_run,
        })
    }

    // ----- shared machinery ------------------------------------------------------------

    fn existing(&self, w: &Write, name: &str) -> Result<Stored, ApiError> {
        self.objects
            .get(&Key::new(w.rt, w.namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(w.rt, name))
    }

    /// PUT and non-apply PATCH: the writer takes the fields it changed.
    /// `managers` replaces the ownership records if the request rewrote them.
    fn update(
        &mut self,
        w: &Write,
        name: &str,
        old: Stored,
        obj: Value,
        managers: Option<Managers>,
    ) -> Result<Outcome, ApiError> {
        let actor = ManagerKey {
            manager: w.manager.clone(),
            operation: Operation::Update,
        };
        let mut managers = managers.unwrap_or_else(|| old.managers.clone());
        take_updated_fields(
            &mut managers,
            Some(&old.obj),
            &obj,
            &actor,
            &w.rt.api_version(),
        );
        self.commit(w, name, Some(old), Stored { obj, managers }, &actor)
    }

    /// Validates and stores `new` (already normalized, ownership computed),
    /// unless it is identical to `old` or this is a dry run.
    fn commit(
        &mut self,
        w: &Write,
        name: &str,
        old: Option<Stored>,
        mut new: Stored,
        actor: &ManagerKey,
    ) -> Result<Outcome, ApiError> {
        let errs = validate::object_meta(&new.obj).map_err(ApiError::bad_request)?;
        if !errs.is_empty() {
            return Err(ApiError::invalid(w.rt, name, &errs));
        }
        let key = Key::new(w.rt, w.namespace, name);
        if old.is_none() && self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(w.rt, name));
        }

        let now = now();
        {
            let meta = new.obj["metadata"]
                .as_object_mut()
                .expect("normalize guarantees metadata");
            match &old {
                Some(old) => {
                    for field in SERVER_META.iter().filter(|f| **f != "managedFields") {
                        if let Some(v) = old.obj["metadata"].get(*field) {
                            meta.insert((*field).into(), v.clone());
                        }
                    }
                }
                None => {
                    meta.insert("uid".into(), uid(self.uids + 1).into());
                    meta.insert("creationTimestamp".into(), now.clone().into());
                    meta.insert("generation".into(), 1.into());
                }
            }
        }
        for entry in new.managers.values_mut() {
            entry
                .fields
                .retain(|p| fields::value_at(&new.obj, p).is_some());
        }
        new.managers.retain(|_, e| !e.fields.is_empty());

        let content_changed = old.as_ref().is_none_or(|o| o.obj != new.obj);
        if let Some(old) = &old {
            let same_owners = old.managers.len() == new.managers.len()
                && old
                    .managers
                    .iter()
                    .zip(&new.managers)
                    .all(|((ka, a), (kb, b))| {
                        ka == kb && a.fields == b.fields && a.api_version == b.api_version
                    });
            if !content_changed && same_owners {
                return Ok(Outcome {
                    status: 200,
                    body: render(old),
                    changed: false,
                });
            }
            if without_meta_and_status(&old.obj) != without_meta_and_status(&new.obj) {
                let generation = old.obj["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                new.obj["metadata"]["generation"] = generation.into();
            }
        }

        // The writer's entry is stamped when it changed something; entries
        // that merely lost fields keep their time, as in the real server.
        for (k, entry) in new.managers.iter_mut() {
            let previous = old.as_ref().and_then(|o| o.managers.get(k));
            let writer_moved = k == actor
                && (content_changed || previous.is_none_or(|p| p.fields != entry.fields));
            if entry.time.is_empty() || writer_moved {
                entry.time = now.clone();
            }
        }

        let status = if old.is_some() { 200 } else { 201 };
        if w.dry_run {
            if old.is_none() {
                if let Some(meta) = new.obj["metadata"].as_object_mut() {
                    meta.remove("resourceVersion");
                }
            }
            return Ok(Outcome {
                status,
                body: render(&new),
                changed: false,
            });
        }
        self.revision += 1;
        if old.is_none() {
            self.uids += 1;
        }
        new.obj["metadata"]["resourceVersion"] = self.revision.to_string().into();
        let generation = new.obj["metadata"]["generation"].as_i64().unwrap_or(1);
        let moved = old
            .as_ref()
            .is_none_or(|o| o.obj["metadata"]["generation"].as_i64() != Some(generation));
        if self.rollout_delay.is_some() && w.rt.kind == "Deployment" && moved {
            self.rollouts
                .insert(key.clone(), (generation, std::time::Instant::now()));
        }
        let body = render(&new);
        self.objects.insert(key, new);
        Ok(Outcome {
            status,
            body,
            changed: true,
        })
    }

    /// Turns on the Deployment controller: a Deployment whose generation moves (a new
    /// template, a restart) reports the rollout as the real controller does only after
    /// `delay`: until then `status.observedGeneration` lags and the new replicas are not
    /// counted; then every wanted replica (`spec.replicas`, default 1) is updated, ready and
    /// available. Off by default: `status` stays as written.
    pub fn enable_rollouts(&mut self, delay: std::time::Duration) {
        self.rollout_delay = Some(delay);
    }

    /// Finish the rollouts whose time has come (called before every request is served).
    pub fn settle_rollouts(&mut self) {
        let Some(delay) = self.rollout_delay else {
            return;
        };
        let due: Vec<(Key, i64)> = self
            .rollouts
            .iter()
            .filter(|(_, (_, at))| at.elapsed() >= delay)
            .map(|(k, (g, _))| (k.clone(), *g))
            .collect();
        for (key, generation) in due {
            self.rollouts.remove(&key);
            let Some(stored) = self.objects.get_mut(&key) else {
                continue;
            };
            let replicas = stored.obj["spec"]["replicas"].as_i64().unwrap_or(1);
            self.revision += 1;
            stored.obj["status"] = serde_json::json!({
                "observedGeneration": generation,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            });
            stored.obj["metadata"]["resourceVersion"] = self.revision.to_string().into();
        }
    }

    fn next_uid(&mut self) -> String {
        self.uids += 1;
        uid(self.uids)
    }

    /// `generateName` plus five characters from the apiserver's alphabet,
    /// derived from a counter so runs are repeatable.
    fn generate_name(&self, w: &Write, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut seed = self.revision.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ self.uids;
        loop {
            let suffix: String = (0..5)
                .map(|i| ALPHABET[((seed >> (i * 5)) % ALPHABET.len() as u64) as usize] as char)
                .collect();
            let name = format!("{prefix}{suffix}");
            if !self
                .objects
                .contains_key(&Key::new(w.rt, w.namespace, &name))
            {
                return name;
            }
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
    }
}

/// Non-apply writes: the writer owns (operation Update) every leaf whose
/// value it changed, and every other manager loses the fields that changed.
fn take_updated_fields(
    managers: &mut Managers,
    old: Option<&Value>,
    new: &Value,
    actor: &ManagerKey,
    api_version: &str,
) {
    let changed_at = |p: &fields::Path| {
        fields::is_changed(
            old.and_then(|o| fields::value_at(o, p)),
            fields::value_at(new, p),
        )
    };
    let taken: FieldSet = fields::leaves(new)
        .into_iter()
        .filter(|p| changed_at(p))
        .collect();
    for (k, e) in managers.iter_mut() {
        if k != actor {
            e.fields.retain(|p| !changed_at(p));
        }
    }
    if !taken.is_empty() {
        managers
            .entry(actor.clone())
            .or_insert_with(|| Entry {
                fields: FieldSet::new(),
                api_version: api_version.to_owned(),
                time: String::new(),
            })
            .fields
            .extend(taken);
    }
}

/// Takes `metadata.managedFields` out of a PUT body or patched object. If the
/// client changed them, they replace the ownership records, as in the real
/// server (kubectl's client-side to server-side apply migration relies on
/// it); `[{}]` resets them. `None`: absent or unchanged.
fn sent_managers(obj: &mut Value, current: &Stored) -> Result<Option<Managers>, ApiError> {
    let Some(sent) = obj["metadata"]
        .as_object_mut()
        .and_then(|m| m.remove("managedFields"))
    else {
        return Ok(None);
    };
    let rendered = render(current)["metadata"]
        .get("managedFields")
        .cloned()
        .unwrap_or_else(|| json!([]));
    if sent.is_null() || sent == rendered {
        return Ok(None);
    }
    let Value::Array(entries) = sent else {
        return Err(ApiError::bad_request(
            "metadata.managedFields must be a list",
        ));
    };
    let mut managers = Managers::new();
    for e in &entries {
        let operation = match e["operation"].as_str() {
            Some("Apply") => Operation::Apply,
            Some("Update") => Operation::Update,
            _ => continue,
        };
        let Some(manager) = e["manager"].as_str() else {
            continue;
        };
        let entry = managers
            .entry(ManagerKey {
                manager: manager.to_owned(),
                operation,
            })
            .or_insert_with(|| Entry {
                fields: FieldSet::new(),
                api_version: e["apiVersion"].as_str().unwrap_or("v1").to_owned(),
                time: e["time"].as_str().unwrap_or("").to_owned(),
            });
        entry.fields.extend(fields::parse_fields_v1(&e["fieldsV1"]));
    }
    Ok(Some(managers))
}

fn render(stored: &Stored) -> Value {
    let mut obj = stored.obj.clone();
    if stored.managers.is_empty() {
        return obj;
    }
    let mut entries: Vec<(&ManagerKey, &Entry)> = stored.managers.iter().collect();
    entries.sort_by(|(ka, a), (kb, b)| {
        (ka.operation, &a.time, &ka.manager).cmp(&(kb.operation, &b.time, &kb.manager))
    });
    let managed: Vec<Value> = entries
        .into_iter()
        .map(|(k, e)| {
            json!({
                "manager": k.manager,
                "operation": k.operation.as_str(),
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields::fields_v1(&e.fields),
            })
        })
        .collect();
    if let Some(meta) = obj["metadata"].as_object_mut() {
        meta.insert("managedFields".into(), managed.into());
    }
    obj
}

fn parse_object(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body as JSON: {e}")))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(ApiError::bad_request(format!(
            "the request body must be a JSON object, not {}",
            validate::json_type(&v)
        )))
    }
}

fn meta_str(obj: &Value, field: &str) -> String {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

/// POST and PUT: a missing apiVersion/kind is filled in; a different one is
/// rejected, as the server's decoder does.
fn check_type_meta(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    for (field, want, what) in [
        ("apiVersion", rt.api_version(), "API version"),
        ("kind", rt.kind.to_owned(), "kind"),
    ] {
        match obj.get(field).and_then(Value::as_str) {
            None | Some("") => obj[field] = want.into(),
            Some(got) if got == want => {}
            Some(got) => {
                return Err(ApiError::bad_request(format!(
                    "the {what} in the data ({got}) does not match the expected {what} ({want})"
                )))
            }
        }
    }
    Ok(())
}

/// The body names a different object than the URL. The real server answers
/// 400 here; the stand-in answers 422 Invalid (field `metadata.name`), the
/// contract this project's tests were written against.
fn check_name(rt: &ResourceType, url_name: &str, obj: &Value) -> Result<(), ApiError> {
    let name = meta_str(obj, "name");
    if name == url_name {
        return Ok(());
    }
    Err(ApiError::invalid(
        rt,
        url_name,
        &[FieldError::invalid(
            "metadata.name",
            &name,
            format!(
                "the name of the object ({name}) does not match the name on the URL ({url_name})"
            ),
        )],
    ))
}

fn check_namespace(w: &Write, obj: &mut Value) -> Result<(), ApiError> {
    if !obj["metadata"].is_object() {
        if obj.get("metadata").is_some_and(|m| !m.is_null()) {
            return Err(ApiError::bad_request("metadata must be an object"));
        }
        obj["metadata"] = json!({});
    }
    match meta_str(obj, "namespace").as_str() {
        "" => {
            obj["metadata"]["namespace"] = w.namespace.into();
            Ok(())
        }
        ns if ns == w.namespace => Ok(()),
        _ => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
    }
}

/// uid and resourceVersion preconditions (empty = none), worded as the real
/// server words them.
fn check_preconditions(
    rt: &ResourceType,
    name: &str,
    current: &Value,
    uid: &str,
    resource_version: &str,
) -> Result<(), ApiError> {
    let actual_uid = meta_str(current, "uid");
    if !uid.is_empty() && uid != actual_uid {
        return Err(ApiError::conflict(
            rt,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual_uid}"
            ),
        ));
    }
    let actual_rv = meta_str(current, "resourceVersion");
    if !resource_version.is_empty() && resource_version != actual_rv {
        return Err(ApiError::stale(rt, name));
    }
    Ok(())
}

fn strip_server_meta(obj: &mut Value) {
    if let Some(meta) = obj["metadata"].as_object_mut() {
        for field in SERVER_META {
            meta.remove(*field);
        }
    }
}

fn remove_status(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
}

fn keep_status(obj: &mut Value, old: &Value) {
    remove_status(obj);
    if let Some(status) = old.get("status") {
        obj["status"] = status.clone();
    }
}

/// What a typed server would store: no nulls, no empty label or annotation
/// maps (Go's `omitempty`), always a metadata map.
fn normalize(obj: &mut Value) {
    fields::strip_nulls(obj);
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if let Some(meta) = obj["metadata"].as_object_mut() {
        for field in ["labels", "annotations"] {
            if meta
                .get(field)
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
            {
                meta.remove(field);
            }
        }
    }
}

/// Generation moves only for changes outside `metadata` and `status`.
fn without_meta_and_status(obj: &Value) -> Vec<(&String, &Value)> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| *k != "metadata" && *k != "status")
                .collect()
        })
        .unwrap_or_default()
}

/// Strategic merge patch without schemas: maps merge as in a JSON merge
/// patch, lists are replaced whole; `$patch: replace|delete` on a map is
/// honoured and other `$` directives (`$setElementOrder/...`, `$retainKeys`)
/// are dropped.
fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = without_directives(patch);
            return;
        }
        Some("delete") => {
            *target = Value::Null;
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, pv) in p {
        if k.starts_with('$') {
            continue;
        }
        if pv.is_null() {
            t.remove(k);
        } else if pv.is_object() {
            let slot = t.entry(k.clone()).or_insert(Value::Null);
            strategic_merge(slot, pv);
            if slot.is_null() {
                t.remove(k);
            }
        } else {
            t.insert(k.clone(), without_directives(pv));
        }
    }
}

fn without_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), without_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_directives).collect()),
        other => other.clone(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SelectorKind {
    Label,
    Field,
}

enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

impl Requirement {
    fn key(&self) -> &str {
        match self {
            Requirement::Equals(k, _)
            | Requirement::NotEquals(k, _)
            | Requirement::Exists(k)
            | Requirement::Absent(k) => k,
        }
    }

    fn matches<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
        match self {
            Requirement::Equals(k, v) => lookup(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => lookup(k) != Some(v.as_str()),
            Requirement::Exists(k) => lookup(k).is_some(),
            Requirement::Absent(k) => lookup(k).is_none(),
        }
    }
}

/// Equality-based selectors (`a=b,c==d,e!=f`, and for labels `g`, `!h`).
/// Set-based label selectors (`in`, `notin`) are refused rather than
/// misread.
fn parse_selector(s: &str, kind: SelectorKind) -> Result<Vec<Requirement>, ApiError> {
    let mut reqs = Vec::new();
    for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let req = if let Some((k, v)) = term.split_once("!=") {
            Requirement::NotEquals(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            Requirement::Equals(k.trim().into(), v.trim().into())
        } else if kind == SelectorKind::Label && !term.contains([' ', '(']) {
            match term.strip_prefix('!') {
                Some(k) => Requirement::Absent(k.trim().into()),
                None => Requirement::Exists(term.into()),
            }
        } else {
            return Err(ApiError::bad_request(format!(
                "unable to parse requirement {term:?}: the stand-in supports only equality-based selectors"
            )));
        };
        if kind == SelectorKind::Field {
            let k = req.key();
            if k != "metadata.name" && k != "metadata.namespace" {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {k}"
                )));
            }
        }
        reqs.push(req);
    }
    Ok(reqs)
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
mod tests {
    use super::*;

    static CM: ResourceType = ResourceType {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        short_names: &[],
        has_status: false,
    };

    fn writer(manager: &str) -> Write<'static> {
        Write {
            rt: &CM,
            namespace: "ns",
            manager: manager.to_owned(),
            dry_run: false,
        }
    }

    fn cm(data: Value) -> Vec<u8> {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})
            .to_string()
            .into_bytes()
    }

    fn owners(store: &Store) -> Vec<(String, Value)> {
        let obj = store.get(&CM, "ns", "c").unwrap();
        obj["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["manager"].as_str().unwrap().to_owned(),
                    e["fieldsV1"].clone(),
                )
            })
            .collect()
    }

    #[test]
    fn lists_are_owned_and_conflict_as_a_whole() {
        let mut store = Store::default();
        let mut list = |manager: &str, items: Value, force: bool| {
            let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "x": items});
            store
                .apply(&writer(manager), "c", body.to_string().as_bytes(), force)
                .map(|o| o.changed)
        };
        assert!(list("helm", json!(["a"]), false).unwrap());
        assert!(
            list("irsa", json!(["a"]), false).unwrap(),
            "shared: managedFields changed"
        );
        let conflict = list("irsa", json!(["a", "b"]), false).unwrap_err();
        assert_eq!(
            conflict.message,
            r#"Apply failed with 1 conflict: conflict with "helm": .x"#
        );
        assert!(list("irsa", json!(["a", "b"]), true).unwrap());
        assert_eq!(owners(&store), [("irsa".to_owned(), json!({"f:x": {}}))]);
    }

    #[test]
    fn fields_removed_by_an_update_are_owned_by_nobody() {
        let mut store = Store::default();
        store
            .apply(
                &writer("irsa"),
                "c",
                &cm(json!({"a": "1", "b": "2"})),
                false,
            )
            .unwrap();
        let patch = json!({"data": {"a": null}}).to_string();
        store
            .patch(&writer("editor"), "c", PatchKind::Merge, patch.as_bytes())
            .unwrap();
        assert_eq!(
            owners(&store),
            [("irsa".to_owned(), json!({"f:data": {"f:b": {}}}))]
        );
        // Nobody owns `a` now, so re-applying it is no conflict.
        let again = store
            .apply(
                &writer("irsa"),
                "c",
                &cm(json!({"a": "1", "b": "2"})),
                false,
            )
            .unwrap();
        assert!(again.changed);
        assert_eq!(again.body["data"], json!({"a": "1", "b": "2"}));
    }

    #[test]
    fn several_conflicts_are_grouped_by_manager() {
        let mut store = Store::default();
        store
            .apply(
                &writer("helm"),
                "c",
                &cm(json!({"a": "1", "b": "1"})),
                false,
            )
            .unwrap();
        store
            .patch(
                &writer("kubectl"),
                "c",
                PatchKind::Merge,
                br#"{"data":{"c":"1"}}"#,
            )
            .unwrap();
        let err = store
            .apply(
                &writer("irsa"),
                "c",
                &cm(json!({"a": "2", "b": "2", "c": "2"})),
                false,
            )
            .unwrap_err();
        assert_eq!(
            err.message,
            "Apply failed with 3 conflicts: conflicts with \"helm\":\n- .data.a\n- .data.b\nconflicts with \"kubectl\" using v1:\n- .data.c"
        );
        assert_eq!(err.body()["details"]["causes"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_time(1_767_225_599), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn strategic_merge_merges_maps_replaces_lists_and_honours_directives() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "l": [1, 2], "r": {"x": 1}, "d": {"y": 1}});
        strategic_merge(
            &mut t,
            &json!({
                "a": {"c": null, "e": 3},
                "l": [3],
                "$setElementOrder/l": [3],
                "r": {"$patch": "replace", "z": 2},
                "d": {"$patch": "delete"},
            }),
        );
        assert_eq!(t, json!({"a": {"b": 1, "e": 3}, "l": [3], "r": {"z": 2}}));
    }

    #[test]
    fn selectors() {
        let labels = json!({"app": "epinio", "tier": "api"});
        let lookup = |k: &str| labels.get(k).and_then(Value::as_str);
        let ok = |s: &str| {
            parse_selector(s, SelectorKind::Label)
                .unwrap()
                .iter()
                .all(|r| r.matches(lookup))
        };
        assert!(ok("app=epinio,tier==api"));
        assert!(ok("app, !missing, tier!=web"));
        assert!(!ok("app=other"));
        assert!(!ok("!app"));
        assert!(parse_selector("app in (a,b)", SelectorKind::Label).is_err());
        assert!(parse_selector("spec.x=1", SelectorKind::Field).is_err());
        assert!(parse_selector("metadata.name=x", SelectorKind::Field).is_ok());
    }
}
