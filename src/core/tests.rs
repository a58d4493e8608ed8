use std::collections::BTreeMap;

use crate::config::{CredentialMode, Mechanism, OWNER_TAG};
use crate::epinio::EPINIO_CAN;
use crate::error::Error;
use crate::plan::{AssociationSpec, ServiceAccountSpec};
use crate::state::{AddonState, AssociationState, SaState, Workload};
use crate::vocab::{Change, AGENT_ADDON};

use super::*;

fn tags(owner: Option<&str>) -> BTreeMap<String, String> {
    owner
        .map(|o| BTreeMap::from([(OWNER_TAG.to_string(), o.to_string())]))
        .unwrap_or_default()
}

#[test]
fn ownership_decides_writes() {
    assert_eq!(
        may_write("role", "r", &tags(Some("me")), "me", false).ok(),
        Some(false)
    );
    assert_eq!(
        may_write("role", "r", &tags(None), "me", true).ok(),
        Some(true)
    );
    assert!(matches!(
        may_write("role", "r", &tags(None), "me", false),
        Err(Error::Untagged { .. })
    ));
    assert!(matches!(
        may_write("role", "r", &tags(Some("them")), "me", true),
        Err(Error::Foreign { owner, .. }) if owner == "them"
    ));
    assert!(removable(&tags(Some("them")), "me").is_err());
    assert!(removable(&tags(Some("me")), "me").is_ok());
}

fn sa(name: &str, arn: &str) -> ServiceAccountSpec {
    ServiceAccountSpec {
        name: name.into(),
        role_arn: arn.into(),
        annotations: BTreeMap::from([(
            crate::plan::ROLE_ARN_ANNOTATION.to_string(),
            arn.to_string(),
        )]),
        create_if_missing: false,
        restart_for: arn.into(),
        must_not_carry: Vec::new(),
    }
}

#[test]
fn restart_only_what_runs_under_a_changed_or_unstarted_sa() {
    let specs = [sa("epinio-server", "arn:r")];
    let workloads = vec![
        Workload {
            kind: "Deployment",
            name: "epinio-server".into(),
            service_account: "epinio-server".into(),
            restarted_for: Some("arn:r".into()),
        },
        Workload {
            kind: "Deployment",
            name: "epinio-ui".into(),
            service_account: "default".into(),
            restarted_for: None,
        },
    ];
    let unchanged = SaStep {
        annotations: BTreeMap::new(),
        label: false,
        change: Change::Unchanged,
    };
    assert!(restarts(&specs, std::slice::from_ref(&unchanged), &workloads).is_empty());
    let changed = SaStep {
        change: Change::Update(vec!["annotation".into()]),
        ..unchanged
    };
    let r = restarts(&specs, &[changed], &workloads);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0.name, "epinio-server");
}

#[test]
fn missing_server_sa_and_foreign_annotation_are_refused() {
    let spec = sa("epinio-server", "arn:r");
    assert!(matches!(
        sa_step("ns", &spec, None, "me"),
        Err(Error::ServiceAccountMissing { .. })
    ));
    let mut state = SaState::default();
    state
        .annotations
        .insert(crate::plan::ROLE_ARN_ANNOTATION.into(), "arn:other".into());
    assert!(matches!(
        sa_step("ns", &spec, Some(&state), "me"),
        Err(Error::AnnotationConflict { .. })
    ));
    // Under Pod Identity nobody else's role annotation may stay; our own is released.
    let pi = ServiceAccountSpec {
        annotations: BTreeMap::new(),
        must_not_carry: vec![crate::plan::ROLE_ARN_ANNOTATION.to_string()],
        ..spec
    };
    let err = sa_step("ns", &pi, Some(&state), "me")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Pod Identity") && err.contains("arn:other"),
        "{err}"
    );
    state
        .our_annotations
        .insert(crate::plan::ROLE_ARN_ANNOTATION.into());
    assert_eq!(
        sa_step("ns", &pi, Some(&state), "me").unwrap().change,
        Change::Update(vec![format!(
            "remove annotation {}",
            crate::plan::ROLE_ARN_ANNOTATION
        )])
    );
}

fn association(role: &str, owner: Option<&str>, addon: Option<&str>) -> AssociationState {
    AssociationState {
        id: "a-1".into(),
        arn: "arn:aws:eks:eu-west-1:1:podidentityassociation/c/a-1".into(),
        role_arn: role.into(),
        owner_arn: addon.map(str::to_string),
        tags: tags(owner),
    }
}

#[test]
fn associations_are_created_repointed_or_refused_by_owner() {
    let spec = AssociationSpec {
        namespace: "ns".into(),
        service_account: "sa".into(),
        role_arn: "arn:r".into(),
        tags: tags(Some("me")),
    };
    let step = |s: Option<&AssociationState>| association_step("c", &spec, s, "me");
    assert_eq!(step(None).ok(), Some(AssociationStep::Create));
    assert_eq!(
        step(Some(&association("arn:r", Some("me"), None))).ok(),
        Some(AssociationStep::Keep)
    );
    assert_eq!(
        step(Some(&association("arn:old", Some("me"), None))).ok(),
        Some(AssociationStep::Repair {
            id: "a-1".into(),
            arn: "arn:aws:eks:eu-west-1:1:podidentityassociation/c/a-1".into(),
            role: true,
            tags: BTreeMap::new(),
        })
    );
    let mut with_team = spec.clone();
    with_team.tags.insert("team".into(), "platform".into());
    let repair = association_step(
        "c",
        &with_team,
        Some(&association("arn:r", Some("me"), None)),
        "me",
    );
    assert_eq!(
        repair.unwrap().change(),
        Change::Update(vec!["tags (team)".into()])
    );
    let foreign = association("arn:other", Some("them"), None);
    let err = step(Some(&foreign)).unwrap_err().to_string();
    assert!(
        err.contains("a-1") && err.contains("arn:other") && err.contains("them"),
        "{err}"
    );
    // Untagged is refused even when it points at our role: no silent adoption.
    assert!(matches!(
        step(Some(&association("arn:r", None, None))),
        Err(Error::AssociationNotOwned { .. })
    ));
    let addon = association("arn:r", Some("me"), Some("arn:aws:eks:::addon/x"));
    assert!(matches!(
        step(Some(&addon)),
        Err(Error::AssociationAddonOwned { .. })
    ));
    assert!(association_removable(&addon, "me").is_err());
    assert!(association_removable(&foreign, "me").is_err());
    assert!(association_removable(&association("arn:r", Some("me"), None), "me").is_ok());
}

#[test]
fn mechanism_follows_the_mode_the_agent_and_epinio() {
    let active = AddonState {
        status: "ACTIVE".into(),
        version: Some("v1.3.4-eksbuild.1".into()),
    };
    let creating = AddonState {
        status: "CREATING".into(),
        version: None,
    };
    let ok = || Ok(EPINIO_CAN);
    let old = || Err("staging's aws CLI image amazon/aws-cli:2.13.26 is older".to_string());
    let pick = |mode, agent, epinio| choose_mechanism(mode, "c", agent, epinio);
    assert_eq!(
        pick(CredentialMode::Irsa, Some(&active), ok()).unwrap().0,
        Mechanism::Irsa
    );
    assert_eq!(
        pick(CredentialMode::PodIdentity, Some(&active), old())
            .unwrap()
            .0,
        Mechanism::PodIdentity,
        "pod-identity mode leaves the Epinio check to discovery, which refuses with the reason"
    );
    for agent in [None, Some(&creating)] {
        let err = pick(CredentialMode::PodIdentity, agent, ok())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(AGENT_ADDON)
                && err.contains("create-addon")
                && err.contains("Nothing was changed"),
            "{err}"
        );
        let (m, why) = pick(CredentialMode::Auto, agent, ok()).unwrap();
        assert_eq!(m, Mechanism::Irsa);
        assert!(why.contains(AGENT_ADDON), "{why}");
    }
    let (m, why) = pick(CredentialMode::Auto, Some(&active), ok()).unwrap();
    assert_eq!(m, Mechanism::PodIdentity);
    assert!(why.contains("ACTIVE") && why.contains("v1.3.4"), "{why}");
    let (m, why) = pick(CredentialMode::Auto, Some(&active), old()).unwrap();
    assert_eq!(m, Mechanism::Irsa);
    assert!(why.contains("2.13.26"), "{why}");
}

fn policy_spec() -> crate::plan::PolicySpec {
    crate::plan::PolicySpec {
        name: "p".into(),
        path: "/".into(),
        arn: "arn:aws:iam::123456789012:policy/p".into(),
        document: "{}".into(),
        document_sha256: "abc".into(),
        tags: tags(Some("me")),
    }
}

#[test]
fn policy_step_says_what_the_write_will_be() {
    let spec = policy_spec();
    assert_eq!(policy_step(&spec, None, false, false), PolicyStep::Create);
    let state = |t: BTreeMap<String, String>| crate::state::PolicyState {
        default_version: "v3".into(),
        tags: t,
        old_versions: Vec::new(),
    };
    // Everything in place: no write.
    let current = state(policy_tags(&spec, "v3"));
    let step = policy_step(&spec, Some(&current), false, false);
    assert_eq!(step.change(), Change::Unchanged);
    // A new document is published (and says so); the version tags follow it.
    let step = policy_step(&spec, Some(&current), true, false);
    assert_eq!(
        step,
        PolicyStep::Converge {
            publish: true,
            change: Change::Update(vec!["document".into()])
        }
    );
    // Tags missing: only tags; untagged and adopted: adoption named first.
    let step = policy_step(&spec, Some(&state(tags(Some("me")))), false, false);
    assert_eq!(step.change(), Change::Update(vec!["tags".into()]));
    let step = policy_step(&spec, Some(&state(BTreeMap::new())), true, true);
    assert_eq!(
        step.change(),
        Change::Update(vec!["adopt (add owner tags)".into(), "document".into()])
    );
}

#[test]
fn pair_removal_removes_only_what_is_ours() {
    let pair = Pair {
        service_account: "epinio-server".into(),
        role: "r".into(),
    };
    let arn = "arn:aws:iam::123456789012:role/r";
    let role = |owner: &str| crate::state::RoleState {
        arn: arn.into(),
        trust: String::new(),
        boundary: None,
        tags: tags(Some(owner)),
        attached: Vec::new(),
        inline: Vec::new(),
    };
    let association = |owner: Option<&str>| AssociationState {
        id: "a-1".into(),
        arn: "arn:aws:eks:eu-west-1:123456789012:podidentityassociation/demo/a-1".into(),
        role_arn: arn.into(),
        owner_arn: None,
        tags: tags(owner),
    };
    let ours = PairState {
        role: Some(role("me")),
        association: Some(association(Some("me"))),
        ..PairState::default()
    };
    let removal = pair_removal(&pair, &ours, arn, "me");
    assert_eq!(removal.role, Ok(()));
    assert_eq!(removal.association, Some(Ok("a-1".into())));
    assert_eq!(removal.service_account, SaRemoval::Leave(Change::Absent));
    assert_eq!(removal.role_change(), Change::Remove);

    // Another installation's role and association stay, and so does the annotation naming it.
    let theirs = PairState {
        role: Some(role("them")),
        association: Some(association(Some("them"))),
        ..PairState::default()
    };
    let removal = pair_removal(&pair, &theirs, arn, "me");
    assert!(matches!(removal.role_change(), Change::Kept(_)));
    assert!(matches!(
        removal.association_change(),
        Some(Change::Kept(_))
    ));
    assert!(matches!(
        removal.service_account.change(),
        Change::Kept(why) if why.contains("not owned")
    ));
    // Nothing there: nothing to do, and `plan` says absent.
    let none = pair_removal(&pair, &PairState::default(), arn, "me");
    assert_eq!(none.role_change(), Change::Absent);
    assert_eq!(none.association_change(), None);
}
