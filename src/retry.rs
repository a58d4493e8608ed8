//! The one retry loop of the job, shared by the AWS and Kubernetes edges: exponential backoff
//! (200 ms, 400 ms, ... capped at 5 s), at most `attempts` calls in all, and only for errors the
//! caller classifies as transient. Everything else is final at once. The run's overall
//! deadline (`EPINIO_IRSA_DEADLINE_SECONDS`) bounds the sum.

use std::future::Future;
use std::time::Duration;

pub const FIRST_DELAY: Duration = Duration::from_millis(200);
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// Calls `f` until it succeeds, fails with an error `transient` rejects, or `attempts` calls
/// were made.
pub async fn retry<T, E, F, Fut>(
    attempts: u32,
    transient: impl Fn(&E) -> bool,
    f: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    calls(attempts, transient, f, true).await
}

/// Calls `f` while `again` accepts its error, with the same backoff as [`retry`] and no bound
/// of its own (`again` ends it, at its deadline) and no log line of its own: for the polls that
/// say their progress themselves, once per state (IAM propagating, the gateway rolling out).
pub async fn poll<T, E, F, Fut>(again: impl Fn(&E) -> bool, f: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    calls(u32::MAX, again, f, false).await
}

async fn calls<T, E, F, Fut>(
    attempts: u32,
    transient: impl Fn(&E) -> bool,
    mut f: F,
    log: bool,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut delay = FIRST_DELAY;
    let mut attempt = 1;
    loop {
        match f().await {
            Err(e) if attempt < attempts && transient(&e) => {
                if log {
                    tracing::info!(attempt, error = %e, "transient failure, retrying");
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test]
    async fn bounded_and_classified() {
        let calls = Cell::new(0);
        let r: Result<(), String> = retry(
            3,
            |_| true,
            || {
                calls.set(calls.get() + 1);
                async { Err("busy".to_string()) }
            },
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls.get(), 3, "at most `attempts` calls");

        calls.set(0);
        let r: Result<(), String> = retry(
            5,
            |e: &String| e == "busy",
            || {
                calls.set(calls.get() + 1);
                async { Err("final".to_string()) }
            },
        )
        .await;
        assert_eq!(r.unwrap_err(), "final");
        assert_eq!(calls.get(), 1, "a final error is not retried");

        calls.set(0);
        let r = retry(
            5,
            |_: &String| true,
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 3 {
                        Err("busy".to_string())
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await;
        assert_eq!(r, Ok(3));
    }
}
