//! Each case asserts what IAM decides, with the rule (and the IAM User Guide page) it follows.

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

#[test]
fn wildcard_is_a_plain_glob_and_action_case_is_ignored() {
    // Action element: "The prefix and the action name are case insensitive".
    assert!(wildcard("iam:Get*", "IAM:GetRole", true));
    assert!(!wildcard("iam:Get*", "iam:ListRoles", true));
    assert!(wildcard("iam:?etRole", "iam:GetRole", true));
    assert!(wildcard("*", "", false));
    assert!(!wildcard("a*b", "a", false));
    let p = json!({"Statement": {"Effect": "Allow", "Action": "IAM:getrole", "Resource": ROLE}});
    assert!(allows(&p, &Request::new("iam:GetRole", ROLE)));
}

#[test]
fn resource_is_case_sensitive_and_star_alone_matches_everything() {
    // Resource element: "the IAM user name is case sensitive"; "*" is every resource.
    assert!(!resource_allows(
        "arn:aws:iam::1:role/ABC",
        "arn:aws:iam::1:role/abc"
    ));
    assert!(resource_allows("*", "arn:aws:iam::1:role/a:b:c"));
    assert!(resource_allows("*", "anything at all"));
}

#[test]
fn wildcards_in_the_partition_segment() {
    // Resource element: `*` and `?` work within a segment; `?` never matches `:`; a `*` not
    // at the end of its segment does not cross `:`.
    assert!(resource_allows(
        "arn:aw?:iam::1:role/r",
        "arn:aws:iam::1:role/r"
    ));
    assert!(resource_allows(
        "arn:a*v:iam::1:role/r",
        "arn:aws-us-gov:iam::1:role/r"
    ));
    assert!(!resource_allows(
        "arn:a*s:iam::1:role/r",
        "arn:a:s:iam::1:role/r"
    ));
    assert!(!resource_allows(
        "arn:a?s:iam::1:role/r",
        "arn:a:s:iam::1:role/r"
    ));
    // ... but a `*` ending the segment "can expand to match beyond the colon boundaries".
    assert!(resource_allows(
        "arn:a*:iam::1:role/r",
        "arn:aws:iam::1:role/r"
    ));
    assert!(resource_allows("arn:*:1:role/r", "arn:aws:iam::1:role/r"));
}

#[test]
fn wildcards_in_the_service_segment() {
    assert!(resource_allows(
        "arn:aws:i?m::1:role/r",
        "arn:aws:iam::1:role/r"
    ));
    assert!(resource_allows(
        "arn:aws:e*s:us-east-1:1:cluster/c",
        "arn:aws:eks:us-east-1:1:cluster/c"
    ));
    // A mid-segment `*` stops at the colon: "e*s" cannot take "eks:us-east-1:1:clu".
    assert!(!resource_allows(
        "arn:aws:e*s:1:cluster/c",
        "arn:aws:eks:us-e:s:1:cluster/c"
    ));
    assert!(!resource_allows("arn:aws:?:1:role/r", "arn:aws:::1:role/r"));
    // Segment-final `*` runs on: the service, the empty region, to the account.
    assert!(resource_allows(
        "arn:aws:*:1:role/r",
        "arn:aws:iam::1:role/r"
    ));
}

#[test]
fn wildcards_in_the_region_segment() {
    let arn = "arn:aws:eks:us-east-1:1:cluster/c";
    assert!(resource_allows("arn:aws:eks:us-*-1:1:cluster/c", arn));
    assert!(resource_allows("arn:aws:eks:us-east-?:1:cluster/c", arn));
    assert!(resource_allows("arn:aws:eks:*:1:cluster/c", arn));
    assert!(!resource_allows(
        "arn:aws:eks:us-*-1:1:cluster/c",
        "arn:aws:eks:us-x:y-1:1:cluster/c"
    ));
    // `?` needs exactly one character and never a colon: the empty IAM region has none.
    assert!(!resource_allows(
        "arn:aws:iam:?:1:role/r",
        "arn:aws:iam::1:role/r"
    ));
    assert!(!resource_allows(
        "arn:aws:iam:?1:role/r",
        "arn:aws:iam::1:role/r"
    ));
}

#[test]
fn wildcards_in_the_account_segment() {
    let arn = "arn:aws:iam::111122223333:role/r";
    assert!(resource_allows("arn:aws:iam::1111222233?3:role/r", arn));
    assert!(resource_allows("arn:aws:iam::1111*3333:role/r", arn));
    assert!(!resource_allows(
        "arn:aws:iam::1111*3333:role/r",
        "arn:aws:iam::1111:x:3333:role/r"
    ));
    assert!(!resource_allows(
        "arn:aws:iam::1?2:role/r",
        "arn:aws:iam::1:2:role/r"
    ));
    // Only a segment-final `*` crosses a colon.
    assert!(resource_allows(
        "arn:aws:iam::*:role/r",
        "arn:aws:iam::1:extra:role/r"
    ));
    assert!(!resource_allows(
        "arn:aws:iam::*3:role/r",
        "arn:aws:iam::13:x:3:role/r"
    ));
}

#[test]
fn wildcards_in_the_resource_segment() {
    // "The asterisk (*) character can expand to replace everything within a segment,
    // including characters like a forward slash (/)".
    assert!(resource_allows(
        "arn:aws:s3:::bucket/*/test/*",
        "arn:aws:s3:::bucket/1/2/test/3/o.jpg"
    ));
    assert!(!resource_allows(
        "arn:aws:s3:::bucket/*/test/*",
        "arn:aws:s3:::bucket/1-test/o.jpg"
    ));
    assert!(resource_allows(
        "arn:aws:iam::1:role/a?c",
        "arn:aws:iam::1:role/abc"
    ));
    assert!(!resource_allows(
        "arn:aws:iam::1:role/a?c",
        "arn:aws:iam::1:role/a:c"
    ));
    // A `*` before more characters does not cross `:`; a final one does.
    assert!(!resource_allows(
        "arn:aws:logs:r:1:log-group:a*b",
        "arn:aws:logs:r:1:log-group:a:x:b"
    ));
    assert!(resource_allows(
        "arn:aws:logs:r:1:log-group:a*b",
        "arn:aws:logs:r:1:log-group:a-x-b"
    ));
    assert!(resource_allows(
        "arn:aws:logs:r:1:log-group:*",
        "arn:aws:logs:r:1:log-group:g:*"
    ));
    assert!(resource_allows("arn:aws:iam::*", "arn:aws:iam::1:role/x"));
}

#[test]
fn arn_operators_compare_six_parts() {
    // Condition operators, ARN: each of the six parts checked separately; the docs' example
    // matches with StringLike and fails with ArnLike.
    let value = "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/d.txt";
    let pattern = "arn:aws:someservice:*:111122223333:finance/*";
    let req = pass().with("aws:SourceArn", value);
    assert!(allows(
        &allow_if(json!({"StringLike": {"aws:SourceArn": pattern}})),
        &req
    ));
    assert!(!allows(
        &allow_if(json!({"ArnLike": {"aws:SourceArn": pattern}})),
        &req
    ));
    // ArnEquals behaves like ArnLike, wildcards included; the sixth part is the rest.
    let pol = allow_if(json!({"ArnEquals": {"aws:SourceArn": "arn:aws:s?s:*:1:topic:*"}}));
    assert!(allows(
        &pol,
        &pass().with("aws:SourceArn", "arn:aws:sns:us-east-1:1:topic:t:x")
    ));
    assert!(!allows(
        &pol,
        &pass().with("aws:SourceArn", "arn:aws:sns:us-east-1:2:topic:t")
    ));
    assert!(!allows(&pol, &pass().with("aws:SourceArn", "not-an-arn")));
}

#[test]
fn missing_key_fails_every_positive_operator() {
    // Condition operators, "Important": a key not in the request context does not match.
    for op in [
        "StringEquals",
        "StringEqualsIgnoreCase",
        "StringLike",
        "ArnEquals",
        "ArnLike",
    ] {
        let pol = allow_if(json!({op: {"aws:SourceArn": "arn:aws:sns:r:1:t"}}));
        assert!(!allows(&pol, &pass()), "{op}");
    }
    assert!(!allows(
        &allow_if(json!({"Bool": {"aws:SecureTransport": true}})),
        &pass()
    ));
}

#[test]
fn negated_operators_with_the_key_present() {
    // Negated matching: true only when the request value matches none of the values (NOR).
    let cases = [
        ("StringNotEquals", "a", "A", true),
        ("StringNotEquals", "a", "a", false),
        ("StringNotEqualsIgnoreCase", "a", "A", false),
        ("StringNotEqualsIgnoreCase", "a", "b", true),
        ("StringNotLike", "a*", "abc", false),
        ("StringNotLike", "a*", "bc", true),
        (
            "ArnNotEquals",
            "arn:aws:iam::1:role/*",
            "arn:aws:iam::1:role/x",
            false,
        ),
        (
            "ArnNotLike",
            "arn:aws:iam::1:role/*",
            "arn:aws:iam::2:role/x",
            true,
        ),
    ];
    for (op, wanted, actual, expected) in cases {
        let pol = allow_if(json!({op: {"k": wanted}}));
        assert_eq!(
            allows(&pol, &pass().with("k", actual)),
            expected,
            "{op} {wanted} {actual}"
        );
    }
    // Several policy values: NOR (the multiple-context-keys-or-values page).
    let pol = allow_if(json!({"StringNotEquals": {"k": ["a", "b"]}}));
    assert!(!allows(&pol, &pass().with("k", "b")));
    assert!(allows(&pol, &pass().with("k", "c")));
}

#[test]
fn negated_operators_with_the_key_missing_hold() {
    // Condition operators, "Important": "If the policy condition requires that the key is not
    // matched, such as StringNotLike or ArnNotLike, and the right key is not present, the
    // condition is true."
    for op in [
        "StringNotEquals",
        "StringNotEqualsIgnoreCase",
        "StringNotLike",
    ] {
        assert!(allows(&allow_if(json!({op: {"k": "a"}})), &pass()), "{op}");
    }
    for op in ["ArnNotEquals", "ArnNotLike"] {
        let pol = allow_if(json!({op: {"k": "arn:aws:iam::1:role/x"}}));
        assert!(allows(&pol, &pass()), "{op}");
    }
}

#[test]
fn if_exists_present_missing_and_mismatching() {
    // ...IfExists: "If the key is not present, evaluate the condition element as true";
    // present, it is checked as the operator says.
    let pol = allow_if(json!({"StringLikeIfExists": {"ec2:InstanceType": ["t2.*", "m3.*"]}}));
    assert!(allows(&pol, &pass()));
    assert!(allows(&pol, &pass().with("ec2:InstanceType", "t2.micro")));
    assert!(!allows(&pol, &pass().with("ec2:InstanceType", "c5.large")));
    let pol = allow_if(json!({"StringNotEqualsIfExists": {"k": "a"}}));
    assert!(allows(&pol, &pass()));
    assert!(!allows(&pol, &pass().with("k", "a")));
    assert!(allows(&pol, &pass().with("k", "b")));
    let pol = allow_if(json!({"ArnEqualsIfExists": {"k": "arn:aws:iam::1:role/x"}}));
    assert!(allows(&pol, &pass()));
    assert!(!allows(&pol, &pass().with("k", "arn:aws:iam::1:role/y")));
}

#[test]
fn string_operators_and_their_case() {
    // String operators: StringEquals and StringLike are case-sensitive; `*` is any run,
    // `?` any one character; IgnoreCase ignores case.
    let like = allow_if(json!({"StringLike": {"k": ["home/*/docs", "v?"]}}));
    assert!(allows(&like, &pass().with("k", "home/ann/docs")));
    assert!(allows(&like, &pass().with("k", "home//docs")));
    assert!(!allows(&like, &pass().with("k", "HOME/ann/docs")));
    assert!(allows(&like, &pass().with("k", "v1")));
    assert!(!allows(&like, &pass().with("k", "v")));
    assert!(!allows(&like, &pass().with("k", "v12")));
    let eq = allow_if(json!({"StringEquals": {"k": "JohnDoe"}}));
    assert!(!allows(&eq, &pass().with("k", "johndoe")));
    let ic = allow_if(json!({"StringEqualsIgnoreCase": {"k": "JohnDoe"}}));
    assert!(allows(&ic, &pass().with("k", "johndoe")));
    // A literal `*` in StringEquals is no wildcard.
    assert!(!allows(
        &allow_if(json!({"StringEquals": {"k": "a*"}})),
        &pass().with("k", "ab")
    ));
}

#[test]
fn condition_key_names_ignore_case() {
    // Condition element: "Condition key names are not case-sensitive" (aws:SourceIP is
    // AWS:SourceIp); values keep the operator's case rule.
    let pol = allow_if(json!({"StringEquals": {"IAM:passedToSERVICE": "pods.eks.amazonaws.com"}}));
    assert!(allows(
        &pol,
        &pass().with("iam:PassedToService", "pods.eks.amazonaws.com")
    ));
    assert!(!allows(
        &pol,
        &pass().with("iam:PassedToService", "PODS.eks.amazonaws.com")
    ));
    let null = allow_if(json!({"Null": {"AWS:TokenIssueTime": "false"}}));
    assert!(allows(
        &null,
        &pass().with("aws:tokenissuetime", "2020-01-01T00:00:00Z")
    ));
}

#[test]
fn null_tests_existence() {
    // Null: "true" (the key doesn't exist) or "false" (the key exists).
    let absent = allow_if(json!({"Null": {"aws:TokenIssueTime": "true"}}));
    let present = allow_if(json!({"Null": {"aws:TokenIssueTime": false}}));
    let req = pass().with("aws:TokenIssueTime", "2020-01-01T00:00:00Z");
    assert!(allows(&absent, &pass()));
    assert!(!allows(&absent, &req));
    assert!(!allows(&present, &pass()));
    assert!(allows(&present, &req));
}

#[test]
fn bool_matches_true_or_false() {
    let pol = allow_if(json!({"Bool": {"aws:SecureTransport": "true"}}));
    assert!(allows(&pol, &pass().with("aws:SecureTransport", "true")));
    assert!(!allows(&pol, &pass().with("aws:SecureTransport", "false")));
    let pol = allow_if(json!({"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}}));
    assert!(allows(&pol, &pass()));
}

#[test]
fn for_any_value_with_several_request_values() {
    // Multivalued keys: ForAnyValue holds when any request value matches any policy value
    // (examples page: "webserver" in [environment, webserver, test] matches).
    let pol = allow_if(json!({"ForAnyValue:StringEquals": {"aws:TagKeys": "webserver"}}));
    let tags = |ks: &[&str]| ks.iter().fold(pass(), |r, k| r.with("aws:TagKeys", *k));
    assert!(allows(&pol, &tags(&["environment", "webserver", "test"])));
    assert!(!allows(&pol, &tags(&["environment", "test"])));
    // Negated: some request value must match none of the policy values.
    let pol = allow_if(json!({"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["a", "b"]}}));
    assert!(!allows(&pol, &tags(&["a", "b"])));
    assert!(allows(&pol, &tags(&["a", "c"])));
}

#[test]
fn for_all_values_with_several_request_values() {
    // ForAllValues: every request value must match at least one policy value.
    let pol = allow_if(json!({"ForAllValues:StringLike": {"k": ["Post*", "Message"]}}));
    let vals = |vs: &[&str]| vs.iter().fold(pass(), |r, v| r.with("k", *v));
    assert!(allows(&pol, &vals(&["PostDateTime", "Message"])));
    assert!(!allows(&pol, &vals(&["PostDateTime", "UserName"])));
    // Negated (examples page, ForAllValues:StringNotLike [key1*, key2*]): key1:hr + key2:audit
    // is no match, key3:legal is a match.
    let pol = allow_if(json!({"ForAllValues:StringNotLike": {"k": ["key1*", "key2*"]}}));
    assert!(!allows(&pol, &vals(&["key1:hr", "key2:audit"])));
    assert!(!allows(&pol, &vals(&["key1:hr", "key3:legal"])));
    assert!(allows(&pol, &vals(&["key3:legal"])));
}

#[test]
fn for_all_values_with_the_key_missing_is_true() {
    // Single- vs multivalued keys: ForAllValues "also returns true if there are no context
    // keys in the request" — the documented trap, negated operators included.
    assert!(allows(
        &allow_if(json!({"ForAllValues:StringEquals": {"k": "a"}})),
        &pass()
    ));
    assert!(allows(
        &allow_if(json!({"ForAllValues:StringNotLike": {"k": "a*"}})),
        &pass()
    ));
    let mut empty = pass();
    empty.context.insert("k".into(), Vec::new());
    assert!(allows(
        &allow_if(json!({"ForAllValues:StringEquals": {"k": "a"}})),
        &empty
    ));
}

#[test]
fn for_any_value_with_the_key_missing_is_false() {
    // ForAnyValue: "For no matching context key or a null dataset, the condition returns
    // false" — ForAnyValue:StringNotEquals too, which this evaluator used to allow.
    assert!(!allows(
        &allow_if(json!({"ForAnyValue:StringEquals": {"k": "a"}})),
        &pass()
    ));
    assert!(!allows(
        &allow_if(json!({"ForAnyValue:StringNotEquals": {"k": "a"}})),
        &pass()
    ));
    assert!(!allows(
        &allow_if(json!({"ForAnyValue:ArnNotLike": {"k": "arn:a:b:c:d:e"}})),
        &pass()
    ));
    // With IfExists, the missing key holds.
    let pol = allow_if(json!({"ForAnyValue:StringEqualsIfExists": {"k": "a"}}));
    assert!(allows(&pol, &pass()));
    assert!(!allows(&pol, &pass().with("k", "b")));
}

#[test]
#[should_panic(expected = "a bare operator against several request values")]
fn bare_operator_on_several_request_values_panics() {
    // Multivalued keys "require a condition set operator"; the docs define no bare one.
    let pol = allow_if(json!({"StringEquals": {"k": "a"}}));
    allows(&pol, &pass().with("k", "a").with("K", "b"));
}

#[test]
#[should_panic(expected = "an empty request value")]
fn empty_request_value_under_a_set_operator_panics() {
    allows(
        &allow_if(json!({"ForAllValues:StringEquals": {"k": "a"}})),
        &pass().with("k", ""),
    );
}

#[test]
fn conditions_and_operators_and_keys() {
    // Operators AND, keys AND, a key's values OR.
    let pol = allow_if(json!({
        "StringEquals": {"a": ["1", "2"], "b": "x"},
        "StringNotEquals": {"c": "no"}
    }));
    assert!(allows(&pol, &pass().with("a", "2").with("b", "x")));
    assert!(!allows(&pol, &pass().with("a", "2")));
    assert!(!allows(
        &pol,
        &pass().with("a", "2").with("b", "x").with("c", "no")
    ));
}

#[test]
fn explicit_deny_wins_over_allow() {
    // Policy evaluation logic: an explicit Deny overrides any Allow.
    let p = json!({"Statement": [
        {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "iam:DeleteRole", "Resource": "arn:aws:iam::1:role/keep"}
    ]});
    assert!(!allows(
        &p,
        &Request::new("iam:DeleteRole", "arn:aws:iam::1:role/keep")
    ));
    assert!(allows(
        &p,
        &Request::new("iam:DeleteRole", "arn:aws:iam::1:role/other")
    ));
    assert!(allows(
        &p,
        &Request::new("iam:GetRole", "arn:aws:iam::1:role/keep")
    ));
    // Nothing applies: implicitly denied.
    assert!(!allows(
        &p,
        &Request::new("s3:GetObject", "arn:aws:s3:::b/k")
    ));
}

#[test]
fn deny_with_not_resource_denies_everything_else() {
    // NotResource: a Deny applies to every resource not listed.
    let p = json!({"Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*",
         "NotResource": ["arn:aws:s3:::HRBucket/Payroll", "arn:aws:s3:::HRBucket/Payroll/*"]}
    ]});
    assert!(allows(
        &p,
        &Request::new("s3:GetObject", "arn:aws:s3:::HRBucket/Payroll/a")
    ));
    assert!(!allows(
        &p,
        &Request::new("s3:GetObject", "arn:aws:s3:::HRBucket/Other/a")
    ));
    assert!(!allows(
        &p,
        &Request::new("s3:GetObject", "arn:aws:s3:::hrbucket/Payroll/a")
    ));
}

#[test]
fn allow_with_not_resource() {
    let p = json!({"Statement": {"Effect": "Allow", "Action": "iam:GetRole",
        "NotResource": "arn:aws:iam::1:role/secret-*"}});
    assert!(allows(
        &p,
        &Request::new("iam:GetRole", "arn:aws:iam::1:role/app")
    ));
    assert!(!allows(
        &p,
        &Request::new("iam:GetRole", "arn:aws:iam::1:role/secret-x")
    ));
}

#[test]
fn not_action_applies_to_every_other_action() {
    // NotAction with Allow: every action except those listed; with Deny: denies the others.
    let p = json!({"Statement": {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}});
    assert!(allows(
        &p,
        &Request::new("s3:GetObject", "arn:aws:s3:::b/k")
    ));
    assert!(!allows(&p, &Request::new("IAM:CreateRole", ROLE)));
    let p = json!({"Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "NotAction": ["iam:Get*", "iam:List*"], "Resource": "*",
         "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}}
    ]});
    assert!(allows(&p, &Request::new("iam:GetRole", ROLE)));
    assert!(!allows(&p, &Request::new("iam:DeleteRole", ROLE)));
    let mfa = Request::new("iam:DeleteRole", ROLE).with("aws:MultiFactorAuthPresent", "true");
    assert!(allows(&p, &mfa));
}

#[test]
fn attach_only_listed_policies() {
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

#[test]
fn granted_actions_lists_allow_actions() {
    let p = json!({"Statement": [
        {"Effect": "Allow", "Action": ["iam:GetRole", "iam:ListRoles"], "Resource": "*"},
        {"Effect": "Deny", "Action": "iam:DeleteRole", "Resource": "*"}
    ]});
    assert_eq!(granted_actions(&p), ["iam:GetRole", "iam:ListRoles"]);
}

#[test]
#[should_panic(expected = "an Allow with NotAction grants no list")]
fn granted_actions_refuses_not_action() {
    granted_actions(
        &json!({"Statement": {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}}),
    );
}

#[test]
#[should_panic(expected = "condition operator NumericEquals is not supported")]
fn unsupported_operator_panics_with_the_key_present() {
    allows(
        &allow_if(json!({"NumericEquals": {"k": "1"}})),
        &pass().with("k", "1"),
    );
}

#[test]
#[should_panic(expected = "condition operator NumericNotEquals is not supported")]
fn unsupported_operator_panics_with_the_key_missing() {
    // The bug this fixes: a missing key returned before the operator was looked at.
    allows(&allow_if(json!({"NumericNotEquals": {"k": "1"}})), &pass());
}

#[test]
#[should_panic(expected = "condition operator ForAnyValue:DateEquals is not supported")]
fn unsupported_operator_panics_when_the_statement_does_not_apply() {
    let p = json!({"Statement": [
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*",
         "Condition": {"ForAnyValue:DateEquals": {"k": "2020-01-01"}}}
    ]});
    allows(&p, &pass());
}

#[test]
fn every_other_operator_panics() {
    let names = [
        "IpAddress",
        "NotIpAddress",
        "BinaryEquals",
        "DateLessThan",
        "NumericLessThanIfExists",
        "StringEqual",
        "stringequals",
        "NullIfExists",
        "ForAnyValue:Null",
        "ForAllValues:Null",
        "ForSomeValues:StringEquals",
        "StringEqualsIfExistsIfExists",
    ];
    for name in names {
        let caught =
            std::panic::catch_unwind(|| allows(&allow_if(json!({name: {"k": "a"}})), &pass()));
        let message = caught.expect_err(name);
        let message = message.downcast_ref::<String>().expect("a formatted panic");
        assert!(
            message.contains(&format!("condition operator {name} is not supported")),
            "{message}"
        );
    }
}

#[test]
#[should_panic(expected = "unsupported value")]
fn null_with_a_value_other_than_true_or_false_panics() {
    allows(&allow_if(json!({"Null": {"k": "yes"}})), &pass());
}

#[test]
#[should_panic(expected = "policy variables are not supported")]
fn policy_variable_panics() {
    let p = json!({"Statement": {"Effect": "Allow", "Action": "s3:*",
        "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/${aws:username}/*"]}});
    allows(&p, &Request::new("s3:GetObject", "arn:aws:s3:::b"));
}

#[test]
#[should_panic(expected = "exactly one of Action and NotAction")]
fn action_and_not_action_together_panic() {
    let p = json!({"Statement": {"Effect": "Allow", "Action": "iam:*", "NotAction": "s3:*",
        "Resource": "*"}});
    allows(&p, &pass());
}

#[test]
#[should_panic(expected = "exactly one of Resource and NotResource")]
fn statement_without_resource_panics() {
    allows(
        &json!({"Statement": {"Effect": "Allow", "Action": "iam:*"}}),
        &pass(),
    );
}

#[test]
#[should_panic(expected = "statement element NotPrincipal is not supported")]
fn not_principal_panics() {
    let p = json!({"Statement": {"Effect": "Deny", "NotPrincipal": {"AWS": "arn:aws:iam::1:root"},
        "Action": "*", "Resource": "*"}});
    allows(&p, &pass());
}
