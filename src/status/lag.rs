//! The record's lag: how long an unchanged refresh may leave its record unwritten, and whether
//! anything but the time of the check would change if it did write it.

use std::time::Duration;

use time::OffsetDateTime;

use super::StatusRecord;
use crate::config::FeedConfig;
use crate::outcome::Recorded;

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
/// check (`same_material` leaves them out) would change. What the record says about the published
/// feed, the last failure and the route is then exactly true; only the time of the last check
/// lags.
pub fn recent_enough(
    before: Option<&StatusRecord>,
    after: &StatusRecord,
    feed: &FeedConfig,
    now: OffsetDateTime,
) -> bool {
    let Some(before) = before else {
        return false;
    };
    if after.outcome != Recorded::Unchanged
        || before.outcome != Recorded::Unchanged && before.outcome != Recorded::Updated
        || before.in_flight.is_some()
        || !lag_allows(before, feed, now)
    {
        return false;
    }
    same_material(before, after)
}

/// Whether `a` and `b` say the same but for the times of the check: what an unchanged refresh
/// within the lag must not change. `a` is taken apart without `..`, so a field added to
/// [`StatusRecord`] does not compile until it is compared here or named among the check's times.
fn same_material(a: &StatusRecord, b: &StatusRecord) -> bool {
    let StatusRecord {
        feed,
        url,
        last_error,
        consecutive_failures,
        items,
        bytes,
        sha256,
        final_url,
        in_flight,
        solver,
        passed_over,
        wall_solver,
        fetched_by,
        direct,
        solver_until,
        validators,
        not_before,
        first_attempt,
        interrupted,
        site_behind,
        page,
        rules_dropped,
        hub_failures,
        hub_error,
        articles,
        extra,
        // The check's times. `outcome` too: updated then unchanged is a change of the word
        // only; the site and `flarefeed status` say "ok" for both.
        outcome: _,
        last_attempt: _,
        last_success: _,
        solver_ms: _,
        total_ms: _,
        history: _,
        // Not part of the record: when the store wrote it.
        written: _,
    } = a;
    *feed == b.feed
        && *url == b.url
        && *last_error == b.last_error
        && *consecutive_failures == b.consecutive_failures
        && *items == b.items
        && *bytes == b.bytes
        && *sha256 == b.sha256
        && *final_url == b.final_url
        && *in_flight == b.in_flight
        && *solver == b.solver
        && *passed_over == b.passed_over
        && *wall_solver == b.wall_solver
        && *fetched_by == b.fetched_by
        && *direct == b.direct
        && *solver_until == b.solver_until
        && *validators == b.validators
        && *not_before == b.not_before
        && *first_attempt == b.first_attempt
        && *interrupted == b.interrupted
        && *site_behind == b.site_behind
        && *page == b.page
        && *rules_dropped == b.rules_dropped
        && *hub_failures == b.hub_failures
        && *hub_error == b.hub_error
        && *articles == b.articles
        && *extra == b.extra
}
