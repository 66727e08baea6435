//! What each kind of invocation runs: a scheduled refresh, the fleet's tick (the planner) and
//! the fleet's worker (an SQS batch). The function URL's routes share the same state.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tracing::{info, warn};

use super::error::HandlerError;
use super::events::{Invocation, TickInput};
use crate::deployment::Asked;
use crate::deployment::Deployment;
use crate::fleet::queue::{Message, QueueError};
use crate::outcome::{Outcome, Report};
use crate::refresh::RefreshOptions;

/// What the routes share: built once per cold start.
pub(crate) struct Shared {
    pub(crate) deployment: Deployment,
    /// SHA-256 of `FLAREFEED_TOKEN`: comparing digests keeps the comparison constant-time
    /// whatever the length of the token offered.
    pub(crate) token: Option<[u8; 32]>,
}

/// The refresh's deadline, carried to the routes as a request extension.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(pub(crate) Option<Instant>);

/// What a tick did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    pub enqueued: usize,
    pub feeds: Vec<String>,
}

/// What a schedule naming a feed did.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Scheduled {
    /// The refresh's report.
    Refreshed(Box<Report>),
    /// Sent to the fleet's queue.
    Queued { queued: String },
}

/// The longest a tick keeps sending entries the queue refused, without a deadline of its own.
const TICK_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

impl Shared {
    /// A schedule or direct invocation naming a feed: refreshed here, or with a queue sent into
    /// the feed's message group (so that it never runs beside a queued refresh) and answered
    /// with what was queued.
    pub(crate) async fn scheduled(
        &self,
        invocation: &Invocation,
        deadline: Option<Instant>,
    ) -> Result<Scheduled, HandlerError> {
        let config = &self.deployment.config;
        let feed = match invocation.feed() {
            Some(name) => config.feed(name).map_err(HandlerError::UnknownFeed)?,
            None if config.feeds.len() == 1 => &config.feeds[0],
            None => {
                return Err(HandlerError::FeedNotNamed {
                    count: config.feeds.len(),
                    names: config.some_feed_names(),
                });
            }
        };
        let asked = self.deployment.ask(feed, false, RefreshOptions::scheduled(deadline));
        let report = match asked.await.map_err(HandlerError::Queue)? {
            Asked::Queued { .. } => {
                return Ok(Scheduled::Queued {
                    queued: feed.name.clone(),
                });
            }
            Asked::Ran(report) => report,
        };
        match report.outcome {
            Outcome::Failed { stage, error } => Err(HandlerError::RefreshFailed {
                feed: report.feed,
                stage,
                source: error,
            }),
            _ => Ok(Scheduled::Refreshed(report)),
        }
    }

    /// The fleet's planner: the feeds with a slot in the tick's window go to the queue. It
    /// reads nothing from the store; the slots are fixed ([`crate::fleet`]). Every batch is
    /// sent; entries the queue refused are sent again within the deadline, and any still
    /// refused fail the invocation, naming them (and a `NotQueued` metric counts them).
    pub(crate) async fn tick(&self, tick: &TickInput, deadline: Option<Instant>) -> Result<Planned, HandlerError> {
        let deployment = &self.deployment;
        let queue = deployment.queue.as_ref().ok_or(QueueError::NotConfigured)?;
        let configured = deployment.config.fleet.tick;
        let every = tick.every(configured)?;
        if every != configured && tick.every.is_some() {
            info!(
                every_s = every.as_secs(),
                tick_s = configured.as_secs(),
                "the schedule fires at another rate than [fleet] tick; planning by the schedule's"
            );
        }
        let due = crate::fleet::plan(&deployment.config, tick.at()?, every);
        let deadline = deadline.unwrap_or_else(|| Instant::now() + TICK_BUDGET);
        let sent = crate::fleet::queue::send_all(queue.as_ref(), &due, deadline).await;
        if let Some(observer) = &deployment.observer {
            observer.ticked(sent.queued.len(), sent.not_queued.len());
        }
        if let Some(error) = sent.error(queue.as_ref()) {
            return Err(error.into());
        }
        info!(enqueued = sent.queued.len(), "tick planned");
        Ok(Planned {
            enqueued: sent.queued.len(),
            feeds: sent.queued,
        })
    }

    /// The fleet's worker: refreshes each queued record's feed, backing off failing feeds.
    ///
    /// Lambda deletes the messages of a batch when the function succeeds, except those listed
    /// in `batchItemFailures`, which return to the queue after the visibility timeout
    /// (`ReportBatchItemFailures`,
    /// https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html#services-sqs-batchfailurereporting;
    /// an empty `itemIdentifier` would fail the whole batch, and SQS always sets `messageId`).
    /// Listed are only the records not attempted (a bad body, an unknown feed, another refresh of the feed
    /// in flight, no time left) and those whose outcome could not be recorded. A refresh that
    /// failed and was recorded is consumed: the feed's next slot is its retry. A bad message
    /// goes round until the queue's `maxReceiveCount` sends it to the dead-letter queue.
    pub(crate) async fn work(&self, event: SqsEvent, deadline: Option<Instant>) -> SqsBatchResponse {
        let config = &self.deployment.config;
        let mut response = SqsBatchResponse::default();
        for record in event.records {
            let id = record.message_id.unwrap_or_default();
            let feed = Message::read(record.body.as_deref())
                .and_then(|(name, asked)| Ok((config.feed(&name).map_err(|e| e.to_string())?, asked)));
            let retry = match feed {
                Err(reason) => {
                    warn!(message_id = %id, reason = %reason, "queued message not attempted");
                    true
                }
                Ok((feed, asked)) => {
                    let options = match asked {
                        Some(force) => RefreshOptions::asked(deadline, force),
                        None => RefreshOptions::queued(deadline),
                    };
                    let report = self.deployment.refresher.refresh(feed, options).await;
                    report.outcome.retry_later()
                }
            };
            if retry {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }
}

/// SHA-256 of a token: comparing digests keeps the comparison constant-time whatever the
/// length of the token offered.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    //! The tick and the worker on the in-memory adapters; `tests/it/fleet.rs` runs the same on
    //! moto's SQS, as proof against a real queue.

    use std::sync::Arc;

    use aws_lambda_events::event::sqs::SqsMessage;

    use super::*;
    use crate::config::{Config, FeedConfig, FetchMode};
    use crate::deployment::Adapters;
    use crate::fetch::ScriptedFetcher;
    use crate::fleet::queue::MemoryQueue;
    use crate::solver::{ScriptedSolver, SolverError};
    use crate::store::MemoryStore;

    const PAGE: &str = "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>t</title><item><title>a</title></item></channel></rss>";

    struct Fleet {
        shared: Shared,
        queue: Arc<MemoryQueue>,
        solver: Arc<ScriptedSolver>,
    }

    fn fleet(feeds: &[&str]) -> Fleet {
        let feeds: Vec<FeedConfig> = feeds
            .iter()
            .map(|name| FeedConfig {
                fetch: FetchMode::Solver,
                ..FeedConfig::new(name, &format!("https://{name}.test/feed"))
            })
            .collect();
        let config = Config {
            feeds,
            ..Config::default()
        };
        let queue = Arc::new(MemoryQueue::default());
        let solver = Arc::new(ScriptedSolver::default());
        let adapters = Adapters {
            solver: solver.clone(),
            fetcher: Arc::new(ScriptedFetcher::default()),
            store: Arc::new(MemoryStore::default()),
            queue: Some(queue.clone()),
        };
        let deployment = Deployment::assemble(Arc::new(config), adapters, None);
        Fleet {
            shared: Shared {
                deployment,
                token: None,
            },
            queue,
            solver,
        }
    }

    fn message(id: &str, body: &str) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.into());
        message.body = Some(body.into());
        message.event_source = Some("aws:sqs".into());
        message
    }

    fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = messages;
        event
    }

    /// Issue 21: with a queue, a refresh asked for through the function URL goes to the feed's
    /// message group (202; nothing runs here), and the worker runs it as asked: `force` lifts
    /// min_interval_s and publishes an unchanged feed, and its record is always written.
    #[tokio::test]
    async fn refreshes_asked_for_by_hand_go_through_the_feeds_group() {
        use lambda_http::tower::ServiceExt;
        let mut f = fleet(&["a"]);
        f.shared.token = Some(digest("t"));
        let (queue, solver) = (f.queue.clone(), f.solver.clone());
        let shared = Arc::new(f.shared);
        let router = super::super::routes::router(shared.clone());
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/refresh/a?force=1")
            .header("authorization", "Bearer t")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 202);
        assert_eq!(queue.asked(), vec![("a".to_string(), true)]);
        assert_eq!(solver.requests(), 0, "nothing ran beside the queue");

        let body = crate::fleet::queue::Message::asked("a", true).body();
        let store = shared.deployment.store.clone();
        let record = async || {
            let stored = store.get("status/a.json").await.unwrap().unwrap();
            serde_json::from_slice::<crate::status::StatusRecord>(&stored.body).unwrap()
        };
        let mut attempts = Vec::new();
        for i in 0..2 {
            solver.page("https://a.test/feed", PAGE);
            let done = shared.work(batch(vec![message(&format!("m{i}"), &body)]), None).await;
            assert!(done.batch_item_failures.is_empty());
            let written = record().await;
            assert_eq!(
                written.outcome,
                crate::outcome::Recorded::Updated,
                "forced: written again"
            );
            attempts.push(written.last_attempt);
        }
        assert_eq!(solver.requests(), 2);
        assert!(attempts[1] >= attempts[0]);
    }

    /// A schedule naming a feed, in a deployment with a queue, goes to the feed's group too.
    #[tokio::test]
    async fn a_schedule_naming_a_feed_is_queued_when_there_is_a_queue() {
        let f = fleet(&["a", "b"]);
        let input = crate::handler::FeedInput { feed: Some("b".into()) };
        let done = f.shared.scheduled(&Invocation::Scheduled(input), None).await.unwrap();
        assert!(
            matches!(done, Scheduled::Queued { ref queued } if queued == "b"),
            "{done:?}"
        );
        assert_eq!(f.queue.asked(), vec![("b".to_string(), false)]);
        assert_eq!(f.solver.requests(), 0);
    }

    /// Over one interval of ticks every feed is queued exactly once: the windows overlap, and a
    /// tick planned twice queues nothing more (the FIFO deduplication id).
    #[tokio::test]
    async fn ticks_queue_each_feed_once_per_interval() {
        let names: Vec<String> = (0..40).map(|i| format!("feed-{i}")).collect();
        let f = fleet(&names.iter().map(String::as_str).collect::<Vec<_>>());
        for minute in 1..=15 {
            f.shared.tick(&tick_at(minute, None), None).await.unwrap();
            f.shared.tick(&tick_at(minute, None), None).await.unwrap();
        }
        assert_eq!(in_interval(&f.queue), sorted(&names));
    }

    /// The feeds queued for a slot in the 15 minutes from START, sorted; no slot twice.
    fn in_interval(queue: &MemoryQueue) -> Vec<String> {
        let waiting = queue.waiting();
        let unique: std::collections::HashSet<_> = waiting.iter().collect();
        assert_eq!(unique.len(), waiting.len(), "a slot queued twice");
        let names: Vec<String> = waiting
            .into_iter()
            .filter(|d| d.slot > START && d.slot <= START + 900)
            .map(|d| d.feed)
            .collect();
        sorted(&names)
    }

    fn sorted(names: &[String]) -> Vec<String> {
        let mut names = names.to_vec();
        names.sort();
        names
    }

    const START: i64 = 1_800_000_000;

    fn tick_at(minute: i64, every: Option<&str>) -> TickInput {
        TickInput {
            every: every.map(str::to_string),
            ..TickInput::new(super::super::events::Tick::At(crate::outcome::rfc3339(
                time::OffsetDateTime::from_unix_timestamp(START + minute * 60).unwrap(),
            )))
        }
    }

    /// `[fleet] tick = "30s"` while the schedule really fires every minute (finding 11): the
    /// tick plans by the schedule's `every`, and no feed starves.
    #[tokio::test]
    async fn a_tick_setting_shorter_than_the_schedule_starves_no_feed() {
        let names: Vec<String> = (0..40).map(|i| format!("feed-{i}")).collect();
        let half_minute = |f: &mut Fleet| {
            let mut config = (*f.shared.deployment.config).clone();
            config.fleet.tick = std::time::Duration::from_secs(30);
            f.shared.deployment.config = Arc::new(config);
        };
        let mut f = fleet(&names.iter().map(String::as_str).collect::<Vec<_>>());
        half_minute(&mut f);
        for minute in 1..=15 {
            f.shared.tick(&tick_at(minute, Some("1m")), None).await.unwrap();
        }
        assert_eq!(
            in_interval(&f.queue),
            sorted(&names),
            "every feed queued once in its interval"
        );
        // Without `every` the setting is believed; the overlap still saves every feed here.
        let mut g = fleet(&names.iter().map(String::as_str).collect::<Vec<_>>());
        half_minute(&mut g);
        for minute in 1..=15 {
            g.shared.tick(&tick_at(minute, None), None).await.unwrap();
        }
        assert_eq!(in_interval(&g.queue), sorted(&names));
        let bad = f.shared.tick(&tick_at(16, Some("soon")), None).await.unwrap_err();
        assert!(bad.to_string().contains("every \"soon\""), "{bad}");
    }

    /// One refused entry does not end the tick (finding 4): every batch is sent, a retryable
    /// refusal is sent again, and what stays refused fails the tick, named.
    #[tokio::test]
    async fn a_refused_entry_is_retried_and_the_rest_still_sent() {
        let names: Vec<String> = (0..60).map(|i| format!("feed-{i:02}")).collect();
        let f = fleet(&names.iter().map(String::as_str).collect::<Vec<_>>());
        // Find a minute with more than one batch due.
        let minute = (1..=15)
            .find(|m| {
                crate::fleet::plan(
                    &f.shared.deployment.config,
                    START + m * 60,
                    std::time::Duration::from_secs(60),
                )
                .len()
                    > 10
            })
            .expect("a minute with two batches");
        let due = crate::fleet::plan(
            &f.shared.deployment.config,
            START + minute * 60,
            std::time::Duration::from_secs(60),
        );
        let (flaky, bad) = (&due[0].feed, &due[1].feed);
        f.queue.refuse(flaky, 2, false);
        f.queue.refuse(bad, 1, true);
        let error = f.shared.tick(&tick_at(minute, Some("1m")), None).await.unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(&format!("1 of {} due feeds were not queued", due.len())),
            "{text}"
        );
        assert!(
            text.contains(bad.as_str()) && !text.contains(&format!("{flaky},")),
            "{text}"
        );
        let queued: Vec<String> = f.queue.waiting().into_iter().map(|d| d.feed).collect();
        assert_eq!(
            queued.len(),
            due.len() - 1,
            "every other feed, the later batches included"
        );
        assert!(queued.contains(flaky), "the retryable refusal was sent again");
        assert!(!queued.contains(bad));

        // A call that fails whole is sent again too.
        let g = fleet(&names.iter().map(String::as_str).collect::<Vec<_>>());
        g.queue.fail_next_call(QueueError::Send {
            queue: "q".into(),
            detail: "connection reset".into(),
        });
        let planned = g.shared.tick(&tick_at(minute, Some("1m")), None).await.unwrap();
        assert_eq!(planned.enqueued, due.len());
    }

    #[tokio::test]
    async fn a_tick_without_a_queue_says_which_setting_is_missing() {
        let mut f = fleet(&["a"]);
        f.shared.deployment.queue = None;
        let error = f
            .shared
            .tick(&TickInput::new(super::super::events::Tick::Now(true)), None)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("[fleet] queue_url"), "{error}");
    }

    /// The worker: a refresh that ran is consumed whatever its outcome; a message that was not
    /// attempted (bad body, unknown feed, a refresh in flight) comes back.
    #[tokio::test]
    async fn the_worker_consumes_what_ran_and_returns_what_did_not() {
        let f = fleet(&["good", "sick"]);
        f.solver.always("https://good.test/feed", PAGE);
        f.solver.always_fail(
            "https://sick.test/feed",
            SolverError::Blocked {
                message: "Cloudflare has blocked this request".into(),
            },
        );
        let event = batch(vec![
            message("1", r#"{"feed": "good"}"#),
            message("2", r#"{"feed": "sick"}"#),
            message("3", r#"{"feed": "nope"}"#),
            message("4", "not json"),
        ]);
        let response = f.shared.work(event, None).await;
        let returned: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(returned, ["3", "4"]);
        assert_eq!((f.solver.calls("good").total, f.solver.calls("sick").total), (1, 1));

        // The failing feed now backs off: consumed, and the solver is not asked.
        let response = f
            .shared
            .work(batch(vec![message("5", r#"{"feed": "sick"}"#)]), None)
            .await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(f.solver.calls("sick").total, 1);
    }
}
