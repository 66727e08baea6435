//! What one attempt under a lease came to. The status record and the [`Report`] are both
//! built from the one [`Attempt`].

use std::time::Duration;

use crate::config::FeedConfig;
use crate::outcome::{Outcome, Recorded, RefreshError, Report, Stage};
use crate::status::{Findings, Released, StatusRecord};
use crate::store::StoreError;

/// Everything one attempt found out, and how it ended.
#[derive(Debug)]
pub(super) struct Attempt {
    pub(super) found: Findings,
    pub(super) result: Result<Served, Failure>,
}

/// A good feed, written or found already there.
#[derive(Debug)]
pub(super) struct Served {
    pub(super) outcome: Recorded,
    /// The fingerprint of the feed readers now get.
    pub(super) sha256: String,
}

/// Where an attempt stopped, and why.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) stage: Stage,
    pub(super) error: RefreshError,
}

impl Attempt {
    pub(super) fn failed(found: Findings, stage: Stage, error: impl Into<RefreshError>) -> Self {
        Self {
            found,
            result: Err(Failure {
                stage,
                error: error.into(),
            }),
        }
    }

    pub(super) fn served(found: Findings, outcome: Recorded, sha256: String) -> Self {
        Self {
            found,
            result: Ok(Served { outcome, sha256 }),
        }
    }

    /// The claimed record, finished by the attempt's transition; a solver's `Retry-After` is
    /// obeyed for at most `longest_wait`.
    pub(super) fn record(
        &self,
        feed: &FeedConfig,
        claimed: &StatusRecord,
        longest_wait: Duration,
        total_ms: u64,
    ) -> StatusRecord {
        let claimed = claimed.clone();
        match &self.result {
            Ok(served) => claimed.succeeded(feed, &self.found, served.outcome, served.sha256.clone(), total_ms),
            Err(failure) => {
                let failed = (failure.stage, &failure.error);
                claimed.failed(feed, &self.found, failed, longest_wait, total_ms)
            }
        }
    }

    /// The signal that stopped it, if one did.
    pub(super) fn interrupted(&self) -> Option<&str> {
        match &self.result {
            Err(Failure {
                error: RefreshError::Interrupted { by },
                ..
            }) => Some(by),
            _ => None,
        }
    }

    /// The outcome, once the lease is released.
    pub(super) fn outcome(&self, released: Result<Released, StoreError>) -> Outcome {
        match (&self.result, released) {
            (Err(failure), _) => Outcome::failed(failure.stage, failure.error.clone()),
            (Ok(served), Err(source)) => Outcome::failed(
                Stage::Status,
                RefreshError::StatusNotWritten {
                    handled: served.outcome,
                    source,
                },
            ),
            (Ok(served), Ok(_)) if served.outcome == Recorded::Updated => Outcome::Updated,
            (Ok(_), Ok(_)) => Outcome::Unchanged,
        }
    }
}

/// The report of a refresh, from its attempt when it made one.
pub(super) fn report(
    feed: &FeedConfig,
    location: String,
    outcome: Outcome,
    attempt: Option<&Attempt>,
    total_ms: u64,
) -> Report {
    let found = attempt.map(|a| &a.found);
    let document = found.and_then(|f| f.document.as_ref());
    Report {
        feed: feed.name.clone(),
        outcome,
        location,
        kind: document.map(|d| d.kind.clone()),
        items: document.map(|d| d.items),
        bytes: document.map(|d| d.bytes),
        solver_ms: found.and_then(|f| f.solver_ms),
        total_ms,
        final_url: found.and_then(|f| f.final_url.clone()),
        solver: found.and_then(|f| f.solver.clone()),
        route: found.and_then(|f| f.route),
        page: found.and_then(|f| f.page),
    }
}
