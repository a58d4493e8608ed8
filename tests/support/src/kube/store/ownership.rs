//! Field ownership: the fields a non-apply write takes, `managedFields` sent by a client, and
//! an object rendered with its `managedFields`.

use serde_json::{json, Value};

use super::super::fields::{self, FieldSet};
use super::super::status::ApiError;
use super::{Entry, ManagerKey, Managers, Operation, Stored};

/// Non-apply writes: the writer owns (operation Update) every leaf whose
/// value it changed, and every other manager loses the fields that changed.
pub(super) fn take_updated_fields(
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
pub(super) fn sent_managers(
    obj: &mut Value,
    current: &Stored,
) -> Result<Option<Managers>, ApiError> {
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

pub(super) fn render(stored: &Stored) -> Value {
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
