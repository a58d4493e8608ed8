//! AWS partitions and ARNs: the one place that knows which partition a region is in and how
//! every ARN the job uses is spelled. Validation (`config`), the desired state (`plan`), the
//! installer policy (`aws_actions`) and the edges all build and parse ARNs here, so they cannot
//! disagree (a region accepted by validation always has a partition that ARNs use).

use std::fmt;
use std::str::FromStr;

/// An AWS partition. Every region the configuration accepts maps to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Partition {
    Aws,
    AwsCn,
    AwsUsGov,
    /// US ISO East/West (`us-iso-*`).
    AwsIso,
    /// US ISOB (`us-isob-*`).
    AwsIsoB,
    /// EU ISOE (`eu-isoe-*`).
    AwsIsoE,
    /// US ISOF (`us-isof-*`).
    AwsIsoF,
}

/// Region geography prefix to partition. Longest prefixes first: `us-isob` before `us-iso`
/// before `us`.
const GEOS: &[(&str, Partition)] = &[
    ("us-isob", Partition::AwsIsoB),
    ("us-isof", Partition::AwsIsoF),
    ("us-iso", Partition::AwsIso),
    ("eu-isoe", Partition::AwsIsoE),
    ("us-gov", Partition::AwsUsGov),
    ("cn", Partition::AwsCn),
    ("us", Partition::Aws),
    ("eu", Partition::Aws),
    ("ap", Partition::Aws),
    ("sa", Partition::Aws),
    ("ca", Partition::Aws),
    ("me", Partition::Aws),
    ("af", Partition::Aws),
    ("il", Partition::Aws),
    ("mx", Partition::Aws),
];

const DIRECTIONS: &[&str] = &[
    "east",
    "west",
    "north",
    "south",
    "central",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
];

impl Partition {
    pub const ALL: [Partition; 7] = [
        Partition::Aws,
        Partition::AwsCn,
        Partition::AwsUsGov,
        Partition::AwsIso,
        Partition::AwsIsoB,
        Partition::AwsIsoE,
        Partition::AwsIsoF,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::AwsCn => "aws-cn",
            Partition::AwsUsGov => "aws-us-gov",
            Partition::AwsIso => "aws-iso",
            Partition::AwsIsoB => "aws-iso-b",
            Partition::AwsIsoE => "aws-iso-e",
            Partition::AwsIsoF => "aws-iso-f",
        }
    }

    /// The DNS suffix of the partition's service endpoints (and of EKS OIDC issuers).
    pub fn dns_suffix(self) -> &'static str {
        match self {
            Partition::Aws | Partition::AwsUsGov => "amazonaws.com",
            Partition::AwsCn => "amazonaws.com.cn",
            Partition::AwsIso => "c2s.ic.gov",
            Partition::AwsIsoB => "sc2s.sgov.gov",
            Partition::AwsIsoE => "cloud.adc-e.uk",
            Partition::AwsIsoF => "csp.hci.ic.gov",
        }
    }

    /// The partition of a region name (`<geo>-<direction>-<n>`), or `None` when it is not
    /// one. A pattern rather than a list so that new regions work; geographies and
    /// directions are checked so typos like `us-eats-1` fail here and not in a TLS error.
    pub fn of_region(region: &str) -> Option<Partition> {
        let (rest, number) = region.rsplit_once('-')?;
        let (geo, direction) = rest.rsplit_once('-')?;
        let number_ok =
            (1..=2).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit());
        if !number_ok || !DIRECTIONS.contains(&direction) {
            return None;
        }
        GEOS.iter().find(|(g, _)| *g == geo).map(|(_, p)| *p)
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Partition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Partition::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown AWS partition {s:?}"))
    }
}

/// A parsed ARN: `arn:<partition>:<service>:<region>:<account>:<resource>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn {
    pub partition: Partition,
    pub service: String,
    pub region: String,
    /// 12 digits, `aws` (AWS managed policies) or empty (S3).
    pub account: String,
    pub resource: String,
}

impl FromStr for Arn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(6, ':');
        let mut next = || parts.next();
        let (Some("arn"), Some(p), Some(service), Some(region), Some(account), Some(resource)) =
            (next(), next(), next(), next(), next(), next())
        else {
            return Err(format!("{s:?} is not an ARN"));
        };
        Ok(Arn {
            partition: p.parse()?,
            service: service.to_string(),
            region: region.to_string(),
            account: account.to_string(),
            resource: resource.to_string(),
        })
    }
}

impl Arn {
    /// The partition and a 12-digit account id, when the ARN has one.
    pub fn account_of(s: &str) -> Option<(Partition, String)> {
        let arn: Arn = s.parse().ok()?;
        is_account_id(&arn.account).then_some((arn.partition, arn.account))
    }
}

pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Where the job's IAM objects live: partition and account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub partition: Partition,
    pub id: String,
}

impl Account {
    pub fn new(partition: Partition, id: impl Into<String>) -> Account {
        Account {
            partition,
            id: id.into(),
        }
    }

    fn iam(&self, resource: &str) -> String {
        format!("arn:{}:iam::{}:{resource}", self.partition, self.id)
    }

    /// `path` is `/` or `/a/b/`.
    pub fn role(&self, path: &str, name: &str) -> String {
        self.iam(&format!("role{path}{name}"))
    }

    pub fn policy(&self, path: &str, name: &str) -> String {
        self.iam(&format!("policy{path}{name}"))
    }

    /// `issuer_host_path` is the issuer URL without `https://`.
    pub fn oidc_provider(&self, issuer_host_path: &str) -> String {
        self.iam(&format!("oidc-provider/{issuer_host_path}"))
    }

    /// `region` `None`: any region (`*`).
    pub fn eks_cluster(&self, region: Option<&str>, cluster: &str) -> String {
        self.eks(region, &format!("cluster/{cluster}"))
    }

    /// An EKS resource (`cluster/NAME`, `podidentityassociation/CLUSTER/ID`,
    /// `addon/CLUSTER/NAME/ID`); `None` region matches any.
    pub fn eks(&self, region: Option<&str>, resource: &str) -> String {
        format!(
            "arn:{}:eks:{}:{}:{resource}",
            self.partition,
            region.unwrap_or("*"),
            self.id
        )
    }
}

/// An S3 bucket (`BUCKET`) or object (`BUCKET/KEY`) ARN: no region, no account.
pub fn s3(partition: Partition, resource: &str) -> String {
    format!("arn:{partition}:s3:::{resource}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_region_has_the_right_partition() {
        for (region, p) in [
            ("us-east-1", Partition::Aws),
            ("eu-central-2", Partition::Aws),
            ("cn-north-1", Partition::AwsCn),
            ("us-gov-west-1", Partition::AwsUsGov),
            ("us-iso-east-1", Partition::AwsIso),
            ("us-isob-east-1", Partition::AwsIsoB),
            ("eu-isoe-west-1", Partition::AwsIsoE),
            ("us-isof-south-1", Partition::AwsIsoF),
        ] {
            assert_eq!(Partition::of_region(region), Some(p), "{region}");
        }
        for bad in [
            "us-eats-1",
            "useast-1",
            "us-east-",
            "us-east-123",
            "xx-east-1",
            "",
            "-",
        ] {
            assert_eq!(Partition::of_region(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn arns_round_trip_through_the_parser() {
        let a = Account::new(Partition::AwsIso, "123456789012");
        let role = a.role("/x/", "r");
        assert_eq!(role, "arn:aws-iso:iam::123456789012:role/x/r");
        assert_eq!(
            Arn::account_of(&role),
            Some((Partition::AwsIso, "123456789012".to_string()))
        );
        assert_eq!(
            Arn::account_of("arn:aws:iam::aws:policy/ReadOnlyAccess"),
            None
        );
        assert!("arn:nope:iam::123456789012:role/r".parse::<Arn>().is_err());
        assert!("not-an-arn".parse::<Arn>().is_err());
    }
}
