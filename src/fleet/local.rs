//! The fleet on one machine, without AWS (`flarefeed run`): the same planner and worker as on
//! Lambda, in one long-lived process, with an in-process queue in place of SQS.
//!
//! The queue keeps SQS's guarantees that matter: a feed is never queued twice while it waits
//! or runs (the FIFO group and deduplication id), and a failing feed backs off as the worker's
//! do; each refresh claims its feed, as there is no SQS group to keep a `flarefeed refresh` of it
//! out ([`RefreshOptions::run`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tracing::info;

use super::plan::due_in;
use crate::config::Config;
use crate::config::FeedConfig;
use crate::outcome::Outcome;
use crate::refresh::{RefreshOptions, Refresher};
use crate::status::StatusRecord;

/// What the run has done so far; the CLI draws it on a terminal.
#[derive(Debug, Default)]
pub struct Progress {
    /// Feeds the planner queued.
    pub due: AtomicUsize,
    pub updated: AtomicUsize,
    pub unchanged: AtomicUsize,
    pub failed: AtomicUsize,
    /// Refreshes that stood back: busy, backing off, or too soon.
    pub skipped: AtomicUsize,
    /// The refreshes running now, and since when.
    pub in_flight: Mutex<BTreeMap<String, Instant>>,
    /// Feeds that back off, and until when.
    pub backing_off: Mutex<BTreeMap<String, OffsetDateTime>>,
}

impl Progress {
    /// `updated 3  unchanged 9  failed 1  skipped 0`.
    pub fn line(&self) -> String {
        let get = |n: &AtomicUsize| n.load(Ordering::Relaxed);
        format!(
            "updated {}  unchanged {}  failed {}  skipped {}",
            get(&self.updated),
            get(&self.unchanged),
            get(&self.failed),
            get(&self.skipped)
        )
    }

    /// The live view: the counters, the refreshes in flight with their time so far, the next
    /// feed due and when, and how many feeds back off.
    pub fn live(&self, next: Option<(&str, OffsetDateTime)>, now: OffsetDateTime) -> String {
        let mut line = self.line();
        let running = self.in_flight.lock().expect("not poisoned");
        if !running.is_empty() {
            let shown: Vec<String> = running
                .iter()
                .take(3)
                .map(|(feed, since)| format!("{feed} {} s", since.elapsed().as_secs()))
                .collect();
            let more = running.len().saturating_sub(3);
            line.push_str(&format!("  | running: {}", shown.join(", ")));
            if more > 0 {
                line.push_str(&format!(" +{more}"));
            }
        }
        drop(running);
        if let Some((feed, at)) = next {
            line.push_str(&format!("  | next: {feed} in {}", until(at, now)));
        }
        let backing_off = self.backing_off.lock().expect("not poisoned").len();
        if backing_off > 0 {
            line.push_str(&format!("  | backing off: {backing_off}"));
        }
        line
    }

    fn finished(&self, feed: &str, outcome: &Outcome, now: OffsetDateTime) {
        let counter = match outcome {
            Outcome::Updated => &self.updated,
            Outcome::Unchanged => &self.unchanged,
            Outcome::Failed { .. } => &self.failed,
            Outcome::Skipped { .. } | Outcome::Backoff { .. } | Outcome::Busy { .. } => &self.skipped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut backing_off = self.backing_off.lock().expect("not poisoned");
        match outcome {
            Outcome::Backoff { retry_after_s, .. } => {
                backing_off.insert(feed.to_string(), now + time::Duration::seconds(*retry_after_s as i64));
            }
            Outcome::Failed { .. } => {}
            _ => {
                backing_off.remove(feed);
            }
        }
    }
}

/// `4 min`, `2 h`, `12 s`.
fn until(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let seconds = (at - now).whole_seconds().max(0) as u64;
    match seconds {
        0..120 => format!("{seconds} s"),
        120..7200 => format!("{} min", seconds / 60),
        _ => format!("{} h", seconds / 3600),
    }
}

/// What a run does first: the feeds never refreshed, or overdue (no attempt within their
/// interval), at once; every other feed at its next slot.
#[derive(Debug, Default)]
pub struct Start {
    pub now: Vec<FeedConfig>,
    /// The others, soonest first.
    pub later: Vec<(String, OffsetDateTime)>,
}

/// [`Start`] from the records as read (`None` where a feed has none).
pub fn start(config: &Config, records: &[Option<StatusRecord>], now: OffsetDateTime) -> Start {
    let mut start = Start::default();
    for (feed, record) in config.feeds.iter().zip(records) {
        let interval = time::Duration::try_from(feed.interval).unwrap_or(time::Duration::MAX);
        let overdue = record
            .as_ref()
            .and_then(|r| r.last_attempt)
            .is_none_or(|at| at.saturating_add(interval) <= now);
        if overdue {
            start.now.push(feed.clone());
        } else {
            start.later.push((feed.name.clone(), next_slot(feed, now)));
        }
    }
    start.later.sort_by_key(|(_, at)| *at);
    start
}

/// The feed's first slot after `now`.
pub fn next_slot(feed: &FeedConfig, now: OffsetDateTime) -> OffsetDateTime {
    let at = now.unix_timestamp();
    let interval = i64::try_from(feed.interval.as_secs().max(1)).unwrap_or(i64::MAX);
    let latest = super::plan::due_slot(feed, at, feed.interval).unwrap_or(at);
    OffsetDateTime::from_unix_timestamp(latest.saturating_add(interval)).unwrap_or(now)
}

/// Runs the planner over `config` and `jobs` workers on `refresher`, after the feeds `first`
/// names, until `shutdown` completes (the CLI passes Ctrl-C and
/// SIGTERM), then lets the refreshes in flight finish. Feeds queued but not started when it
/// stops are left for the next run.
pub async fn serve(
    config: Arc<Config>,
    refresher: Refresher,
    jobs: usize,
    first: Option<Vec<FeedConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    progress: Arc<Progress>,
) {
    let (stopping, mut stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stopping.send(true);
    });
    let jobs = jobs.max(1);
    let (queue, waiting) = mpsc::unbounded_channel::<FeedConfig>();
    let waiting = Arc::new(tokio::sync::Mutex::new(waiting));
    // Feeds waiting or running: the in-process stand-in for the FIFO group.
    let pending: Arc<Mutex<HashSet<String>>> = Arc::default();

    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..jobs {
        let (refresher, waiting, pending, progress, stop) = (
            refresher.clone(),
            waiting.clone(),
            pending.clone(),
            progress.clone(),
            stop.clone(),
        );
        workers.spawn(async move {
            loop {
                let next = {
                    let mut waiting = waiting.lock().await;
                    let mut stop = stop.clone();
                    tokio::select! {
                        feed = waiting.recv() => feed,
                        _ = stop.wait_for(|stopped| *stopped) => None,
                    }
                };
                let Some(feed) = next else { return };
                progress
                    .in_flight
                    .lock()
                    .expect("not poisoned")
                    .insert(feed.name.clone(), Instant::now());
                let report = refresher.refresh(&feed, RefreshOptions::run()).await;
                progress.in_flight.lock().expect("not poisoned").remove(&feed.name);
                progress.finished(&feed.name, &report.outcome, OffsetDateTime::now_utc());
                pending.lock().expect("not poisoned").remove(&feed.name);
            }
        });
    }

    // The planner: each tick queues the feeds with a slot since the last one. Given `first` (the
    // feeds never refreshed or overdue, [`start`]), those go now and the planner starts from
    // now; without it, the first tick takes the slots of the tick before.
    let tick = config.fleet.tick;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut last = match &first {
        Some(_) => now,
        None => now - tick.as_secs() as i64,
    };
    for feed in first.unwrap_or_default() {
        if pending.lock().expect("not poisoned").insert(feed.name.clone()) {
            progress.due.fetch_add(1, Ordering::Relaxed);
            let _ = queue.send(feed);
        }
    }
    loop {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let window = Duration::from_secs(now.saturating_sub(last).max(0) as u64);
        if !window.is_zero() {
            for (feed, _) in due_in(&config, now, window) {
                if pending.lock().expect("not poisoned").insert(feed.name.clone()) {
                    progress.due.fetch_add(1, Ordering::Relaxed);
                    let _ = queue.send(feed.clone());
                }
            }
            last = now;
        }
        let next = tokio::time::sleep(tick.min(Duration::from_secs(1)));
        tokio::select! {
            _ = next => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
    }
    info!("stopping: the refreshes in flight finish first");
    drop(queue);
    while workers.join_next().await.is_some() {}
}
