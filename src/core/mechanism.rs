//! The mechanism: IRSA or EKS Pod Identity, from the mode, the agent add-on and Epinio.

use crate::config::{CredentialMode, Mechanism};
use crate::error::Error;
use crate::state::AddonState;
use crate::vocab::AGENT_ADDON;

/// The mechanism a run converges to, and why (shown by `plan` and every summary). `agent` is
/// `DescribeAddon` of the Pod Identity agent (read unless the mode is `irsa`); `users` says
/// who uses the role and can read Pod Identity credentials (every managed ServiceAccount's
/// workload), or why not.
/// `pod-identity` without the agent ACTIVE is refused here, before any write.
pub fn choose_mechanism(
    mode: CredentialMode,
    cluster: &str,
    agent: Option<&AddonState>,
    users: Result<&str, String>,
) -> Result<(Mechanism, String), Error> {
    let agent_text = |a: Option<&AddonState>| match a {
        None => "not installed".to_string(),
        Some(a) => format!(
            "{}{}",
            a.status,
            a.version
                .as_deref()
                .map(|v| format!(" ({v})"))
                .unwrap_or_default()
        ),
    };
    let active = agent.is_some_and(|a| a.status == "ACTIVE");
    match mode {
        CredentialMode::Irsa => Ok((Mechanism::Irsa, "irsa (EPINIO_IRSA_MODE=irsa)".into())),
        CredentialMode::PodIdentity if !active => Err(Error::AgentAddon {
            cluster: cluster.to_string(),
            addon: AGENT_ADDON,
            state: agent_text(agent),
        }),
        CredentialMode::PodIdentity => Ok((
            Mechanism::PodIdentity,
            format!(
                "pod-identity (EPINIO_IRSA_MODE=pod-identity; add-on {AGENT_ADDON} {})",
                agent_text(agent)
            ),
        )),
        CredentialMode::Auto if !active => Ok((
            Mechanism::Irsa,
            format!(
                "irsa (EPINIO_IRSA_MODE=auto: the add-on {AGENT_ADDON} is {})",
                agent_text(agent)
            ),
        )),
        CredentialMode::Auto => match users {
            Ok(who) => Ok((
                Mechanism::PodIdentity,
                format!(
                    "pod-identity (EPINIO_IRSA_MODE=auto: add-on {AGENT_ADDON} {}, and {who})",
                    agent_text(agent)
                ),
            )),
            Err(why) => Ok((
                Mechanism::Irsa,
                format!(
                    "irsa (EPINIO_IRSA_MODE=auto: add-on {AGENT_ADDON} {}, but {why})",
                    agent_text(agent)
                ),
            )),
        },
    }
}
