//! Strategic merge patch, without schemas.

use serde_json::{Map, Value};

/// Strategic merge patch without schemas: maps merge as in a JSON merge
/// patch, lists are replaced whole; `$patch: replace|delete` on a map is
/// honoured and other `$` directives (`$setElementOrder/...`, `$retainKeys`)
/// are dropped.
pub(super) fn strategic_merge(target: &mut Value, patch: &Value) {
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
