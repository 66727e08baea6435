//! One refresh of one feed: fetch, extract, guard, format, fingerprint, publish, record.
//!
//! The CLI and the Lambda both call [`Refresher::refresh`]. Whatever fails, the published feed
//! is left exactly as it was: only a newer good feed is ever written over a good one.
//!
//! One refresh of a feed runs at a time, wherever it was started. A refresh first claims the
//! feed by writing an [`InFlight`] lease into its status record with a conditional write, so of
//! two that read the same record only one can claim it; the other stands back ([`Outcome::Busy`]).
//! The lease expires when its holder can no longer write (its deadline, the status write's grace
//! and [`LEASE_SLACK`]), so a killed refresh blocks nobody for long. The feed is then written
//! only if it is still the version seen at the claim, and the status record only if it is still
//! the claim: a refresh that outlived its lease and was overtaken writes nothing. So the
//! published feed is always the good content of the refresh that claimed it last, and the status
//! record describes the published feed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::config::{Config, FeedConfig, redact_url};
use crate::feed::{self, FeedError, FeedInfo, GuardOptions};
use crate::solver::{Body, FlareSolverr, Solver};
use crate::solver::{MIN_REQUEST_TIME, STARTUP_MARGIN, SolverError};
use crate::store::{Condition, ObjectInfo, PutOptions, Store, StoreError, Version};

/// What started a refresh; only HTTP-triggered ones honour `min_interval_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    Http,
    Cli,
}

/// The status record may still be written this long after the refresh's deadline; the Lambda
/// handler keeps more than this between that deadline and its own (`handler::SAFETY_MARGIN`).
pub const STATUS_WRITE_GRACE: Duration = Duration::from_secs(8);

/// A lease outlasts its holder's last possible write by this much: for clocks that disagree
/// (Lambda's are NTP-synchronised; a CLI host's may drift) and a write already on the wire when
/// its holder gave up.
pub const LEASE_SLACK: Duration = Duration::from_secs(30);

/// How to run one refresh.
#[derive(Debug, Clone, Copy)]
pub struct RefreshOptions {
    /// Everything, the solver included, must be done by then. Without one (CLI, emulators) a
    /// refresh gets [`Refresher::budget`], so that its lease can expire.
    pub deadline: Option<Instant>,
    pub trigger: Trigger,
    /// HTTP: ignore `min_interval_s`. CLI: also publish when unchanged.
    pub force: bool,
}

/// Where a failed refresh stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Status,
    Solver,
    Extract,
    Guard,
    Store,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Status => "status",
            Stage::Solver => "solver",
            Stage::Extract => "extract",
            Stage::Guard => "guard",
            Stage::Store => "store",
        })
    }
}

/// The result of one refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    /// A new version was published.
    Updated,
    /// The feed is the one already published (dates aside); nothing was written.
    Unchanged,
    /// An HTTP-triggered refresh came within `min_interval_s` of the last attempt.
    Skipped { retry_after_s: u64 },
    /// Another refresh of this feed is in flight; nothing was fetched or written.
    Busy {
        /// When the lease of the refresh in flight expires: it is done by then at the latest.
        retry_after_s: u64,
        /// When the refresh in flight started.
        started: String,
    },
    /// Nothing was published; the last good copy stays.
    Failed { stage: Stage, reason: String },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::Skipped { .. } => "skipped",
            Outcome::Busy { .. } => "busy",
            Outcome::Failed { .. } => "failed",
        }
    }

    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed { .. })
    }
}

/// What one refresh did, for the CLI line, the HTTP reply and the logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub feed: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Kind and items of the fetched feed, when it passed the guard.
    pub kind: Option<String>,
    pub items: Option<usize>,
    pub bytes: Option<usize>,
    pub solver_ms: Option<u64>,
    pub total_ms: u64,
    /// Where Chrome ended up, when a redirect took it away from the feed's url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_url: Option<String>,
}

/// `<prefix>status/<name>.json`: everything an operator needs to see a feed going stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRecord {
    pub feed: String,
    pub url: String,
    /// `updated`, `unchanged` or `failed` (`never` in listings of feeds not yet attempted).
    pub outcome: String,
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
    /// The refresh running now, if any (or one that was killed, until its lease expires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
}

/// A refresh's claim on its feed, kept in the status record while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub trigger: Trigger,
    /// RFC 3339.
    pub started: String,
    /// RFC 3339. None of the holder's writes can land after this: each store call it makes
    /// gives up at its deadline (status write: plus [`STATUS_WRITE_GRACE`]), and
    /// [`LEASE_SLACK`] covers the rest.
    pub expires: String,
}

impl InFlight {
    /// How long until the lease expires, if it has not.
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
            outcome: "never".into(),
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
        }
    }
}

/// Runs refreshes against one solver and one store; build it once and share it.
#[derive(Clone)]
pub struct Refresher {
    solver: Arc<dyn Solver>,
    store: Arc<dyn Store>,
    config: Arc<Config>,
}

/// A failure on its way to the status record.
struct Failure {
    stage: Stage,
    reason: String,
}

impl Failure {
    fn new(stage: Stage, error: impl fmt::Display) -> Self {
        Self {
            stage,
            reason: error.to_string(),
        }
    }
}

impl From<Failure> for Outcome {
    fn from(failure: Failure) -> Self {
        Outcome::Failed {
            stage: failure.stage,
            reason: failure.reason,
        }
    }
}

/// A refresh that got a good feed, written or found already there.
struct Published {
    outcome: Outcome,
    /// The fingerprint of the feed readers now get.
    sha256: String,
}

/// The status record as this refresh claimed it, and the version that claim wrote.
struct Claim {
    record: StatusRecord,
    version: Version,
}

/// A feed that passed the guard and was formatted.
struct Candidate {
    info: FeedInfo,
    xml: String,
    sha256: String,
}

impl Refresher {
    pub fn new(solver: Arc<dyn Solver>, store: Arc<dyn Store>, config: Arc<Config>) -> Self {
        Self { solver, store, config }
    }

    /// The real adapters for `config`: FlareSolverr over HTTP, and S3 or a folder. Expensive
    /// clients are built here, once.
    pub async fn connect(config: Config) -> Self {
        let solver = Arc::new(FlareSolverr::new(config.solver.clone()));
        let store: Arc<dyn Store> = Arc::from(crate::store::from_config(&config.store).await);
        Self::new(solver, store, Arc::new(config))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The deadline of a refresh that was given none: room for the solver's three tries (in a
    /// session, in a recreated session, without one) and a minute for the store.
    pub fn budget(&self) -> Duration {
        (self.config.solver.max_timeout + STARTUP_MARGIN) * 3 + Duration::from_secs(60)
    }

    /// One refresh of `feed`. Never returns an error: failures are outcomes, recorded and logged.
    pub async fn refresh(&self, feed: &FeedConfig, options: RefreshOptions) -> Report {
        let started = Instant::now();
        let deadline = options.deadline.unwrap_or_else(|| started + self.budget());
        let mut report = Report {
            feed: feed.name.clone(),
            outcome: Outcome::Unchanged,
            kind: None,
            items: None,
            bytes: None,
            solver_ms: None,
            total_ms: 0,
            final_url: None,
        };
        let status_key = feed.status_key();
        // A deadline already spent (a Lambda timeout shorter than the safety margin) is a
        // configuration error: say so, rather than time out on the first store call.
        let left = deadline.saturating_duration_since(started);
        if left < MIN_REQUEST_TIME {
            let error = SolverError::NoTimeLeft {
                left_ms: left.as_millis() as u64,
            };
            return self.stop(feed, report, started, Failure::new(Stage::Solver, error).into());
        }

        let (previous, seen) = match self.by(Some(deadline), &status_key, self.read_status(feed)).await {
            Ok(read) => read,
            // Nothing is written: a status record that cannot be read may hold history.
            Err(e) => return self.stop(feed, report, started, Failure::new(Stage::Status, e).into()),
        };
        let now = OffsetDateTime::now_utc();
        if let Some(busy) = busy(previous.as_ref(), now) {
            return self.stop(feed, report, started, busy);
        }
        if options.trigger == Trigger::Http
            && !options.force
            && let Some(wait) = too_recent(previous.as_ref(), feed.min_interval, now)
        {
            let skipped = Outcome::Skipped {
                retry_after_s: wait.as_secs().max(1),
            };
            return self.stop(feed, report, started, skipped);
        }

        // The claim: the lease and the attempt go into the record before anything else, by a
        // write that fails if the record changed since it was read.
        let mut record = previous.clone().unwrap_or_else(|| StatusRecord::never(feed));
        if let Some(stale) = &record.in_flight {
            warn!(
                feed = %feed.name, started = %stale.started, expires = %stale.expires,
                "the last refresh never finished (killed at the function's timeout?); its lease has expired"
            );
        }
        let attempt_at = format_time(now);
        let writes_until = deadline.saturating_duration_since(Instant::now()) + STATUS_WRITE_GRACE + LEASE_SLACK;
        record.in_flight = Some(InFlight {
            trigger: options.trigger,
            started: attempt_at.clone(),
            expires: format_time(now + writes_until),
        });
        record.last_attempt = Some(attempt_at);
        let claim = self.write_status(feed, &record, Condition::unchanged_since(seen.as_ref()));
        let claim = match self.by(Some(deadline), &status_key, claim).await {
            Ok(version) => Claim { record, version },
            Err(StoreError::Conflict { .. }) => {
                // Another refresh claimed the feed between our read and our write. Its lease says
                // how long to wait; if it is already gone again, the other refresh has finished.
                let reread = self.by(Some(deadline), &status_key, self.read_status(feed)).await;
                let record = reread.ok().and_then(|(record, _)| record);
                let busy = busy(record.as_ref(), OffsetDateTime::now_utc()).unwrap_or_else(|| Outcome::Busy {
                    retry_after_s: 1,
                    started: record.and_then(|r| r.last_attempt).unwrap_or_else(|| format_time(now)),
                });
                return self.stop(feed, report, started, busy);
            }
            Err(e) => return self.stop(feed, report, started, Failure::new(Stage::Status, e).into()),
        };

        let result = self
            .fetch_and_publish(feed, options, deadline, previous.as_ref(), &mut report)
            .await;
        self.finish(feed, report, started, result, claim, deadline).await
    }

    /// Ends a refresh that wrote nothing: busy, or stopped at the status record.
    fn stop(&self, feed: &FeedConfig, mut report: Report, started: Instant, outcome: Outcome) -> Report {
        report.total_ms = started.elapsed().as_millis() as u64;
        report.outcome = outcome;
        log_outcome(feed, &report);
        report
    }

    async fn fetch_and_publish(
        &self,
        feed: &FeedConfig,
        options: RefreshOptions,
        deadline: Instant,
        previous: Option<&StatusRecord>,
        report: &mut Report,
    ) -> Result<Published, Failure> {
        // The feed as it is at the claim: it is replaced only if it is still this one.
        let published: Option<ObjectInfo> = self
            .by(Some(deadline), &feed.key, self.store.head(&feed.key))
            .await
            .map_err(|e| Failure::new(Stage::Store, e))?;

        let solving = Instant::now();
        let solved = self.solver.solve(&feed.name, &feed.url, Some(deadline)).await;
        let solver_ms = solving.elapsed().as_millis() as u64;
        report.solver_ms = Some(solver_ms);
        info!(feed = %feed.name, stage = "solver", ms = solver_ms, ok = solved.is_ok(), "solver answered");
        let solution = solved.map_err(|e| Failure::new(Stage::Solver, e))?;
        report.final_url = solution.url.as_deref().filter(|url| *url != feed.url).map(redact_url);
        if let Some(url) = &report.final_url {
            info!(feed = %feed.name, final_url = %url.escape_debug(), "the feed's url redirected");
        }

        let candidate = self.prepare(feed, solution.response)?;
        report.kind = Some(candidate.info.kind.to_string());
        report.items = Some(candidate.info.items);
        report.bytes = Some(candidate.xml.len());

        let publishing = Instant::now();
        // A folder keeps no fingerprint beside the feed; the status record's describes it.
        let published_sha = published
            .as_ref()
            .and_then(|info| info.sha256.clone().or_else(|| previous.and_then(|p| p.sha256.clone())));
        let force_write = options.force && options.trigger == Trigger::Cli;
        if !force_write && published_sha.as_deref() == Some(candidate.sha256.as_str()) {
            info!(feed = %feed.name, stage = "store", sha256 = %candidate.sha256, "unchanged: nothing written");
            return Ok(Published {
                outcome: Outcome::Unchanged,
                sha256: candidate.sha256,
            });
        }
        let put_options = PutOptions {
            content_type: candidate.info.kind.content_type(),
            cache_control: &self.config.store.cache_control,
            sha256: Some(&candidate.sha256),
            condition: Condition::unchanged_since(published.as_ref().map(|info| &info.version)),
        };
        let sha256 = candidate.sha256.clone();
        let put = self.store.put(&feed.key, candidate.xml.into_bytes(), put_options);
        self.by(Some(deadline), &feed.key, put)
            .await
            .map_err(|e| Failure::new(Stage::Store, e))?;
        info!(
            feed = %feed.name, stage = "store", ms = publishing.elapsed().as_millis() as u64,
            target = %self.store.locate(&feed.key), "published"
        );
        Ok(Published {
            outcome: Outcome::Updated,
            sha256,
        })
    }

    /// Extract, guard, format and fingerprint: everything between the solver and the store.
    fn prepare(&self, feed: &FeedConfig, response: Option<Body>) -> Result<Candidate, Failure> {
        let started = Instant::now();
        let text = match response {
            Some(Body::Text(text)) => text,
            Some(Body::Json(_)) => return Err(Failure::new(Stage::Extract, FeedError::Json)),
            None => return Err(Failure::new(Stage::Extract, FeedError::Empty)),
        };
        let extracted = feed::extract(&text).map_err(|e| Failure::new(Stage::Extract, e))?;
        let wrapper = extracted.wrapper;
        // The feed replaces the page, so memory holds one of the two, never both: an unwrapped
        // copy takes the page's place, and a slice of the page is cut down in place.
        let kept = match extracted.text {
            std::borrow::Cow::Owned(unwrapped) => Err(unwrapped),
            std::borrow::Cow::Borrowed(feed) => Ok((feed.as_ptr() as usize - text.as_ptr() as usize, feed.len())),
        };
        let text = match kept {
            Err(unwrapped) => unwrapped,
            Ok((start, len)) => {
                let mut text = text;
                text.truncate(start + len);
                text.drain(..start);
                text
            }
        };
        let guard = GuardOptions {
            min_items: feed.min_items,
            max_bytes: self.config.solver.max_reply_bytes,
        };
        let info = feed::check(&text, guard).map_err(|e| Failure::new(Stage::Guard, e))?;
        let formatted = feed::format_within(&text, guard.max_bytes).map_err(|e| Failure::new(Stage::Guard, e))?;
        drop(text);
        let sha256 = formatted.fingerprint();
        info!(
            feed = %feed.name, stage = "format", ms = started.elapsed().as_millis() as u64,
            wrapper = ?wrapper, kind = %info.kind, items = info.items, bytes = formatted.len(),
            as_written = formatted.as_written(), "feed checked and formatted"
        );
        Ok(Candidate {
            info,
            xml: formatted.into_xml(),
            sha256,
        })
    }

    /// Records the attempt, releasing the claim, and turns the result into the report.
    async fn finish(
        &self,
        feed: &FeedConfig,
        mut report: Report,
        started: Instant,
        result: Result<Published, Failure>,
        claim: Claim,
        deadline: Instant,
    ) -> Report {
        let Claim { mut record, version } = claim;
        record.url = redact_url(&feed.url);
        record.in_flight = None;
        record.solver_ms = report.solver_ms;
        record.final_url = report.final_url.clone();
        let outcome = match result {
            Ok(Published { outcome, sha256 }) => {
                record.last_success = record.last_attempt.clone();
                record.last_error = None;
                record.consecutive_failures = 0;
                record.items = report.items;
                record.bytes = report.bytes;
                record.sha256 = Some(sha256);
                outcome
            }
            Err(failure) => {
                record.last_error = Some(format!("{}: {}", failure.stage, failure.reason));
                record.consecutive_failures += 1;
                failure.into()
            }
        };
        record.outcome = outcome.name().to_string();
        report.total_ms = started.elapsed().as_millis() as u64;
        record.total_ms = Some(report.total_ms);
        report.outcome = outcome;

        let write = self.write_status(feed, &record, Condition::Matches(version));
        if let Err(e) = self
            .by(Some(deadline + STATUS_WRITE_GRACE), &feed.status_key(), write)
            .await
        {
            error!(feed = %feed.name, stage = "status", error = %e, "the status record could not be written");
            if !report.outcome.is_failure() {
                report.outcome = Outcome::Failed {
                    stage: Stage::Status,
                    reason: format!(
                        "the feed was handled ({}), but its status record could not be written: {e}",
                        record.outcome
                    ),
                };
            }
        }
        log_outcome(feed, &report);
        report
    }

    /// Runs a store operation, giving up at `deadline`: the SDK's own timeouts (20 s an attempt,
    /// 45 s in all) know nothing of the Lambda's, and a function killed between the feed's PUT
    /// and the status PUT records nothing.
    async fn by<T>(
        &self,
        deadline: Option<Instant>,
        key: &str,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match deadline {
            None => operation.await,
            Some(at) => tokio::time::timeout_at(at, operation).await.unwrap_or_else(|_| {
                Err(StoreError::Timeout {
                    target: self.store.locate(key),
                })
            }),
        }
    }

    /// The status record and the version read, for the conditional write that follows. A
    /// record that is not valid JSON is started anew, but its version still guards the write.
    async fn read_status(&self, feed: &FeedConfig) -> Result<(Option<StatusRecord>, Option<Version>), StoreError> {
        let Some(stored) = self.store.get(&feed.status_key()).await? else {
            return Ok((None, None));
        };
        match serde_json::from_slice(&stored.body) {
            Ok(record) => Ok((Some(record), Some(stored.version))),
            Err(e) => {
                warn!(feed = %feed.name, error = %e, "the status record is not valid JSON; starting a new one");
                Ok((None, Some(stored.version)))
            }
        }
    }

    async fn write_status(
        &self,
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
        self.store.put(&feed.status_key(), body, options).await
    }

    /// Every status record in the store, configured feed or not, by feed name: what
    /// `flarefeed status` shows without a configuration. Records that do not parse are skipped,
    /// with a warning.
    pub async fn recorded_statuses(&self) -> Result<Vec<StatusRecord>, StoreError> {
        let mut records = Vec::new();
        for key in self.store.list("status/").await? {
            if !key.ends_with(".json") {
                continue;
            }
            let Some(stored) = self.store.get(&key).await? else {
                continue;
            };
            match serde_json::from_slice::<StatusRecord>(&stored.body) {
                Ok(record) => records.push(record),
                Err(e) => warn!(target = %self.store.locate(&key), error = %e, "not a status record; skipped"),
            }
        }
        records.sort_by(|a, b| a.feed.cmp(&b.feed));
        Ok(records)
    }

    /// The status record of every configured feed, `never` where there is none yet.
    pub async fn statuses(&self) -> Result<Vec<StatusRecord>, StoreError> {
        let mut records = Vec::with_capacity(self.config.feeds.len());
        for feed in &self.config.feeds {
            records.push(
                self.read_status(feed)
                    .await?
                    .0
                    .unwrap_or_else(|| StatusRecord::never(feed)),
            );
        }
        Ok(records)
    }
}

/// The one log line of a refresh's outcome, under its own target (`flarefeed::outcome`): the
/// CLI prints each outcome itself and turns it off, the Lambda keeps it.
fn log_outcome(feed: &FeedConfig, report: &Report) {
    const TARGET: &str = "flarefeed::outcome";
    let (name, total_ms) = (&feed.name, report.total_ms);
    match &report.outcome {
        Outcome::Failed { stage, reason } => {
            warn!(target: TARGET, feed = %name, stage = %stage, total_ms, reason = %reason, "refresh failed; the published feed is unchanged")
        }
        Outcome::Busy { retry_after_s, started } => info!(
            target: TARGET, feed = %name, in_flight_since = %started, retry_after_s,
            "skipped: another refresh of this feed is in flight"
        ),
        Outcome::Skipped { retry_after_s } => {
            info!(target: TARGET, feed = %name, retry_after_s, "skipped: the last attempt was too recent")
        }
        outcome => info!(target: TARGET, feed = %name, outcome = outcome.name(), total_ms, "refresh done"),
    }
}

/// [`Outcome::Busy`] if the record shows a live lease.
fn busy(record: Option<&StatusRecord>, now: OffsetDateTime) -> Option<Outcome> {
    let in_flight = record?.in_flight.as_ref()?;
    let left = in_flight.left(now)?;
    Some(Outcome::Busy {
        retry_after_s: left.as_secs().max(1),
        started: in_flight.started.clone(),
    })
}

/// How long until an HTTP-triggered refresh may run again, if the last attempt was too recent.
fn too_recent(previous: Option<&StatusRecord>, min_interval: Duration, now: OffsetDateTime) -> Option<Duration> {
    let last = OffsetDateTime::parse(previous?.last_attempt.as_deref()?, &Rfc3339).ok()?;
    let since = now - last;
    let min = time::Duration::try_from(min_interval).ok()?;
    (since >= time::Duration::ZERO && since < min).then(|| (min - since).try_into().unwrap_or_default())
}

fn format_time(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).expect("a time in range formats as RFC 3339")
}
