//! Which way a refresh fetches its feed: directly, through the solver, or directly with the
//! solver behind. A pure plan from the feed's `fetch`, its record and the time left.

use std::time::Duration;

use time::OffsetDateTime;

use crate::config::{FeedConfig, FetchConfig, FetchMode};
use crate::solver::MIN_REQUEST_TIME;
use crate::status::{StatusRecord, signed};

/// With `fetch = "auto"`, a direct request leaves at least this much of the deadline to the
/// solver: its smallest useful maxTimeout and the time Chrome needs to start.
pub(super) const MIN_SOLVER_TIME: Duration = Duration::from_secs(35);

/// How one attempt goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plan {
    /// Directly, and only so (`fetch = "direct"`): the solver is never the answer.
    DirectOnly { timeout: Duration },
    /// Directly, then through the solver when the reply is not a publishable feed; a solver
    /// that then succeeds sends the feed straight to it until `reprobe_at`.
    DirectThenSolver {
        timeout: Duration,
        reprobe_at: OffsetDateTime,
    },
    /// Through the solver only: `fetch = "solver"`, a feed the record sends straight to it,
    /// or too little time left for a direct request before the solver's.
    Solver,
}

/// The plan for `feed`, whose record is `record`, at `now` with `left` until the deadline:
/// directly first where the feed's `fetch` allows and its record does not send it straight
/// to the solver (`solver_until`).
pub(super) fn plan_route(
    feed: &FeedConfig,
    record: &StatusRecord,
    now: OffsetDateTime,
    left: Duration,
    settings: &FetchConfig,
) -> Plan {
    let direct_first = match feed.fetch {
        FetchMode::Direct => true,
        FetchMode::Solver => false,
        FetchMode::Auto => record.solver_until.is_none_or(|until| until <= now),
    };
    match (direct_first, direct_timeout(settings, feed.fetch, left)) {
        (true, Some(timeout)) if feed.fetch == FetchMode::Direct => Plan::DirectOnly { timeout },
        (true, Some(timeout)) => Plan::DirectThenSolver {
            timeout,
            reprobe_at: now.saturating_add(signed(settings.reprobe_after)),
        },
        _ => Plan::Solver,
    }
}

/// The direct request's time: `[fetch] timeout`, within the `left` of the deadline. With
/// `auto` it leaves the solver's fallback room for a useful maxTimeout, and is `None` when that
/// leaves too little for a request (the solver is asked straight away). With `direct` it is
/// whatever is left: the solver is never the answer, so a deadline too close fails as a
/// timeout.
pub(super) fn direct_timeout(settings: &FetchConfig, mode: FetchMode, left: Duration) -> Option<Duration> {
    match mode {
        FetchMode::Auto => {
            let timeout = settings.timeout.min(left.saturating_sub(MIN_SOLVER_TIME));
            (timeout >= MIN_REQUEST_TIME).then_some(timeout)
        }
        _ => Some(settings.timeout.min(left)),
    }
}
