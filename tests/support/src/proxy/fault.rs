//! The faults the proxy can inject ([`Fault`]) and the rules that say when ([`Rule`]), with
//! their command-line forms.

use std::time::Duration;

/// A fault the proxy can inject instead of (or before) forwarding a call.
///
/// The response is shaped after the protocol of the call: AWS Query
/// (IAM/STS) XML `ErrorResponse`, AWS REST-JSON (EKS) `{"message"}` plus
/// `x-amzn-ErrorType`, or a Kubernetes `Status` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// AWS Query: 400 `Throttling`; EKS: 429 `ThrottlingException`;
    /// Kubernetes: 429 `TooManyRequests` with `Retry-After: 1`.
    Throttling,
    /// 503: AWS `ServiceUnavailable` (EKS `ServiceUnavailableException`);
    /// Kubernetes Status `ServiceUnavailable`.
    ServiceUnavailable,
    /// 500: AWS `InternalFailure`; Kubernetes Status `InternalError`.
    InternalFailure,
    /// 404: IAM `NoSuchEntity` ("The role with name X cannot be found.");
    /// EKS `ResourceNotFoundException`; Kubernetes `NotFound`.
    NoSuchEntity,
    /// 409: IAM `ConcurrentModification`; EKS `ResourceInUseException`;
    /// Kubernetes Status reason `Conflict`.
    Conflict,
    /// AWS Query: 403 `AccessDenied`, as STS answers while a fresh role or trust
    /// propagates ("Not authorized to perform sts:AssumeRoleWithWebIdentity").
    AccessDenied,
    /// AWS Query: 400 `MalformedPolicyDocument` "Invalid principal in policy", as IAM
    /// answers for a principal (an OIDC provider) it created seconds ago.
    InvalidPrincipal,
    /// Drop the TCP connection (RST) without any HTTP response.
    ResetConnection,
    /// Wait this long, then forward (pick a duration above the client's
    /// timeout to model a hung upstream).
    Slow(Duration),
    /// The answer is lost: forward the call and let it commit upstream, then drop the
    /// connection (RST) instead of relaying the response.
    CommitThenReset,
    /// The answer is lost: forward the call and let it commit upstream, then answer 500
    /// (`InternalFailure` / `InternalError`) instead of the real response.
    CommitThenInternalFailure,
}

impl Fault {
    /// The name recorded in [`Call::injected`](super::Call::injected) (`"Throttling"`, `"Slow"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Throttling => "Throttling",
            Fault::ServiceUnavailable => "ServiceUnavailable",
            Fault::InternalFailure => "InternalFailure",
            Fault::NoSuchEntity => "NoSuchEntity",
            Fault::Conflict => "Conflict",
            Fault::AccessDenied => "AccessDenied",
            Fault::InvalidPrincipal => "InvalidPrincipal",
            Fault::ResetConnection => "ResetConnection",
            Fault::Slow(_) => "Slow",
            Fault::CommitThenReset => "CommitThenReset",
            Fault::CommitThenInternalFailure => "CommitThenInternalFailure",
        }
    }

    /// Parse a CLI fault name: `throttling`, `unavailable`, `internal`,
    /// `nosuchentity`, `conflict`, `reset`, `slow:MS`, `commit-reset`, `commit-500`
    /// (case-insensitive; the
    /// [`Fault::name`] spellings are accepted too).
    pub fn parse(s: &str) -> Result<Fault, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(ms) = lower.strip_prefix("slow:").or(lower.strip_prefix("slow=")) {
            let ms: u64 = ms
                .parse()
                .map_err(|_| format!("bad slow duration in {s:?}"))?;
            return Ok(Fault::Slow(Duration::from_millis(ms)));
        }
        Ok(match lower.as_str() {
            "throttling" | "throttle" => Fault::Throttling,
            "unavailable" | "serviceunavailable" | "503" => Fault::ServiceUnavailable,
            "internal" | "internalfailure" | "500" => Fault::InternalFailure,
            "nosuchentity" | "notfound" | "404" => Fault::NoSuchEntity,
            "conflict" | "409" => Fault::Conflict,
            "accessdenied" | "403" => Fault::AccessDenied,
            "invalidprincipal" => Fault::InvalidPrincipal,
            "reset" | "resetconnection" => Fault::ResetConnection,
            "commit-reset" | "committhenreset" => Fault::CommitThenReset,
            "commit-500" | "committheninternalfailure" => Fault::CommitThenInternalFailure,
            _ => return Err(format!("unknown fault {s:?}")),
        })
    }
}

/// Inject `fault` into calls whose operation is `op` (exact name, or `"*"`
/// for every call): skip the first `after` matching calls, then inject into
/// the next `times` matching calls, then pass through.
///
/// Rules are checked in insertion order; every matching rule counts every
/// matching call, and the first rule that is "due" injects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Exact operation name (`CreateRole`, `DescribeCluster`,
    /// `apply serviceaccounts`, ...) or `"*"`.
    pub op: String,
    pub fault: Fault,
    /// How many calls to fault; `usize::MAX` = persistent.
    pub times: usize,
    /// Skip the first `after` matching calls.
    pub after: usize,
}

impl Rule {
    /// Fault the next `times` calls of `op`.
    pub fn new(op: impl Into<String>, fault: Fault, times: usize) -> Rule {
        Rule {
            op: op.into(),
            fault,
            times,
            after: 0,
        }
    }

    /// Fault the next call of `op`.
    pub fn once(op: impl Into<String>, fault: Fault) -> Rule {
        Rule::new(op, fault, 1)
    }

    /// Fault every call of `op` until [`Proxy::clear_rules`](super::Proxy::clear_rules).
    pub fn always(op: impl Into<String>, fault: Fault) -> Rule {
        Rule::new(op, fault, usize::MAX)
    }

    /// Let the first `n` matching calls pass before faulting.
    pub fn after(mut self, n: usize) -> Rule {
        self.after = n;
        self
    }

    /// Parse the CLI form `OP=FAULT[*TIMES][@AFTER]`, e.g.
    /// `CreateRole=throttling*2`, `*=unavailable*inf`, `GetRole=nosuchentity@1`,
    /// `DescribeCluster=slow:5000`. `TIMES` defaults to 1; `inf` = persistent.
    pub fn parse(spec: &str) -> Result<Rule, String> {
        let (op, rest) = spec
            .rsplit_once('=')
            .ok_or_else(|| format!("fault spec {spec:?} is not OP=FAULT[*TIMES][@AFTER]"))?;
        let (rest, after) = match rest.split_once('@') {
            Some((r, a)) => (
                r,
                a.parse::<usize>()
                    .map_err(|_| format!("bad AFTER in {spec:?}"))?,
            ),
            None => (rest, 0),
        };
        let (fault, times) = match rest.split_once('*') {
            Some((f, "inf")) => (f, usize::MAX),
            Some((f, t)) => (
                f,
                t.parse::<usize>()
                    .map_err(|_| format!("bad TIMES in {spec:?}"))?,
            ),
            None => (rest, 1),
        };
        if op.is_empty() {
            return Err(format!("empty operation in {spec:?}"));
        }
        Ok(Rule::new(op, Fault::parse(fault)?, times).after(after))
    }
}
