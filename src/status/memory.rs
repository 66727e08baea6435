//! The item memory in the store, beside the status records ([`crate::items`] is what it
//! holds): read once by a refresh that needs it, written before the feed when it changed.

use tracing::warn;

use crate::items::{Memory, key};
use crate::store::{Condition, PutOptions, Store, StoreError, Version};

/// The memory as read, and the version a write must replace.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub memory: Memory,
    /// `None`: there is none yet.
    pub version: Option<Version>,
}

/// The feed's memory; an empty one if there is none. One that does not parse (written by hand,
/// cut short) is started afresh, with a warning: the items on the page are then dated now, once.
pub async fn read(store: &dyn Store, feed: &str) -> Result<Stored, StoreError> {
    let key = key(feed);
    let Some(stored) = store.get(&key).await? else {
        return Ok(Stored::default());
    };
    let memory = serde_json::from_slice(&stored.body).unwrap_or_else(|e| {
        warn!(feed, key = %store.locate(&key), error = %e, "the item memory does not parse: starting it afresh");
        Memory::default()
    });
    Ok(Stored {
        memory,
        version: Some(stored.version),
    })
}

/// Writes the memory over `version` (or where there is none), and fails if another writer got
/// there first: on S3 an `If-Match` or `If-None-Match: *` PUT, which S3 refuses with 412 when the
/// object changed (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
pub async fn write(
    store: &dyn Store,
    feed: &str,
    memory: &Memory,
    version: Option<&Version>,
) -> Result<Version, StoreError> {
    let body = serde_json::to_vec(memory).expect("the item memory always serializes");
    let options = PutOptions {
        content_type: "application/json",
        cache_control: "no-cache",
        sha256: None,
        condition: Condition::unchanged_since(version),
    };
    store.put(&key(feed), body.into(), options).await
}
