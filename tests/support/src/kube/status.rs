//! Kubernetes `Status` error bodies, worded like the real apiserver's so that
//! clients (kube-rs, kubectl) and assertions on messages see what they would
//! see against a cluster.

use serde_json::{json, Map, Value};

use super::resources::ResourceType;
use super::validate::FieldError;

#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String) -> Self {
        ApiError {
            code,
            reason,
            message,
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn body(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }

    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", rt.qualified_resource()),
        )
        .with_details(resource_details(rt, name))
    }

    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", rt.qualified_resource()),
        )
        .with_details(resource_details(rt, name))
    }

    /// The optimistic-concurrency failure (`resourceVersion` is stale) and
    /// failed delete preconditions share this shape in the real server.
    pub fn conflict(rt: &ResourceType, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                rt.qualified_resource()
            ),
        )
        .with_details(resource_details(rt, name))
    }

    pub fn stale(rt: &ResourceType, name: &str) -> Self {
        Self::conflict(
            rt,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// Server-side apply conflicts: one cause per field, message as built by
    /// the apiserver's field manager.
    pub fn apply_conflict(conflicts: &[(String, String)]) -> Self {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(manager, field)| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {manager}"),
                    "field": field,
                })
            })
            .collect();
        let message = if let [(manager, field)] = conflicts {
            format!("Apply failed with 1 conflict: conflict with {manager}: {field}")
        } else {
            let mut by_manager: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
            for (manager, field) in conflicts {
                by_manager.entry(manager).or_default().push(field);
            }
            let lines: Vec<String> = by_manager
                .iter()
                .flat_map(|(manager, fields)| {
                    std::iter::once(format!("conflicts with {manager}:"))
                        .chain(fields.iter().map(|f| format!("- {f}")))
                })
                .collect();
            format!(
                "Apply failed with {} conflicts: {}",
                conflicts.len(),
                lines.join("\n")
            )
        };
        Self::new(409, "Conflict", message).with_details(json!({ "causes": causes }))
    }

    pub fn invalid(rt: &ResourceType, name: &str, errors: &[FieldError]) -> Self {
        Self::invalid_kind(&rt.qualified_kind(), rt.group, name, errors)
    }

    /// `Kind "name" is invalid: ...`; also used for request options, which the
    /// real server validates as kind `PatchOptions.meta.k8s.io` and similar.
    pub fn invalid_kind(
        qualified_kind: &str,
        group: &str,
        name: &str,
        errors: &[FieldError],
    ) -> Self {
        let rendered: Vec<String> = errors.iter().map(FieldError::to_string).collect();
        let aggregate = match rendered.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.cause_type(), "message": e.body(), "field": e.field}))
            .collect();
        let mut details = Map::new();
        details.insert("name".into(), name.into());
        if !group.is_empty() {
            details.insert("group".into(), group.into());
        }
        let kind = qualified_kind.split('.').next().unwrap_or(qualified_kind);
        details.insert("kind".into(), kind.into());
        details.insert("causes".into(), causes.into());
        Self::new(
            422,
            "Invalid",
            format!("{qualified_kind} \"{name}\" is invalid: {aggregate}"),
        )
        .with_details(Value::Object(details))
    }

    /// A 422 without field causes, as the real server sends when a JSON patch
    /// cannot be applied.
    pub fn unprocessable(message: String) -> Self {
        Self::new(422, "Invalid", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into())
    }

    /// POST/PUT bodies the stand-in cannot read (protobuf, YAML, CBOR).
    pub fn unsupported_body_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type}) - accepted media types include: application/json"
            ),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type}) - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, \
                 application/strategic-merge-patch+json"
            ),
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::not_served("the server does not allow this method on the requested resource")
    }

    /// 405 for what the real server does but the stand-in deliberately does
    /// not (watch, deletecollection), so a test fails loudly instead of hanging.
    pub fn not_served(message: &str) -> Self {
        Self::new(405, "MethodNotAllowed", message.into())
    }

    pub fn no_such_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
        )
        .with_details(json!({}))
    }
}

fn resource_details(rt: &ResourceType, name: &str) -> Value {
    let mut details = Map::new();
    details.insert("name".into(), name.into());
    if !rt.group.is_empty() {
        details.insert("group".into(), rt.group.into());
    }
    // The real server puts the resource (plural), not the kind, here.
    details.insert("kind".into(), rt.plural.into());
    Value::Object(details)
}

/// The body of a successful delete.
pub(crate) fn delete_success(rt: &ResourceType, name: &str, uid: &str) -> Value {
    let mut details = resource_details(rt, name);
    details["uid"] = uid.into();
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}
