//! Every AWS action the job calls, in one catalog: the edges name their calls by these
//! constants, and `installer-policy` is built from the same catalog, so the policy a user
//! installs cannot drift from the calls the job makes (`tests/installer_policy.rs` replays the
//! scenarios' call logs against it).

use serde_json::{json, Value};

use crate::arn::Account;
use crate::config::CredentialMode;

/// What an action's `Resource` is in IAM's authorization of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// This installation's EKS cluster.
    Cluster,
    /// This installation's roles.
    Roles,
    /// This installation's S3 policy.
    Policy,
    /// The cluster's OIDC provider.
    Provider,
    /// Pod Identity associations: the cluster (create, list) and its associations (describe,
    /// update, delete, tag).
    Associations,
    /// The cluster's `eks-pod-identity-agent` add-on.
    Addon,
    /// `*`: the action supports no resource-level permission.
    Any,
    /// Needs no IAM permission at all (`sts:GetCallerIdentity`, and
    /// `sts:AssumeRoleWithWebIdentity`, which the web identity token authorizes).
    Nothing,
    /// Made by `verify` with the assumed role's credentials: judged against the S3 policy,
    /// not the installer's.
    AssumedRole,
}

/// One AWS action the job calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// The IAM action name, `service:Operation`.
    pub name: &'static str,
    pub on: On,
}

impl Action {
    /// The operation, as the wire protocol names it.
    pub fn operation(&self) -> &'static str {
        self.name.split_once(':').map_or(self.name, |(_, op)| op)
    }
}

const fn a(name: &'static str, on: On) -> Action {
    Action { name, on }
}

pub const DESCRIBE_CLUSTER: Action = a("eks:DescribeCluster", On::Cluster);
pub const GET_CALLER_IDENTITY: Action = a("sts:GetCallerIdentity", On::Nothing);
pub const ASSUME_ROLE_WITH_WEB_IDENTITY: Action = a("sts:AssumeRoleWithWebIdentity", On::Nothing);

// Named by operation, as errors name them; IAM authorizes HeadBucket and ListObjectsV2 as
// s3:ListBucket. Not part of the installer policy: made with the assumed role's credentials.
pub const HEAD_BUCKET: Action = a("s3:HeadBucket", On::AssumedRole);
pub const LIST_OBJECTS: Action = a("s3:ListObjectsV2", On::AssumedRole);
pub const PUT_OBJECT: Action = a("s3:PutObject", On::AssumedRole);
pub const GET_OBJECT: Action = a("s3:GetObject", On::AssumedRole);
pub const DELETE_OBJECT: Action = a("s3:DeleteObject", On::AssumedRole);

pub const LIST_PROVIDERS: Action = a("iam:ListOpenIDConnectProviders", On::Any);
pub const GET_PROVIDER: Action = a("iam:GetOpenIDConnectProvider", On::Provider);
pub const CREATE_PROVIDER: Action = a("iam:CreateOpenIDConnectProvider", On::Provider);
pub const TAG_PROVIDER: Action = a("iam:TagOpenIDConnectProvider", On::Provider);
pub const DELETE_PROVIDER: Action = a("iam:DeleteOpenIDConnectProvider", On::Provider);

pub const GET_POLICY: Action = a("iam:GetPolicy", On::Policy);
pub const GET_POLICY_VERSION: Action = a("iam:GetPolicyVersion", On::Policy);
pub const LIST_POLICY_VERSIONS: Action = a("iam:ListPolicyVersions", On::Policy);
pub const CREATE_POLICY: Action = a("iam:CreatePolicy", On::Policy);
pub const CREATE_POLICY_VERSION: Action = a("iam:CreatePolicyVersion", On::Policy);
pub const DELETE_POLICY_VERSION: Action = a("iam:DeletePolicyVersion", On::Policy);
pub const TAG_POLICY: Action = a("iam:TagPolicy", On::Policy);
pub const DELETE_POLICY: Action = a("iam:DeletePolicy", On::Policy);

pub const GET_ROLE: Action = a("iam:GetRole", On::Roles);
pub const LIST_ATTACHED_ROLE_POLICIES: Action = a("iam:ListAttachedRolePolicies", On::Roles);
pub const LIST_ROLE_POLICIES: Action = a("iam:ListRolePolicies", On::Roles);
pub const CREATE_ROLE: Action = a("iam:CreateRole", On::Roles);
pub const UPDATE_ASSUME_ROLE_POLICY: Action = a("iam:UpdateAssumeRolePolicy", On::Roles);
pub const PUT_ROLE_PERMISSIONS_BOUNDARY: Action = a("iam:PutRolePermissionsBoundary", On::Roles);
pub const DELETE_ROLE_PERMISSIONS_BOUNDARY: Action =
    a("iam:DeleteRolePermissionsBoundary", On::Roles);
pub const TAG_ROLE: Action = a("iam:TagRole", On::Roles);
pub const ATTACH_ROLE_POLICY: Action = a("iam:AttachRolePolicy", On::Roles);
pub const DETACH_ROLE_POLICY: Action = a("iam:DetachRolePolicy", On::Roles);
pub const DELETE_ROLE_POLICY: Action = a("iam:DeleteRolePolicy", On::Roles);
pub const DELETE_ROLE: Action = a("iam:DeleteRole", On::Roles);
/// Handing a role to EKS Pod Identity (create and update of an association).
pub const PASS_ROLE: Action = a("iam:PassRole", On::Roles);

pub const DESCRIBE_ADDON: Action = a("eks:DescribeAddon", On::Addon);
pub const LIST_POD_IDENTITY_ASSOCIATIONS: Action =
    a("eks:ListPodIdentityAssociations", On::Associations);
pub const DESCRIBE_POD_IDENTITY_ASSOCIATION: Action =
    a("eks:DescribePodIdentityAssociation", On::Associations);
pub const CREATE_POD_IDENTITY_ASSOCIATION: Action =
    a("eks:CreatePodIdentityAssociation", On::Associations);
pub const UPDATE_POD_IDENTITY_ASSOCIATION: Action =
    a("eks:UpdatePodIdentityAssociation", On::Associations);
pub const DELETE_POD_IDENTITY_ASSOCIATION: Action =
    a("eks:DeletePodIdentityAssociation", On::Associations);
/// Implied by a create that carries tags; called to add tags missing on our association.
pub const TAG_RESOURCE: Action = a("eks:TagResource", On::Associations);

/// The service principal of EKS Pod Identity.
pub const POD_IDENTITY_SERVICE: &str = "pods.eks.amazonaws.com";

/// Every action the job can call.
pub const ALL: &[Action] = &[
    DESCRIBE_CLUSTER,
    GET_CALLER_IDENTITY,
    ASSUME_ROLE_WITH_WEB_IDENTITY,
    HEAD_BUCKET,
    LIST_OBJECTS,
    PUT_OBJECT,
    GET_OBJECT,
    DELETE_OBJECT,
    LIST_PROVIDERS,
    GET_PROVIDER,
    CREATE_PROVIDER,
    TAG_PROVIDER,
    DELETE_PROVIDER,
    GET_POLICY,
    GET_POLICY_VERSION,
    LIST_POLICY_VERSIONS,
    CREATE_POLICY,
    CREATE_POLICY_VERSION,
    DELETE_POLICY_VERSION,
    TAG_POLICY,
    DELETE_POLICY,
    GET_ROLE,
    LIST_ATTACHED_ROLE_POLICIES,
    LIST_ROLE_POLICIES,
    CREATE_ROLE,
    UPDATE_ASSUME_ROLE_POLICY,
    PUT_ROLE_PERMISSIONS_BOUNDARY,
    DELETE_ROLE_PERMISSIONS_BOUNDARY,
    TAG_ROLE,
    ATTACH_ROLE_POLICY,
    DETACH_ROLE_POLICY,
    DELETE_ROLE_POLICY,
    DELETE_ROLE,
    PASS_ROLE,
    DESCRIBE_ADDON,
    LIST_POD_IDENTITY_ASSOCIATIONS,
    DESCRIBE_POD_IDENTITY_ASSOCIATION,
    CREATE_POD_IDENTITY_ASSOCIATION,
    UPDATE_POD_IDENTITY_ASSOCIATION,
    DELETE_POD_IDENTITY_ASSOCIATION,
    TAG_RESOURCE,
];

/// Actions IAM also authorizes when `action` is called: a create that carries tags needs the
/// resource's tag action (`iam:CreateRole` with tags also needs `iam:TagRole`), and handing a
/// role to EKS Pod Identity needs `iam:PassRole` on it.
pub fn implied_by(action: Action) -> &'static [Action] {
    match action.name {
        "iam:CreateRole" => &[TAG_ROLE],
        "iam:CreatePolicy" => &[TAG_POLICY],
        "iam:CreateOpenIDConnectProvider" => &[TAG_PROVIDER],
        "eks:CreatePodIdentityAssociation" => &[PASS_ROLE, TAG_RESOURCE],
        "eks:UpdatePodIdentityAssociation" => &[PASS_ROLE],
        _ => &[],
    }
}

/// What the installer policy is built for.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    pub account: &'a Account,
    /// `None`: the cluster's region is unknown, any region matches.
    pub region: Option<&'a str>,
    pub cluster: &'a str,
    pub role_arns: Vec<String>,
    /// With a role path: the same roles without it (`role/NAME`), where IAM may authorize a
    /// read of a role that does not exist yet. Empty without a path.
    pub pathless_role_arns: Vec<String>,
    pub policy_arn: String,
    /// The S3 policy and the extra policies, the only ones the job may attach.
    pub attachable: Vec<String>,
    pub boundary: Option<&'a str>,
    pub create_provider: bool,
    pub delete_provider: bool,
    /// The mode setting: IRSA-only configurations never create associations (they list and
    /// delete their own, to switch back) nor read the agent add-on; Pod Identity-only ones
    /// never touch the provider except to delete it at teardown.
    pub mode: CredentialMode,
}

impl Scope<'_> {
    /// Whether this configuration can make the job call `action`.
    pub fn calls(&self, action: Action) -> bool {
        match action.name {
            "iam:CreateOpenIDConnectProvider" | "iam:TagOpenIDConnectProvider" => {
                self.create_provider && self.irsa()
            }
            "iam:ListOpenIDConnectProviders" => self.irsa(),
            // Teardown reads the provider it may delete, in every mode.
            "iam:GetOpenIDConnectProvider" => self.irsa() || self.delete_provider,
            "iam:DeleteOpenIDConnectProvider" => self.delete_provider,
            // Every mode finds and removes its own associations (a switch back to IRSA,
            // teardown); only Pod Identity-capable modes create them and read the agent.
            "eks:ListPodIdentityAssociations"
            | "eks:DescribePodIdentityAssociation"
            | "eks:DeletePodIdentityAssociation" => true,
            "iam:PassRole" => self.mode != CredentialMode::Irsa,
            _ if matches!(action.on, On::Associations | On::Addon) => {
                self.mode != CredentialMode::Irsa
            }
            // A role gets the configured boundary, or none: one of the two calls repairs drift.
            "iam:PutRolePermissionsBoundary" => self.boundary.is_some(),
            "iam:DeleteRolePermissionsBoundary" => self.boundary.is_none(),
            _ => !matches!(action.on, On::Nothing | On::AssumedRole),
        }
    }

    fn irsa(&self) -> bool {
        self.mode != CredentialMode::PodIdentity
    }

    fn resources(&self, on: On) -> Value {
        match on {
            On::Cluster => json!(self.account.eks_cluster(self.region, self.cluster)),
            On::Associations => json!([
                self.account.eks_cluster(self.region, self.cluster),
                self.account.eks(
                    self.region,
                    &format!("podidentityassociation/{}/*", self.cluster)
                ),
            ]),
            On::Addon => json!(self.account.eks(
                self.region,
                &format!("addon/{}/{}/*", self.cluster, crate::vocab::AGENT_ADDON)
            )),
            On::Roles => json!(self.role_arns),
            On::Policy => json!(self.policy_arn),
            On::Provider => {
                let host = match self.region {
                    Some(r) => format!("oidc.eks.{r}.{}/id/*", self.account.partition.dns_suffix()),
                    None => format!("oidc.eks.*.{}/id/*", self.account.partition.dns_suffix()),
                };
                json!(self.account.oidc_provider(&host))
            }
            On::Any | On::Nothing | On::AssumedRole => json!("*"),
        }
    }
}

/// A role that does not exist yet has no path IAM could know, so a read of it (the first
/// provision's GetRole, which must answer NoSuchEntity) may be authorized against `role/NAME`
/// rather than `role/PATH/NAME`; without this grant that read would be AccessDenied on real
/// IAM and the first run would fail. Reads only: every write names a role that exists, or
/// creates it with its path. `None` without a role path.
fn missing_role_reads(scope: &Scope) -> Option<Value> {
    let reads: Vec<&str> = [GET_ROLE, LIST_ATTACHED_ROLE_POLICIES, LIST_ROLE_POLICIES]
        .into_iter()
        .filter(|a| scope.calls(*a))
        .map(|a| a.name)
        .collect();
    (!scope.pathless_role_arns.is_empty() && !reads.is_empty()).then(|| {
        json!({
            "Sid": "ReadRolesBeforeTheirPathExists",
            "Effect": "Allow",
            "Action": reads,
            "Resource": scope.pathless_role_arns,
        })
    })
}

/// The least-privilege policy the job itself needs for `scope`: one statement per resource,
/// plus the two conditioned ones (which policies may be attached; which boundary roles get).
pub fn installer_policy(scope: &Scope) -> Value {
    let conditioned = |action: Action| {
        action == ATTACH_ROLE_POLICY
            || action == PASS_ROLE
            || (scope.boundary.is_some()
                && (action == CREATE_ROLE || action == PUT_ROLE_PERMISSIONS_BOUNDARY))
    };
    let names = |on: On| -> Vec<&'static str> {
        let mut v: Vec<&str> = ALL
            .iter()
            .filter(|a| a.on == on && scope.calls(**a) && !conditioned(**a))
            .map(|a| a.name)
            .collect();
        v.sort_unstable();
        v
    };
    let mut statements = Vec::new();
    for (sid, on) in [
        ("ReadCluster", On::Cluster),
        ("ListOidcProvidersHasNoResourceLevelPermission", On::Any),
        ("ManageRoles", On::Roles),
        ("ManagePolicy", On::Policy),
        ("ManageOidcProvider", On::Provider),
        ("ManagePodIdentityAssociations", On::Associations),
        ("ReadPodIdentityAgentAddon", On::Addon),
    ] {
        let actions = names(on);
        if actions.is_empty() {
            continue;
        }
        let action = match actions.as_slice() {
            [one] => json!(one),
            _ => json!(actions),
        };
        statements.push(json!({
            "Sid": sid, "Effect": "Allow", "Action": action, "Resource": scope.resources(on)
        }));
    }
    statements.extend(missing_role_reads(scope));
    statements.push(json!({
        "Sid": "AttachOnlyTheseFewPolicies",
        "Effect": "Allow",
        "Action": ATTACH_ROLE_POLICY.name,
        "Resource": scope.resources(On::Roles),
        "Condition": { "ArnEquals": { "iam:PolicyARN": scope.attachable } }
    }));
    if scope.calls(PASS_ROLE) {
        statements.push(json!({
            "Sid": "PassRolesOnlyToPodIdentity",
            "Effect": "Allow",
            "Action": PASS_ROLE.name,
            "Resource": scope.resources(On::Roles),
            "Condition": { "StringEquals": { "iam:PassedToService": POD_IDENTITY_SERVICE } }
        }));
    }
    if let Some(boundary) = scope.boundary {
        statements.push(json!({
            "Sid": "CreateRolesOnlyWithThisBoundary",
            "Effect": "Allow",
            "Action": [CREATE_ROLE.name, PUT_ROLE_PERMISSIONS_BOUNDARY.name],
            "Resource": scope.resources(On::Roles),
            "Condition": { "StringEquals": { "iam:PermissionsBoundary": boundary } }
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_are_unique_and_well_formed() {
        let mut names: Vec<&str> = ALL.iter().map(|a| a.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "an action is listed twice");
        for a in ALL {
            let (service, op) = a.name.split_once(':').expect("service:Operation");
            assert!(["iam", "eks", "sts", "s3"].contains(&service), "{}", a.name);
            assert!(
                op.starts_with(|c: char| c.is_ascii_uppercase()),
                "{}",
                a.name
            );
        }
        for a in ALL.iter().flat_map(|a| implied_by(*a)) {
            assert!(ALL.contains(a), "{} is implied but not catalogued", a.name);
        }
    }
}
