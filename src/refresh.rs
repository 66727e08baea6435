//! One refresh of one feed: fetch, extract, guard, format, fingerprint, publish, record.
//!
//! The CLI and the Lambda both call [`Refresher::refresh`]. Whatever fails, the published feed
//! is left exactly as it was: only a newer good feed is ever written over a good one.

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
use crate::store::{PutOptions, Store, StoreError};

/// What started a refresh; only HTTP-triggered ones honour `min_interval_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    Http,
    Cli,
}

/// The status record may still be written this long after the refresh's deadline; the Lambda
/// handler keeps more than this between that deadline and its own (`handler::SAFETY_MARGIN`).
pub const STATUS_WRITE_GRACE: Duration = Duration::from_secs(8);

/// How to run one refresh.
#[derive(Debug, Clone, Copy)]
pub struct RefreshOptions {
    /// Everything, the solver included, must be done by then.
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
    /// Nothing was published; the last good copy stays.
    Failed { stage: Stage, reason: String },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::Skipped { .. } => "skipped",
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

/// A refresh that got a good feed, written or found already there.
struct Published {
    outcome: Outcome,
    /// The fingerprint of the feed readers now get.
    sha256: String,
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

    /// One refresh of `feed`. Never returns an error: failures are outcomes, recorded and logged.
    pub async fn refresh(&self, feed: &FeedConfig, options: RefreshOptions) -> Report {
        let started = Instant::now();
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

        let previous = match self
            .by(options.deadline, &feed.status_key(), self.read_status(feed))
            .await
        {
            Ok(previous) => previous,
            Err(e) => {
                let failure = Err(Failure::new(Stage::Status, e));
                return self
                    .finish(feed, report, started, failure, None, options.deadline)
                    .await;
            }
        };
        if options.trigger == Trigger::Http
            && !options.force
            && let Some(wait) = too_recent(previous.as_ref(), feed.min_interval, OffsetDateTime::now_utc())
        {
            info!(feed = %feed.name, retry_after_s = wait.as_secs(), "skipped: the last attempt was too recent");
            report.outcome = Outcome::Skipped {
                retry_after_s: wait.as_secs().max(1),
            };
            return report;
        }

        let result = self
            .fetch_and_publish(feed, options, previous.as_ref(), &mut report)
            .await;
        self.finish(feed, report, started, result, previous, options.deadline)
            .await
    }

    async fn fetch_and_publish(
        &self,
        feed: &FeedConfig,
        options: RefreshOptions,
        previous: Option<&StatusRecord>,
        report: &mut Report,
    ) -> Result<Published, Failure> {
        let solving = Instant::now();
        let solved = self.solver.solve(&feed.name, &feed.url, options.deadline).await;
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
        let published = self
            .by(options.deadline, &feed.key, self.store.head(&feed.key))
            .await
            .map_err(|e| Failure::new(Stage::Store, e))?;
        let published_sha = published.map(|info| info.sha256.or_else(|| previous.and_then(|p| p.sha256.clone())));
        let force_write = options.force && options.trigger == Trigger::Cli;
        if !force_write && published_sha.flatten().as_deref() == Some(candidate.sha256.as_str()) {
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
        };
        let sha256 = candidate.sha256.clone();
        let put = self.store.put(&feed.key, candidate.xml.into_bytes(), put_options);
        self.by(options.deadline, &feed.key, put)
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

    /// Records the attempt and turns the result into the report.
    async fn finish(
        &self,
        feed: &FeedConfig,
        mut report: Report,
        started: Instant,
        result: Result<Published, Failure>,
        previous: Option<StatusRecord>,
        deadline: Option<Instant>,
    ) -> Report {
        let attempt_at = now();
        let mut record = previous.unwrap_or_else(|| StatusRecord::never(feed));
        record.url = redact_url(&feed.url);
        record.last_attempt = Some(attempt_at.clone());
        record.solver_ms = report.solver_ms;
        record.final_url = report.final_url.clone();
        let (outcome, stage_failed) = match result {
            Ok(Published { outcome, sha256 }) => {
                record.last_success = Some(attempt_at);
                record.last_error = None;
                record.consecutive_failures = 0;
                record.items = report.items;
                record.bytes = report.bytes;
                record.sha256 = Some(sha256);
                (outcome, None)
            }
            Err(failure) => {
                record.last_error = Some(format!("{}: {}", failure.stage, failure.reason));
                record.consecutive_failures += 1;
                (
                    Outcome::Failed {
                        stage: failure.stage,
                        reason: failure.reason,
                    },
                    Some(failure.stage),
                )
            }
        };
        record.outcome = outcome.name().to_string();
        report.total_ms = started.elapsed().as_millis() as u64;
        record.total_ms = Some(report.total_ms);
        report.outcome = outcome;

        // A status record that cannot even be read is not overwritten: it may hold history.
        if stage_failed != Some(Stage::Status)
            && let Err(e) = self
                .by(
                    deadline.map(|at| at + STATUS_WRITE_GRACE),
                    &feed.status_key(),
                    self.write_status(feed, &record),
                )
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
        match &report.outcome {
            Outcome::Failed { stage, reason } => {
                warn!(feed = %feed.name, stage = %stage, total_ms = report.total_ms, reason = %reason, "refresh failed; the published feed is unchanged")
            }
            outcome => info!(feed = %feed.name, outcome = outcome.name(), total_ms = report.total_ms, "refresh done"),
        }
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

    async fn read_status(&self, feed: &FeedConfig) -> Result<Option<StatusRecord>, StoreError> {
        let Some(bytes) = self.store.get(&feed.status_key()).await? else {
            return Ok(None);
        };
        match serde_json::from_slice(&bytes) {
            Ok(record) => Ok(Some(record)),
            Err(e) => {
                warn!(feed = %feed.name, error = %e, "the status record is not valid JSON; starting a new one");
                Ok(None)
            }
        }
    }

    async fn write_status(&self, feed: &FeedConfig, record: &StatusRecord) -> Result<(), StoreError> {
        let body = serde_json::to_vec_pretty(record).expect("a status record always serializes");
        let options = PutOptions {
            content_type: "application/json",
            cache_control: "no-cache",
            sha256: None,
        };
        self.store.put(&feed.status_key(), body, options).await
    }

    /// The status record of every configured feed, `never` where there is none yet.
    pub async fn statuses(&self) -> Result<Vec<StatusRecord>, StoreError> {
        let mut records = Vec::with_capacity(self.config.feeds.len());
        for feed in &self.config.feeds {
            records.push(
                self.read_status(feed)
                    .await?
                    .unwrap_or_else(|| StatusRecord::never(feed)),
            );
        }
        Ok(records)
    }
}

/// How long until an HTTP-triggered refresh may run again, if the last attempt was too recent.
fn too_recent(previous: Option<&StatusRecord>, min_interval: Duration, now: OffsetDateTime) -> Option<Duration> {
    let last = OffsetDateTime::parse(previous?.last_attempt.as_deref()?, &Rfc3339).ok()?;
    let since = now - last;
    let min = time::Duration::try_from(min_interval).ok()?;
    (since >= time::Duration::ZERO && since < min).then(|| (min - since).try_into().unwrap_or_default())
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("now formats as RFC 3339")
}
