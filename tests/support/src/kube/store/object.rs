//! Checks and normalization of a written object: body decoding, type meta, name, namespace,
//! preconditions, server-owned metadata and status.

use serde_json::{json, Map, Value};

use super::super::fields;
use super::super::resources::ResourceType;
use super::super::status::ApiError;
use super::super::validate::{self, FieldError};
use super::{Write, SERVER_META};

pub(super) fn parse_object(body: &[u8]) -> Result<Value, ApiError> {
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

pub(super) fn meta_str(obj: &Value, field: &str) -> String {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

/// POST and PUT: a missing apiVersion/kind is filled in; a different one is
/// rejected, as the server's decoder does.
pub(super) fn check_type_meta(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
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
pub(super) fn check_name(rt: &ResourceType, url_name: &str, obj: &Value) -> Result<(), ApiError> {
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

pub(super) fn check_namespace(w: &Write, obj: &mut Value) -> Result<(), ApiError> {
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
pub(super) fn check_preconditions(
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

pub(super) fn strip_server_meta(obj: &mut Value) {
    if let Some(meta) = obj["metadata"].as_object_mut() {
        for field in SERVER_META {
            meta.remove(*field);
        }
    }
}

pub(super) fn remove_status(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
}

pub(super) fn keep_status(obj: &mut Value, old: &Value) {
    remove_status(obj);
    if let Some(status) = old.get("status") {
        obj["status"] = status.clone();
    }
}

/// What a typed server would store: no nulls, no empty label or annotation
/// maps (Go's `omitempty`), always a metadata map.
pub(super) fn normalize(obj: &mut Value) {
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
pub(super) fn without_meta_and_status(obj: &Value) -> Vec<(&String, &Value)> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| *k != "metadata" && *k != "status")
                .collect()
        })
        .unwrap_or_default()
}
