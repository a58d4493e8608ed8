//! Each case asserts what IAM decides, with the rule (and the IAM User Guide page) it follows.
//!
//! The cases are grouped by what they exercise: ARN and resource wildcards (`wildcards.rs`),
//! condition operators and keys (`conditions.rs`), statements, their evaluation and the
//! unsupported elements that panic (`statements.rs`). The shared helpers are here.

mod conditions;
mod statements;
mod wildcards;

use super::*;
use serde_json::json;

const ROLE: &str = "arn:aws:iam::111122223333:role/app";

/// A policy of one `Allow` statement for `iam:PassRole` on every resource under `condition`.
fn allow_if(condition: Value) -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*", "Condition": condition}
    ]})
}

fn pass() -> Request {
    Request::new("iam:PassRole", ROLE)
}

/// Whether the `Resource` pattern allows a request on `arn`, through `allows`.
fn resource_allows(pattern: &str, arn: &str) -> bool {
    let p = json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": pattern}});
    allows(&p, &Request::new("iam:GetRole", arn))
}
