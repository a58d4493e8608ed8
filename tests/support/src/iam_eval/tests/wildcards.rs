//! Resource patterns: wildcards in each ARN segment, and the ARN condition operators.

use super::*;

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
