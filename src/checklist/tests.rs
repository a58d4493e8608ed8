use super::*;
use serde_json::json;

#[test]
fn every_link_holds_or_is_named_with_its_fix() {
    let provider_arn = "arn:aws:iam::1:oidc-provider/oidc.example/id/X";
    let trust = json!({"Statement": [{"Effect": "Allow", "Principal": {"Federated": provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {"oidc.example/id/X:sub": "system:serviceaccount:ns:sa",
                                       "oidc.example/id/X:aud": "sts.amazonaws.com"}}}]});
    let role = RoleState {
        arn: "arn:aws:iam::1:role/r".into(),
        trust: trust.to_string(),
        boundary: None,
        tags: Default::default(),
        attached: vec!["arn:aws:iam::1:policy/p".into()],
        inline: vec![],
    };
    let mut sa = SaState::default();
    sa.annotations
        .insert(ROLE_ARN_ANNOTATION.into(), role.arn.clone());
    let doc = crate::plan::s3_policy(Partition::Aws, "b").to_string();
    let mut provider = ProviderState {
        client_ids: vec!["sts.amazonaws.com".into()],
        tags: Default::default(),
    };
    let links = |provider: &ProviderState| {
        check(&Links {
            namespace: "ns",
            service_account: "sa",
            sa: Some(&sa),
            role_name: "r",
            role_arn: &role.arn,
            role: Some(&role),
            provider_arn,
            issuer: "oidc.example/id/X",
            provider: Some(provider),
            policy_arn: "arn:aws:iam::1:policy/p",
            policy_document: Some(&doc),
            partition: Partition::Aws,
            bucket: "b",
        })
    };
    assert_eq!(links(&provider), vec![]);
    provider.client_ids.clear();
    let broken = links(&provider);
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(broken[0].link, "OIDC provider");
    assert!(broken[0]
        .detail
        .contains("does not list the audience sts.amazonaws.com"));
    assert!(broken[0]
        .fix
        .contains("add-client-id-to-open-id-connect-provider"));
}

#[test]
fn grants_follows_wildcards_and_ignores_conditional_statements() {
    let doc = json!({"Statement": [
        {"Effect": "Allow", "Action": ["s3:List*"], "Resource": "arn:aws:s3:::b"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*",
         "Condition": {"Bool": {"aws:SecureTransport": "true"}}}
    ]});
    assert!(grants(&doc, "s3:ListBucket", "arn:aws:s3:::b"));
    assert!(!grants(&doc, "s3:ListBucket", "arn:aws:s3:::other"));
    assert!(!grants(&doc, "s3:GetObject", "arn:aws:s3:::b/x"));
}

#[test]
fn pod_identity_links_hold_for_the_planned_trust_and_name_what_breaks() {
    let facts = crate::plan::Facts {
        partition: Partition::Aws,
        account_id: "1".into(),
        issuer_url: "https://oidc.example/id/X".into(),
        cluster_arn: "arn:aws:eks:eu-west-1:1:cluster/c".into(),
        mechanism: crate::config::Mechanism::PodIdentity,
    };
    let trust = crate::plan::pod_identity_trust_policy(&facts, "ns", "sa").to_string();
    let role = RoleState {
        arn: "arn:aws:iam::1:role/r".into(),
        trust,
        boundary: None,
        tags: Default::default(),
        attached: vec!["arn:aws:iam::1:policy/p".into()],
        inline: vec![],
    };
    let doc = crate::plan::s3_policy(Partition::Aws, "b").to_string();
    let assoc = AssociationState {
        id: "a-1".into(),
        arn: "arn".into(),
        role_arn: role.arn.clone(),
        owner_arn: None,
        tags: Default::default(),
    };
    let mut sa = SaState::default();
    let run = |sa: &SaState,
               agent: Option<&str>,
               association: Option<&AssociationState>,
               sa_name: &str| {
        check_pod_identity(&PodLinks {
            links: Links {
                namespace: "ns",
                service_account: sa_name,
                sa: Some(sa),
                role_name: "r",
                role_arn: &role.arn,
                role: Some(&role),
                provider_arn: "",
                issuer: "",
                provider: None,
                policy_arn: "arn:aws:iam::1:policy/p",
                policy_document: Some(&doc),
                partition: Partition::Aws,
                bucket: "b",
            },
            cluster: "c",
            cluster_arn: &facts.cluster_arn,
            agent,
            association,
        })
        .into_iter()
        .map(|b| b.link)
        .collect::<Vec<_>>()
    };
    assert_eq!(
        run(&sa, Some("ACTIVE"), Some(&assoc), "sa"),
        Vec::<&str>::new()
    );
    assert_eq!(run(&sa, None, Some(&assoc), "sa"), vec!["agent add-on"]);
    assert_eq!(
        run(&sa, Some("DEGRADED"), None, "sa"),
        vec!["agent add-on", "association"]
    );
    // The trust names another ServiceAccount.
    assert_eq!(
        run(&sa, Some("ACTIVE"), Some(&assoc), "other"),
        vec!["trust"]
    );
    sa.annotations
        .insert(ROLE_ARN_ANNOTATION.into(), "arn:aws:iam::1:role/x".into());
    assert_eq!(
        run(&sa, Some("ACTIVE"), Some(&assoc), "sa"),
        vec!["annotation"]
    );
}
