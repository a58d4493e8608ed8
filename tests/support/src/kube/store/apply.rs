//! Server-side apply on a [`Store`]: field ownership per manager, conflicts, `force`
//! takeover, and removal of the fields a manager stops applying.

use serde_json::{json, Value};

use super::super::fields::{self, FieldSet};
use super::super::status::ApiError;
use super::super::validate::FieldError;
use super::object::{
    check_name, check_namespace, check_preconditions, meta_str, normalize, remove_status,
    strip_server_meta,
};
use super::{Entry, Key, ManagerKey, Managers, Operation, Outcome, Store, Stored, Write};

impl Store {
    pub fn apply(
        &mut self,
        w: &Write,
        name: &str,
        body: &[u8],
        force: bool,
    ) -> Result<Outcome, ApiError> {
        let mut applied = applied_config(w, name, body)?;
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
        take_conflicts(w, &mut managers, &actor, &current, &merged, force)?;
        drop_unapplied(&managers, &actor, &applied_fields, &mut merged);
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
}

/// The apply configuration: a JSON object of the URL's apiVersion, kind, name and namespace.
fn applied_config(w: &Write, name: &str, body: &[u8]) -> Result<Value, ApiError> {
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
    Ok(applied)
}

/// (a) Fields this apply changes that someone else owns: a conflict, or with `force` taken
/// from their owners.
fn take_conflicts(
    w: &Write,
    managers: &mut Managers,
    actor: &ManagerKey,
    current: &Value,
    merged: &Value,
    force: bool,
) -> Result<(), ApiError> {
    let conflicts: Vec<(ManagerKey, fields::Path)> = managers
        .iter()
        .filter(|(k, _)| *k != actor)
        .flat_map(|(k, e)| e.fields.iter().map(move |p| (k, p)))
        .filter(|(_, p)| {
            fields::is_changed(fields::value_at(current, p), fields::value_at(merged, p))
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
    Ok(())
}

/// (c) Fields this manager applied before but no longer does go away, unless someone else
/// still owns them (or something beneath them).
fn drop_unapplied(
    managers: &Managers,
    actor: &ManagerKey,
    applied_fields: &FieldSet,
    merged: &mut Value,
) {
    let previously = managers
        .get(actor)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for dropped in previously.difference(applied_fields) {
        if applied_fields.iter().any(|p| fields::related(p, dropped)) {
            continue;
        }
        let kept_by_others = managers
            .iter()
            .any(|(k, e)| k != actor && e.fields.iter().any(|p| p.starts_with(dropped)));
        if !kept_by_others {
            fields::remove_at(merged, dropped);
        }
    }
}
