//! Statements and their evaluation: conditions combined, explicit deny, `NotResource`,
//! `NotAction`, listed policies, granted actions; and the unsupported operators and elements,
//! which panic rather than guess.

use super::*;

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
