//! One refresh of one feed: lease, attempt, record.
//!
//! The CLI and the Lambda both call [`Refresher::refresh`]. Whatever fails, the published feed
//! is left exactly as it was: only a newer good feed is ever written over a good one.
//!
//! `Refresher::run` reads as the refresh goes:
//! 1. acquire the feed's `Lease` (the gate, the claim;
//!    [`crate::status::lease`] has the protocol), or stand back;
//! 2. attempt: by the `route` planned from the record, `direct`ly with the record's
//!    validators, or `via_solver`, and `publish` a good feed that changed;
//! 3. release the lease with the record finished by the attempt's transition
//!    ([`crate::status::record`]);
//! 4. update the status site, and report.
//!
//! The feed is written only if it is still the version seen when the attempt looked, and the
//! record only if it is still the claim: a refresh that outlived its claim and was overtaken
//! writes nothing. So the published feed is always the good content of the refresh that
//! claimed it last, and the status record describes the published feed.

mod articles;
mod attempt;
mod direct;
mod page;
mod preview;
mod publish;
mod readers;
mod route;
#[cfg(test)]
mod tests;
mod via_solver;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::config::{Config, FeedConfig};
use crate::fetch::Fetcher;
use crate::interrupt::Interrupt;
use crate::observer::Observer;
pub use crate::outcome::{Outcome, RefreshError, Report, Stage};
use crate::solver::{MIN_REQUEST_TIME, STARTUP_MARGIN, Solver, SolverError};
use crate::status::Findings;
use crate::status::{Backoff, Gate, Hold, Lease, Recording, Released, StatusRecord, Trigger};
pub use crate::status::{LEASE_SLACK, STATUS_WRITE_GRACE};
use crate::store::{Store, store_now};
use attempt::Attempt;
pub use preview::{Preview, PreviewFailure};
use publish::Job;
use route::{Plan, plan_route};

/// How to run one refresh: the policy is explicit, whoever asked for it.
#[derive(Debug, Clone, Copy)]
pub struct RefreshOptions {
    /// Everything, the solver included, must be done by then. Without one (CLI, emulators) a
    /// refresh gets [`Refresher::budget`], so that its claim can expire.
    pub deadline: Option<Instant>,
    /// For the logs and the status record.
    pub trigger: Trigger,
    /// What keeps a second refresh of the feed out: a claim in its record, or (a refresh SQS
    /// delivered) the feed's FIFO message group.
    pub hold: Hold,
    /// Skip the refresh if the last attempt was within the feed's `min_interval_s`.
    pub respect_min_interval: bool,
    /// Write the feed even when it is the one already published.
    pub publish_unchanged: bool,
    /// Leave a failing feed alone until its backoff has passed ([`StatusRecord::backing_off`]).
    pub respect_backoff: bool,
    /// Whether an unchanged refresh within its record's lag writes the record
    /// ([`crate::status::recent_enough`]): a refresh someone asked for shows its time.
    pub recording: Recording,
}

impl RefreshOptions {
    /// An EventBridge tick: runs, and publishes only a change.
    pub fn scheduled(deadline: Option<Instant>) -> Self {
        Self {
            deadline,
            trigger: Trigger::Schedule,
            hold: Hold::Claim,
            respect_min_interval: false,
            publish_unchanged: false,
            respect_backoff: false,
            recording: Recording::Always,
        }
    }

    /// A refresh the fleet's planner queued: a failing feed backs off.
    pub fn queued(deadline: Option<Instant>) -> Self {
        Self {
            deadline,
            trigger: Trigger::Queue,
            hold: Hold::MessageGroup,
            respect_min_interval: false,
            publish_unchanged: false,
            respect_backoff: true,
            recording: Recording::WhenItSaysMore,
        }
    }

    /// A refresh of `flarefeed run`'s engine: planned as the queue's, a failing feed backing
    /// off, but in one process with no SQS group to keep a `flarefeed refresh` of the same feed
    /// out, so it claims the feed as the CLI does.
    pub fn run() -> Self {
        Self {
            hold: Hold::Claim,
            ..Self::queued(None)
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
            hold: Hold::MessageGroup,
            respect_min_interval: !force,
            publish_unchanged: force,
            respect_backoff: false,
            recording: Recording::Always,
        }
    }

    /// `POST /refresh/<feed>`: `min_interval_s` holds unless `force` (`?force=1`).
    pub fn http(deadline: Option<Instant>, force: bool) -> Self {
        Self {
            deadline,
            trigger: Trigger::Http,
            hold: Hold::Claim,
            respect_min_interval: !force,
            publish_unchanged: false,
            respect_backoff: false,
            recording: Recording::Always,
        }
    }

    /// `flarefeed refresh`: runs whenever asked; `--force` publishes an unchanged feed too.
    pub fn cli(force: bool) -> Self {
        Self {
            deadline: None,
            trigger: Trigger::Cli,
            hold: Hold::Claim,
            respect_min_interval: false,
            publish_unchanged: force,
            respect_backoff: false,
            recording: Recording::Always,
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

    /// Acquire, attempt, release, site, report.
    async fn run(&self, feed: &FeedConfig, options: RefreshOptions, interrupt: Option<&Interrupt>) -> Report {
        let started = Instant::now();
        let deadline = options.deadline.unwrap_or_else(|| started + self.budget());
        let (outcome, attempt, record) = match self.acquire(feed, options, deadline).await {
            Err(refused) => (refused.outcome, None, refused.record),
            Ok(lease) => {
                let attempt = self.attempt(feed, options, deadline, &lease, interrupt).await;
                if let Some(by) = attempt.interrupted() {
                    let record = lease.put_back(by).await;
                    (attempt.outcome(Ok(Released::PutBack)), Some(attempt), Some(record))
                } else {
                    let longest_wait = self.config.fleet.max_backoff;
                    let record = attempt.record(feed, lease.claimed(), longest_wait, elapsed_ms(started));
                    let by = deadline + STATUS_WRITE_GRACE;
                    let released = lease.release(&record, options.recording, by).await.inspect_err(
                        |e| error!(feed = %feed.name, stage = "status", error = %e, "the status record could not be written"),
                    );
                    if let Ok(Released::Written(version)) = &released {
                        // A site left behind by an earlier refresh is written whatever this one
                        // found; one this refresh cannot write is noted for the next.
                        let before = lease.before().filter(|before| !before.site_behind);
                        if !self.update_site(feed, before, &record, by).await {
                            lease.note_site_behind(&record, version, by).await;
                        }
                    }
                    (attempt.outcome(released), Some(attempt), Some(record))
                }
            }
        };
        let location = self.store.locate(&feed.key);
        let report = attempt::report(feed, location, outcome, attempt.as_ref(), elapsed_ms(started));
        log_outcome(&report);
        if let Some(observer) = &self.observer {
            observer.finished(&report, record.as_ref());
        }
        report
    }

    /// The feed's lease, unless the deadline is already spent (a Lambda timeout shorter than
    /// the safety margin: a configuration error, said so rather than timed out on the first
    /// store call).
    async fn acquire<'a>(
        &'a self,
        feed: &'a FeedConfig,
        options: RefreshOptions,
        deadline: Instant,
    ) -> Result<Lease<'a>, crate::status::Refused> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < MIN_REQUEST_TIME {
            let error = SolverError::NoTimeLeft {
                left_ms: left.as_millis() as u64,
            };
            return Err(Outcome::failed(Stage::Solver, error).into());
        }
        let gate = options.gate(feed, &self.config, self.longest_lease());
        Lease::acquire(
            self.store.as_ref(),
            feed,
            (options.trigger, options.hold),
            gate,
            deadline,
        )
        .await
    }

    /// Fetch, prepare and publish, under a lease, by the planned route: directly first where
    /// the plan says so, and the solver when the direct reply is not a publishable feed
    /// (`auto`), or always (`solver`).
    async fn attempt(
        &self,
        feed: &FeedConfig,
        options: RefreshOptions,
        deadline: Instant,
        lease: &Lease<'_>,
        interrupt: Option<&Interrupt>,
    ) -> Attempt {
        let now = store_now(self.store.as_ref());
        let copy = match self.published_copy(feed, lease, now, deadline).await {
            Ok(copy) => copy,
            Err(e) => return Attempt::failed(Findings::default(), Stage::Store, e),
        };
        let job = Job {
            feed,
            options,
            deadline,
            copy,
            interrupt,
            solver_hint: lease.claimed().wall_solver.clone(),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let (timeout, reprobe_at) = match plan_route(feed, lease.claimed(), now, left, &self.config.fetch) {
            Plan::Solver => return self.via_solver(&job, Findings::default()).await,
            Plan::DirectOnly { timeout } => (timeout, None),
            Plan::DirectThenSolver { timeout, reprobe_at } => (timeout, Some(reprobe_at)),
        };
        let (mut found, error) = match self.direct(&job, lease.claimed(), timeout).await {
            Ok(attempt) => return attempt,
            Err(not_the_feed) => not_the_feed,
        };
        let Some(reprobe_at) = reprobe_at else {
            return Attempt::failed(found, Stage::Fetch, error);
        };
        info!(
            feed = %feed.name, class = ?error.class(), reason = %error,
            "not a feed directly; asking the solver"
        );
        found.direct = Some(error.class());
        found.solver_until = Some(reprobe_at);
        self.via_solver(&job, found).await
    }

    /// The status site, when the feed's summary changed ([`crate::site::update`]); `false` if
    /// it could not be written. That is logged, never the refresh's failure: the feed and its
    /// record stand.
    async fn update_site(
        &self,
        feed: &FeedConfig,
        before: Option<&StatusRecord>,
        after: &StatusRecord,
        by: Instant,
    ) -> bool {
        if !self.config.site.enabled {
            return true;
        }
        let now = store_now(self.store.as_ref());
        let update = crate::site::update(self.store.as_ref(), &self.config, feed, before, after, now);
        match tokio::time::timeout_at(by, update).await {
            Ok(Ok(written)) => {
                if written.puts > 0 {
                    info!(feed = %feed.name, stage = "site", gets = written.gets, puts = written.puts, "status site updated");
                }
                true
            }
            Ok(Err(e)) => {
                warn!(feed = %feed.name, stage = "site", error = %e, "the status site could not be updated");
                false
            }
            Err(_) => {
                warn!(feed = %feed.name, stage = "site", "the status site could not be updated in time");
                false
            }
        }
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
