//! The writes but server-side apply: create, replace (PUT), patch (merge, strategic, JSON)
//! and delete, on a [`Store`].

use serde_json::{json, Value};

use super::super::status::{self, ApiError};
use super::super::validate;
use super::object::{
    check_name, check_namespace, check_preconditions, check_type_meta, keep_status, meta_str,
    normalize, parse_object, remove_status, strip_server_meta,
};
use super::ownership::{render, sent_managers, take_updated_fields};
use super::strategic::strategic_merge;
use super::{Key, ManagerKey, Managers, Operation, Outcome, PatchKind, Store, Stored, Write};

impl Store {
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
}
