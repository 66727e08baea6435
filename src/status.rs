//! `<prefix>status/<name>.json`: one record per feed, everything an operator needs to see a feed
//! going stale, and the claim that lets one refresh of a feed run at a time.
//!
//! This module owns the record's shape, its reads and writes (always with the version read, for
//! the conditional writes [`crate::refresh`] relies on), the listings, and the two checks made
//! before a refresh starts: a live claim, and `min_interval_s`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::warn;

use crate::config::{Config, FeedConfig, redact_url};
use crate::store::{Condition, PutOptions, Store, StoreError, Version};

/// What a refresh started from, for logs and the record; it decides nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    /// A message from the fleet's queue.
    Queue,
    Http,
    Cli,
}

/// The last attempt's outcome, as the record keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recorded {
    /// No attempt yet (listings only; never written).
    Never,
    Updated,
    Unchanged,
    Failed,
}

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_name(self))
    }
}

/// A unit variant's name as serde writes it: one spelling, serde's.
pub(crate) fn serde_name(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        other => unreachable!("a unit variant serializes as a string, not {other:?}"),
    }
}

/// One feed's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRecord {
    pub feed: String,
    pub url: String,
    pub outcome: Recorded,
    pub last_attempt: Option<String>,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    /// Items, size and fingerprint of the published feed.
    pub items: Option<usize>,
    pub bytes: Option<usize>,
    pub sha256: Option<String>,
    pub solver_ms: Option<u64>,
    pub total_ms: Option<u64>,
    /// Where the last fetch ended up, when a redirect took it away from `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_url: Option<String>,
    /// The refresh running now, if any (or one that was killed, until its claim expires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
    /// The solver that answered the last fetch, without secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solver: Option<String>,
}

/// A refresh's claim on its feed, kept in the record while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub trigger: Trigger,
    /// RFC 3339.
    pub started: String,
    /// RFC 3339. None of the holder's writes can land after this (see `refresh::LEASE_SLACK`).
    pub expires: String,
}

impl InFlight {
    /// How long until the claim expires, if it has not.
    pub fn left(&self, now: OffsetDateTime) -> Option<Duration> {
        let expires = OffsetDateTime::parse(&self.expires, &Rfc3339).ok()?;
        (expires > now).then(|| (expires - now).try_into().unwrap_or_default())
    }
}

impl StatusRecord {
    /// The record shown for a feed that has never been attempted.
    pub fn never(feed: &FeedConfig) -> Self {
        Self {
            feed: feed.name.clone(),
            url: redact_url(&feed.url),
            outcome: Recorded::Never,
            last_attempt: None,
            last_success: None,
            last_error: None,
            consecutive_failures: 0,
            items: None,
            bytes: None,
            sha256: None,
            solver_ms: None,
            total_ms: None,
            final_url: None,
            in_flight: None,
            solver: None,
        }
    }

    /// How long until `min_interval` has passed since the last attempt, if it has not.
    pub fn too_recent(&self, min_interval: Duration, now: OffsetDateTime) -> Option<Duration> {
        let last = OffsetDateTime::parse(self.last_attempt.as_deref()?, &Rfc3339).ok()?;
        let since = now - last;
        let min = time::Duration::try_from(min_interval).ok()?;
        (since >= time::Duration::ZERO && since < min).then(|| (min - since).try_into().unwrap_or_default())
    }

    /// The claim of a refresh running now, if it has not expired.
    pub fn live_claim(&self, now: OffsetDateTime) -> Option<(&InFlight, Duration)> {
        let in_flight = self.in_flight.as_ref()?;
        Some((in_flight, in_flight.left(now)?))
    }
}

/// A record as read, with the version a conditional write of it must match.
#[derive(Debug, Clone, Default)]
pub struct Read {
    /// `None` when there is none, or it is not valid JSON (then it is started anew).
    pub record: Option<StatusRecord>,
    /// `None` when there is no record at all.
    pub version: Option<Version>,
}

/// Reads `feed`'s record.
pub async fn read(store: &dyn Store, feed: &FeedConfig) -> Result<Read, StoreError> {
    let Some(stored) = store.get(&feed.status_key()).await? else {
        return Ok(Read::default());
    };
    let record = serde_json::from_slice(&stored.body)
        .inspect_err(
            |e| warn!(feed = %feed.name, error = %e, "the status record is not valid JSON; starting a new one"),
        )
        .ok();
    Ok(Read {
        record,
        version: Some(stored.version),
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
    store.put(&feed.status_key(), body, options).await
}

/// The record of every configured feed, `never` where there is none yet.
pub async fn all(store: &dyn Store, config: &Config) -> Result<Vec<StatusRecord>, StoreError> {
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
        if !key.ends_with(".json") {
            continue;
        }
        let Some(stored) = store.get(&key).await? else {
            continue;
        };
        match serde_json::from_slice::<StatusRecord>(&stored.body) {
            Ok(record) => records.push(record),
            Err(e) => warn!(target = %store.locate(&key), error = %e, "not a status record; skipped"),
        }
    }
    records.sort_by(|a, b| a.feed.cmp(&b.feed));
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_serdes() {
        assert_eq!(Recorded::Never.to_string(), "never");
        assert_eq!(serde_name(&Trigger::Http), "http");
        let record = StatusRecord::never(&FeedConfig::new("a", "https://user:pw@a.test/feed?k=1"));
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["outcome"], "never");
        assert_eq!(json["url"], "https://…@a.test/feed?…");
        assert!(json.get("in_flight").is_none() && json.get("final_url").is_none());
    }

    #[test]
    fn min_interval_and_claims_are_judged_against_now() {
        let now = OffsetDateTime::parse("2026-11-22T10:00:00Z", &Rfc3339).unwrap();
        let mut record = StatusRecord::never(&FeedConfig::new("a", "https://a.test/feed"));
        assert_eq!(record.too_recent(Duration::from_secs(60), now), None);
        record.last_attempt = Some("2026-11-22T09:59:30Z".into());
        assert_eq!(
            record.too_recent(Duration::from_secs(60), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(record.too_recent(Duration::from_secs(30), now), None);
        // A clock that ran backwards is not "too recent" forever.
        record.last_attempt = Some("2026-11-22T10:05:00Z".into());
        assert_eq!(record.too_recent(Duration::from_secs(60), now), None);

        assert!(record.live_claim(now).is_none());
        record.in_flight = Some(InFlight {
            trigger: Trigger::Schedule,
            started: "2026-11-22T09:59:00Z".into(),
            expires: "2026-11-22T10:01:00Z".into(),
        });
        assert_eq!(record.live_claim(now).unwrap().1, Duration::from_secs(60));
        assert!(record.live_claim(now + time::Duration::minutes(2)).is_none());
    }
}
