//! The record itself: its shape, which outlives builds, its history, and the transitions an
//! attempt makes to it, in Miniflux's style ([`StatusRecord::succeeded`],
//! [`StatusRecord::failed`], [`StatusRecord::interrupted`]).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{InFlight, Trigger};
use crate::config::FeedConfig;
use crate::fetch::{DirectClass, Route, Validators};
use crate::outcome::{Recorded, RefreshError, Stage};
use crate::redact::redact_url;
use crate::solver::SolverError;

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
    /// The solvers of a pool that met a wall they did not get past in the last fetch, and were
    /// passed over for `solver`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passed_over: Vec<String>,
    /// The solver of a pool that got past a wall another met for this feed: asked first, while
    /// it keeps getting the feed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_solver: Option<String>,
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
    /// The status site could not be written after this record's change: the next refresh
    /// writes it whatever it finds, and does not leave the record unwritten within its lag.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub site_behind: bool,
    /// A feed built from a page: what the last page's items came to (matched, skipped, dated by
    /// first-seen because their date was unreadable).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub page: Option<crate::scrape::Counts>,
    /// Items of the last document read that `[[feeds.rules]]` dropped, for a feed with rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_dropped: Option<usize>,
    /// WebSub pings that failed in a row (`[site] websub_hub`), and the last one's error: a
    /// failing hub never fails a refresh, it is counted here.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hub_failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_error: Option<String>,
    /// `[feeds.full_text]`: the last refresh's articles fetched, failed, and still waiting.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub articles: Option<crate::items::ArticleCounts>,
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

fn is_zero(n: &u32) -> bool {
    *n == 0
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
            passed_over: Vec::new(),
            wall_solver: None,
            fetched_by: None,
            direct: None,
            solver_until: None,
            validators: None,
            not_before: None,
            first_attempt: None,
            history: Vec::new(),
            interrupted: None,
            site_behind: false,
            page: None,
            rules_dropped: None,
            hub_failures: 0,
            hub_error: None,
            articles: None,
            extra: Default::default(),
            written: None,
        }
    }

    /// The validators to send for `url`: only those recorded for that same url.
    pub fn validators_for(&self, url: &str) -> Option<&Validators> {
        let recorded = self.validators.as_ref()?;
        (recorded.url_sha256 == url_digest(url)).then_some(&recorded.validators)
    }
}

/// What one attempt found out on its way, however far it got: what the record and the report
/// keep of it. The refresh fills it in; the transitions below apply it.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    pub solver_ms: Option<u64>,
    /// The solver that answered.
    pub solver: Option<String>,
    /// Where the fetch ended up, when a redirect took it away from the feed's url.
    pub final_url: Option<String>,
    /// Which way the feed was fetched, once it was.
    pub route: Option<Route>,
    /// The direct reply's class, when it was not the feed and the solver was asked instead.
    pub direct: Option<DirectClass>,
    /// A direct reply's validators: a 200's own, or for a 304 those it was asked with.
    pub validators: Option<Validators>,
    /// The feed goes straight to the solver until then, if the solver then succeeds.
    pub solver_until: Option<OffsetDateTime>,
    /// The solvers of a pool passed over for the one that answered: they met a wall they did
    /// not get past.
    pub passed_over: Vec<String>,
    /// The feed that passed the guard; `None` when no body was read (a 304, the same ETag).
    pub document: Option<Document>,
    /// A feed built from a page: what its items came to, once they were read.
    pub page: Option<crate::scrape::Counts>,
    /// Items `[[feeds.rules]]` dropped from the document read, for a feed with rules.
    pub rules_dropped: Option<usize>,
    /// The WebSub ping after a changed publish: sent, or why not.
    pub hub: Option<Result<(), String>>,
    /// `[feeds.full_text]`: what this refresh did for articles.
    pub articles: Option<crate::items::ArticleCounts>,
}

/// A feed that passed the guard and was formatted, in figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// `rss`, `atom`, `rdf`.
    pub kind: String,
    pub items: usize,
    /// Of the formatted feed.
    pub bytes: usize,
}

impl StatusRecord {
    /// The claimed record once a good feed stands: written (`outcome` updated) or found already
    /// published (unchanged), `sha256` being the fingerprint of the feed readers now get.
    pub fn succeeded(
        mut self,
        feed: &FeedConfig,
        found: &Findings,
        outcome: Recorded,
        sha256: String,
        total_ms: u64,
    ) -> Self {
        self.attempted(feed, found, total_ms);
        // Only a solver that succeeded where direct did not sends the next refreshes straight
        // to it; a failing solver proves nothing about direct.
        if let Some(until) = found.solver_until {
            self.solver_until = Some(until);
        }
        // A solver that got past a wall another met is asked first from now on, and stays so
        // while it keeps getting the feed.
        self.wall_solver = match (&found.solver, found.passed_over.is_empty()) {
            (Some(solver), false) => Some(solver.clone()),
            (Some(solver), true) if self.wall_solver.as_ref() == Some(solver) => Some(solver.clone()),
            _ => None,
        };
        if found.route == Some(Route::Direct) {
            // Direct works: no reason to go to the solver, and validators for the next
            // conditional GET (`refresh::direct` has the rules for sending them).
            self.direct = None;
            self.solver_until = None;
            if let Some(validators) = &found.validators {
                self.validators = RecordedValidators::new(&feed.url, validators.clone());
            }
        } else {
            self.validators = None;
        }
        self.outcome = outcome;
        self.not_before = None;
        self.last_success = self.last_attempt;
        self.last_error = None;
        self.consecutive_failures = 0;
        // A 304 read no body: the published feed is the one the record describes.
        if let Some(document) = &found.document {
            self.items = Some(document.items);
            self.bytes = Some(document.bytes);
        }
        self.sha256 = Some(sha256);
        let mark = match outcome {
            Recorded::Updated => AttemptMark::Updated,
            _ => AttemptMark::Unchanged,
        };
        self.remember_attempt(mark, total_ms)
    }

    /// The claimed record after a failure at `stage`: the published feed is as it was, and so
    /// is what the record says of it. A solver's `Retry-After` holds the feed back for at most
    /// `longest_wait` (`[fleet] max_backoff`): a solver that asks for years is not obeyed.
    pub fn failed(
        mut self,
        feed: &FeedConfig,
        found: &Findings,
        (stage, error): (Stage, &RefreshError),
        longest_wait: std::time::Duration,
        total_ms: u64,
    ) -> Self {
        self.attempted(feed, found, total_ms);
        // Validators name a copy this failure may have left behind.
        self.validators = None;
        self.not_before = match error {
            RefreshError::Solver(SolverError::RateLimited {
                retry_after_s: Some(seconds),
                ..
            }) => {
                let asked = std::time::Duration::from_secs(*seconds).min(longest_wait);
                self.last_attempt.map(|at| at.saturating_add(super::signed(asked)))
            }
            _ => None,
        };
        self.outcome = Recorded::Failed;
        self.last_error = Some(crate::redact::one_line(&format!("{stage}: {error}")));
        self.consecutive_failures += 1;
        self.remember_attempt(AttemptMark::Failed, total_ms)
    }

    /// The record as it was before a claim, noting that the claimed refresh was stopped by a
    /// signal (`by`) at `at`; `first_attempt` is the claim's, so a feed never published stays
    /// stale from its first try.
    pub fn interrupted(
        mut self,
        first_attempt: Option<OffsetDateTime>,
        at: OffsetDateTime,
        trigger: Trigger,
        by: &str,
    ) -> Self {
        self.in_flight = None;
        self.first_attempt = first_attempt;
        self.interrupted = Some(Interrupted {
            at,
            trigger,
            by: by.to_string(),
        });
        self.remember(at, AttemptMark::Interrupted, 0);
        self
    }

    /// What every finished attempt records: the claim released, the route and the timings.
    fn attempted(&mut self, feed: &FeedConfig, found: &Findings, total_ms: u64) {
        self.url = redact_url(&feed.url);
        self.in_flight = None;
        self.interrupted = None;
        // This refresh writes the site with its record.
        self.site_behind = false;
        self.solver_ms = found.solver_ms;
        self.total_ms = Some(total_ms);
        self.final_url = found.final_url.clone();
        self.solver = found.solver.clone();
        self.passed_over = found.passed_over.clone();
        self.fetched_by = found.route;
        // A 304, or a failure before the page was read, leaves the last page's figures.
        if found.page.is_some() {
            self.page = found.page;
        }
        if found.document.is_some() {
            self.rules_dropped = found.rules_dropped;
        }
        if found.articles.is_some() {
            self.articles = found.articles;
        }
        match &found.hub {
            Some(Ok(())) => (self.hub_failures, self.hub_error) = (0, None),
            Some(Err(e)) => (self.hub_failures, self.hub_error) = (self.hub_failures + 1, Some(e.clone())),
            None => {}
        }
        if found.direct.is_some() {
            self.direct = found.direct;
        }
    }

    /// The attempt in the history, at the claim's time.
    fn remember_attempt(mut self, mark: AttemptMark, total_ms: u64) -> Self {
        if let Some(at) = self.last_attempt {
            self.remember(at, mark, total_ms);
        }
        self
    }
}
