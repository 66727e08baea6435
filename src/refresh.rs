//! One refresh of one feed: claim, fetch, extract, guard, format, fingerprint, publish, record.
//!
//! The CLI and the Lambda both call [`Refresher::refresh`]. Whatever fails, the published feed
//! is left exactly as it was: only a newer good feed is ever written over a good one.
//!
//! One refresh of a feed runs at a time, wherever it was started. A refresh first claims the
//! feed by writing an [`InFlight`] claim into its status record with a conditional write, so of
//! two that read the same record only one can claim it; the other stands back ([`Outcome::Busy`]).
//! The claim expires when its holder can no longer write (its deadline, the status write's grace
//! and [`LEASE_SLACK`]), so a killed refresh blocks nobody for long. The feed is then written
//! only if it is still the version seen at the claim, and the status record only if it is still
//! the claim: a refresh that outlived its claim and was overtaken writes nothing. So the
//! published feed is always the good content of the refresh that claimed it last, and the status
//! record describes the published feed.
//!
//! The flow is straight: [`Refresher::attempt`] returns one [`Attempt`], and the status record
//! and the [`Report`] are both built from it, in [`Attempt`]'s own methods.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::config::{Config, FeedConfig, FetchMode};
use crate::feed::{self, FeedError, GuardOptions};
use crate::fetch::{DirectClass, DirectReply, DirectRequest, FetchError, Fetcher, Route, Validators};
use crate::outcome::Recorded;
pub use crate::outcome::{Outcome, RefreshError, Report, Stage};
use crate::redact::redact_url;
use crate::solver::{Body, MIN_REQUEST_TIME, STARTUP_MARGIN, SolveRequest, Solver, SolverError};
use crate::status::{
    self, AttemptMark, Backoff, Gate, InFlight, Interrupted, RecordedValidators, StatusRecord, Trigger, signed,
};
use crate::store::{Condition, ObjectInfo, PutOptions, Store, StoreError, Version, store_now};

/// The status record may still be written this long after the refresh's deadline; the Lambda
/// handler keeps more than this between that deadline and its own (`handler::SAFETY_MARGIN`).
pub const STATUS_WRITE_GRACE: Duration = Duration::from_secs(8);

/// A claim outlasts its holder's last possible write by this much: for clocks that disagree
/// (Lambda's are NTP-synchronised; a CLI host's may drift) and a write already on the wire when
/// its holder gave up.
pub const LEASE_SLACK: Duration = Duration::from_secs(30);

/// How to run one refresh: the policy is explicit, whoever asked for it.
#[derive(Debug, Clone, Copy)]
pub struct RefreshOptions {
    /// Everything, the solver included, must be done by then. Without one (CLI, emulators) a
    /// refresh gets [`Refresher::budget`], so that its claim can expire.
    pub deadline: Option<Instant>,
    /// For the logs and the status record only.
    pub trigger: Trigger,
    /// Skip the refresh if the last attempt was within the feed's `min_interval_s`.
    pub respect_min_interval: bool,
    /// Write the feed even when it is the one already published.
    pub publish_unchanged: bool,
    /// Leave a failing feed alone until its backoff has passed ([`StatusRecord::backing_off`]).
    pub respect_backoff: bool,
    /// Write the status record even for an unchanged refresh within its lag
    /// ([`status::recent_enough`]): a refresh someone asked for shows its time.
    pub record_always: bool,
}

impl RefreshOptions {
    /// An EventBridge tick: runs, and publishes only a change.
    pub fn scheduled(deadline: Option<Instant>) -> Self {
        Self {
            deadline,
            trigger: Trigger::Schedule,
            respect_min_interval: false,
            publish_unchanged: false,
            respect_backoff: false,
            record_always: true,
        }
    }

    /// A refresh the fleet's planner queued: a failing feed backs off.
    pub fn queued(deadline: Option<Instant>) -> Self {
        Self {
            deadline,
            trigger: Trigger::Queue,
            respect_min_interval: false,
            publish_unchanged: false,
            respect_backoff: true,
            record_always: false,
        }
    }

    /// A refresh asked for by hand and sent through the fleet's queue (the function URL,
    /// `flarefeed refresh`, a schedule naming a feed, in a deployment with a queue): it runs in
    /// the feed's message group, so never beside a planned one. `force` lifts `min_interval_s`
    /// and publishes an unchanged feed too; its record is always written.
    pub fn asked(deadline: Option<Instant>, force: bool) -> Self {
        Self {
            deadline,
            trigger: Trigger::Queue,
            respect_min_interval: !force,
            publish_unchanged: force,
            respect_backoff: false,
            record_always: true,
        }
    }

    /// `POST /refresh/<feed>`: `min_interval_s` holds unless `force` (`?force=1`).
    pub fn http(deadline: Option<Instant>, force: bool) -> Self {
        Self {
            deadline,
            trigger: Trigger::Http,
            respect_min_interval: !force,
            publish_unchanged: false,
            respect_backoff: false,
            record_always: true,
        }
    }

    /// `flarefeed refresh`: runs whenever asked; `--force` publishes an unchanged feed too.
    pub fn cli(force: bool) -> Self {
        Self {
            deadline: None,
            trigger: Trigger::Cli,
            respect_min_interval: false,
            publish_unchanged: force,
            respect_backoff: false,
            record_always: true,
        }
    }

    /// What, besides a live claim, these options let hold `feed` back.
    fn gate(&self, feed: &FeedConfig, config: &Config, lease: Duration) -> Gate {
        Gate {
            lease,
            min_interval: self.respect_min_interval.then_some(feed.min_interval),
            backoff: self.respect_backoff.then_some(Backoff {
                interval: feed.interval,
                max: config.fleet.max_backoff,
            }),
        }
    }
}

/// Runs refreshes against one solver and one store; built once, by [`crate::deployment`], and
/// shared.
#[derive(Clone)]
pub struct Refresher {
    solver: Arc<dyn Solver>,
    fetcher: Arc<dyn Fetcher>,
    store: Arc<dyn Store>,
    config: Arc<Config>,
    /// Told of every refresh that made an attempt (the Lambda's metrics).
    observer: Option<Arc<dyn Observer>>,
}

/// Hears of every refresh, with the status record it left or found: the Lambda wires its
/// metrics in here, so that the refresh knows nothing of them.
pub trait Observer: Send + Sync {
    /// `record` is the feed's record after the refresh, or as it was read when the refresh
    /// stood back (busy, backoff); `None` when it could not be read.
    fn finished(&self, report: &Report, record: Option<&StatusRecord>);

    /// A tick sent `queued` due feeds to the queue and could not send `not_queued`.
    fn ticked(&self, queued: usize, not_queued: usize) {
        let _ = (queued, not_queued);
    }

    /// A configuration was refused as invalid: the last valid one runs.
    fn config_invalid(&self, error: &str) {
        let _ = error;
    }
}

/// The status record as this refresh claimed it, and the version that claim wrote.
struct Claim {
    record: StatusRecord,
    /// The record's version this refresh writes over: its claim's, or for a queued refresh
    /// (which writes no claim) the version it read, `None` for no record.
    version: Option<Version>,
    /// Whether a claim was written, which the refresh must then release by writing its record.
    written: bool,
    /// The published copy, when the claim already looked (a feed without a record): not read
    /// twice.
    headed: Option<Option<ObjectInfo>>,
    /// The record before the claim: its fingerprint describes a folder's published feed, and an
    /// interrupted refresh puts it back.
    before: Option<StatusRecord>,
}

/// A refresh that stopped before its claim: the outcome, and the record as read.
struct Stopped {
    outcome: Outcome,
    record: Option<StatusRecord>,
}

impl From<Outcome> for Stopped {
    fn from(outcome: Outcome) -> Self {
        Self { outcome, record: None }
    }
}

/// Tells the refreshes in flight to stop, and says why (`SIGINT`): the CLI's Ctrl-C.
pub struct Interrupter(tokio::sync::watch::Sender<Option<&'static str>>);

/// What a refresh watches for an [`Interrupter`]'s word. A refresh stops only while it waits
/// on the network (the direct request, the solver): the rest is short, and a feed's write is
/// never cut in half.
#[derive(Clone)]
pub struct Interrupt(tokio::sync::watch::Receiver<Option<&'static str>>);

impl Interrupt {
    pub fn channel() -> (Interrupter, Interrupt) {
        let (sender, receiver) = tokio::sync::watch::channel(None);
        (Interrupter(sender), Interrupt(receiver))
    }

    /// Why the refreshes were told to stop, if they were.
    pub fn fired(&self) -> Option<&'static str> {
        *self.0.borrow()
    }

    async fn wait(&self) -> &'static str {
        let mut receiver = self.0.clone();
        let by = receiver.wait_for(Option::is_some).await.ok().and_then(|by| *by);
        match by {
            Some(by) => by,
            // The interrupter is gone: nothing can interrupt any more.
            None => std::future::pending().await,
        }
    }
}

impl Interrupter {
    pub fn interrupt(&self, by: &'static str) {
        let _ = self.0.send(Some(by));
    }
}

/// Runs `work` unless `interrupt` fires first.
async fn interruptible<T>(interrupt: Option<&Interrupt>, work: impl Future<Output = T>) -> Result<T, &'static str> {
    match interrupt {
        None => Ok(work.await),
        Some(interrupt) => tokio::select! {
            biased;
            by = interrupt.wait() => Err(by),
            done = work => Ok(done),
        },
    }
}

/// How long an interrupted refresh waits for its record to be put back.
const PUT_BACK_TIME: Duration = Duration::from_secs(2);

/// Everything one attempt found out, after the claim: the report and the status record are
/// both built from it.
#[derive(Debug)]
struct Attempt {
    found: Found,
    result: Result<Published, (Stage, RefreshError)>,
}

/// What an attempt learnt on its way, however far it got.
#[derive(Debug, Default)]
struct Found {
    solver_ms: Option<u64>,
    /// The solver that answered.
    solver: Option<String>,
    final_url: Option<String>,
    /// The feed that passed the guard.
    checked: Option<Checked>,
    /// Which way the feed was fetched, once it was.
    route: Option<Route>,
    /// The direct reply's class, when it was not the feed and the solver was asked instead.
    direct: Option<DirectClass>,
    /// A direct 200's validators.
    validators: Option<Validators>,
    /// The feed goes straight to the solver until then.
    solver_until: Option<OffsetDateTime>,
}

#[derive(Debug)]
struct Checked {
    kind: String,
    items: usize,
    bytes: usize,
}

/// A good feed, written or found already there.
#[derive(Debug)]
struct Published {
    outcome: Recorded,
    /// The fingerprint of the feed readers now get.
    sha256: String,
}

/// What every path to a publish shares: the feed, the policy, and the published copy as it was
/// at the claim.
struct Publish<'a> {
    feed: &'a FeedConfig,
    options: RefreshOptions,
    deadline: Instant,
    /// The published copy from a HEAD at the claim; `None` with `headed` false when the status
    /// record's fingerprint stood for it, and the HEAD waits until a write needs its version.
    published: Option<&'a ObjectInfo>,
    headed: bool,
    /// The published feed's fingerprint.
    published_sha: Option<&'a str>,
    interrupt: Option<&'a Interrupt>,
}

/// With `fetch = "auto"`, a direct request leaves at least this much of the deadline to the
/// solver: its smallest useful maxTimeout and the time Chrome needs to start.
const MIN_SOLVER_TIME: Duration = Duration::from_secs(35);

/// A feed that passed the guard and was formatted.
struct Candidate {
    info: feed::FeedInfo,
    xml: String,
    sha256: String,
}

impl Attempt {
    fn failed(found: Found, stage: Stage, error: impl Into<RefreshError>) -> Self {
        Self {
            found,
            result: Err((stage, error.into())),
        }
    }

    fn published(found: Found, outcome: Recorded, sha256: String) -> Self {
        Self {
            found,
            result: Ok(Published { outcome, sha256 }),
        }
    }

    /// The claimed record, finished: the claim released, the attempt recorded.
    fn record(&self, feed: &FeedConfig, claimed: &StatusRecord, total_ms: u64) -> StatusRecord {
        let mut record = claimed.clone();
        record.url = redact_url(&feed.url);
        record.in_flight = None;
        record.interrupted = None;
        record.solver_ms = self.found.solver_ms;
        record.total_ms = Some(total_ms);
        record.final_url = self.found.final_url.clone();
        record.solver = self.found.solver.clone();
        record.fetched_by = self.found.route;
        if self.found.direct.is_some() {
            record.direct = self.found.direct;
        }
        match &self.result {
            Ok(published) => {
                // Only a solver that succeeded where direct did not sends the next refreshes
                // straight to it; a failing solver proves nothing about direct.
                if let Some(until) = self.found.solver_until {
                    record.solver_until = Some(until);
                }
                if self.found.route == Some(Route::Direct) {
                    // Direct works: no reason to go to the solver, and validators for the next.
                    record.direct = None;
                    record.solver_until = None;
                    if let Some(validators) = &self.found.validators {
                        record.validators = RecordedValidators::new(&feed.url, validators.clone());
                    }
                } else {
                    record.validators = None;
                }
                record.outcome = published.outcome;
                record.not_before = None;
                record.last_success = record.last_attempt;
                record.last_error = None;
                record.consecutive_failures = 0;
                // A 304 read no body: the published feed is the one the record describes.
                if let Some(checked) = &self.found.checked {
                    record.items = Some(checked.items);
                    record.bytes = Some(checked.bytes);
                }
                record.sha256 = Some(published.sha256.clone());
            }
            Err((stage, error)) => {
                // Validators name a copy this failure may have left behind.
                record.validators = None;
                record.not_before = match error {
                    RefreshError::Solver(SolverError::RateLimited {
                        retry_after_s: Some(seconds),
                        ..
                    }) => claimed
                        .last_attempt
                        .map(|at| at.saturating_add(time::Duration::seconds(*seconds as i64))),
                    _ => None,
                };
                record.outcome = Recorded::Failed;
                record.last_error = Some(crate::redact::one_line(&format!("{stage}: {error}")));
                record.consecutive_failures += 1;
            }
        }
        let mark = match &self.result {
            Ok(published) if published.outcome == Recorded::Updated => AttemptMark::Updated,
            Ok(_) => AttemptMark::Unchanged,
            Err(_) => AttemptMark::Failed,
        };
        if let Some(at) = claimed.last_attempt {
            record.remember(at, mark, total_ms);
        }
        record
    }

    /// The signal that stopped it, if one did.
    fn interrupted(&self) -> Option<&str> {
        match &self.result {
            Err((_, RefreshError::Interrupted { by })) => Some(by),
            _ => None,
        }
    }

    /// The outcome, once the record's write is known.
    fn outcome(&self, status_written: Result<(), StoreError>) -> Outcome {
        match (&self.result, status_written) {
            (Err((stage, error)), _) => Outcome::failed(*stage, error.clone()),
            (Ok(published), Err(source)) => Outcome::failed(
                Stage::Status,
                RefreshError::StatusNotWritten {
                    handled: published.outcome,
                    source,
                },
            ),
            (Ok(published), Ok(())) if published.outcome == Recorded::Updated => Outcome::Updated,
            (Ok(_), Ok(())) => Outcome::Unchanged,
        }
    }
}

impl Report {
    fn new(feed: &FeedConfig, location: String, outcome: Outcome, attempt: Option<&Attempt>, total_ms: u64) -> Self {
        let found = attempt.map(|a| &a.found);
        let checked = found.and_then(|f| f.checked.as_ref());
        Self {
            feed: feed.name.clone(),
            outcome,
            location,
            kind: checked.map(|c| c.kind.clone()),
            items: checked.map(|c| c.items),
            bytes: checked.map(|c| c.bytes),
            solver_ms: found.and_then(|f| f.solver_ms),
            total_ms,
            final_url: found.and_then(|f| f.final_url.clone()),
            solver: found.and_then(|f| f.solver.clone()),
            route: found.and_then(|f| f.route),
        }
    }
}

impl Refresher {
    /// Only [`crate::deployment`] builds one: the composition root.
    pub(crate) fn new(
        solver: Arc<dyn Solver>,
        fetcher: Arc<dyn Fetcher>,
        store: Arc<dyn Store>,
        config: Arc<Config>,
        observer: Option<Arc<dyn Observer>>,
    ) -> Self {
        Self {
            solver,
            fetcher,
            store,
            config,
            observer,
        }
    }

    /// The deadline of a refresh that was given none: room for the solver's three tries (in a
    /// session, in a recreated session, without one) and a minute for the store.
    pub fn budget(&self) -> Duration {
        (self.config.solver.max_timeout + STARTUP_MARGIN) * 3 + Duration::from_secs(60)
    }

    /// The longest lease a refresh of this deployment can take: the longest deadline (the
    /// default budget, or a Lambda function's longest timeout, 900 s), the status write's grace
    /// and the slack. No claim counts for longer, whatever its times say.
    pub fn longest_lease(&self) -> Duration {
        self.budget().max(LAMBDA_LONGEST) + STATUS_WRITE_GRACE + LEASE_SLACK
    }

    /// One refresh of `feed`. Never returns an error: failures are outcomes, recorded and logged.
    pub async fn refresh(&self, feed: &FeedConfig, options: RefreshOptions) -> Report {
        self.run(feed, options, None).await
    }

    /// [`Refresher::refresh`], stopped when `interrupt` fires while it waits on the network:
    /// then the status record is put back as it was before the claim, noting the interruption,
    /// and the outcome is a failure that says so.
    pub async fn refresh_interruptible(
        &self,
        feed: &FeedConfig,
        options: RefreshOptions,
        interrupt: &Interrupt,
    ) -> Report {
        self.run(feed, options, Some(interrupt)).await
    }

    async fn run(&self, feed: &FeedConfig, options: RefreshOptions, interrupt: Option<&Interrupt>) -> Report {
        let started = Instant::now();
        let deadline = options.deadline.unwrap_or_else(|| started + self.budget());
        let (outcome, attempt, record) = match self.claim(feed, options, deadline).await {
            Err(stopped) => (stopped.outcome, None, stopped.record),
            Ok(claim) => {
                let attempt = self.attempt(feed, options, deadline, &claim, interrupt).await;
                if let Some(by) = attempt.interrupted() {
                    let record = self.put_back(feed, &claim, options.trigger, by).await;
                    (attempt.outcome(Ok(())), Some(attempt), Some(record))
                } else {
                    let record = attempt.record(feed, &claim.record, elapsed_ms(started));
                    let quiet = !claim.written
                        && !options.record_always
                        && status::recent_enough(claim.before.as_ref(), &record, feed, store_now(self.store.as_ref()));
                    if quiet {
                        info!(
                            feed = %feed.name, stage = "status",
                            "unchanged, and the record says so recently enough: not written"
                        );
                    }
                    let written = if quiet {
                        Ok(())
                    } else {
                        self.write_outcome(feed, &record, &claim, deadline + STATUS_WRITE_GRACE)
                            .await
                            .inspect_err(|e| error!(feed = %feed.name, stage = "status", error = %e, "the status record could not be written"))
                    };
                    if written.is_ok() && !quiet {
                        self.update_site(feed, claim.before.as_ref(), &record, deadline + STATUS_WRITE_GRACE)
                            .await;
                    }
                    (attempt.outcome(written), Some(attempt), Some(record))
                }
            }
        };
        let location = self.store.locate(&feed.key);
        let report = Report::new(feed, location, outcome, attempt.as_ref(), elapsed_ms(started));
        log_outcome(&report);
        if let Some(observer) = &self.observer {
            observer.finished(&report, record.as_ref());
        }
        report
    }

    /// Writes the finished record over the claim. If the claim is gone because the record was
    /// deleted under it (by hand, or a lifecycle rule), the record is written again from
    /// scratch, or over the guard a refresh that found it missing left ([`InFlight::guard`]);
    /// a claim another refresh took over stands.
    async fn write_outcome(
        &self,
        feed: &FeedConfig,
        record: &StatusRecord,
        claim: &Claim,
        by: Instant,
    ) -> Result<(), StoreError> {
        let key = feed.status_key();
        let store = self.store.as_ref();
        let write = status::write(store, feed, record, Condition::unchanged_since(claim.version.as_ref()));
        let conflict = match self.by(by, &key, write).await {
            Err(conflict @ StoreError::Conflict { .. }) => conflict,
            other => return other.map(drop),
        };
        let reread = self.by(by, &key, status::read(store, feed)).await;
        let condition = match reread {
            Ok(status::Read { record: None, .. }) => Condition::Absent,
            Ok(status::Read {
                record: Some(found),
                version: Some(version),
            }) if found.in_flight.as_ref().is_some_and(|c| c.guard) => Condition::Matches(version),
            _ => return Err(conflict),
        };
        warn!(feed = %feed.name, "the status record was deleted during this refresh; writing it again");
        self.by(by, &key, status::write(store, feed, record, condition))
            .await
            .map(drop)
    }

    /// The status site, when the feed's summary changed ([`crate::site::update`]). A site that
    /// cannot be written is logged, never the refresh's failure: the feed and its record stand.
    async fn update_site(&self, feed: &FeedConfig, before: Option<&StatusRecord>, after: &StatusRecord, by: Instant) {
        if !self.config.site.enabled {
            return;
        }
        let now = store_now(self.store.as_ref());
        let update = crate::site::update(self.store.as_ref(), &self.config, feed, before, after, now);
        match tokio::time::timeout_at(by, update).await {
            Ok(Ok(written)) if written.puts > 0 => {
                info!(feed = %feed.name, stage = "site", gets = written.gets, puts = written.puts, "status site updated");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(feed = %feed.name, stage = "site", error = %e, "the status site could not be updated"),
            Err(_) => warn!(feed = %feed.name, stage = "site", "the status site could not be updated in time"),
        }
    }

    /// Puts the record back as it was before the claim, noting the interruption: within
    /// [`PUT_BACK_TIME`], as a process told to stop has little left. If that fails, the claim
    /// stays until it ends, or until a refresh on this host sees its holder gone.
    async fn put_back(&self, feed: &FeedConfig, claim: &Claim, trigger: Trigger, by: &str) -> StatusRecord {
        let mut record = claim.before.clone().unwrap_or_else(|| StatusRecord::never(feed));
        if !claim.written {
            // No claim to release: the record is as it was.
            return record;
        }
        record.in_flight = None;
        record.first_attempt = claim.record.first_attempt;
        let at = store_now(self.store.as_ref());
        record.interrupted = Some(Interrupted {
            at,
            trigger,
            by: by.to_string(),
        });
        record.remember(at, AttemptMark::Interrupted, 0);
        let write = status::write(
            self.store.as_ref(),
            feed,
            &record,
            Condition::unchanged_since(claim.version.as_ref()),
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

    /// The checks before a refresh, then its claim on the feed. `Err` is the outcome of a
    /// refresh that stops here, having written nothing (but a guard, see below).
    async fn claim(&self, feed: &FeedConfig, options: RefreshOptions, deadline: Instant) -> Result<Claim, Stopped> {
        // A deadline already spent (a Lambda timeout shorter than the safety margin) is a
        // configuration error: say so, rather than time out on the first store call.
        let left = deadline.saturating_duration_since(Instant::now());
        if left < MIN_REQUEST_TIME {
            let error = SolverError::NoTimeLeft {
                left_ms: left.as_millis() as u64,
            };
            return Err(Outcome::failed(Stage::Solver, error).into());
        }
        let status_key = feed.status_key();
        let read = self
            .by(deadline, &status_key, status::read(self.store.as_ref(), feed))
            .await
            // Nothing is written: a status record that cannot be read may hold history.
            .map_err(|e| Stopped::from(Outcome::failed(Stage::Status, e)))?;
        // Claims are written and judged on the store's clock, which every host shares.
        let now = store_now(self.store.as_ref());
        let lease = self.longest_lease();
        let shown = || read.record.clone().or_else(|| Some(StatusRecord::never(feed)));
        if let Some(stopped) = read
            .record
            .as_ref()
            .and_then(|r| r.gate(options.gate(feed, &self.config, lease), now))
        {
            return Err(Stopped {
                outcome: stopped,
                record: shown(),
            });
        }
        let headed = match read.record {
            None => Some(self.guard_lost_record(feed, deadline, now).await?),
            Some(_) => None,
        };

        // The claim: the lease and the attempt go into the record before anything else, by a
        // write that fails if the record changed since it was read.
        let mut record = read.record.clone().unwrap_or_else(|| StatusRecord::never(feed));
        if let Some(stale) = &record.in_flight {
            let gone = stale.holder.as_ref().is_some_and(status::Holder::is_gone);
            warn!(
                feed = %feed.name, started = %stale.started, expires = %stale.expires, holder = %stale.describe(),
                "the last refresh never finished ({}); taking over its claim",
                if gone { "its process no longer runs" } else { "killed at the function's timeout?" }
            );
        }
        let writes_until = deadline.saturating_duration_since(Instant::now()) + STATUS_WRITE_GRACE + LEASE_SLACK;
        record.in_flight = Some(InFlight::new(
            options.trigger,
            now,
            now.saturating_add(signed(writes_until)),
        ));
        record.first_attempt = record.first_attempt.or(record.last_attempt).or(Some(now));
        record.last_attempt = Some(now);
        if options.trigger == Trigger::Queue {
            // A queued refresh writes no claim: SQS hands out one message of a FIFO message
            // group at a time, and the group is the feed ("messages that belong to the same
            // message group are always processed one by one, in a strict order relative to
            // the message group",
            // https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-queues-understanding-logic.html;
            // no other message of the group is returned while one is in flight,
            // https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-queues-exactly-once-processing.html).
            // Every other refresh of a queue-backed deployment is sent to the queue too
            // (`handler::routes`, `flarefeed refresh`), and a claim from anywhere else was
            // honoured above. Its record is written over the version read, or not at all.
            record.in_flight = None;
            return Ok(Claim {
                before: read.record,
                record,
                version: read.version,
                written: false,
                headed,
            });
        }
        let claim = status::write(
            self.store.as_ref(),
            feed,
            &record,
            Condition::unchanged_since(read.version.as_ref()),
        );
        match self.by(deadline, &status_key, claim).await {
            Ok(version) => Ok(Claim {
                before: read.record,
                record,
                version: Some(version),
                written: true,
                headed,
            }),
            Err(StoreError::Conflict { .. }) => {
                // Another refresh claimed the feed between our read and our write. Its claim
                // says how long to wait; if it is already gone, the other refresh has finished.
                let reread = self
                    .by(deadline, &status_key, status::read(self.store.as_ref(), feed))
                    .await;
                let record = reread.ok().and_then(|read| read.record);
                let now = store_now(self.store.as_ref());
                let busy = record.as_ref().and_then(|r| r.busy(now, lease));
                let outcome = busy.unwrap_or_else(|| Outcome::Busy {
                    retry_after_s: 1,
                    started: record.as_ref().and_then(|r| r.last_attempt).unwrap_or(now),
                    until: now,
                    holder: "another refresh, just finished".into(),
                    clamped: false,
                });
                Err(Stopped { outcome, record })
            }
            Err(e) => Err(Outcome::failed(Stage::Status, e).into()),
        }
    }

    /// A feed published without a status record had its record deleted, perhaps while a
    /// refresh was in flight: claiming it now could ask the solver a second time. So this
    /// refresh stands back, and leaves a guard claim for one lease, which that refresh writes
    /// its outcome over ([`Refresher::write_outcome`]). A feed never published goes ahead,
    /// with what the HEAD found (nothing).
    async fn guard_lost_record(
        &self,
        feed: &FeedConfig,
        deadline: Instant,
        now: OffsetDateTime,
    ) -> Result<Option<ObjectInfo>, Stopped> {
        let published = self
            .by(deadline, &feed.key, self.store.head(&feed.key))
            .await
            .map_err(|e| Stopped::from(Outcome::failed(Stage::Store, e)))?;
        let Some(published) = published else {
            return Ok(None);
        };
        let mut guard = StatusRecord::never(feed);
        guard.sha256 = published.sha256;
        let mut claim = InFlight::new(Trigger::Other, now, now.saturating_add(signed(self.longest_lease())));
        claim.trigger = Trigger::Other;
        claim.holder = None;
        claim.guard = true;
        guard.in_flight = Some(claim);
        let write = status::write(self.store.as_ref(), feed, &guard, Condition::Absent);
        match self.by(deadline, &feed.status_key(), write).await {
            Ok(_) => warn!(
                feed = %feed.name,
                "the feed is published but has no status record (deleted?); standing back for one lease in case a refresh is in flight"
            ),
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(Outcome::failed(Stage::Status, e).into()),
        }
        let outcome = guard
            .busy(now, self.longest_lease())
            .expect("a guard just written is live");
        Err(Stopped {
            outcome,
            record: Some(guard),
        })
    }

    /// Fetch, prepare and publish, under a claim: directly first where the feed's `fetch` allows
    /// and its record does not send it straight to the solver; the solver when the direct
    /// reply is not a publishable feed (`auto`), or always (`solver`).
    async fn attempt(
        &self,
        feed: &FeedConfig,
        options: RefreshOptions,
        deadline: Instant,
        claim: &Claim,
        interrupt: Option<&Interrupt>,
    ) -> Attempt {
        // The feed as it is at the claim: it is replaced only if it is still this one. A record
        // that names the published feed's fingerprint stands for it, so an unchanged refresh
        // (a 304, or the same fingerprint) reads nothing more; the HEAD waits until a write
        // needs the copy's version ([`Refresher::publish`]).
        // Only a refresh that may leave its record unwritten trusts it; the others, and each
        // one whose record is due to be written, look at the copy itself, so a copy deleted by
        // hand is written again within the record's lag.
        let now = store_now(self.store.as_ref());
        let recorded_sha = claim
            .before
            .as_ref()
            .filter(|r| !claim.written && r.outcome != Recorded::Never && status::lag_allows(r, feed, now))
            .and_then(|r| r.sha256.clone());
        let published: Option<ObjectInfo> = match (&recorded_sha, &claim.headed) {
            (Some(_), _) => None,
            (None, Some(headed)) => headed.clone(),
            (None, None) => match self.by(deadline, &feed.key, self.store.head(&feed.key)).await {
                Ok(published) => published,
                Err(e) => return Attempt::failed(Found::default(), Stage::Store, e),
            },
        };
        // A folder keeps no fingerprint beside the feed; the status record's describes it.
        let published_sha = match &recorded_sha {
            Some(sha) => Some(sha.clone()),
            None => published.as_ref().and_then(|info| {
                info.sha256
                    .clone()
                    .or_else(|| claim.before.as_ref().and_then(|r| r.sha256.clone()))
            }),
        };
        let publish = Publish {
            feed,
            options,
            deadline,
            published: published.as_ref(),
            headed: recorded_sha.is_none(),
            published_sha: published_sha.as_deref(),
            interrupt,
        };
        let mut found = Found::default();
        let direct_first = match feed.fetch {
            FetchMode::Direct => true,
            FetchMode::Solver => false,
            FetchMode::Auto => claim.record.solver_until.is_none_or(|until| until <= now),
        };
        if direct_first && let Some(timeout) = self.direct_timeout(feed.fetch, deadline) {
            let error = match self.direct(&publish, &claim.record, timeout, &mut found).await {
                Ok(attempt) => return attempt,
                Err(error) => error,
            };
            if feed.fetch == FetchMode::Direct {
                return Attempt::failed(found, Stage::Fetch, error);
            }
            info!(
                feed = %feed.name, class = ?error.class(), reason = %error,
                "not a feed directly; asking the solver"
            );
            found.direct = Some(error.class());
            found.solver_until = Some(now.saturating_add(signed(self.config.fetch.reprobe_after)));
        }
        self.through_solver(&publish, found).await
    }

    /// The direct request's time: `[fetch] timeout`, within the deadline. With `auto` it leaves
    /// the solver's fallback room for a useful maxTimeout, and is `None` when that leaves too
    /// little for a request (the solver is asked straight away). With `direct` it is whatever
    /// is left: the solver is never the answer, so a deadline too close fails as a timeout.
    fn direct_timeout(&self, mode: FetchMode, deadline: Instant) -> Option<Duration> {
        let left = deadline.saturating_duration_since(Instant::now());
        match mode {
            FetchMode::Auto => {
                let timeout = self.config.fetch.timeout.min(left.saturating_sub(MIN_SOLVER_TIME));
                (timeout >= MIN_REQUEST_TIME).then_some(timeout)
            }
            _ => Some(self.config.fetch.timeout.min(left)),
        }
    }

    /// The direct GET, conditional when the record has validators for this url. `Ok` is the
    /// attempt's end (published, unchanged, or failed at the store); `Err` is a reply that was
    /// not a publishable feed.
    async fn direct(
        &self,
        publish: &Publish<'_>,
        record: &StatusRecord,
        timeout: Duration,
        found: &mut Found,
    ) -> Result<Attempt, FetchError> {
        let feed = publish.feed;
        let recorded = record.validators_for(&feed.url);
        // A forced refresh reads the feed whole; without a published copy to stand for, a 304
        // would say nothing.
        let validators = recorded.filter(|_| !publish.options.publish_unchanged && publish.published_sha.is_some());
        let request = DirectRequest {
            url: &feed.url,
            user_agent: feed
                .request
                .user_agent
                .as_deref()
                .unwrap_or(&self.config.fetch.user_agent),
            headers: &feed.request.headers,
            proxy: feed.request.proxy.as_ref(),
            validators,
            timeout,
            max_bytes: self.config.solver.max_reply_bytes,
        };
        let fetching = Instant::now();
        let reply = match interruptible(publish.interrupt, self.fetcher.get(&request)).await {
            Ok(reply) => reply,
            Err(by) => {
                let error = RefreshError::Interrupted { by: by.into() };
                return Ok(Attempt::failed(std::mem::take(found), Stage::Fetch, error));
            }
        };
        info!(feed = %feed.name, stage = "fetch", ms = elapsed_ms(fetching), ok = reply.is_ok(), "direct reply");
        let (body, charset, validators, final_url) = match reply? {
            DirectReply::NotModified { final_url } => {
                found.route = Some(Route::Direct);
                found.final_url = Some(final_url).filter(|url| *url != redact_url(&feed.url));
                found.validators = recorded.cloned();
                info!(feed = %feed.name, stage = "fetch", "304 not modified: nothing read or written");
                let sha256 = publish.published_sha.unwrap_or_default().to_string();
                return Ok(Attempt::published(std::mem::take(found), Recorded::Unchanged, sha256));
            }
            DirectReply::Document {
                body,
                charset,
                validators,
                final_url,
            } => (body, charset, validators, final_url),
        };
        let not_a_feed = |source: FeedError| FetchError::NotAFeed {
            url: final_url.clone(),
            source,
        };
        // The same entity as last time (Miniflux's rule): unchanged, nothing to read.
        let same_entity =
            validators.etag.is_some() && recorded.and_then(|v| v.etag.as_ref()) == validators.etag.as_ref();
        found.route = Some(Route::Direct);
        found.final_url = Some(final_url.clone()).filter(|url| *url != redact_url(&feed.url));
        found.validators = Some(validators);
        if same_entity
            && !publish.options.publish_unchanged
            && let Some(sha256) = publish.published_sha
        {
            info!(feed = %feed.name, stage = "fetch", "same ETag as the published feed: nothing written");
            return Ok(Attempt::published(
                std::mem::take(found),
                Recorded::Unchanged,
                sha256.to_string(),
            ));
        }
        let text = feed::decode_with_charset(&body, charset.as_deref()).map_err(not_a_feed)?;
        let candidate = self
            .check_and_format(feed, &text, None)
            .map_err(|(_, error)| match error {
                RefreshError::Feed(source) => not_a_feed(source),
                other => unreachable!("the guard and the formatter fail with feed errors, not {other}"),
            })?;
        drop(text);
        drop(body);
        Ok(self.publish(publish, candidate, std::mem::take(found)).await)
    }

    /// Through the solver: today's path, with the feed's own maxTimeout and proxy.
    async fn through_solver(&self, publish: &Publish<'_>, found: Found) -> Attempt {
        let feed = publish.feed;
        let solving = Instant::now();
        let request = SolveRequest {
            feed: &feed.name,
            url: &feed.url,
            deadline: Some(publish.deadline),
            max_timeout: feed.request.max_timeout,
            proxy: feed.request.proxy.as_ref(),
        };
        let solved = interruptible(publish.interrupt, self.solver.solve(&request)).await;
        let solver_ms = elapsed_ms(solving);
        info!(feed = %feed.name, stage = "solver", ms = solver_ms, ok = solved.is_ok(), "solver answered");
        let found = Found {
            solver_ms: Some(solver_ms),
            route: Some(Route::Solver),
            ..found
        };
        let solution = match solved {
            Ok(Ok(solution)) => solution,
            Ok(Err(e)) => return Attempt::failed(found, Stage::Solver, e),
            Err(by) => return Attempt::failed(found, Stage::Solver, RefreshError::Interrupted { by: by.into() }),
        };
        // An empty url (Chrome downloaded the page instead of showing it) is no redirect.
        let final_url = solution
            .url
            .as_deref()
            .filter(|url| !url.is_empty() && *url != feed.url)
            .map(redact_url);
        if let Some(url) = &final_url {
            info!(feed = %feed.name, final_url = %url.escape_debug(), "the feed's url redirected");
        }
        let found = Found {
            final_url,
            solver: solution.solver.clone(),
            ..found
        };
        let candidate = match self.prepare(feed, solution.response) {
            Ok(candidate) => candidate,
            Err((stage, error)) => return Attempt::failed(found, stage, error),
        };
        self.publish(publish, candidate, found).await
    }

    /// Writes a good feed, unless it is the one published: the one write of a refresh's feed.
    async fn publish(&self, publish: &Publish<'_>, candidate: Candidate, found: Found) -> Attempt {
        let feed = publish.feed;
        let checked = Checked {
            kind: candidate.info.kind.to_string(),
            items: candidate.info.items,
            bytes: candidate.xml.len(),
        };
        let found = Found {
            checked: Some(checked),
            ..found
        };
        let publishing = Instant::now();
        let same = |sha: Option<&str>| !publish.options.publish_unchanged && sha == Some(candidate.sha256.as_str());
        let mut unchanged = same(publish.published_sha);
        // When the record's fingerprint stood for the copy, a write needs the copy's version now;
        // and the copy may be this feed already (written by a refresh whose record was not).
        let headed;
        let mut published = publish.published;
        if !unchanged && !publish.headed {
            headed = match self.by(publish.deadline, &feed.key, self.store.head(&feed.key)).await {
                Ok(headed) => headed,
                Err(e) => return Attempt::failed(found, Stage::Store, e),
            };
            unchanged = same(headed.as_ref().and_then(|info| info.sha256.as_deref()));
            published = headed.as_ref();
        }
        if unchanged {
            info!(feed = %feed.name, stage = "store", sha256 = %candidate.sha256, "unchanged: nothing written");
            return Attempt::published(found, Recorded::Unchanged, candidate.sha256);
        }
        let put_options = PutOptions {
            content_type: candidate.info.kind.content_type(),
            cache_control: &self.config.store.cache_control,
            sha256: Some(&candidate.sha256),
            condition: Condition::unchanged_since(published.map(|info| &info.version)),
        };
        let put = self.store.put(&feed.key, candidate.xml.into_bytes(), put_options);
        if let Err(e) = self.by(publish.deadline, &feed.key, put).await {
            return Attempt::failed(found, Stage::Store, e);
        }
        info!(
            feed = %feed.name, stage = "store", ms = elapsed_ms(publishing),
            target = %self.store.locate(&feed.key), "published"
        );
        Attempt::published(found, Recorded::Updated, candidate.sha256)
    }

    /// Extract, guard, format and fingerprint: everything between the solver and the store.
    fn prepare(&self, feed: &FeedConfig, response: Option<Body>) -> Result<Candidate, (Stage, RefreshError)> {
        let extract = |e: FeedError| (Stage::Extract, e.into());
        let text = match response {
            Some(Body::Text(text)) => text,
            Some(Body::Json(_)) => return Err(extract(FeedError::Json)),
            None => return Err(extract(FeedError::Empty)),
        };
        let extracted = feed::extract(&text).map_err(extract)?;
        let wrapper = extracted.wrapper;
        // The feed replaces the page, so memory holds one of the two, never both: an unwrapped
        // copy takes the page's place, and a slice of the page is cut down in place.
        let kept = match extracted.text {
            std::borrow::Cow::Owned(unwrapped) => Err(unwrapped),
            std::borrow::Cow::Borrowed(feed) => Ok((feed.as_ptr() as usize - text.as_ptr() as usize, feed.len())),
        };
        let text = match kept {
            Err(unwrapped) => {
                drop(text);
                unwrapped
            }
            Ok((start, len)) => {
                let mut text = text;
                text.truncate(start + len);
                text.drain(..start);
                text
            }
        };
        self.check_and_format(feed, &text, Some(wrapper))
    }

    /// Guard, format and fingerprint a feed document, from the solver's page or the site itself.
    fn check_and_format(
        &self,
        feed: &FeedConfig,
        text: &str,
        wrapper: Option<feed::Wrapper>,
    ) -> Result<Candidate, (Stage, RefreshError)> {
        let started = Instant::now();
        // The solver or the direct request already refused a reply over the cap, and the feed
        // is part of the reply: the guard's own size check could never trip here. The
        // formatter's cap still bounds what the pretty form may grow to.
        let guard = GuardOptions {
            min_items: feed.min_items,
            max_bytes: usize::MAX,
        };
        let guarded = |e: FeedError| (Stage::Guard, e.into());
        // One walk: the guard's verdict and the formatted feed together.
        let (info, formatted) =
            feed::check_and_format(text, guard, self.config.solver.max_reply_bytes).map_err(guarded)?;
        let sha256 = formatted.fingerprint();
        info!(
            feed = %feed.name, stage = "format", ms = elapsed_ms(started),
            wrapper = ?wrapper, kind = %info.kind, items = info.items, bytes = formatted.len(),
            as_written = formatted.as_written(), "feed checked and formatted"
        );
        Ok(Candidate {
            info,
            xml: formatted.into_xml(),
            sha256,
        })
    }

    /// Runs a store operation, giving up at `deadline`: the SDK's own timeouts (20 s an attempt,
    /// 45 s in all) know nothing of the Lambda's, and a function killed between the feed's PUT
    /// and the status PUT records nothing.
    async fn by<T, E: From<StoreError>>(
        &self,
        deadline: Instant,
        key: &str,
        operation: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        tokio::time::timeout_at(deadline, operation).await.unwrap_or_else(|_| {
            Err(StoreError::Timeout {
                target: self.store.locate(key),
            }
            .into())
        })
    }
}

/// The one log line of a refresh's outcome, under its own target (`flarefeed::outcome`): the
/// CLI prints each outcome itself and turns it off, the Lambda keeps it.
fn log_outcome(report: &Report) {
    const TARGET: &str = "flarefeed::outcome";
    let (feed, total_ms, outcome) = (&report.feed, report.total_ms, &report.outcome);
    if outcome.is_failure() {
        warn!(target: TARGET, feed = %feed, outcome = outcome.name(), total_ms, "{outcome}; the published feed is unchanged");
    } else {
        info!(target: TARGET, feed = %feed, outcome = outcome.name(), total_ms, "refresh done: {outcome}");
    }
}

/// A Lambda function's longest timeout
/// (https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html).
const LAMBDA_LONGEST: Duration = Duration::from_secs(900);

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    //! `refresh` on the in-memory adapters: each path through the flow, in milliseconds. The
    //! real servers' tests are in `tests/it/`.

    use super::*;
    use crate::deployment::{Adapters, Deployment};
    use crate::fetch::ScriptedFetcher;
    use crate::solver::ScriptedSolver;
    use crate::store::MemoryStore;

    const URL: &str = "https://site.test/feed.xml";

    fn rss(title: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>t</title><lastBuildDate>{title}</lastBuildDate>\
             <item><title>{title}</title><guid>1</guid></item></channel></rss>"
        )
    }

    struct Unit {
        solver: Arc<ScriptedSolver>,
        fetcher: Arc<ScriptedFetcher>,
        store: Arc<MemoryStore>,
        refresher: Refresher,
        feed: FeedConfig,
    }

    /// A feed fetched through the solver only, as before direct fetching.
    fn unit() -> Unit {
        unit_with(FetchMode::Solver)
    }

    fn unit_with(fetch: FetchMode) -> Unit {
        unit_observed(fetch, None)
    }

    /// [`unit_with`], with `observer` wired in as the Lambda wires its metrics.
    fn unit_observed(fetch: FetchMode, observer: Option<Arc<dyn Observer>>) -> Unit {
        let solver = Arc::new(ScriptedSolver::default());
        let fetcher = Arc::new(ScriptedFetcher::default());
        let store = Arc::new(MemoryStore::default());
        let feed = FeedConfig {
            fetch,
            ..FeedConfig::new("news", URL)
        };
        let config = Config {
            feeds: vec![feed.clone()],
            ..Config::default()
        };
        let adapters = Adapters {
            solver: solver.clone(),
            fetcher: fetcher.clone(),
            store: store.clone(),
            queue: None,
        };
        let refresher = Deployment::assemble(Arc::new(config), adapters, observer).refresher;
        Unit {
            solver,
            fetcher,
            store,
            refresher,
            feed,
        }
    }

    impl Unit {
        async fn refresh(&self, options: RefreshOptions) -> Report {
            self.refresher.refresh(&self.feed, options).await
        }

        async fn record(&self) -> StatusRecord {
            let stored = self.store.get("status/news.json").await.unwrap().unwrap();
            serde_json::from_slice(&stored.body).unwrap()
        }

        async fn published(&self) -> String {
            String::from_utf8(self.store.get("news.xml").await.unwrap().unwrap().body).unwrap()
        }
    }

    #[tokio::test]
    async fn a_change_is_published_and_the_same_feed_is_not_written_again() {
        let u = unit();
        u.solver.page(URL, &rss("one"));
        let report = u.refresh(RefreshOptions::scheduled(None)).await;
        assert_eq!(report.outcome, Outcome::Updated);
        assert_eq!((report.items, report.location.as_str()), (Some(1), "memory:news.xml"));
        assert!(u.published().await.contains("<title>one</title>"));
        let record = u.record().await;
        assert_eq!((record.outcome, record.in_flight.clone()), (Recorded::Updated, None));
        assert_eq!(record.last_success, record.last_attempt);

        // Only the date differs: the fingerprint ignores it, nothing is written.
        u.solver
            .page(URL, &rss("one").replace("<lastBuildDate>one", "<lastBuildDate>two"));
        assert_eq!(
            u.refresh(RefreshOptions::scheduled(None)).await.outcome,
            Outcome::Unchanged
        );
        assert_eq!(u.store.puts("news.xml"), 1);
        // Unless asked to.
        u.solver.page(URL, &rss("one"));
        assert_eq!(u.refresh(RefreshOptions::cli(true)).await.outcome, Outcome::Updated);
        assert_eq!(u.store.puts("news.xml"), 2);
        // Two status writes a refresh: the claim and the outcome.
        assert_eq!(u.store.puts("status/news.json"), 6);
    }

    #[tokio::test]
    async fn a_failure_keeps_the_feed_and_the_record_describing_it() {
        let u = unit();
        u.solver.page(URL, &rss("one"));
        u.refresh(RefreshOptions::scheduled(None)).await;
        let good = u.record().await;
        u.solver.error(SolverError::Blocked {
            message: "Cloudflare has blocked this request".into(),
        });
        let report = u.refresh(RefreshOptions::scheduled(None)).await;
        match &report.outcome {
            Outcome::Failed {
                stage: Stage::Solver,
                error: RefreshError::Solver(SolverError::Blocked { .. }),
            } => {}
            other => panic!("{other:?}"),
        }
        assert!(u.published().await.contains("<title>one</title>"));
        let record = u.record().await;
        assert_eq!((record.outcome, record.consecutive_failures), (Recorded::Failed, 1));
        assert_eq!((&record.sha256, record.items), (&good.sha256, good.items));
        assert!(record.last_error.unwrap().starts_with("solver: Cloudflare blocked"));

        u.solver.page(URL, "<html><title>Just a moment...</title></html>");
        let Outcome::Failed { stage, error } = u.refresh(RefreshOptions::scheduled(None)).await.outcome else {
            panic!("a challenge page was published");
        };
        assert_eq!(stage, Stage::Guard, "{error}");
        assert_eq!(u.record().await.consecutive_failures, 2);
        assert_eq!(u.store.puts("news.xml"), 1);
    }

    /// The status-write-only fault: the feed is published, its record cannot be written.
    #[tokio::test]
    async fn a_published_feed_whose_record_cannot_be_written_is_a_failure_at_status() {
        let u = unit();
        u.store.fail_puts_after("status/news.json", 1);
        u.solver.page(URL, &rss("one"));
        let report = u.refresh(RefreshOptions::scheduled(None)).await;
        match &report.outcome {
            Outcome::Failed {
                stage: Stage::Status,
                error:
                    RefreshError::StatusNotWritten {
                        handled: Recorded::Updated,
                        source: StoreError::Denied { .. },
                    },
            } => {}
            other => panic!("{other:?}"),
        }
        assert!(report.outcome.name() == "failed");
        assert!(
            u.published().await.contains("<title>one</title>"),
            "the feed itself was published"
        );
        // The record still holds the claim, which expires on its own.
        assert!(u.record().await.in_flight.is_some());
    }

    #[tokio::test]
    async fn min_interval_holds_only_when_the_options_respect_it() {
        let u = unit();
        u.solver.page(URL, &rss("one"));
        u.refresh(RefreshOptions::http(None, false)).await;
        match u.refresh(RefreshOptions::http(None, false)).await.outcome {
            Outcome::Skipped { retry_after_s } => assert!((1..=60).contains(&retry_after_s)),
            other => panic!("{other:?}"),
        }
        for options in [
            RefreshOptions::http(None, true),
            RefreshOptions::scheduled(None),
            RefreshOptions::cli(false),
        ] {
            u.solver.page(URL, &rss("one"));
            assert_eq!(u.refresh(options).await.outcome, Outcome::Unchanged, "{options:?}");
        }
    }

    /// Issue 21: a queued refresh writes no claim (the FIFO group is the one writer), and an
    /// unchanged one within the record's lag (an hour at the default 15 minutes) no record
    /// either; past the lag, on a failure, and when asked for by hand, the record is written.
    #[tokio::test]
    async fn an_unchanged_queued_refresh_writes_nothing_within_the_records_lag() {
        let u = unit();
        let status = "status/news.json";
        u.solver.page(URL, &rss("one"));
        assert_eq!(u.refresh(RefreshOptions::queued(None)).await.outcome, Outcome::Updated);
        assert_eq!(u.store.puts(status), 1, "the outcome, and no claim");
        let first = u.record().await;
        for _ in 0..3 {
            u.solver.page(URL, &rss("one"));
            assert_eq!(
                u.refresh(RefreshOptions::queued(None)).await.outcome,
                Outcome::Unchanged
            );
        }
        assert_eq!((u.store.puts(status), u.store.puts("news.xml")), (1, 1));
        assert_eq!(
            u.record().await.last_attempt,
            first.last_attempt,
            "checked at least then"
        );

        // Asked for by hand (past min_interval_s): the record shows it.
        u.store.set_clock_offset(time::Duration::minutes(2));
        u.solver.page(URL, &rss("one"));
        let asked = u.refresh(RefreshOptions::asked(None, false)).await;
        assert_eq!((asked.outcome, u.store.puts(status)), (Outcome::Unchanged, 2));
        let asked_at = u.record().await.last_attempt;
        assert!(asked_at > first.last_attempt);

        // An hour on (the store's clock): written once, then quiet again.
        u.store.set_clock_offset(time::Duration::minutes(63));
        for _ in 0..2 {
            u.solver.page(URL, &rss("one"));
            assert_eq!(
                u.refresh(RefreshOptions::queued(None)).await.outcome,
                Outcome::Unchanged
            );
        }
        assert_eq!(u.store.puts(status), 3);
        let hour_on = u.record().await;
        assert_eq!(hour_on.outcome, Recorded::Unchanged);
        assert!(hour_on.last_attempt > asked_at);

        // A failure is always recorded, and so is the first success after it.
        u.solver.error(SolverError::Blocked {
            message: "Cloudflare has blocked this request".into(),
        });
        assert!(u.refresh(RefreshOptions::queued(None)).await.outcome.is_failure());
        assert_eq!(u.store.puts(status), 4);
        u.store.set_clock_offset(time::Duration::minutes(65));
        u.solver.page(URL, &rss("one"));
        assert_eq!(
            u.refresh(RefreshOptions::asked(None, false)).await.outcome,
            Outcome::Unchanged
        );
        let recovered = u.record().await;
        assert_eq!((recovered.consecutive_failures, recovered.last_error), (0, None));
        assert_eq!(u.store.puts("news.xml"), 1, "the feed was never written again");
    }

    /// A queued refresh of a failing feed waits out its backoff: no solver request, no write.
    #[tokio::test]
    async fn a_queued_refresh_of_a_failing_feed_backs_off() {
        let u = unit();
        u.solver.error(SolverError::Blocked {
            message: "Cloudflare has blocked this request".into(),
        });
        assert!(u.refresh(RefreshOptions::queued(None)).await.outcome.is_failure());
        let writes = u.store.puts("status/news.json");
        match u.refresh(RefreshOptions::queued(None)).await.outcome {
            // One failure at the default 15 minutes: 30 minutes from the last attempt.
            Outcome::Backoff {
                retry_after_s,
                failures,
            } => {
                assert_eq!(failures, 1);
                assert!((1790..=1800).contains(&retry_after_s), "{retry_after_s}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(u.store.puts("status/news.json"), writes, "a backoff writes nothing");
        // Manual refreshes are not held back (and no answer was scripted for the skip above).
        u.solver.page(URL, &rss("one"));
        assert_eq!(
            u.refresh(RefreshOptions::http(None, true)).await.outcome,
            Outcome::Updated
        );
    }

    #[tokio::test]
    async fn a_spent_deadline_touches_nothing() {
        let u = unit();
        let options = RefreshOptions::scheduled(Some(Instant::now()));
        let report = u.refresh(options).await;
        assert!(matches!(
            report.outcome,
            Outcome::Failed {
                stage: Stage::Solver,
                error: RefreshError::Solver(SolverError::NoTimeLeft { .. })
            }
        ));
        assert_eq!(u.store.puts("status/news.json"), 0);
    }

    /// Another writer replaced the feed while this refresh waited on the solver (its claim had
    /// expired): nothing of this refresh is written.
    #[tokio::test]
    async fn an_overtaken_refresh_writes_neither_the_feed_nor_the_record() {
        let u = unit();
        u.solver.page(URL, &rss("one"));
        u.refresh(RefreshOptions::scheduled(None)).await;
        let store = u.store.clone();
        u.solver.meanwhile(move || {
            store.overwrite("news.xml", rss("newer").as_bytes());
            store.overwrite("status/news.json", b"{}");
        });
        u.solver.page(URL, &rss("older"));
        let report = u.refresh(RefreshOptions::scheduled(None)).await;
        assert!(
            matches!(
                report.outcome,
                Outcome::Failed {
                    stage: Stage::Store,
                    error: RefreshError::Store(StoreError::Conflict { .. })
                }
            ),
            "{report:?}"
        );
        assert!(u.published().await.contains("<title>newer</title>"));
        assert_eq!(u.store.get("status/news.json").await.unwrap().unwrap().body, b"{}");
    }

    #[tokio::test]
    async fn a_live_claim_turns_a_refresh_away_before_the_solver() {
        let u = unit();
        let mut record = StatusRecord::never(&u.feed);
        let started = OffsetDateTime::now_utc() - time::Duration::minutes(1);
        record.in_flight = Some(InFlight::new(
            Trigger::Schedule,
            started,
            OffsetDateTime::now_utc() + time::Duration::minutes(5),
        ));
        status::write(u.store.as_ref(), &u.feed, &record, Condition::Any)
            .await
            .unwrap();
        match u.refresh(RefreshOptions::http(None, true)).await.outcome {
            Outcome::Busy {
                retry_after_s,
                started: said,
                ..
            } => {
                assert!((290..=300).contains(&retry_after_s), "{retry_after_s}");
                assert_eq!(said, started);
            }
            other => panic!("{other:?}"),
        }
        // No answer was scripted: the solver was never asked.
        assert_eq!(u.store.puts("status/news.json"), 1);
    }

    /// Finding 2, the other way round: this host runs 10 minutes ahead of the store (and of the
    /// host holding the claim). Judged on its own clock the claim has ended; judged on the
    /// store's, it has 5 minutes left, and the solver is not asked a second time.
    #[tokio::test]
    async fn a_host_ahead_of_the_store_does_not_take_a_live_claim() {
        let u = unit();
        u.store.set_clock_offset(-time::Duration::minutes(10));
        let store_now = OffsetDateTime::now_utc() - time::Duration::minutes(10);
        let mut record = StatusRecord::never(&u.feed);
        let mut claim = InFlight::new(
            Trigger::Schedule,
            store_now - time::Duration::minutes(1),
            store_now + time::Duration::minutes(5),
        );
        claim.holder = None;
        record.in_flight = Some(claim);
        status::write(u.store.as_ref(), &u.feed, &record, Condition::Any)
            .await
            .unwrap();
        let report = u.refresh(RefreshOptions::cli(false)).await;
        assert!(
            matches!(
                report.outcome,
                Outcome::Busy {
                    retry_after_s: 299..=300,
                    ..
                }
            ),
            "{:?}",
            report.outcome
        );
        assert_eq!(u.solver.requests(), 0);
        // A claim this host writes is on the store's clock too.
        u.store.delete("status/news.json");
        u.solver.page(URL, &rss("a"));
        assert_eq!(u.refresh(RefreshOptions::cli(false)).await.outcome, Outcome::Updated);
        let attempted = u.record().await.last_attempt.unwrap();
        assert!(
            (attempted - store_now).whole_seconds().abs() < 5,
            "{attempted} vs {store_now}"
        );
    }

    /// Finding 8: the record deleted while a refresh is in flight. A second refresh finds the
    /// feed published without a record, and stands back behind a guard instead of asking the
    /// solver; the first writes its outcome over the guard.
    #[tokio::test]
    async fn a_record_deleted_mid_refresh_lets_no_second_refresh_in() {
        let u = Arc::new(unit());
        u.solver.page(URL, &rss("first"));
        assert_eq!(u.refresh(RefreshOptions::cli(false)).await.outcome, Outcome::Updated);
        u.solver.delay(Duration::from_millis(300));
        u.solver.page(URL, &rss("second"));
        let first = {
            let u = u.clone();
            tokio::spawn(async move { u.refresh(RefreshOptions::queued(None)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        u.store.delete("status/news.json");
        let second = u.refresh(RefreshOptions::http(None, true)).await;
        assert!(
            matches!(&second.outcome, Outcome::Busy { holder, .. } if holder.contains("deleted")),
            "{:?}",
            second.outcome
        );
        let first = first.await.unwrap();
        assert_eq!(
            first.outcome,
            Outcome::Updated,
            "the first writes its record over the guard"
        );
        assert_eq!(u.solver.requests(), 2, "the first refresh's two requests, and no other");
        let record = u.record().await;
        assert!(record.in_flight.is_none() && record.sha256.is_some(), "{record:?}");
        assert!(u.published().await.contains("second"));
    }

    /// Finding 1: an interrupted refresh puts the record back as it was before its claim, noting
    /// the interruption, and leaves the published feed alone.
    #[tokio::test]
    async fn an_interrupted_refresh_puts_its_record_back() {
        let u = unit();
        u.solver.page(URL, &rss("first"));
        assert_eq!(u.refresh(RefreshOptions::cli(false)).await.outcome, Outcome::Updated);
        let before = u.record().await;
        u.solver.delay(Duration::from_secs(30));
        u.solver.page(URL, &rss("never"));
        let (interrupter, interrupt) = Interrupt::channel();
        let started = Instant::now();
        let refresh = u
            .refresher
            .refresh_interruptible(&u.feed, RefreshOptions::cli(false), &interrupt);
        let stop = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            interrupter.interrupt("SIGINT");
        };
        let (report, ()) = tokio::join!(refresh, stop);
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        assert!(
            matches!(&report.outcome, Outcome::Failed { error: RefreshError::Interrupted { by }, .. } if by == "SIGINT"),
            "{:?}",
            report.outcome
        );
        let after = u.record().await;
        assert!(after.in_flight.is_none());
        assert_eq!(after.interrupted.as_ref().map(|i| i.by.as_str()), Some("SIGINT"));
        assert_eq!(
            (
                after.last_attempt,
                after.sha256.clone(),
                after.consecutive_failures,
                after.outcome
            ),
            (before.last_attempt, before.sha256.clone(), 0, Recorded::Updated)
        );
        assert!(u.published().await.contains("first"));
        // The next refresh runs at once, and clears the note.
        u.solver.delay(Duration::ZERO);
        assert_eq!(u.refresh(RefreshOptions::cli(false)).await.outcome, Outcome::Updated);
        assert!(u.record().await.interrupted.is_none());
        assert!(
            u.published().await.contains("never"),
            "the page the interrupted one never got"
        );
    }

    /// Issue 18: a solver's 429 names the wait, and the feed backs off at least that long.
    #[tokio::test]
    async fn a_rate_limited_feed_waits_at_least_retry_after() {
        let u = unit();
        u.solver.error(SolverError::RateLimited {
            url: "http://solver.test/v1".into(),
            retry_after_s: Some(7200),
        });
        let report = u.refresh(RefreshOptions::queued(None)).await;
        assert!(
            report.outcome.to_string().contains("retry after 7200 s"),
            "{}",
            report.outcome
        );
        let record = u.record().await;
        let wait = record.not_before.unwrap() - record.last_attempt.unwrap();
        assert_eq!(wait.whole_seconds(), 7200);
        match u.refresh(RefreshOptions::queued(None)).await.outcome {
            Outcome::Backoff { retry_after_s, .. } => assert!(retry_after_s > 7000, "{retry_after_s}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(u.solver.requests(), 1);
    }

    /// Finding 3: a refresh that stands back (busy, backoff) still tells the observer, with the
    /// record as read, so the metrics' StaleSeconds keeps counting for a stuck feed.
    #[tokio::test]
    async fn busy_and_backoff_reach_the_observer_with_the_record() {
        #[derive(Default)]
        struct Heard(std::sync::Mutex<Vec<(String, Option<OffsetDateTime>)>>);
        impl Observer for Heard {
            fn finished(&self, report: &Report, record: Option<&StatusRecord>) {
                let since = record.and_then(|r| r.first_attempt);
                self.0.lock().unwrap().push((report.outcome.name().into(), since));
            }
        }
        let heard = Arc::new(Heard::default());
        let u = unit_observed(FetchMode::Solver, Some(heard.clone()));
        u.solver.error(SolverError::Blocked {
            message: "blocked".into(),
        });
        u.refresh(RefreshOptions::queued(None)).await;
        u.refresh(RefreshOptions::queued(None)).await;
        let heard = heard.0.lock().unwrap().clone();
        assert_eq!(heard.len(), 2);
        assert_eq!(heard[0].0, "failed");
        assert_eq!(heard[1].0, "backoff");
        assert!(
            heard[0].1.is_some() && heard[0].1 == heard[1].1,
            "stale since the first attempt: {heard:?}"
        );
    }

    fn not_modified() -> Result<DirectReply, FetchError> {
        Ok(DirectReply::NotModified { final_url: URL.into() })
    }

    /// A plain feed: fetched directly, the solver never asked; its validators come back on the
    /// next refresh, whose 304 writes no feed; a forced refresh sends none.
    #[tokio::test]
    async fn a_plain_feed_is_fetched_directly_and_conditionally() {
        let u = unit_with(FetchMode::Auto);
        u.fetcher
            .then(URL, ScriptedFetcher::document(URL, &rss("one"), Some("\"v1\"")));
        let report = u.refresh(RefreshOptions::scheduled(None)).await;
        assert_eq!(
            (report.outcome.clone(), report.route),
            (Outcome::Updated, Some(Route::Direct))
        );
        let record = u.record().await;
        assert_eq!(record.fetched_by, Some(Route::Direct));
        assert_eq!(
            record.validators_for(URL).and_then(|v| v.etag.clone()).as_deref(),
            Some("\"v1\"")
        );
        assert_eq!(u.solver.requests(), 0, "the solver was asked for a plain feed");

        u.fetcher.then(URL, not_modified());
        let report = u.refresh(RefreshOptions::scheduled(None)).await;
        assert_eq!(report.outcome, Outcome::Unchanged);
        assert_eq!(
            u.fetcher.last_validators(URL).and_then(|v| v.etag).as_deref(),
            Some("\"v1\"")
        );
        assert_eq!(u.store.puts("news.xml"), 1, "a 304 writes no feed");
        let record = u.record().await;
        assert_eq!((record.outcome, record.sha256.is_some()), (Recorded::Unchanged, true));

        // The same ETag on a 200 is unchanged too.
        u.fetcher
            .then(URL, ScriptedFetcher::document(URL, &rss("two"), Some("\"v1\"")));
        assert_eq!(
            u.refresh(RefreshOptions::scheduled(None)).await.outcome,
            Outcome::Unchanged
        );
        // Forced: no validators, the feed read whole.
        u.fetcher
            .then(URL, ScriptedFetcher::document(URL, &rss("two"), Some("\"v2\"")));
        assert_eq!(u.refresh(RefreshOptions::cli(true)).await.outcome, Outcome::Updated);
        assert_eq!(u.fetcher.last_validators(URL), None);
        assert_eq!(u.solver.requests(), 0);
    }

    /// A challenged feed: the solver once per refresh, and no direct request until the reprobe
    /// time; then direct again.
    #[tokio::test]
    async fn a_challenged_feed_goes_to_the_solver_until_the_reprobe_time() {
        let u = unit_with(FetchMode::Auto);
        let challenge = crate::fetch::classify_status(URL, 403, Some("cloudflare"), Some("challenge"), None, "");
        u.fetcher.always(URL, Err(challenge));
        u.solver.always(URL, &rss("one"));
        let report = u.refresh(RefreshOptions::scheduled(None)).await;
        assert_eq!(
            (report.outcome.clone(), report.route),
            (Outcome::Updated, Some(Route::Solver))
        );
        let record = u.record().await;
        assert_eq!(record.direct, Some(DirectClass::Challenge));
        let until = record.solver_until.expect("the solver is remembered");
        let day = until - record.last_attempt.unwrap();
        assert!(
            (day - time::Duration::hours(24)).abs() < time::Duration::seconds(2),
            "{day}"
        );
        assert_eq!((u.fetcher.requests(URL), u.solver.requests()), (1, 1));

        for _ in 0..3 {
            assert_eq!(
                u.refresh(RefreshOptions::scheduled(None)).await.outcome,
                Outcome::Unchanged
            );
        }
        assert_eq!(
            (u.fetcher.requests(URL), u.solver.requests()),
            (1, 4),
            "direct again before the reprobe time"
        );

        // The reprobe time passes: direct is tried again, and works now.
        let mut record = u.record().await;
        record.solver_until = Some(OffsetDateTime::now_utc() - time::Duration::seconds(1));
        status::write(u.store.as_ref(), &u.feed, &record, Condition::Any)
            .await
            .unwrap();
        u.fetcher.then(URL, ScriptedFetcher::document(URL, &rss("one"), None));
        let report = u.refresh(RefreshOptions::scheduled(None)).await;
        assert_eq!(report.route, Some(Route::Direct));
        let record = u.record().await;
        assert_eq!((record.direct, record.solver_until), (None, None));
        assert_eq!(u.solver.requests(), 4);
    }

    /// The solver failing too proves nothing about direct: the next refresh tries direct again.
    #[tokio::test]
    async fn a_failing_solver_does_not_send_the_feed_straight_to_it() {
        let u = unit_with(FetchMode::Auto);
        let challenge = crate::fetch::classify_status(URL, 403, Some("cloudflare"), Some("challenge"), None, "");
        u.fetcher.always(URL, Err(challenge));
        u.solver.error(SolverError::Blocked {
            message: "Cloudflare has blocked this request".into(),
        });
        assert!(u.refresh(RefreshOptions::scheduled(None)).await.outcome.is_failure());
        let record = u.record().await;
        assert_eq!(
            (record.direct, record.solver_until),
            (Some(DirectClass::Challenge), None)
        );
        u.solver.page(URL, &rss("one"));
        u.refresh(RefreshOptions::scheduled(None)).await;
        assert_eq!(u.fetcher.requests(URL), 2, "direct was not tried again");
    }

    /// `fetch = "direct"` gets a direct request however little time is left (it fails as a
    /// timeout, never by asking the solver); `auto` keeps the solver's room or skips direct.
    #[test]
    fn direct_time_leaves_the_solver_room_only_in_auto() {
        let u = unit_with(FetchMode::Auto);
        let soon = Instant::now() + Duration::from_millis(500);
        assert_eq!(u.refresher.direct_timeout(FetchMode::Auto, soon), None);
        let direct = u.refresher.direct_timeout(FetchMode::Direct, soon).unwrap();
        assert!(direct <= Duration::from_millis(500), "{direct:?}");
        let later = Instant::now() + Duration::from_secs(40);
        let auto = u.refresher.direct_timeout(FetchMode::Auto, later).unwrap();
        assert!(auto <= Duration::from_secs(5) && auto >= MIN_REQUEST_TIME, "{auto:?}");
        let ample = Instant::now() + Duration::from_secs(600);
        assert_eq!(
            u.refresher.direct_timeout(FetchMode::Auto, ample),
            Some(Duration::from_secs(20))
        );
    }

    /// `fetch = "direct"` never asks the solver; `fetch = "solver"` never fetches directly.
    #[tokio::test]
    async fn a_fixed_route_is_the_only_one_taken() {
        let u = unit_with(FetchMode::Direct);
        u.fetcher.then(
            URL,
            ScriptedFetcher::document(URL, "<html><title>Just a moment...</title></html>", None),
        );
        match u.refresh(RefreshOptions::scheduled(None)).await.outcome {
            Outcome::Failed {
                stage: Stage::Fetch,
                error: RefreshError::Fetch(FetchError::NotAFeed { .. }),
            } => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(u.solver.requests(), 0);
        let record = u.record().await;
        assert_eq!((record.fetched_by, record.validators), (Some(Route::Direct), None));

        let u = unit_with(FetchMode::Solver);
        u.solver.page(URL, &rss("one"));
        assert_eq!(
            u.refresh(RefreshOptions::scheduled(None)).await.outcome,
            Outcome::Updated
        );
        assert_eq!(u.fetcher.requests(URL), 0);
    }
}
