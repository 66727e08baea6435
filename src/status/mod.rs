//! `<prefix>status/<name>.json`: one record per feed, everything an operator needs to see a feed
//! going stale, and the claim that lets one refresh of a feed run at a time.
//!
//! - [`record`]: the record's shape, which outlives builds, and the transitions an attempt
//!   makes to it.
//! - [`lease`]: the claim protocol: the gate before a refresh, the claim, its release; its
//!   [`holder`], the process that holds a claim.
//! - [`lag`]: how long an unchanged refresh may leave its record unwritten.
//! - [`memory`]: the item memory's reads and writes, beside the records.
//! - Here: the record's reads and writes (always with the version read, for the conditional
//!   writes the lease relies on) and the listings.

pub mod holder;
pub mod lag;
pub mod lease;
pub mod memory;
pub mod record;
#[cfg(test)]
mod tests;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::warn;

use crate::config::{Config, FeedConfig};
pub use crate::outcome::Recorded;
use crate::outcome::RefreshError;
use crate::store::{Condition, PutOptions, Store, StoreError, Version};
pub use holder::Holder;
pub use lag::{MAX_RECORD_LAG, lag_allows, recent_enough, record_lag};
pub use lease::{
    Backoff, DEFAULT_LEASE, Gate, Hold, InFlight, LEASE_SLACK, Lease, Recording, Refused, Released, STATUS_WRITE_GRACE,
};
pub use record::{AttemptMark, Attempted, Document, Findings, HISTORY, Interrupted, RecordedValidators, StatusRecord};

/// What a refresh started from, for logs and the record; it decides nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    /// A message from the fleet's queue.
    Queue,
    Http,
    Cli,
    /// A trigger this build does not know, from a newer build's claim: the claim still holds.
    #[serde(other)]
    Other,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::outcome::serde_name(self))
    }
}

/// The time from `now` until `at`, if `at` is later.
pub(crate) fn until(at: OffsetDateTime, now: OffsetDateTime) -> Option<Duration> {
    (at > now).then(|| (at - now).try_into().unwrap_or_default())
}

/// A std duration as a time one, saturating: nothing computed from a setting can overflow.
pub(crate) fn signed(duration: Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::MAX)
}

/// Whole seconds to wait, at least one: a `Retry-After` of 0 invites a busy loop.
pub(crate) fn seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// A record as read, with the version a conditional write of it must match.
#[derive(Debug, Clone, Default)]
pub struct Versioned {
    /// `None` when there is none.
    pub record: Option<StatusRecord>,
    /// `None` when there is no record at all.
    pub version: Option<Version>,
}

/// Reads `feed`'s record. One that does not parse is an error that names the key at fault: a
/// record read as "none" would hide a live claim and the feed's history.
pub async fn read(store: &dyn Store, feed: &FeedConfig) -> Result<Versioned, RefreshError> {
    let key = feed.status_key();
    let Some(stored) = store.get(&key).await? else {
        return Ok(Versioned::default());
    };
    let mut record = parse(&stored.body).map_err(|(at, detail)| RefreshError::BadRecord {
        target: store.locate(&key),
        key: at,
        detail,
    })?;
    record.written = stored.modified;
    Ok(Versioned {
        record: Some(record),
        version: Some(stored.version),
    })
}

/// A record from its JSON, or the path of the key at fault (`.` for the whole) and why.
pub fn parse(body: &[u8]) -> Result<StatusRecord, (String, String)> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        (path, e.into_inner().to_string())
    })
}

/// Writes `feed`'s record if `condition` holds; returns the version written.
pub async fn write(
    store: &dyn Store,
    feed: &FeedConfig,
    record: &StatusRecord,
    condition: Condition,
) -> Result<Version, StoreError> {
    let body = serde_json::to_vec_pretty(record).expect("a status record always serializes");
    let options = PutOptions {
        content_type: "application/json",
        cache_control: "no-cache",
        sha256: None,
        condition,
    };
    store.put(&feed.status_key(), body.into(), options).await
}

/// The record of every configured feed, `never` where there is none yet.
pub async fn all(store: &dyn Store, config: &Config) -> Result<Vec<StatusRecord>, RefreshError> {
    let mut records = Vec::with_capacity(config.feeds.len());
    for feed in &config.feeds {
        records.push(
            read(store, feed)
                .await?
                .record
                .unwrap_or_else(|| StatusRecord::never(feed)),
        );
    }
    Ok(records)
}

/// Every record in the store, configured feed or not, by feed name: what `flarefeed status`
/// shows without a configuration. Objects that are not records are skipped, with a warning.
pub async fn found(store: &dyn Store) -> Result<Vec<StatusRecord>, StoreError> {
    let mut records = Vec::new();
    for key in store.list("status/").await? {
        // The status site's summary lives beside the records, and is not one.
        if !key.ends_with(".json") || key == crate::config::LEGACY_SITE_INDEX {
            continue;
        }
        let Some(stored) = store.get(&key).await? else {
            continue;
        };
        match parse(&stored.body) {
            Ok(record) => records.push(record),
            Err((at, e)) => warn!(target = %store.locate(&key), key = %at, error = %e, "not a status record; skipped"),
        }
    }
    records.sort_by(|a, b| a.feed.cmp(&b.feed));
    Ok(records)
}
