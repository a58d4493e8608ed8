//! An IAM identity-policy evaluator for the tests: does a policy allow a request (action,
//! resource ARN, condition context)? It follows IAM's documented rules for what it supports,
//! and panics, naming the culprit, on anything else rather than guess.
//!
//! Supported, with the AWS IAM User Guide page each rule comes from:
//! - `Effect` `Allow` or `Deny` (exact case); an explicit `Deny` wins, otherwise some `Allow`
//!   must apply (policy evaluation logic).
//! - `Action` or `NotAction` (exactly one): action names without regard to case, `*` and `?`
//!   anywhere. `NotAction` applies the statement to every action it does not match
//!   (`reference_policies_elements_notaction`).
//! - `Resource` or `NotResource` (exactly one), case-sensitive. `"*"` alone matches every
//!   resource. Elsewhere `*` and `?` match within one colon-separated segment: `?` never
//!   matches `:`, and a `*` matches `:` only when it is the last character of a segment
//!   (followed by `:` or the end of the pattern), which "can expand to match beyond the colon
//!   boundaries" (`reference_policies_elements_resource`). `NotResource` applies the statement
//!   to every resource it does not match (`reference_policies_elements_notresource`).
//! - `Condition`: operators AND, keys within an operator AND, a key's policy values OR, or NOR
//!   for a negated operator (`reference_policies_condition-logic-multiple-context-keys-or-values`).
//!   Condition key names match without regard to case (`reference_policies_elements_condition`).
//! - Operators (`reference_policies_elements_condition_operators`): `StringEquals`,
//!   `StringNotEquals`, `StringEqualsIgnoreCase`, `StringNotEqualsIgnoreCase`, `StringLike`,
//!   `StringNotLike` (`*`, `?`, case-sensitive), `ArnEquals`/`ArnLike` and
//!   `ArnNotEquals`/`ArnNotLike` (each pair identical: the six colon-separated parts compared
//!   one by one, each with `*` and `?`; the sixth is the rest of the ARN), `Bool`, each also
//!   as `...IfExists` and with a `ForAnyValue:` or `ForAllValues:` prefix; and `Null`, bare.
//! - A key missing from the request (or given no values): a positive operator fails, a negated
//!   one holds, `...IfExists` holds, `Null` `"true"` holds and `"false"` fails
//!   (`..._condition_operators`, "Important"); `ForAllValues:` holds and `ForAnyValue:` fails
//!   (unless `IfExists`), `ForAnyValue:StringNotEquals` included
//!   (`reference_policies_condition-single-vs-multi-valued-context-keys`, and its examples).
//! - A present key: `ForAnyValue:` holds when some request value satisfies the operator,
//!   `ForAllValues:` when every one does, where a request value satisfies a positive operator
//!   by matching some policy value and a negated one by matching none. A bare operator needs
//!   exactly one request value: the docs say multivalued keys require a set operator and do
//!   not say what a bare one does with several values, so that panics (this evaluator used to
//!   treat it as "any request value matches any policy value").
//!
//! Panics (whether or not the request has the key, and whether or not the statement applies
//! to the request, as every statement is checked before any is evaluated): any other operator
//! (`Numeric*`, `Date*`, `IpAddress`, `NotIpAddress`, `BinaryEquals`, misspelt or unknown
//! names), `NullIfExists`, a set prefix on `Null`, `Bool`/`Null` values other than
//! `true`/`false`, an `Arn*` value that is not six colon-separated parts, a policy variable
//! (`${...}`) in a resource or condition value, `Principal`/`NotPrincipal` or any other unknown
//! statement element, both or neither of `Action`/`NotAction` or `Resource`/`NotResource`.
//! At evaluation: a bare operator against several request values, and an empty-string request
//! value under a set operator or `Null` (the docs call it a "null data set" without saying
//! how it mixes with other values).
//!
//! It exists because moto, outside S3, evaluates every request against `Resource: "*"` only.

use std::collections::BTreeMap;

use serde_json::Value;

#[cfg(test)]
mod tests;

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

/// One element of a pattern: a character, `?` or `*`; `colon`: whether it may match `:`.
#[derive(Clone, Copy)]
enum Tok {
    Lit(char),
    One { colon: bool },
    Star { colon: bool },
}

/// Whether `tokens` match all of `text` (an NFA run: the set of pattern positions reached).
fn glob(tokens: &[Tok], text: &str) -> bool {
    let close = |reach: &mut Vec<bool>| {
        for i in 0..tokens.len() {
            if reach[i] && matches!(tokens[i], Tok::Star { .. }) {
                reach[i + 1] = true;
            }
        }
    };
    let mut reach = vec![false; tokens.len() + 1];
    reach[0] = true;
    close(&mut reach);
    for c in text.chars() {
        let mut next = vec![false; tokens.len() + 1];
        for (i, tok) in tokens.iter().enumerate().filter(|(i, _)| reach[*i]) {
            match *tok {
                Tok::Lit(l) if l == c => next[i + 1] = true,
                Tok::One { colon } if colon || c != ':' => next[i + 1] = true,
                Tok::Star { colon } if colon || c != ':' => next[i] = true,
                _ => {}
            }
        }
        close(&mut next);
        reach = next;
    }
    reach[tokens.len()]
}

/// A pattern's tokens. Plain (`resource` false): `*` and `?` match any character. In a
/// `Resource`, `?` never matches `:`, and `*` does only if it ends a segment (followed by `:`
/// or the end of the pattern): such a `*` "can expand to match beyond the colon boundaries".
fn tokens(pattern: &str, resource: bool) -> Vec<Tok> {
    let chars: Vec<char> = pattern.chars().collect();
    let ends_segment = |i: usize| chars.get(i + 1).is_none_or(|n| *n == ':');
    (chars.iter().enumerate())
        .map(|(i, c)| match c {
            '*' => Tok::Star {
                colon: !resource || ends_segment(i),
            },
            '?' => Tok::One { colon: !resource },
            c => Tok::Lit(*c),
        })
        .collect()
}

/// `*` any run of characters, `?` any one character (colons included).
pub fn wildcard(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    if case_insensitive {
        return wildcard(&pattern.to_lowercase(), &text.to_lowercase(), false);
    }
    glob(&tokens(pattern, false), text)
}

/// Whether a `Resource` pattern matches `arn` as IAM matches it: case-sensitive, `*` and `?`
/// within a colon-separated segment, save a segment-final `*` (see `tokens`).
pub fn resource_matches(pattern: &str, arn: &str) -> bool {
    glob(&tokens(pattern, true), arn)
}

/// `ArnEquals`/`ArnLike`: the six colon-separated parts compared one by one, each with `*`
/// and `?` (the sixth part is the rest of the ARN, colons included).
fn arn_like(pattern: &str, arn: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    p.len() == 6 && a.len() == 6 && p.iter().zip(&a).all(|(p, a)| wildcard(p, a, false))
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if !items.iter().any(Value::is_array) => {
            items.iter().flat_map(strings).collect()
        }
        Value::Bool(b) => vec![b.to_string()],
        other => panic!("unsupported policy value {other}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    Bare,
    AnyValue,
    AllValues,
}

/// What a condition operator compares, without `Not`, `IfExists` or a set prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    String,
    StringIgnoreCase,
    StringLike,
    /// `ArnEquals` and `ArnLike`, which "behave identically".
    Arn,
    Bool,
    Null,
}

/// A supported condition operator, taken apart.
#[derive(Debug, Clone, Copy)]
struct Operator {
    set: Set,
    cmp: Cmp,
    negated: bool,
    if_exists: bool,
}

/// Parses `name`, or panics naming it if this evaluator does not implement it faithfully.
fn operator(name: &str) -> Operator {
    let unsupported =
        || -> ! { panic!("condition operator {name} is not supported by this evaluator") };
    let (set, rest) = match name.split_once(':') {
        Some(("ForAnyValue", rest)) => (Set::AnyValue, rest),
        Some(("ForAllValues", rest)) => (Set::AllValues, rest),
        Some(_) => unsupported(),
        None => (Set::Bare, name),
    };
    let stripped = rest.strip_suffix("IfExists");
    let (rest, if_exists) = (stripped.unwrap_or(rest), stripped.is_some());
    let (cmp, negated) = match rest {
        "StringEquals" => (Cmp::String, false),
        "StringNotEquals" => (Cmp::String, true),
        "StringEqualsIgnoreCase" => (Cmp::StringIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (Cmp::StringIgnoreCase, true),
        "StringLike" => (Cmp::StringLike, false),
        "StringNotLike" => (Cmp::StringLike, true),
        "ArnEquals" | "ArnLike" => (Cmp::Arn, false),
        "ArnNotEquals" | "ArnNotLike" => (Cmp::Arn, true),
        "Bool" => (Cmp::Bool, false),
        "Null" if set == Set::Bare && !if_exists => (Cmp::Null, false),
        _ => unsupported(),
    };
    Operator {
        set,
        cmp,
        negated,
        if_exists,
    }
}

/// Panics unless every policy value of `key` under `op` is one this evaluator understands.
fn check_values(name: &str, op: Operator, key: &str, values: &[String]) {
    for v in values {
        let ok = match op.cmp {
            Cmp::Bool | Cmp::Null => v == "true" || v == "false",
            Cmp::Arn => v.splitn(6, ':').count() == 6,
            _ => true,
        };
        assert!(ok, "{name} on {key}: unsupported value {v:?}");
        assert!(
            !v.contains("${"),
            "{name} on {key}: policy variables are not supported ({v:?})"
        );
    }
}

/// Whether request value `actual` matches policy value `wanted` under a positive `cmp`.
fn matches_value(cmp: Cmp, wanted: &str, actual: &str) -> bool {
    match cmp {
        Cmp::String | Cmp::Bool => wanted == actual,
        Cmp::StringIgnoreCase => wanted.to_lowercase() == actual.to_lowercase(),
        Cmp::StringLike => wildcard(wanted, actual, false),
        Cmp::Arn => arn_like(wanted, actual),
        Cmp::Null => unreachable!("Null tests existence, it compares no values"),
    }
}

/// The request's values for condition key `key`, its name compared without regard to case.
fn request_values<'r>(req: &'r Request, key: &str) -> Vec<&'r str> {
    req.context
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(key))
        .flat_map(|(_, vs)| vs.iter().map(String::as_str))
        .collect()
}

/// Whether one key of one (already checked) condition operator holds for `req`.
fn key_holds(name: &str, op: Operator, key: &str, wanted: &[String], req: &Request) -> bool {
    let actual = request_values(req, key);
    assert!(
        (op.set == Set::Bare && op.cmp != Cmp::Null) || !actual.contains(&""),
        "{name} on {key}: an empty request value is a null data set IAM does not define here"
    );
    if op.cmp == Cmp::Null {
        return wanted.iter().any(|w| (w == "true") == actual.is_empty());
    }
    if actual.is_empty() {
        return match op.set {
            Set::AllValues => true,
            Set::AnyValue => op.if_exists,
            Set::Bare => op.if_exists || op.negated,
        };
    }
    let satisfies = |a: &&str| wanted.iter().any(|w| matches_value(op.cmp, w, a)) != op.negated;
    match op.set {
        Set::AnyValue => actual.iter().any(satisfies),
        Set::AllValues => actual.iter().all(satisfies),
        Set::Bare => {
            assert!(
                actual.len() == 1,
                "{name} on {key}: a bare operator against several request values {actual:?} \
                 (multivalued keys need ForAnyValue: or ForAllValues:)"
            );
            satisfies(&actual[0])
        }
    }
}

/// The operators of a statement's `Condition`, each with its keys and policy values.
type Conditions<'a> = Vec<(&'a str, Operator, Vec<(&'a str, Vec<String>)>)>;

fn conditions(st: &Value) -> Conditions<'_> {
    let Some(block) = st.get("Condition") else {
        return Vec::new();
    };
    let block = block.as_object().expect("Condition is an object");
    block
        .iter()
        .map(|(name, keys)| {
            let op = operator(name);
            let keys = keys
                .as_object()
                .unwrap_or_else(|| panic!("{name}: condition keys are an object"))
                .iter()
                .map(|(key, values)| {
                    let values = strings(values);
                    check_values(name, op, key, &values);
                    (key.as_str(), values)
                })
                .collect();
            (name.as_str(), op, keys)
        })
        .collect()
}

/// `Action`/`NotAction` or `Resource`/`NotResource`: whether the statement applies, by
/// `hit` on each pattern. Panics unless exactly one of the two is there.
fn element(st: &Value, plain: &str, not: &str, hit: impl Fn(&str) -> bool) -> bool {
    match (st.get(plain), st.get(not)) {
        (Some(v), None) => strings(v).iter().any(|p| hit(p)),
        (None, Some(v)) => !strings(v).iter().any(|p| hit(p)),
        _ => panic!("a statement needs exactly one of {plain} and {not}: {st}"),
    }
}

/// Panics on anything in `st` this evaluator does not support (see the module doc).
fn check_statement(st: &Value) {
    let fields = st.as_object().unwrap_or_else(|| panic!("statement {st}"));
    let known = "Sid Effect Action NotAction Resource NotResource Condition";
    if let Some(f) = fields.keys().find(|f| !known.split(' ').any(|k| k == *f)) {
        panic!(
            "statement element {f} is not supported (an identity policy names no principal): {st}"
        );
    }
    assert!(
        st["Effect"] == "Allow" || st["Effect"] == "Deny",
        "Effect must be Allow or Deny: {st}"
    );
    element(st, "Action", "NotAction", |_| false);
    element(st, "Resource", "NotResource", |r| {
        assert!(!r.contains("${"), "policy variables are not supported: {r}");
        false
    });
    conditions(st);
}

fn statement_applies(st: &Value, req: &Request) -> bool {
    let action = |a: &str| wildcard(a, &req.action, true);
    let resource = |r: &str| resource_matches(r, &req.resource);
    element(st, "Action", "NotAction", action)
        && element(st, "Resource", "NotResource", resource)
        && conditions(st).iter().all(|(name, op, keys)| {
            (keys.iter()).all(|(key, wanted)| key_holds(name, *op, key, wanted, req))
        })
}

fn statements(policy: &Value) -> Vec<&Value> {
    let all = match &policy["Statement"] {
        Value::Array(items) => items.iter().collect(),
        one @ Value::Object(_) => vec![one],
        other => panic!("policy without statements: {other}"),
    };
    all.iter().for_each(|st| check_statement(st));
    all
}

/// Whether `policy` (an identity policy document) allows `req`.
pub fn allows(policy: &Value, req: &Request) -> bool {
    let applying: Vec<&Value> = statements(policy)
        .into_iter()
        .filter(|st| statement_applies(st, req))
        .collect();
    !applying.iter().any(|st| st["Effect"] == "Deny")
        && applying.iter().any(|st| st["Effect"] == "Allow")
}

/// Every action an `Allow` statement grants, as written (no wildcards expected). Panics on an
/// `Allow` with `NotAction`, whose grant is no list.
pub fn granted_actions(policy: &Value) -> Vec<String> {
    statements(policy)
        .into_iter()
        .filter(|st| st["Effect"] == "Allow")
        .map(|st| {
            (st.get("Action"))
                .unwrap_or_else(|| panic!("an Allow with NotAction grants no list: {st}"))
        })
        .flat_map(strings)
        .collect()
}
