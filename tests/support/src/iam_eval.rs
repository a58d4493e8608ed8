//! An IAM identity-policy evaluator for the tests: does a policy allow a request (action,
//! resource ARN, condition context)? It follows IAM's documented rules for what our policies
//! use, and refuses (panics on) anything else rather than guessing:
//! - `Action` matched case-insensitively, `Resource` case-sensitively, both with `*` and `?`;
//! - an explicit `Deny` wins; otherwise some `Allow` must match;
//! - every condition operator in a statement must hold; within one, every key must hold; a key
//!   holds when any of its request values matches any policy value; a key missing from the
//!   request fails a positive operator and passes a negated one (`...IfExists`: passes);
//! - `ArnEquals`/`ArnLike` compare the six ARN parts separately, each with wildcards.
//!
//! It exists because moto, outside S3, evaluates every request against `Resource: "*"` only.

use std::collections::BTreeMap;

use serde_json::Value;

/// One authorization request, as IAM sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub action: String,
    pub resource: String,
    pub context: BTreeMap<String, Vec<String>>,
}

impl Request {
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Request {
        Request {
            action: action.into(),
            resource: resource.into(),
            context: BTreeMap::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Request {
        self.context
            .entry(key.to_string())
            .or_default()
            .push(value.into());
        self
    }
}

/// `*` any run of characters, `?` any one character.
pub fn wildcard(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let norm = |s: &str| {
        if case_insensitive {
            s.to_ascii_lowercase()
        } else {
            s.to_string()
        }
    };
    let (p, t): (Vec<char>, Vec<char>) = (
        norm(pattern).chars().collect(),
        norm(text).chars().collect(),
    );
    // Iterative glob match with backtracking to the last `*`.
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn arn_like(pattern: &str, arn: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    p.len() == 6 && a.len() == 6 && p.iter().zip(&a).all(|(p, a)| wildcard(p, a, false))
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .unwrap_or_else(|| panic!("policy value {i} is not a string"))
                    .to_string()
            })
            .collect(),
        Value::Bool(b) => vec![b.to_string()],
        other => panic!("unsupported policy value {other}"),
    }
}

fn condition_holds(operator: &str, key: &str, wanted: &[String], req: &Request) -> bool {
    let (op, if_exists) = match operator.strip_suffix("IfExists") {
        Some(op) => (op, true),
        None => (operator, false),
    };
    let negated = op.contains("Not");
    let Some(actual) = req.context.get(key) else {
        return if_exists || negated;
    };
    let matches = |w: &str, a: &str| match op {
        "StringEquals" | "StringNotEquals" => w == a,
        "StringEqualsIgnoreCase" => w.eq_ignore_ascii_case(a),
        "StringLike" | "StringNotLike" => wildcard(w, a, false),
        "ArnEquals" | "ArnLike" | "ArnNotEquals" | "ArnNotLike" => arn_like(w, a),
        "Bool" => w == a,
        other => panic!("condition operator {other} is not supported by this evaluator"),
    };
    let any = actual.iter().any(|a| wanted.iter().any(|w| matches(w, a)));
    if negated {
        !any
    } else {
        any
    }
}

fn statement_matches(st: &Value, req: &Request) -> bool {
    for unsupported in ["NotAction", "NotResource", "NotPrincipal"] {
        assert!(
            st.get(unsupported).is_none(),
            "{unsupported} is not supported: {st}"
        );
    }
    let actions = strings(st.get("Action").expect("statement without Action"));
    let resources = strings(st.get("Resource").expect("statement without Resource"));
    if !actions.iter().any(|a| wildcard(a, &req.action, true)) {
        return false;
    }
    if !resources.iter().any(|r| wildcard(r, &req.resource, false)) {
        return false;
    }
    let Some(conditions) = st.get("Condition") else {
        return true;
    };
    conditions
        .as_object()
        .expect("Condition is an object")
        .iter()
        .all(|(operator, keys)| {
            keys.as_object()
                .expect("condition keys are an object")
                .iter()
                .all(|(key, values)| condition_holds(operator, key, &strings(values), req))
        })
}

fn statements(policy: &Value) -> Vec<&Value> {
    match &policy["Statement"] {
        Value::Array(items) => items.iter().collect(),
        one @ Value::Object(_) => vec![one],
        other => panic!("policy without statements: {other}"),
    }
}

/// Whether `policy` (an identity policy document) allows `req`.
pub fn allows(policy: &Value, req: &Request) -> bool {
    let matching: Vec<&Value> = statements(policy)
        .into_iter()
        .filter(|st| statement_matches(st, req))
        .collect();
    !matching.iter().any(|st| st["Effect"] == "Deny")
        && matching.iter().any(|st| st["Effect"] == "Allow")
}

/// Every action an `Allow` statement grants, as written (no wildcards expected).
pub fn granted_actions(policy: &Value) -> Vec<String> {
    statements(policy)
        .into_iter()
        .filter(|st| st["Effect"] == "Allow")
        .flat_map(|st| strings(&st["Action"]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards_and_case() {
        assert!(wildcard("iam:Get*", "IAM:GetRole", true));
        assert!(!wildcard("iam:Get*", "iam:ListRoles", true));
        assert!(wildcard(
            "arn:aws:iam::1:role/a?c",
            "arn:aws:iam::1:role/abc",
            false
        ));
        assert!(!wildcard(
            "arn:aws:iam::1:role/ABC",
            "arn:aws:iam::1:role/abc",
            false
        ));
        assert!(wildcard("*", "", false));
        assert!(!wildcard("a*b", "a", false));
        // `*` in an ARN pattern does not cross `:` for ArnLike, but does for Resource.
        assert!(wildcard("arn:aws:iam::*", "arn:aws:iam::1:role/x", false));
        assert!(!arn_like("arn:aws:iam::*:role", "arn:aws:iam::1:role/x:y"));
    }

    #[test]
    fn conditions_deny_by_default_and_deny_wins() {
        let p = json!({"Statement": [
            {"Effect": "Allow", "Action": "iam:AttachRolePolicy", "Resource": "arn:aws:iam::1:role/r",
             "Condition": {"ArnEquals": {"iam:PolicyARN": ["arn:aws:iam::1:policy/p"]}}},
            {"Effect": "Deny", "Action": "iam:*", "Resource": "arn:aws:iam::1:role/x"}
        ]});
        let attach = Request::new("iam:AttachRolePolicy", "arn:aws:iam::1:role/r");
        assert!(!allows(&p, &attach), "a missing condition key fails");
        assert!(allows(
            &p,
            &attach
                .clone()
                .with("iam:PolicyARN", "arn:aws:iam::1:policy/p")
        ));
        assert!(!allows(
            &p,
            &attach.with("iam:PolicyARN", "arn:aws:iam::1:policy/q")
        ));
        assert!(!allows(
            &p,
            &Request::new("iam:AttachRolePolicy", "arn:aws:iam::1:role/x")
        ));
        assert!(!allows(
            &p,
            &Request::new("iam:GetRole", "arn:aws:iam::1:role/r")
        ));
    }
}
