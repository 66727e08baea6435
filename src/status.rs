//! `<prefix>status/<name>.json`: one record per feed, everything an operator needs to see a feed
//! going stale, and the claim that lets one refresh of a feed run at a time.
//!
//! This module owns the record's shape, its reads and writes (always with the version read, for
//! the conditional writes [`crate::refresh`] relies on), the listings, and the one decision made
//! before a refresh starts: may it start at all ([`StatusRecord::gate`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::warn;

use crate::config::{Config, FeedConfig};
use crate::fetch::{DirectClass, Route, Validators};
pub use crate::outcome::Recorded;
use crate::outcome::{Outcome, RefreshError};
use crate::redact::redact_url;
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
    /// A trigger this build does not know, from a newer build's claim: the claim still holds.
    #[serde(other)]
    Other,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::outcome::serde_name(self))
    }
}

/// One feed's record. Times are RFC 3339 in the JSON, as every earlier release wrote them.
///
/// Records outlive builds: during an upgrade an older and a newer build share them. So a value
/// this build does not know (an enum variant, a field) never makes a record unreadable: unknown
/// variants read as `other` (or as absent, for what only informs), and unknown fields are kept
/// as they were and written back ([`StatusRecord::extra`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRecord {
    pub feed: String,
    pub url: String,
    pub outcome: Recorded,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_attempt: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_success: Option<OffsetDateTime>,
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
    /// How the last fetch went: `direct` or `solver`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub fetched_by: Option<Route>,
    /// What the last direct reply was, when it was not the feed and the solver was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<DirectClass>,
    /// Until then the feed goes straight to the solver (`fetch = "auto"`, after the site needed
    /// it); then direct is tried again.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub solver_until: Option<OffsetDateTime>,
    /// The last direct 200's validators, for a conditional GET of the same url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validators: Option<RecordedValidators>,
    /// The solver asked to be left alone until then (HTTP 429 with `Retry-After`): the feed's
    /// backoff lasts at least that long.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub not_before: Option<OffsetDateTime>,
    /// The first attempt this record knows of: a feed never published is stale from then.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub first_attempt: Option<OffsetDateTime>,
    /// The last [`HISTORY`] attempts, oldest first: what the status site's bar shows. Entries
    /// this build cannot read are dropped, never a reason to refuse the record.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "lenient_list")]
    pub history: Vec<Attempted>,
    /// The last refresh that was stopped (Ctrl-C, SIGTERM) before it finished; it changed
    /// nothing else in the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<Interrupted>,
    /// Fields this build does not know, from a newer one: kept, and written back as they were.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// When the record was written, on the store's clock ([`crate::store::Stored::modified`]):
    /// not part of the record, but what bounds a claim whose own times a bad clock wrote.
    #[serde(skip)]
    pub written: Option<OffsetDateTime>,
}

/// How many attempts a record keeps.
pub const HISTORY: usize = 90;

/// One attempt, compact: `[unix seconds, "u"|"n"|"f"|"i", milliseconds]` (updated, unchanged,
/// failed, interrupted), about 20 bytes in the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempted(pub i64, pub AttemptMark, pub u64);

/// An attempt's outcome in one letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptMark {
    #[serde(rename = "u")]
    Updated,
    #[serde(rename = "n")]
    Unchanged,
    #[serde(rename = "f")]
    Failed,
    #[serde(rename = "i")]
    Interrupted,
    /// A mark of a newer build.
    #[serde(other)]
    Other,
}

impl AttemptMark {
    pub fn letter(self) -> char {
        match self {
            AttemptMark::Updated => 'u',
            AttemptMark::Unchanged => 'n',
            AttemptMark::Failed => 'f',
            AttemptMark::Interrupted => 'i',
            AttemptMark::Other => '?',
        }
    }
}

impl StatusRecord {
    /// Adds an attempt at `at` to the history, dropping the oldest beyond [`HISTORY`].
    pub fn remember(&mut self, at: OffsetDateTime, mark: AttemptMark, ms: u64) {
        self.history.push(Attempted(at.unix_timestamp(), mark, ms));
        if self.history.len() > HISTORY {
            let extra = self.history.len() - HISTORY;
            self.history.drain(..extra);
        }
    }
}

/// A refresh stopped by a signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interrupted {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub trigger: Trigger,
    /// `SIGINT`, `SIGTERM`.
    pub by: String,
}

/// A list whose entries this build cannot read are left out.
fn lenient_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let values = Option::<Vec<serde_json::Value>>::deserialize(deserializer)?.unwrap_or_default();
    Ok(values
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

/// An optional value that reads as absent when this build does not understand it: for fields
/// that only inform.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

/// Validators, and the url they belong to (its SHA-256, so the record holds no query): a
/// changed url drops them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedValidators {
    #[serde(flatten)]
    pub validators: Validators,
    pub url_sha256: String,
}

impl RecordedValidators {
    pub fn new(url: &str, validators: Validators) -> Option<Self> {
        (!validators.is_empty()).then(|| Self {
            validators,
            url_sha256: url_digest(url),
        })
    }
}

fn url_digest(url: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(url.as_bytes()))
}

/// A refresh's claim on its feed, kept in the record while it runs. Its times are on the
/// store's clock ([`crate::store::store_now`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub trigger: Trigger,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    /// None of the holder's writes can land after this (see `refresh::LEASE_SLACK`).
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    /// The process that holds it, where known: a claim whose holder is gone from this host is
    /// taken over at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<Holder>,
    /// Written by a refresh that found the record missing while the feed is published: a
    /// refresh may still be in flight whose record was deleted under it. It holds the feed for
    /// one lease, or until that refresh writes its outcome over it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guard: bool,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl InFlight {
    /// A claim for `trigger` by this process, from `started` to `expires`.
    pub fn new(trigger: Trigger, started: OffsetDateTime, expires: OffsetDateTime) -> Self {
        Self {
            trigger,
            started,
            expires,
            holder: Some(Holder::this_process().clone()),
            guard: false,
            extra: Default::default(),
        }
    }

    /// When the claim ends: its `expires`, but never later than `lease` after it started, nor
    /// `lease` after the record was `written` (the store's clock), nor `lease` from `now`. A
    /// claim written by a host whose clock ran ahead, or a record edited by hand (`2099-…`),
    /// would otherwise lock its feed for as long as it says.
    pub fn ends(&self, now: OffsetDateTime, lease: Duration, written: Option<OffsetDateTime>) -> OffsetDateTime {
        let lease = signed(lease);
        let mut ends = self
            .expires
            .min(self.started.saturating_add(lease))
            .min(now.saturating_add(lease));
        if let Some(written) = written {
            ends = ends.min(written.saturating_add(lease));
        }
        ends
    }

    /// How long until the claim ends ([`InFlight::ends`]), if it has not.
    pub fn left(&self, now: OffsetDateTime, lease: Duration, written: Option<OffsetDateTime>) -> Option<Duration> {
        until(self.ends(now, lease, written), now)
    }

    /// Who holds it, in words: `a cli refresh (pid 4242 on build-1)`.
    pub fn describe(&self) -> String {
        if self.guard {
            return "a refresh that may still be in flight (its status record was deleted while the feed is published)"
                .into();
        }
        match &self.holder {
            Some(holder) => format!("a {} refresh (pid {} on {})", self.trigger, holder.pid, holder.host),
            None => format!("a {} refresh", self.trigger),
        }
    }
}

/// The process that holds a claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    /// Linux's `/proc/sys/kernel/random/boot_id`: a pid names the same process only within
    /// one boot of one host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    pub pid: u32,
}

impl Holder {
    /// This process.
    pub fn this_process() -> &'static Holder {
        static THIS: std::sync::OnceLock<Holder> = std::sync::OnceLock::new();
        THIS.get_or_init(|| {
            let read = |path: &str| {
                std::fs::read_to_string(path)
                    .ok()
                    .map(|text| text.trim().to_string())
                    .filter(|text| !text.is_empty())
            };
            Holder {
                host: read("/proc/sys/kernel/hostname")
                    .or_else(|| std::env::var("HOSTNAME").ok())
                    .unwrap_or_else(|| "unknown".into()),
                boot_id: read("/proc/sys/kernel/random/boot_id"),
                pid: std::process::id(),
            }
        })
    }

    /// Whether this is a process of this host, in this boot, that no longer runs. Only Linux
    /// can tell (`/proc/<pid>`); anywhere else a claim is left to expire.
    pub fn is_gone(&self) -> bool {
        let this = Self::this_process();
        let same_boot = this.boot_id.is_some() && this.boot_id == self.boot_id && this.host == self.host;
        same_boot && cfg!(target_os = "linux") && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// What, besides a live claim (which always does), may hold a refresh back.
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    /// The longest lease any refresh of this deployment takes: no claim counts for longer.
    pub lease: Duration,
    /// Skip a refresh this soon after the last attempt (`min_interval_s`).
    pub min_interval: Option<Duration>,
    /// Leave a failing feed alone for a while.
    pub backoff: Option<Backoff>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            lease: DEFAULT_LEASE,
            min_interval: None,
            backoff: None,
        }
    }
}

/// The longest lease of a refresh with the default settings in a Lambda function of the
/// longest timeout (900 s), its status write's grace and slack: where no better bound is known.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(900 + 8 + 30);

/// After `k` consecutive failures, no attempt before `last_attempt + min(interval × 2^k, max)`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub interval: Duration,
    pub max: Duration,
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
            fetched_by: None,
            direct: None,
            solver_until: None,
            validators: None,
            not_before: None,
            first_attempt: None,
            history: Vec::new(),
            interrupted: None,
            extra: Default::default(),
            written: None,
        }
    }

    /// The validators to send for `url`: only those recorded for that same url.
    pub fn validators_for(&self, url: &str) -> Option<&Validators> {
        let recorded = self.validators.as_ref()?;
        (recorded.url_sha256 == url_digest(url)).then_some(&recorded.validators)
    }

    /// May a refresh start now? `None` if it may; otherwise the outcome of a refresh that stops
    /// here, having fetched and written nothing: busy (a live claim), backing off, or too recent.
    pub fn gate(&self, gate: Gate, now: OffsetDateTime) -> Option<Outcome> {
        if let Some(busy) = self.busy(now, gate.lease) {
            return Some(busy);
        }
        if let Some(backoff) = gate.backoff
            && let Some(wait) = self.backing_off(backoff, now)
        {
            return Some(Outcome::Backoff {
                retry_after_s: seconds(wait),
                failures: self.consecutive_failures,
            });
        }
        if let Some(min) = gate.min_interval
            && let Some(wait) = self.too_recent(min, now)
        {
            return Some(Outcome::Skipped {
                retry_after_s: seconds(wait),
            });
        }
        None
    }

    /// [`Outcome::Busy`] if the record holds a claim that has not ended ([`InFlight::ends`])
    /// and whose holder may still run ([`Holder::is_gone`]).
    pub fn busy(&self, now: OffsetDateTime, lease: Duration) -> Option<Outcome> {
        let in_flight = self.in_flight.as_ref()?;
        let left = in_flight.left(now, lease, self.written)?;
        if in_flight.holder.as_ref().is_some_and(Holder::is_gone) {
            return None;
        }
        let until = in_flight.ends(now, lease, self.written);
        Some(Outcome::Busy {
            retry_after_s: seconds(left),
            started: in_flight.started,
            until,
            holder: in_flight.describe(),
            clamped: until < in_flight.expires,
        })
    }

    /// How long until `min_interval` has passed since the last attempt, if it has not. A last
    /// attempt in the future (a clock that ran backwards) is not "too recent" forever.
    pub fn too_recent(&self, min_interval: Duration, now: OffsetDateTime) -> Option<Duration> {
        let last = self.last_attempt?;
        if last > now {
            return None;
        }
        until(last.saturating_add(signed(min_interval)), now)
    }

    /// How long a failing feed is still left alone: its doubling backoff, and at least until a
    /// solver's `Retry-After` ([`StatusRecord::not_before`]).
    pub fn backing_off(&self, backoff: Backoff, now: OffsetDateTime) -> Option<Duration> {
        let failures = self.consecutive_failures;
        if failures == 0 {
            return None;
        }
        let asked = self.not_before.and_then(|at| until(at, now));
        let doubling = self.doubling_backoff(backoff, now);
        asked.max(doubling)
    }

    fn doubling_backoff(&self, backoff: Backoff, now: OffsetDateTime) -> Option<Duration> {
        let failures = self.consecutive_failures;
        let last = self.last_attempt?;
        let factor = 2u32.checked_pow(failures).unwrap_or(u32::MAX);
        let wait = backoff
            .interval
            .checked_mul(factor)
            .unwrap_or(backoff.max)
            .min(backoff.max);
        until(last.saturating_add(signed(wait)), now)
    }
}

/// The time from `now` until `at`, if `at` is later.
fn until(at: OffsetDateTime, now: OffsetDateTime) -> Option<Duration> {
    (at > now).then(|| (at - now).try_into().unwrap_or_default())
}

/// A std duration as a time one, saturating: nothing computed from a setting can overflow.
pub(crate) fn signed(duration: Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::MAX)
}

/// Whole seconds to wait, at least one: a `Retry-After` of 0 invites a busy loop.
fn seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// A record as read, with the version a conditional write of it must match.
#[derive(Debug, Clone, Default)]
pub struct Read {
    /// `None` when there is none.
    pub record: Option<StatusRecord>,
    /// `None` when there is no record at all.
    pub version: Option<Version>,
}

/// Reads `feed`'s record. One that does not parse is an error that names the key at fault: a
/// record read as "none" would hide a live claim and the feed's history.
pub async fn read(store: &dyn Store, feed: &FeedConfig) -> Result<Read, RefreshError> {
    let key = feed.status_key();
    let Some(stored) = store.get(&key).await? else {
        return Ok(Read::default());
    };
    let mut record = parse(&stored.body).map_err(|(at, detail)| RefreshError::BadRecord {
        target: store.locate(&key),
        key: at,
        detail,
    })?;
    record.written = stored.modified;
    Ok(Read {
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
    store.put(&feed.status_key(), body, options).await
}

/// The most an unchanged refresh's record may lag: an hour, or four of the feed's intervals if
/// that is shorter (issue 21). Within it, an unchanged queued refresh writes no record, so the
/// record's `last_attempt` and `last_success` say the feed was checked *at least* that recently.
pub const MAX_RECORD_LAG: Duration = Duration::from_secs(3600);

/// The lag allowed for `feed`'s record.
pub fn record_lag(feed: &FeedConfig) -> Duration {
    MAX_RECORD_LAG.min(feed.interval.saturating_mul(4))
}

/// Whether `before`, as last written, is recent enough that an unchanged refresh now need not
/// write it: its last recorded attempt is within [`record_lag`] on the store's clock. A record
/// up to 5 minutes in the clock's future counts as just written; one further ahead (a clock
/// that jumped back) is written again, as is one past the lag.
pub fn lag_allows(before: &StatusRecord, feed: &FeedConfig, now: OffsetDateTime) -> bool {
    let Some(at) = before.last_attempt else {
        return false;
    };
    let age = now - at;
    age < time::Duration::try_from(record_lag(feed)).unwrap_or(time::Duration::MAX) && age > -time::Duration::minutes(5)
}

/// Whether the finished record `after` may be left unwritten: the refresh was unchanged, the
/// record last written (`before`) is within its lag, and nothing in it but the times of the
/// check (`last_attempt`, `last_success`, durations, history) would change. What the record
/// says about the published feed, the last failure and the route is then exactly true; only
/// the time of the last check lags.
pub fn recent_enough(
    before: Option<&StatusRecord>,
    after: &StatusRecord,
    feed: &FeedConfig,
    now: OffsetDateTime,
) -> bool {
    let Some(before) = before else {
        return false;
    };
    if after.outcome != crate::outcome::Recorded::Unchanged
        || before.outcome != crate::outcome::Recorded::Unchanged && before.outcome != crate::outcome::Recorded::Updated
        || before.in_flight.is_some()
        || !lag_allows(before, feed, now)
    {
        return false;
    }
    // Updated then unchanged is a change of the word only; the site and status say "ok" for both.
    let material = |record: &StatusRecord| {
        let mut value = serde_json::to_value(record).expect("a status record always serializes");
        if let Some(map) = value.as_object_mut() {
            for key in [
                "last_attempt",
                "last_success",
                "total_ms",
                "solver_ms",
                "history",
                "outcome",
            ] {
                map.remove(key);
            }
        }
        value
    };
    material(before) == material(after)
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
        if !key.ends_with(".json") || key == crate::config::SITE_INDEX {
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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn names_are_serdes() {
        assert_eq!(Recorded::Never.to_string(), "never");
        assert_eq!(crate::outcome::serde_name(&Trigger::Http), "http");
        let record = StatusRecord::never(&FeedConfig::new("a", "https://user:pw@a.test/feed?k=1"));
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["outcome"], "never");
        assert_eq!(json["url"], "https://…@a.test/feed?…");
        assert!(json.get("in_flight").is_none() && json.get("final_url").is_none());
    }

    #[test]
    fn min_interval_and_claims_are_judged_against_now() {
        let now = datetime!(2026-11-22 10:00 UTC);
        let mut record = StatusRecord::never(&FeedConfig::new("a", "https://a.test/feed"));
        assert_eq!(record.too_recent(Duration::from_secs(60), now), None);
        record.last_attempt = Some(datetime!(2026-11-22 09:59:30 UTC));
        assert_eq!(
            record.too_recent(Duration::from_secs(60), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(record.too_recent(Duration::from_secs(30), now), None);
        // A clock that ran backwards is not "too recent" forever.
        record.last_attempt = Some(datetime!(2026-11-22 10:05 UTC));
        assert_eq!(record.too_recent(Duration::from_secs(60), now), None);

        assert!(record.busy(now, DEFAULT_LEASE).is_none());
        record.in_flight = Some(InFlight::new(
            Trigger::Schedule,
            datetime!(2026-11-22 09:59 UTC),
            datetime!(2026-11-22 10:01 UTC),
        ));
        assert_eq!(
            record.in_flight.as_ref().unwrap().left(now, DEFAULT_LEASE, None),
            Some(Duration::from_secs(60))
        );
        assert!(matches!(
            record.busy(now, DEFAULT_LEASE),
            Some(Outcome::Busy {
                retry_after_s: 60,
                clamped: false,
                ..
            })
        ));
        assert!(record.busy(now + time::Duration::minutes(2), DEFAULT_LEASE).is_none());
    }

    /// Finding 2: a claim's times are trusted only within the longest lease, from the claim's
    /// own start and from now, and the busy message says who holds it until when.
    #[test]
    fn a_claim_beyond_any_lease_is_clamped_to_it() {
        let now = datetime!(2026-12-03 10:00 UTC);
        let lease = Duration::from_secs(600);
        let mut record = StatusRecord::never(&FeedConfig::new("a", "https://a.test/feed"));
        // Edited by hand, or a clock decades ahead: 2099.
        record.in_flight = Some(InFlight::new(
            Trigger::Cli,
            datetime!(2026-12-03 09:58 UTC),
            datetime!(2099-01-01 00:00 UTC),
        ));
        let Some(Outcome::Busy {
            retry_after_s,
            until,
            clamped,
            ..
        }) = record.busy(now, lease)
        else {
            panic!("a claim started 2 minutes ago is live")
        };
        assert_eq!(
            (retry_after_s, until, clamped),
            (480, datetime!(2026-12-03 10:08 UTC), true)
        );
        let said = record.busy(now, lease).unwrap().to_string();
        assert!(
            said.contains("holds the feed until 2026-12-03T10:08:00Z (retry in 480 s)"),
            "{said}"
        );
        assert!(said.contains("a clock ahead"), "{said}");
        assert!(said.contains(&format!("pid {}", std::process::id())), "{said}");

        // A host 2 hours ahead, killed mid-refresh: started and expires in the future, and the
        // store's clock says when it wrote them.
        record.written = Some(now);
        record.in_flight = Some(InFlight::new(
            Trigger::Cli,
            datetime!(2026-12-03 12:00 UTC),
            datetime!(2026-12-03 12:06 UTC),
        ));
        assert!(matches!(
            record.busy(now, lease),
            Some(Outcome::Busy {
                retry_after_s: 600,
                clamped: true,
                ..
            })
        ));
        assert!(
            record.busy(now + time::Duration::minutes(10), lease).is_none(),
            "not 2 hours"
        );
        // An honest claim is untouched.
        record.in_flight = Some(InFlight::new(
            Trigger::Cli,
            datetime!(2026-12-03 09:59 UTC),
            datetime!(2026-12-03 10:05 UTC),
        ));
        assert!(matches!(
            record.busy(now, lease),
            Some(Outcome::Busy {
                retry_after_s: 300,
                clamped: false,
                ..
            })
        ));
    }

    /// Finding 1: a claim whose process is gone from this host is no claim; one from another
    /// host, or from this process, is.
    #[test]
    fn a_claim_of_a_process_gone_from_this_host_is_taken_over() {
        let now = OffsetDateTime::now_utc();
        let mut record = StatusRecord::never(&FeedConfig::new("a", "https://a.test/feed"));
        let mut claim = InFlight::new(Trigger::Cli, now, now + time::Duration::minutes(5));
        record.in_flight = Some(claim.clone());
        assert!(record.busy(now, DEFAULT_LEASE).is_some(), "this process holds it");
        let this = Holder::this_process();
        if this.boot_id.is_some() && cfg!(target_os = "linux") {
            // A pid above Linux's pid_max (4194304) never runs.
            claim.holder = Some(Holder {
                pid: 4_194_305,
                ..this.clone()
            });
            record.in_flight = Some(claim.clone());
            assert!(record.busy(now, DEFAULT_LEASE).is_none(), "its holder is gone");
        }
        claim.holder = Some(Holder {
            host: "elsewhere".into(),
            boot_id: Some("another-boot".into()),
            pid: 4_194_305,
        });
        record.in_flight = Some(claim);
        assert!(record.busy(now, DEFAULT_LEASE).is_some(), "another host's claim stands");
    }

    /// Finding 7: what a newer build writes (a trigger, an outcome, a route, a field this one
    /// does not know) reads, keeps a live claim live, and is written back as it was.
    #[test]
    fn records_of_newer_builds_read_and_keep_what_they_do_not_know() {
        let now = OffsetDateTime::now_utc();
        let text = serde_json::json!({
            "feed": "news",
            "url": "https://news.example.test/rss.xml",
            "outcome": "quarantined",
            "last_attempt": crate::outcome::rfc3339(now),
            "last_success": "2026-12-01T08:15:02Z",
            "last_error": null,
            "consecutive_failures": 2,
            "items": 3, "bytes": 10, "sha256": "ab", "solver_ms": null, "total_ms": null,
            "fetched_by": "carrier-pigeon",
            "quarantine_log": [{"at": "2026-12-01T08:15:02Z", "outcome": "updated"}],
            "history": [[1796292000, "u", 1200], {"at": 1}, [1796292900, "z", 3]],
            "in_flight": {
                "trigger": "webhook",
                "started": crate::outcome::rfc3339(now),
                "expires": crate::outcome::rfc3339(now + time::Duration::minutes(5)),
                "lease_owner": "x"
            }
        })
        .to_string();
        let record = parse(text.as_bytes()).unwrap();
        assert_eq!(record.outcome, Recorded::Other);
        assert_eq!(record.fetched_by, None);
        assert_eq!(record.consecutive_failures, 2);
        assert_eq!(record.last_success, Some(datetime!(2026-12-01 08:15:02 UTC)));
        let claim = record.in_flight.as_ref().unwrap();
        assert_eq!(claim.trigger, Trigger::Other);
        assert!(record.busy(now, DEFAULT_LEASE).is_some(), "a live claim stays live");
        let written = serde_json::to_value(&record).unwrap();
        assert_eq!(
            written["quarantine_log"][0]["outcome"], "updated",
            "unknown fields are kept"
        );
        assert_eq!(
            record.history,
            [
                Attempted(1796292000, AttemptMark::Updated, 1200),
                Attempted(1796292900, AttemptMark::Other, 3)
            ],
            "history entries it cannot read are left out"
        );
        assert_eq!(written["in_flight"]["lease_owner"], "x");
    }

    #[test]
    fn backoff_doubles_per_failure_up_to_the_cap() {
        let mut record = StatusRecord::never(&FeedConfig::new("news", "https://site.test/feed"));
        let now = datetime!(2026-11-22 12:00 UTC);
        let backoff = Backoff {
            interval: Duration::from_secs(900),
            max: Duration::from_secs(24 * 3600),
        };
        record.last_attempt = Some(now);
        assert_eq!(record.backing_off(backoff, now), None, "no failure, no backoff");
        for (failures, wait) in [(1, 1800), (2, 3600), (3, 7200), (7, 86_400), (40, 86_400)] {
            record.consecutive_failures = failures;
            assert_eq!(
                record.backing_off(backoff, now),
                Some(Duration::from_secs(wait)),
                "{failures}"
            );
        }
        // Finding 10: durations at the types' limits saturate, and never panic.
        let absurd = Backoff {
            interval: Duration::MAX,
            max: Duration::MAX,
        };
        record.consecutive_failures = 1;
        assert!(record.backing_off(absurd, now).is_some());
        record.consecutive_failures = u32::MAX;
        assert!(record.backing_off(absurd, now).is_some());
        record.consecutive_failures = 1;
        assert_eq!(
            record.backing_off(backoff, now + time::Duration::minutes(29)),
            Some(Duration::from_secs(60))
        );
        assert_eq!(record.backing_off(backoff, now + time::Duration::minutes(30)), None);
        // A solver's Retry-After holds the feed back at least that long.
        record.not_before = Some(now + time::Duration::hours(2));
        assert_eq!(
            record.backing_off(backoff, now + time::Duration::minutes(30)),
            Some(Duration::from_secs(5400))
        );
    }

    /// One gate: a live claim first, then the backoff, then min_interval, each only if asked.
    #[test]
    fn the_gate_decides_busy_backoff_and_min_interval_in_that_order() {
        let now = datetime!(2026-11-22 12:00 UTC);
        let mut record = StatusRecord::never(&FeedConfig::new("news", "https://site.test/feed"));
        let all = Gate {
            lease: DEFAULT_LEASE,
            min_interval: Some(Duration::from_secs(60)),
            backoff: Some(Backoff {
                interval: Duration::from_secs(900),
                max: Duration::from_secs(3600),
            }),
        };
        assert_eq!(record.gate(all, now), None, "never attempted: nothing holds it back");
        record.last_attempt = Some(now - time::Duration::seconds(10));
        assert_eq!(record.gate(all, now), Some(Outcome::Skipped { retry_after_s: 50 }));
        assert_eq!(record.gate(Gate::default(), now), None);
        record.consecutive_failures = 1;
        assert_eq!(
            record.gate(all, now),
            Some(Outcome::Backoff {
                retry_after_s: 1790,
                failures: 1
            })
        );
        record.in_flight = Some(InFlight::new(Trigger::Cli, now, now + time::Duration::seconds(90)));
        assert!(matches!(
            record.gate(Gate::default(), now),
            Some(Outcome::Busy { retry_after_s: 90, .. })
        ));
    }

    /// Records written by the release before typed times still read, and a bad time names its
    /// key.
    #[test]
    fn todays_records_read_and_a_bad_time_names_its_key() {
        let today = br#"{
  "feed": "news",
  "url": "https://news.example.test/rss.xml",
  "outcome": "updated",
  "last_attempt": "2026-12-01T08:15:02.123456789Z",
  "last_success": "2026-12-01T08:15:02.123456789Z",
  "last_error": null,
  "consecutive_failures": 0,
  "items": 2,
  "bytes": 1234,
  "sha256": "ab",
  "solver_ms": 310,
  "total_ms": 330,
  "in_flight": {"trigger": "queue", "started": "2026-12-01T08:20:00.5Z", "expires": "2026-12-01T08:22:08.5Z"}
}"#;
        let record = parse(today).unwrap();
        assert_eq!(record.last_attempt, Some(datetime!(2026-12-01 08:15:02.123456789 UTC)));
        assert_eq!(record.in_flight.as_ref().unwrap().trigger, Trigger::Queue);
        let again = parse(&serde_json::to_vec(&record).unwrap()).unwrap();
        assert_eq!(again, record, "what this release writes, it reads");
        let text = String::from_utf8(serde_json::to_vec(&record).unwrap()).unwrap();
        assert!(text.contains("\"2026-12-01T08:15:02.123456789Z\""), "{text}");

        let bad = String::from_utf8(today.to_vec())
            .unwrap()
            .replace("2026-12-01T08:22:08.5Z", "soon");
        let (key, detail) = parse(bad.as_bytes()).unwrap_err();
        assert_eq!(key, "in_flight.expires", "{detail}");
    }
}
