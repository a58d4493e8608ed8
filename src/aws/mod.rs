//! AWS edges: client set-up, one error type for every call, and bounded retries.
//!
//! Transient faults (throttling, 5xx, transport errors, timeouts, IAM's 409
//! `ConcurrentModification`) are retried by the SDK's standard retry strategy, bounded by `EPINIO_IRSA_MAX_ATTEMPTS` attempts of at most
//! `EPINIO_IRSA_CALL_TIMEOUT_SECONDS` each. IAM's eventual consistency (a `NoSuchEntity` right
//! after our own create) is retried here, only where it can happen, with the same bound.

pub mod eks;
pub mod iam;
pub mod s3;
pub mod sts;

use std::future::Future;
use std::time::Duration;

use crate::aws_actions::Action;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::config::Config;

pub use crate::error::AwsError;

/// Run one SDK call and turn its error into an [`AwsError`].
pub async fn call<T, E, R, Fut>(action: Action, resource: &str, fut: Fut) -> Result<T, AwsError>
where
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let op = action.name;
    tracing::debug!(op, resource, "aws call");
    fut.await.map_err(|err| {
        let (code, message) = match &err {
            SdkError::ServiceError(e) => (
                e.err().code().map(str::to_string),
                e.err()
                    .message()
                    .map(str::to_string)
                    .unwrap_or_else(|| DisplayErrorContext(e.err()).to_string()),
            ),
            other => (None, DisplayErrorContext(other).to_string()),
        };
        AwsError {
            op,
            resource: resource.to_string(),
            code,
            message,
        }
    })
}

/// Calls `f` again while IAM says `NoSuchEntity` for something this run just created
/// (eventual consistency), within the shared retry bound.
pub async fn retry_not_yet_visible<T, F, Fut>(attempts: u32, f: F) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    crate::retry::retry(attempts, |e: &AwsError| e.is("NoSuchEntity"), f).await
}

/// `Ok` as `Some`, "not found" as `None`: the tail of every read.
pub fn found<T>(result: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// A removal: done, or already gone.
pub fn removed<T>(result: Result<T, AwsError>) -> Result<crate::Change, AwsError> {
    Ok(match found(result)? {
        Some(_) => crate::Change::Remove,
        None => crate::Change::Absent,
    })
}

/// IAM answers `409 ConcurrentModification` ("Rate of concurrent modifications exceeded; please
/// try again") when writes to one object overlap, e.g. two hook runs at once. The SDK's standard
/// classifiers do not know the code (they retry throttling codes and 500/502/503/504 only), so
/// this one marks it transient: retried like throttling, within the same attempt bound. It reads
/// the error code from the response body because a client-wide classifier cannot name each
/// operation's error type; other 409s (`EntityAlreadyExists`, `DeleteConflict`) stay final.
#[derive(Debug, Default)]
pub struct ConcurrentModificationClassifier;

impl aws_sdk_iam::config::retry::ClassifyRetry for ConcurrentModificationClassifier {
    fn classify_retry(
        &self,
        ctx: &aws_sdk_iam::config::interceptors::InterceptorContext,
    ) -> aws_sdk_iam::config::retry::RetryAction {
        use aws_sdk_iam::config::retry::RetryAction;
        let failed = matches!(ctx.output_or_error(), Some(Err(_)));
        let concurrent = ctx.response().is_some_and(|r| {
            r.status().as_u16() == 409
                && r.body().bytes().is_some_and(|b| {
                    b.windows(CONCURRENT_MODIFICATION.len())
                        .any(|w| w == CONCURRENT_MODIFICATION)
                })
        });
        if failed && concurrent {
            RetryAction::transient_error()
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "IAM ConcurrentModification"
    }
}

const CONCURRENT_MODIFICATION: &[u8] = b"<Code>ConcurrentModification</Code>";

/// The IAM client: the shared configuration plus [`ConcurrentModificationClassifier`].
pub fn iam_client(sdk: &aws_config::SdkConfig) -> aws_sdk_iam::Client {
    let config = aws_sdk_iam::config::Builder::from(sdk)
        .retry_classifier(ConcurrentModificationClassifier)
        .build();
    aws_sdk_iam::Client::from_conf(config)
}

/// The SDK configuration shared by the IAM, EKS and STS clients.
pub async fn sdk_config(config: &Config) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(config.max_attempts)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(5)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(config.call_timeout)
                .read_timeout(config.call_timeout)
                .operation_attempt_timeout(config.call_timeout)
                .build(),
        )
        .load()
        .await
}
