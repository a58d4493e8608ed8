//! What a request turned out to be, noted while s3s handles it: [`super::access`] knows the
//! operation, bucket, key and caller, [`super::forward`] the S3 error it ended with, and
//! [`super::log`] writes them into the request's line; [`super::chunks`] notes why a body
//! was refused, for `forward` to answer. Its own file so that the three share
//! it without depending on one another.

use std::sync::{Arc, Mutex, MutexGuard};

use s3s::{S3Error, S3ErrorCode};

#[derive(Debug, Default)]
pub(super) struct Fields {
    pub(super) op: Option<String>,
    pub(super) bucket: Option<String>,
    pub(super) key: Option<String>,
    pub(super) caller: Option<String>,
    pub(super) error: Option<String>,
    /// Why the request body was refused while it streamed (`chunks`, `log`'s length count).
    pub(super) body_refusal: Option<(S3ErrorCode, String)>,
    /// Why it was refused before AWS, for the metrics (`metrics`).
    pub(super) refusal: Option<&'static str>,
    /// The error S3 answered (or `unreachable`), for the metrics.
    pub(super) backend_error: Option<String>,
}

/// What the request turned out to be, filled in while s3s handles it.
#[derive(Debug, Clone, Default)]
pub struct Note(Arc<Mutex<Fields>>);

impl Note {
    pub(super) fn lock(&self) -> MutexGuard<'_, Fields> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn identify(
        &self,
        op: &str,
        bucket: Option<String>,
        key: Option<String>,
        caller: Option<String>,
    ) {
        let mut f = self.lock();
        f.op = Some(op.to_string());
        f.bucket = bucket;
        f.key = key;
        f.caller = caller;
    }

    /// The S3 error code the request ended with (when the gateway knows it).
    pub fn error(&self, code: &str) {
        self.lock().error = Some(code.to_string());
    }

    /// Records why the request was refused before AWS (the first reason stays).
    pub fn refuse(&self, reason: &'static str) {
        self.lock().refusal.get_or_insert(reason);
    }

    /// Records the error S3 answered, or `unreachable`.
    pub fn backend_error(&self, code: &str) {
        self.lock().backend_error = Some(code.to_string());
    }

    /// Records why the body is refused (the first reason stays).
    pub fn refuse_body(&self, code: S3ErrorCode, message: impl Into<String>) {
        let mut f = self.lock();
        f.refusal.get_or_insert("body");
        if f.body_refusal.is_none() {
            f.body_refusal = Some((code, message.into()));
        }
    }

    /// The S3 error for a body refused while it streamed, if it was.
    pub fn body_refusal(&self) -> Option<S3Error> {
        let (code, message) = self.lock().body_refusal.clone()?;
        Some(S3Error::with_message(code, message))
    }
}
