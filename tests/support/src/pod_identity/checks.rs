//! The checks the real service makes: a role's ARN and trust policy, association ids, tags.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{invalid, Answer};

/// Whether a trust policy lets EKS Pod Identity assume the role: an `Allow` for the service
/// principal `pods.eks.amazonaws.com` with both `sts:AssumeRole` and `sts:TagSession`.
pub fn trust_admits_pod_identity(trust: &Value) -> bool {
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let statements = match &trust["Statement"] {
        Value::Array(a) => a.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        _ => Vec::new(),
    };
    statements.iter().any(|st| {
        let actions = list(&st["Action"]);
        let has = |a: &str| {
            actions
                .iter()
                .any(|x| x.eq_ignore_ascii_case(a) || x == "sts:*" || x == "*")
        };
        st["Effect"] == "Allow"
            && list(&st["Principal"]["Service"])
                .iter()
                .any(|p| p == "pods.eks.amazonaws.com")
            && has("sts:AssumeRole")
            && has("sts:TagSession")
    })
}

pub(super) fn valid_id(id: &str) -> bool {
    id.strip_prefix("a-").is_some_and(|rest| {
        rest.len() == 17
            && rest
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    })
}

/// `arn:<partition>:iam::<12 digits>:role/<path/>name` -> the role name.
pub fn role_name(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "iam", "", account, resource]
            if account.len() == 12 && account.chars().all(|c| c.is_ascii_digit()) =>
        {
            resource
                .strip_prefix("role/")
                .and_then(|r| r.rsplit('/').next())
                .filter(|n| !n.is_empty())
        }
        _ => None,
    }
}

pub(super) fn tags_of(body: &Value, cluster: &str) -> Result<BTreeMap<String, String>, Answer> {
    let Some(tags) = body.get("tags") else {
        return Ok(BTreeMap::new());
    };
    let map = tags
        .as_object()
        .ok_or_else(|| invalid("tags must be a map".into(), cluster))?;
    if map.len() > 50 {
        return Err(invalid(
            format!("at most 50 tags are allowed, got {}", map.len()),
            cluster,
        ));
    }
    map.iter()
        .map(|(k, v)| {
            if k.to_ascii_lowercase().starts_with("aws:") {
                return Err(invalid(
                    format!("tag keys may not start with aws: ({k})"),
                    cluster,
                ));
            }
            v.as_str()
                .map(|v| (k.clone(), v.to_string()))
                .ok_or_else(|| invalid(format!("tag {k} must be a string"), cluster))
        })
        .collect()
}
