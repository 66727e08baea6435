//! The fleet on one machine, without AWS (`flarefeed run`): the same planner and worker as on
//! Lambda, in one long-lived process, with an in-process queue in place of SQS.
//!
//! The queue keeps SQS's guarantees that matter: a feed is never queued twice while it waits
//! or runs (the FIFO group and deduplication id), and a failing feed backs off (the worker's
//! [`RefreshOptions::queued`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tracing::info;

use super::plan::due_in;
use crate::config::Config;
use crate::config::FeedConfig;
use crate::refresh::{RefreshOptions, Refresher};

/// What the run has done so far; the CLI draws it on a terminal.
#[derive(Debug, Default)]
pub struct Progress {
    /// Feeds the planner queued.
    pub due: AtomicUsize,
    pub in_flight: AtomicUsize,
    /// Refreshes that ended, failed or not (a backoff or a busy feed counts as done).
    pub done: AtomicUsize,
    pub failed: AtomicUsize,
}

impl Progress {
    /// `due 12  in flight 2  done 9  failed 1`.
    pub fn line(&self) -> String {
        let get = |n: &AtomicUsize| n.load(Ordering::Relaxed);
        format!(
            "due {}  in flight {}  done {}  failed {}",
            get(&self.due),
            get(&self.in_flight),
            get(&self.done),
            get(&self.failed)
        )
    }
}

/// Runs the planner over `config` and `jobs` workers on `refresher` until `shutdown` completes (the CLI passes Ctrl-C and
/// SIGTERM), then lets the refreshes in flight finish. Feeds queued but not started when it
/// stops are left for the next run.
pub async fn serve(
    config: Arc<Config>,
    refresher: Refresher,
    jobs: usize,
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
                progress.in_flight.fetch_add(1, Ordering::Relaxed);
                let report = refresher.refresh(&feed, RefreshOptions::queued(None)).await;
                progress.in_flight.fetch_sub(1, Ordering::Relaxed);
                progress.done.fetch_add(1, Ordering::Relaxed);
                if report.outcome.is_failure() {
                    progress.failed.fetch_add(1, Ordering::Relaxed);
                }
                pending.lock().expect("not poisoned").remove(&feed.name);
            }
        });
    }

    // The planner: each tick queues the feeds with a slot since the last one.
    let tick = config.fleet.tick;
    let mut last = OffsetDateTime::now_utc().unix_timestamp() - tick.as_secs() as i64;
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
