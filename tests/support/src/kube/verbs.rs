//! The resource paths' verbs: get, list, create, replace, patch (every kind, and server-side
//! apply) and delete, with their query options, on the store.

use super::resources::{self, ResourceType};
use super::serve::{ok, Served};
use super::status::ApiError;
use super::store::{PatchKind, Store, Write};
use super::validate;
use super::{lock, RecordedRequest, Shared};

impl Shared {
    pub(super) fn resource(
        &self,
        rec: &RecordedRequest,
        body: &[u8],
        user_agent: Option<&str>,
        group: &str,
        version: &str,
        rest: &[&str],
    ) -> Result<Served, ApiError> {
        let (plural, namespace, name) = match rest {
            ["namespaces", ns, "serviceaccounts", name, "token"] if group.is_empty() => {
                return self.token_request(rec, ns, name);
            }
            ["namespaces", ns, plural] => (*plural, Some(*ns), None),
            ["namespaces", ns, plural, name] => (*plural, Some(*ns), Some(*name)),
            [plural] => (*plural, None, None),
            // Subresources, cluster-scoped kinds, Namespace objects.
            _ => return Err(ApiError::no_such_path()),
        };
        let rt = resources::by_plural(group, version, plural).ok_or_else(ApiError::no_such_path)?;
        let Some(namespace) = namespace else {
            return match rec.method.as_str() {
                "GET" => self.list(rec, rt, None),
                _ => Err(ApiError::method_not_allowed()),
            };
        };
        let media_type = media_type(rec);
        if matches!(rec.method.as_str(), "POST" | "PUT")
            && !matches!(media_type.as_str(), "" | "application/json" | "*/*")
        {
            return Err(ApiError::unsupported_body_type(&media_type));
        }
        let mut store = lock(&self.store);
        store.settle_rollouts();
        let served: Served = match (rec.method.as_str(), name) {
            ("GET", None) => {
                drop(store);
                return self.list(rec, rt, Some(namespace));
            }
            ("GET", Some(name)) => ok(store.get(rt, namespace, name)?),
            ("POST", None) => {
                let w = write_options(rec, rt, namespace, user_agent, "CreateOptions", false)?;
                store.create(&w, body)?.into()
            }
            ("PUT", Some(name)) => {
                let w = write_options(rec, rt, namespace, user_agent, "UpdateOptions", false)?;
                store.replace(&w, name, body)?.into()
            }
            ("PATCH", Some(name)) => patch(&mut store, rec, rt, namespace, name, user_agent, body)?,
            ("DELETE", Some(name)) => {
                let w = write_options(rec, rt, namespace, user_agent, "DeleteOptions", false)?;
                store.delete(&w, name, body)?.into()
            }
            ("DELETE", None) => {
                return Err(ApiError::not_served(
                    "deletecollection is not served by the Kubernetes stand-in",
                ))
            }
            _ => return Err(ApiError::method_not_allowed()),
        };
        Ok(served)
    }

    fn list(
        &self,
        rec: &RecordedRequest,
        rt: &ResourceType,
        namespace: Option<&str>,
    ) -> Result<Served, ApiError> {
        let param = |k: &str| rec.query.get(k).map(String::as_str);
        if matches!(param("watch"), Some("true" | "1")) {
            return Err(ApiError::not_served(
                "watch is not served by the Kubernetes stand-in",
            ));
        }
        let list = lock(&self.store).list(
            rt,
            namespace,
            param("labelSelector"),
            param("fieldSelector"),
        )?;
        Ok(ok(list))
    }
}

/// PATCH: server-side apply (`application/apply-patch+yaml`) or a merge, strategic merge or
/// JSON patch, by the body's media type.
fn patch(
    store: &mut Store,
    rec: &RecordedRequest,
    rt: &'static ResourceType,
    namespace: &str,
    name: &str,
    user_agent: Option<&str>,
    body: &[u8],
) -> Result<Served, ApiError> {
    let kind = match media_type(rec).as_str() {
        "application/apply-patch+yaml" => None,
        "application/merge-patch+json" => Some(PatchKind::Merge),
        "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
        "application/json-patch+json" => Some(PatchKind::Json),
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    let force = match rec.query.get("force").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid value for force: {other:?} (want true or false)"
            )))
        }
    };
    let w = write_options(
        rec,
        rt,
        namespace,
        user_agent,
        "PatchOptions",
        kind.is_none(),
    )?;
    match kind {
        None => Ok(store.apply(&w, name, body, force)?.into()),
        Some(_) if force => Err(ApiError::invalid_kind(
            "PatchOptions.meta.k8s.io",
            "meta.k8s.io",
            "",
            &[validate::FieldError::forbidden(
                "force",
                "may not be specified for non-apply patch",
            )],
        )),
        Some(kind) => Ok(store.patch(&w, name, kind, body)?.into()),
    }
}

/// The request body's media type, lower-case and without parameters (`""` when none).
fn media_type(rec: &RecordedRequest) -> String {
    rec.content_type
        .as_deref()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Query options shared by all writes. `options_kind` names the options type
/// in errors, as the real server does (`PatchOptions.meta.k8s.io "" is invalid`).
fn write_options<'a>(
    rec: &RecordedRequest,
    rt: &'static ResourceType,
    namespace: &'a str,
    user_agent: Option<&str>,
    options_kind: &str,
    apply: bool,
) -> Result<Write<'a>, ApiError> {
    let qualified = format!("{options_kind}.meta.k8s.io");
    let invalid =
        |e: validate::FieldError| ApiError::invalid_kind(&qualified, "meta.k8s.io", "", &[e]);
    let dry_run = match rec.query.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(invalid(validate::FieldError::invalid(
                "dryRun",
                other,
                "supported values: \"All\"",
            )))
        }
    };
    let manager = match rec.query.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) if m.len() > 128 => {
            return Err(invalid(validate::FieldError::invalid(
                "fieldManager",
                m,
                "must be no more than 128 characters",
            )))
        }
        Some(m) => m.clone(),
        None if apply => {
            return Err(ApiError::bad_request(format!(
                "{qualified} \"\" is invalid: fieldManager: Required value: is required for apply patch"
            )))
        }
        // The real server names an anonymous writer after its User-Agent.
        None => user_agent
            .and_then(|ua| ua.split('/').next())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_owned(),
    };
    Ok(Write {
        rt,
        namespace,
        manager,
        dry_run,
    })
}
