//! Condition operators and keys: missing keys, negation, `IfExists`, string case, key names,
//! `Null`, `Bool`, the set operators `ForAnyValue` and `ForAllValues`.

use super::*;

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
