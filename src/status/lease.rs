//! The claim that lets one refresh of a feed run at a time, held as a [`Lease`].
//!
//! A refresh acquires the lease before it fetches anything: the gate (a live claim, a backoff,
//! `min_interval_s`), the guard for a record deleted under a refresh in flight, then the claim
//! itself, an [`InFlight`] written into the record with a conditional write, so that of two
//! refreshes that read the same record only one can claim it. A queued refresh writes no claim:
//! its feed's FIFO message group is the one writer. The lease ends with the finished record
//! written over the claim ([`Lease::release`]), or with the record put back as it was when the
//! refresh was interrupted ([`Lease::put_back`]). A claim expires when its holder can no longer
//! write (its deadline, [`STATUS_WRITE_GRACE`] and [`LEASE_SLACK`]), so a killed refresh
//! blocks nobody for long; and the record is written only if it is still the claim, so a
//! refresh that outlived its claim and was overtaken writes nothing.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::{Holder, StatusRecord, Trigger, Versioned, lag, seconds, signed, until};
use crate::config::FeedConfig;
use crate::outcome::{Outcome, Recorded};
use crate::store::{Condition, Store, StoreError, Version, store_now, within};

/// The status record may still be written this long after the refresh's deadline; the Lambda
/// handler keeps more than this between that deadline and its own (`handler::SAFETY_MARGIN`).
pub const STATUS_WRITE_GRACE: Duration = Duration::from_secs(8);

/// A claim outlasts its holder's last possible write by this much: for clocks that disagree
/// (Lambda's are NTP-synchronised; a CLI host's may drift) and a write already on the wire when
/// its holder gave up.
pub const LEASE_SLACK: Duration = Duration::from_secs(30);

/// How long an interrupted refresh waits for its record to be put back.
const PUT_BACK_TIME: Duration = Duration::from_secs(2);

/// One refresh's hold on its feed, from the gate to the finished record.
pub struct Lease<'a> {
    store: &'a dyn Store,
    feed: &'a FeedConfig,
    trigger: Trigger,
    hold: Hold,
    /// The record as claimed: the attempt starts from it, and its transitions finish it.
    claimed: StatusRecord,
    /// The version a write of the record must match: the claim's, or for a queued refresh
    /// (which writes no claim) the version read, `None` for no record.
    version: Option<Version>,
    /// The record before the claim: its fingerprint describes a folder's published feed, and an
    /// interrupted refresh puts it back.
    before: Option<StatusRecord>,
    /// The guard looked and found no published copy (a feed without a record): not read twice.
    copy_absent: bool,
}

/// How a lease holds its feed: what keeps a second refresh of it from running at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// A claim written into the record, which the lease releases by writing over it: every
    /// refresh but one from the fleet's SQS queue.
    Claim,
    /// The feed's SQS FIFO message group, which hands out one message of the feed at a time:
    /// no claim is written. Only for a refresh that SQS delivered.
    MessageGroup,
}

/// A refresh that stopped before it held a lease, having written nothing (but a guard): the
/// outcome, and the record as read.
#[derive(Debug)]
pub struct Refused {
    pub outcome: Outcome,
    pub record: Option<StatusRecord>,
}

impl From<Outcome> for Refused {
    fn from(outcome: Outcome) -> Self {
        Self { outcome, record: None }
    }
}

/// Whether a finished record must be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// Always: a refresh someone asked for shows its time.
    Always,
    /// Only when it says more than the record within its lag does ([`lag::recent_enough`]).
    WhenItSaysMore,
}

/// What [`Lease::release`] did with the finished record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// Written, as this version.
    Written(Version),
    /// Unchanged, and the record says so recently enough: left as it is.
    LeftWithinLag,
    /// An interrupted refresh's: the record put back as it was before the claim
    /// ([`Lease::put_back`]).
    PutBack,
}

impl<'a> Lease<'a> {
    /// The gate, the guard for a lost record, then the claim: by `deadline`, on the store's
    /// clock, which every host shares. `Err` is the outcome of a refresh that stops here.
    pub async fn acquire(
        store: &'a dyn Store,
        feed: &'a FeedConfig,
        (trigger, hold): (Trigger, Hold),
        gate: Gate,
        deadline: Instant,
    ) -> Result<Lease<'a>, Refused> {
        let status_key = feed.status_key();
        let read = within(deadline, store, &status_key, super::read(store, feed))
            .await
            // Nothing is written: a status record that cannot be read may hold history.
            .map_err(|e| Refused::from(Outcome::failed(crate::outcome::Stage::Status, e)))?;
        let now = store_now(store);
        if let Some(stopped) = read.record.as_ref().and_then(|r| r.gate(gate, now)) {
            return Err(Refused {
                outcome: stopped,
                record: read.record.or_else(|| Some(StatusRecord::never(feed))),
            });
        }
        let copy_absent = match read.record {
            None => {
                guard_lost_record(store, feed, gate.lease, deadline, now).await?;
                true
            }
            Some(_) => false,
        };

        // The claim: the lease and the attempt go into the record before anything else, by a
        // write that fails if the record changed since it was read.
        let Versioned {
            record: before,
            version,
        } = read;
        let mut record = before.clone().unwrap_or_else(|| StatusRecord::never(feed));
        if let Some(stale) = &record.in_flight {
            let gone = stale.holder.as_ref().is_some_and(Holder::is_gone);
            warn!(
                feed = %feed.name, started = %stale.started, expires = %stale.expires, holder = %stale.describe(),
                "the last refresh never finished ({}); taking over its claim",
                if gone { "its process no longer runs" } else { "killed at the function's timeout?" }
            );
        }
        let writes_until = deadline.saturating_duration_since(Instant::now()) + STATUS_WRITE_GRACE + LEASE_SLACK;
        record.in_flight = Some(InFlight::new(trigger, now, now.saturating_add(signed(writes_until))));
        record.first_attempt = record.first_attempt.or(record.last_attempt).or(Some(now));
        record.last_attempt = Some(now);
        let lease = |claimed, version, hold| Lease {
            store,
            feed,
            trigger,
            hold,
            claimed,
            version,
            before,
            copy_absent,
        };
        if hold == Hold::MessageGroup {
            // A queued refresh writes no claim: SQS hands out one message of a FIFO message
            // group at a time, and the group is the feed ("messages that belong to the same
            // message group are always processed one by one, in a strict order relative to
            // the message group",
            // https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-queues-understanding-logic.html;
            // no other message of the group is returned while one is in flight,
            // https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-queues-exactly-once-processing.html).
            // Every other refresh of a queue-backed deployment is sent to the queue too
            // (`Deployment::ask`), and a claim from anywhere else was honoured above. Its
            // record is written over the version read, or not at all.
            record.in_flight = None;
            return Ok(lease(record, version, hold));
        }
        let claim = super::write(store, feed, &record, Condition::unchanged_since(version.as_ref()));
        match within(deadline, store, &status_key, claim).await {
            Ok(claimed) => Ok(lease(record, Some(claimed), hold)),
            Err(StoreError::Conflict { .. }) => {
                // Another refresh claimed the feed between our read and our write. Its claim
                // says how long to wait; if it is already gone, the other refresh has finished.
                let reread = within(deadline, store, &status_key, super::read(store, feed)).await;
                let record = reread.ok().and_then(|read| read.record);
                let now = store_now(store);
                let busy = record.as_ref().and_then(|r| r.busy(now, gate.lease));
                let outcome = busy.unwrap_or_else(|| Outcome::Busy {
                    retry_after_s: 1,
                    started: record.as_ref().and_then(|r| r.last_attempt).unwrap_or(now),
                    until: now,
                    holder: "another refresh, just finished".into(),
                    clamped: false,
                });
                Err(Refused { outcome, record })
            }
            Err(e) => Err(Outcome::failed(crate::outcome::Stage::Status, e).into()),
        }
    }

    /// The record as claimed, which the attempt's transitions finish.
    pub fn claimed(&self) -> &StatusRecord {
        &self.claimed
    }

    /// The record before the claim, if there was one.
    pub fn before(&self) -> Option<&StatusRecord> {
        self.before.as_ref()
    }

    /// The guard found no published copy.
    pub fn copy_absent(&self) -> bool {
        self.copy_absent
    }

    /// The published feed's fingerprint as the record says, when this refresh may take the
    /// record's word for the copy without looking (a HEAD): only a refresh that may leave its
    /// record unwritten trusts it, and only within the record's lag, so a copy deleted by hand
    /// is written again within that lag.
    pub fn recorded_fingerprint(&self, now: OffsetDateTime) -> Option<&str> {
        self.before
            .as_ref()
            .filter(|r| {
                self.hold == Hold::MessageGroup && r.outcome != Recorded::Never && lag::lag_allows(r, self.feed, now)
            })
            .and_then(|r| r.sha256.as_deref())
    }

    /// Ends the lease with the finished record: written over the claim, unless `recording`
    /// allows an unchanged record within its lag to stand. If the claim is gone because the
    /// record was deleted under it (by hand, or a lifecycle rule), the record is written again
    /// from scratch, or over the guard a refresh that found it missing left
    /// ([`InFlight::guard`]); a claim another refresh took over stands.
    pub async fn release(
        &self,
        record: &StatusRecord,
        recording: Recording,
        by: Instant,
    ) -> Result<Released, StoreError> {
        let quiet = self.hold == Hold::MessageGroup
            && recording == Recording::WhenItSaysMore
            && lag::recent_enough(self.before.as_ref(), record, self.feed, store_now(self.store));
        if quiet {
            info!(
                feed = %self.feed.name, stage = "status",
                "unchanged, and the record says so recently enough: not written"
            );
            return Ok(Released::LeftWithinLag);
        }
        let (store, feed) = (self.store, self.feed);
        let key = feed.status_key();
        let write = super::write(store, feed, record, Condition::unchanged_since(self.version.as_ref()));
        let conflict = match within(by, store, &key, write).await {
            Err(conflict @ StoreError::Conflict { .. }) => conflict,
            other => return other.map(Released::Written),
        };
        let reread = within(by, store, &key, super::read(store, feed)).await;
        let condition = match reread {
            Ok(Versioned { record: None, .. }) => Condition::Absent,
            Ok(Versioned {
                record: Some(found),
                version: Some(version),
            }) if found.in_flight.as_ref().is_some_and(|c| c.guard) => Condition::Matches(version),
            _ => return Err(conflict),
        };
        warn!(feed = %feed.name, "the status record was deleted during this refresh; writing it again");
        within(by, store, &key, super::write(store, feed, record, condition))
            .await
            .map(Released::Written)
    }

    /// Notes in the record just released (`written`) that the status site could not be written
    /// after its change, so that the next refresh writes the site whatever it finds
    /// ([`StatusRecord::site_behind`]). Only over that very version: a newer record stands.
    pub async fn note_site_behind(&self, record: &StatusRecord, written: &Version, by: Instant) {
        let mut record = record.clone();
        record.site_behind = true;
        let (store, feed) = (self.store, self.feed);
        let write = super::write(store, feed, &record, Condition::Matches(written.clone()));
        match within(by, store, &feed.status_key(), write).await {
            Ok(_) => info!(feed = %feed.name, "the status site is behind; the next refresh writes it"),
            Err(e) => {
                warn!(feed = %feed.name, error = %e, "the status site is behind, and the record could not say so")
            }
        }
    }

    /// Ends the lease of an interrupted refresh: the record put back as it was before the
    /// claim, noting the interruption, within `PUT_BACK_TIME`, as a process told to stop has
    /// little left. If that fails, the claim stays until it ends, or until a refresh on this
    /// host sees its holder gone. Returns the record as put back.
    pub async fn put_back(&self, by: &str) -> StatusRecord {
        let record = self.before.clone().unwrap_or_else(|| StatusRecord::never(self.feed));
        if self.hold == Hold::MessageGroup {
            // No claim to release: the record is as it was.
            return record;
        }
        let feed = self.feed;
        let record = record.interrupted(self.claimed.first_attempt, store_now(self.store), self.trigger, by);
        let write = super::write(
            self.store,
            feed,
            &record,
            Condition::unchanged_since(self.version.as_ref()),
        );
        match tokio::time::timeout(PUT_BACK_TIME, write).await {
            Ok(Ok(_)) => info!(feed = %feed.name, by, "interrupted; the status record is as it was before the claim"),
            Ok(Err(e)) => {
                error!(feed = %feed.name, error = %e, "interrupted, and the claim could not be released; it ends with its lease")
            }
            Err(_) => {
                error!(feed = %feed.name, "interrupted, and the store did not answer in time; the claim ends with its lease")
            }
        }
        record
    }
}

/// A feed published without a status record had its record deleted, perhaps while a refresh
/// was in flight: claiming it now could ask the solver a second time. So this refresh stands
/// back, and leaves a guard claim for one lease, which that refresh writes its outcome over
/// ([`Lease::release`]). A feed never published goes ahead (`Ok`): the HEAD found nothing.
async fn guard_lost_record(
    store: &dyn Store,
    feed: &FeedConfig,
    lease: Duration,
    deadline: Instant,
    now: OffsetDateTime,
) -> Result<(), Refused> {
    let published = within(deadline, store, &feed.key, store.head(&feed.key))
        .await
        .map_err(|e| Refused::from(Outcome::failed(crate::outcome::Stage::Store, e)))?;
    let Some(published) = published else {
        return Ok(());
    };
    let mut guard = StatusRecord::never(feed);
    guard.sha256 = published.sha256;
    let mut claim = InFlight::new(Trigger::Other, now, now.saturating_add(signed(lease)));
    claim.holder = None;
    claim.guard = true;
    guard.in_flight = Some(claim);
    let write = super::write(store, feed, &guard, Condition::Absent);
    match within(deadline, store, &feed.status_key(), write).await {
        Ok(_) => warn!(
            feed = %feed.name,
            "the feed is published but has no status record (deleted?); standing back for one lease in case a refresh is in flight"
        ),
        Err(StoreError::Conflict { .. }) => {}
        Err(e) => return Err(Outcome::failed(crate::outcome::Stage::Status, e).into()),
    }
    let outcome = guard.busy(now, lease).expect("a guard just written is live");
    Err(Refused {
        outcome,
        record: Some(guard),
    })
}

/// A refresh's claim on its feed, kept in the record while it runs. Its times are on the
/// store's clock ([`crate::store::store_now`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub trigger: Trigger,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    /// None of the holder's writes can land after this ([`LEASE_SLACK`]).
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
        // A record written before `Retry-After` was bounded may ask for years: no more than
        // the longest backoff, from now.
        let asked = self
            .not_before
            .and_then(|at| until(at, now))
            .map(|wait| wait.min(backoff.max));
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
