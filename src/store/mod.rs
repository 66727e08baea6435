//! Where published feeds and status records live: the port, and its two adapters, an S3
//! bucket ([`S3Store`]) and a local folder ([`LocalStore`]); and, for tests (feature `test-util`),
//! one in memory ([`MemoryStore`]).

mod body;
mod local;
#[cfg(any(test, feature = "test-util"))]
mod memory;
mod s3;

use async_trait::async_trait;
use thiserror::Error;

pub use body::{Body, Pieces};
pub use local::LocalStore;
#[cfg(any(test, feature = "test-util"))]
pub use memory::MemoryStore;
pub use s3::S3Store;

/// Why a read or write of the store failed. Each message names the object and what to check.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StoreError {
    #[error(
        "{target}: access denied ({code}); check the credentials and that the IAM policy allows s3:GetObject and s3:PutObject on the prefix"
    )]
    Denied { target: String, code: String },
    #[error("{target}: the bucket does not exist; create it or fix store.bucket / FLAREFEED_BUCKET")]
    NoBucket { target: String },
    #[error(
        "{target}: cannot reach the S3 endpoint: {detail}; check store.endpoint, AWS_ENDPOINT_URL_S3 and the network"
    )]
    Unreachable { target: String, detail: String },
    #[error(
        "{target}: no AWS credentials were found ({detail}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where a role provides them (Lambda, ECS, EC2)"
    )]
    NoCredentials { target: String, detail: String },
    #[error("{target}: S3 did not answer in time; the endpoint is slow or overloaded")]
    Timeout { target: String },
    #[error("{target}: S3 error: {detail}")]
    S3 { target: String, detail: String },
    #[error("{target}: {detail}")]
    Io { target: String, detail: String },
    /// A conditional write found the object changed since it was read: another writer got there
    /// first, and its write stands.
    #[error(
        "{target}: changed by another refresh of this feed since this one read it; nothing was overwritten, and the other refresh's result stands"
    )]
    Conflict { target: String },
}

/// One stored state of an object, for conditional writes: S3's ETag, or the SHA-256 of a
/// folder file's bytes. Opaque: only compared, never parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Version(pub String);

/// What is known of a stored object without reading it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectInfo {
    /// The fingerprint written with it, where the store keeps metadata (S3 does, a folder does not).
    pub sha256: Option<String>,
    pub version: Version,
}

/// An object's bytes and the version they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub body: Vec<u8>,
    pub version: Version,
    /// When it was written, on the store's clock (S3's `Last-Modified`, a file's mtime).
    pub modified: Option<time::OffsetDateTime>,
}

/// What a write requires of the object it replaces; unmet, the write fails with
/// [`StoreError::Conflict`] and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Condition {
    /// Write whatever is there.
    #[default]
    Any,
    /// Only if there is no such object yet (S3 `If-None-Match: *`).
    Absent,
    /// Only if the object is still this version (S3 `If-Match: <etag>`).
    Matches(Version),
}

impl Condition {
    /// The condition that the object is still as `seen`: that version, or still absent.
    pub fn unchanged_since(seen: Option<&Version>) -> Self {
        seen.map_or(Condition::Absent, |v| Condition::Matches(v.clone()))
    }
}

/// How an object is to be served, and what the write requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOptions<'a> {
    pub content_type: &'a str,
    pub cache_control: &'a str,
    pub sha256: Option<&'a str>,
    pub condition: Condition,
}

/// The port: a flat key space below the configured prefix.
#[async_trait]
pub trait Store: Send + Sync {
    /// Metadata of `key`, or `None` if there is no such object.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError>;
    /// The bytes of `key` and their version, or `None` if there is no such object.
    async fn get(&self, key: &str) -> Result<Option<Stored>, StoreError>;
    /// Replaces `key` as a whole, if `options.condition` holds at the moment of the write
    /// (checked and written atomically). Readers see the old object or the new one, never a mix.
    /// Returns the version written.
    async fn put(&self, key: &str, body: Body, options: PutOptions<'_>) -> Result<Version, StoreError>;
    /// The keys under `folder` (which ends in `/`), one level deep, sorted.
    async fn list(&self, folder: &str) -> Result<Vec<String>, StoreError>;
    /// Where `key` is, for messages (`s3://bucket/prefix/key`, `/srv/public/key`).
    fn locate(&self, key: &str) -> String;
    /// How far the store's clock is ahead of this host's (negative: behind), as its last
    /// answers showed, when it differs by a second or more; `None` when the store shares this
    /// host's clock or has not said. Claims are written and judged on the store's clock, so
    /// that hosts whose clocks disagree still agree on when a claim ends.
    fn clock_offset(&self) -> Option<time::Duration> {
        None
    }
}

/// The time now on `store`'s clock: this host's, corrected by [`Store::clock_offset`].
pub fn store_now(store: &dyn Store) -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    match store.clock_offset() {
        Some(offset) => now.saturating_add(offset),
        None => now,
    }
}

/// Runs a store operation on `key`, giving up at `deadline` with [`StoreError::Timeout`]: the
/// SDK's own timeouts (20 s an attempt, 45 s in all) know nothing of a Lambda's, and a function
/// killed between the feed's PUT and the status PUT records nothing.
pub async fn within<T, E: From<StoreError>>(
    deadline: tokio::time::Instant,
    store: &dyn Store,
    key: &str,
    operation: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    tokio::time::timeout_at(deadline, operation).await.unwrap_or_else(|_| {
        Err(StoreError::Timeout {
            target: store.locate(key),
        }
        .into())
    })
}
