//! Object-metadata validation with the apiserver's rules and messages
//! (k8s.io/apimachinery `validation.IsDNS1123Subdomain`, `IsQualifiedName`,
//! `IsValidLabelValue`, `ValidateAnnotations`).

use std::fmt;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldErrorKind {
    Invalid(String),
    /// An invalid number, which the real server prints without quotes.
    InvalidNumber(i64),
    Required,
    TooLong(usize),
    Forbidden,
}

/// One `field.Error` of the real server: where, what kind, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub field: String,
    pub kind: FieldErrorKind,
    pub detail: String,
}

impl FieldError {
    pub fn invalid(field: &str, value: &str, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Invalid(value.into()),
            detail: detail.into(),
        }
    }

    pub fn invalid_number(field: &str, value: i64, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::InvalidNumber(value),
            detail: detail.into(),
        }
    }

    pub fn required(field: &str, detail: &str) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Required,
            detail: detail.into(),
        }
    }

    pub fn forbidden(field: &str, detail: &str) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Forbidden,
            detail: detail.into(),
        }
    }

    pub fn cause_type(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Invalid(_) | FieldErrorKind::InvalidNumber(_) => "FieldValueInvalid",
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::TooLong(_) => "FieldValueTooLong",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
        }
    }

    /// The message without the field, as in a Status cause.
    pub fn body(&self) -> String {
        match &self.kind {
            FieldErrorKind::Invalid(value) => format!("Invalid value: {value:?}: {}", self.detail),
            FieldErrorKind::InvalidNumber(value) => {
                format!("Invalid value: {value}: {}", self.detail)
            }
            FieldErrorKind::Required => format!("Required value: {}", self.detail),
            FieldErrorKind::TooLong(max) => format!("Too long: must have at most {max} bytes"),
            FieldErrorKind::Forbidden => format!("Forbidden: {}", self.detail),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Non-empty, first and last byte allowed by `allowed_edge`, every byte by
/// `allowed_inner`: the shape all the apiserver's name regexes share.
fn is_token(
    s: &str,
    allowed_inner: impl Fn(u8) -> bool,
    allowed_edge: impl Fn(u8) -> bool,
) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => {
            allowed_edge(first) && allowed_edge(last) && b.iter().all(|&c| allowed_inner(c))
        }
        _ => false,
    }
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

pub(crate) fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push("must be no more than 253 characters".to_owned());
    }
    let ok = value
        .split('.')
        .all(|label| is_token(label, |c| is_lower_alnum(c) || c == b'-', is_lower_alnum));
    if !ok {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_owned());
    }
    errs
}

fn is_qualified_name_part(s: &str) -> bool {
    is_token(
        s,
        |c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'),
        |c| c.is_ascii_alphanumeric(),
    )
}

pub(crate) fn qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )]
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_owned());
    }
    if !is_qualified_name_part(name) {
        errs.push(format!("name part {QUALIFIED_NAME_MSG}"));
    }
    errs
}

pub(crate) fn label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_owned());
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(LABEL_VALUE_MSG.to_owned());
    }
    errs
}

/// Validates `metadata` of an object about to be stored. Type errors (a label
/// that is not a string) are decode errors in the real server, reported as
/// `Err` so the caller can answer 400 rather than 422.
pub(crate) fn object_meta(obj: &Value) -> Result<Vec<FieldError>, String> {
    let mut errs = Vec::new();
    let meta = obj.get("metadata").and_then(Value::as_object);
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for msg in dns1123_subdomain(name) {
            errs.push(FieldError::invalid("metadata.name", name, msg));
        }
    }
    let labels = string_map(meta, "labels")?;
    for (k, v) in &labels {
        for msg in qualified_name(k) {
            errs.push(FieldError::invalid("metadata.labels", k, msg));
        }
        for msg in label_value(v) {
            errs.push(FieldError::invalid("metadata.labels", v, msg));
        }
    }
    let annotations = string_map(meta, "annotations")?;
    let mut total = 0;
    for (k, v) in &annotations {
        // Annotation keys are case-insensitive qualified names.
        for msg in qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid("metadata.annotations", k, msg));
        }
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError {
            field: "metadata.annotations".into(),
            kind: FieldErrorKind::TooLong(TOTAL_ANNOTATION_SIZE_LIMIT),
            detail: String::new(),
        });
    }
    Ok(errs)
}

fn string_map(
    meta: Option<&serde_json::Map<String, Value>>,
    key: &str,
) -> Result<Vec<(String, String)>, String> {
    let Some(v) = meta.and_then(|m| m.get(key)) else {
        return Ok(Vec::new());
    };
    let Some(m) = v.as_object() else {
        return Err(format!(
            "json: cannot unmarshal {} into Go struct field ObjectMeta.metadata.{key} of type map[string]string",
            json_type(v)
        ));
    };
    m.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            other => Err(format!(
                "json: cannot unmarshal {} into Go struct field ObjectMeta.metadata.{key} of type string",
                json_type(other)
            )),
        })
        .collect()
}

pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subdomains() {
        assert!(dns1123_subdomain("epinio-server").is_empty());
        assert!(dns1123_subdomain("a.b-c.d").is_empty());
        for bad in ["", "Upper", "-a", "a-", "a..b", "a_b", &"a".repeat(254)] {
            assert!(!dns1123_subdomain(bad).is_empty(), "{bad:?} accepted");
        }
    }

    #[test]
    fn qualified_names() {
        for good in [
            "eks.amazonaws.com/role-arn",
            "app.kubernetes.io/managed-by",
            "MyName",
            "a_b.c-d",
            &format!("{}/{}", "p".repeat(253), "n".repeat(63)),
        ] {
            assert!(qualified_name(good).is_empty(), "{good:?} rejected");
        }
        assert_eq!(qualified_name("/x"), vec!["prefix part must be non-empty"]);
        assert_eq!(
            qualified_name("a/b/c")[0],
            format!("a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")
        );
        assert_eq!(
            qualified_name("x/"),
            vec![
                "name part must be non-empty".to_owned(),
                format!("name part {QUALIFIED_NAME_MSG}")
            ]
        );
        assert_eq!(
            qualified_name(&"n".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
        assert!(!qualified_name("bad key!").is_empty());
        assert!(!qualified_name("Upper.Prefix/x").is_empty());
    }

    #[test]
    fn label_values() {
        assert!(label_value("").is_empty());
        assert!(label_value("epinio-irsa").is_empty());
        assert_eq!(
            label_value(&"v".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert_eq!(label_value("-x"), vec![LABEL_VALUE_MSG]);
    }

    #[test]
    fn meta_errors_are_worded_like_the_apiserver() {
        let errs =
            object_meta(&json!({"metadata": {"name": "ok", "annotations": {"bad key!": "v"}}}))
                .unwrap();
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            format!(
                "metadata.annotations: Invalid value: \"bad key!\": name part {QUALIFIED_NAME_MSG}"
            )
        );
        let errs = object_meta(&json!({"metadata": {}})).unwrap();
        assert_eq!(
            errs[0].to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
        // Upper-case prefixes are fine for annotations, not for labels.
        let errs = object_meta(&json!({"metadata": {"name": "a", "annotations": {"Example.COM/x": ""}, "labels": {"Example.COM/x": ""}}})).unwrap();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "metadata.labels");
        assert!(object_meta(&json!({"metadata": {"name": "a", "labels": {"x": 1}}})).is_err());
    }

    #[test]
    fn annotation_size_limit() {
        let big = "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        let errs =
            object_meta(&json!({"metadata": {"name": "a", "annotations": {"k": big}}})).unwrap();
        assert_eq!(
            errs[0].to_string(),
            "metadata.annotations: Too long: must have at most 262144 bytes"
        );
    }
}
