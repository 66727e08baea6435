//! What one refresh did: its [`Outcome`], said one way everywhere ([`Outcome`]'s `Display`),
//! and the [`Report`] every entry point prints, returns or logs.
//!
//! It sits below the status record and the refresh, so that the record's gate can answer with
//! an outcome, and the metrics, the routes and the CLI can read one without reaching up.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

use crate::feed::FeedError;
use crate::fetch::{FetchError, Route};
use crate::redact::one_line;
use crate::solver::SolverError;
use crate::store::StoreError;

/// Where a failed refresh stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Status,
    /// The direct request (`fetch = "direct"`).
    Fetch,
    Solver,
    Extract,
    Guard,
    Store,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&serde_name(self))
    }
}

/// The last attempt's outcome, as the status record keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recorded {
    /// No attempt yet (listings only; never written).
    Never,
    Updated,
    Unchanged,
    Failed,
    /// An outcome this build does not know, from a newer build's record.
    #[serde(other)]
    Other,
}

impl fmt::Display for Recorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

/// Why a refresh failed, with its cause kept until the edge.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RefreshError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Solver(#[from] SolverError),
    #[error(transparent)]
    Feed(#[from] FeedError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A feed built from a page found no item to publish.
    #[error(transparent)]
    Scrape(#[from] crate::scrape::ScrapeError),
    #[error("the feed was handled ({handled}), but its status record could not be written: {source}")]
    StatusNotWritten { handled: Recorded, source: StoreError },
    #[error("interrupted by {by} before it finished; the published feed and its status record are as they were")]
    Interrupted { by: String },
    #[error(
        "{target}: the status record cannot be read at `{key}`: {detail}; nothing was fetched or written: fix or delete the object"
    )]
    BadRecord {
        target: String,
        key: String,
        detail: String,
    },
}

/// The result of one refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    /// A new version was published.
    Updated,
    /// The feed is the one already published (dates aside); nothing was written.
    Unchanged,
    /// The last attempt was within `min_interval_s`, and the options respect it.
    Skipped { retry_after_s: u64 },
    /// The feed failed `failures` times in a row and is left alone a while longer; nothing was
    /// fetched or written.
    Backoff { retry_after_s: u64, failures: u32 },
    /// Another refresh of this feed is in flight; nothing was fetched or written.
    Busy {
        /// When the claim of the refresh in flight ends: it is done by then at the latest.
        retry_after_s: u64,
        /// When the refresh in flight started.
        #[serde(with = "time::serde::rfc3339")]
        started: OffsetDateTime,
        /// When its claim ends, on the store's clock.
        #[serde(with = "time::serde::rfc3339")]
        until: OffsetDateTime,
        /// Who holds it: `a cli refresh (pid 4242 on build-1)`.
        holder: String,
        /// The claim said it would last longer than any refresh can (a clock ahead, an edited
        /// record), and counts only until `until`.
        clamped: bool,
    },
    /// Nothing was published; the last good copy stays.
    Failed {
        stage: Stage,
        #[serde(rename = "reason", serialize_with = "as_display")]
        error: RefreshError,
    },
}

fn as_display<S: serde::Serializer>(value: &impl fmt::Display, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// The one wording of an outcome: the CLI's line, the outcome log and the HTTP body's message.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Updated => f.write_str("updated"),
            Outcome::Unchanged => f.write_str("unchanged"),
            Outcome::Skipped { retry_after_s } => write!(
                f,
                "skipped: the last attempt was less than min_interval_s ago; retry in {retry_after_s} s"
            ),
            Outcome::Backoff {
                retry_after_s,
                failures,
            } => write!(
                f,
                "backing off after {failures} failures: next attempt in {retry_after_s} s"
            ),
            Outcome::Busy {
                retry_after_s,
                started,
                until,
                holder,
                clamped,
            } => {
                write!(
                    f,
                    "busy: {holder}, started at {}, holds the feed until {} (retry in {retry_after_s} s)",
                    rfc3339(*started),
                    rfc3339(*until)
                )?;
                if *clamped {
                    f.write_str("; its claim said it would run longer than any refresh can (a clock ahead, or an edited record), so it counts only until then")?;
                }
                Ok(())
            }
            // One line, whatever a site or a solver put in the error.
            Outcome::Failed { stage, error } => write!(f, "failed at {stage}: {}", one_line(&error.to_string())),
        }
    }
}

impl Outcome {
    /// `updated`, `unchanged`, `skipped`, `backoff`, `busy` or `failed`: the tag serde writes.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::Skipped { .. } => "skipped",
            Outcome::Backoff { .. } => "backoff",
            Outcome::Busy { .. } => "busy",
            Outcome::Failed { .. } => "failed",
        }
    }

    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed { .. })
    }

    /// Whether a queued refresh should come back later: it was never attempted (another refresh
    /// of the feed is in flight, no time was left) or its outcome could not be recorded. A
    /// refresh that failed and was recorded is done: the feed's next slot is its retry.
    pub fn retry_later(&self) -> bool {
        match self {
            Outcome::Busy { .. } => true,
            Outcome::Failed { stage, error } => {
                *stage == Stage::Status || matches!(error, RefreshError::Solver(SolverError::NoTimeLeft { .. }))
            }
            _ => false,
        }
    }

    pub(crate) fn failed(stage: Stage, error: impl Into<RefreshError>) -> Self {
        Outcome::Failed {
            stage,
            error: error.into(),
        }
    }
}

/// What one refresh did, for the CLI line, the HTTP reply and the logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub feed: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Where the feed is published (`s3://bucket/prefix/key`, or a path), whatever the outcome.
    pub location: String,
    /// Kind and items of the fetched feed, when it passed the guard.
    pub kind: Option<String>,
    pub items: Option<usize>,
    pub bytes: Option<usize>,
    pub solver_ms: Option<u64>,
    pub total_ms: u64,
    /// Where Chrome ended up, when a redirect took it away from the feed's url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_url: Option<String>,
    /// The solver that answered (its url without secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub solver: Option<String>,
    /// How the feed was fetched, when it was: `direct` or `solver`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// A feed built from a page: what its items came to (matched, skipped, unreadable dates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<crate::scrape::Counts>,
}

/// The CLI's line: `name  outcome`, and for a good feed what it holds and where it went.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.total_ms as f64 / 1000.0;
        write!(f, "{}  {}", self.feed, self.outcome)?;
        match &self.outcome {
            Outcome::Updated | Outcome::Unchanged => {
                match (&self.kind, self.items) {
                    (Some(kind), Some(items)) => write!(
                        f,
                        "  {kind}, {items} items, {} bytes, {seconds:.1} s",
                        self.bytes.unwrap_or(0)
                    )?,
                    // A 304: nothing was read, so nothing to count.
                    _ => write!(f, "  not modified, {seconds:.1} s")?,
                }
                if let Some(route) = self.route {
                    write!(f, " ({route})")?;
                }
                if let Some(page) = self.page.filter(|p| p.skipped > 0 || p.unreadable_dates > 0) {
                    write!(
                        f,
                        "  [{} of {} skipped, {} dates unreadable: flarefeed preview {}]",
                        page.skipped, page.matched, page.unreadable_dates, self.feed
                    )?;
                }
                write!(f, "  -> {}", self.location)
            }
            Outcome::Failed { .. } => write!(f, " ({seconds:.1} s)"),
            _ => Ok(()),
        }
    }
}

/// RFC 3339, as every time in a record, a report and a message is written.
pub fn rfc3339(at: OffsetDateTime) -> String {
    use time::format_description::well_known::Rfc3339;
    at.format(&Rfc3339)
        .unwrap_or_else(|_| format!("{} (unix)", at.unix_timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_wording_and_the_retry_rule() {
        let busy = Outcome::Busy {
            retry_after_s: 30,
            started: time::macros::datetime!(2026-11-22 10:00 UTC),
            until: time::macros::datetime!(2026-11-22 10:05 UTC),
            holder: "a cli refresh (pid 42 on build-1)".into(),
            clamped: false,
        };
        assert_eq!(
            busy.to_string(),
            "busy: a cli refresh (pid 42 on build-1), started at 2026-11-22T10:00:00Z, holds the feed until 2026-11-22T10:05:00Z (retry in 30 s)"
        );
        assert!(busy.retry_later());
        let json = serde_json::to_value(&busy).unwrap();
        assert_eq!(json["outcome"], "busy");
        assert_eq!(json["started"], "2026-11-22T10:00:00Z");
        for outcome in [
            Outcome::Updated,
            Outcome::Unchanged,
            Outcome::Skipped { retry_after_s: 1 },
            Outcome::Backoff {
                retry_after_s: 1,
                failures: 2,
            },
            busy,
            Outcome::failed(Stage::Guard, FeedError::Empty),
        ] {
            let tag = serde_json::to_value(&outcome).unwrap()["outcome"].clone();
            assert_eq!(tag, outcome.name(), "{outcome:?}");
            assert!(outcome.to_string().starts_with(outcome.name()) || outcome.name() == "backoff");
        }
        assert!(!Outcome::failed(Stage::Solver, SolverError::Failed { message: "x".into() }).retry_later());
        assert!(Outcome::failed(Stage::Solver, SolverError::NoTimeLeft { left_ms: 5 }).retry_later());
        assert!(
            Outcome::failed(
                Stage::Status,
                StoreError::Timeout {
                    target: "memory:status/a.json".into()
                }
            )
            .retry_later()
        );
    }
}
