//! `refresh` on the in-memory adapters: each path through the flow, in milliseconds. The
//! real servers' tests are in `tests/it/`.
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::route::direct_timeout;
use super::*;
use crate::config::FetchMode;
use time::OffsetDateTime;

use crate::deployment::{Adapters, Deployment};
use crate::fetch::ScriptedFetcher;
use crate::fetch::{DirectClass, DirectReply, FetchError, Route};
use crate::interrupt::Interrupt;
use crate::solver::ScriptedSolver;
use crate::status::{self, InFlight, Recorded, StatusRecord};
use crate::store::MemoryStore;
use crate::store::{Condition, Store, StoreError};

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

    // Issue 27, finding 4: a 200 with the same ETag is read and fingerprinted like any other, so
    // a server that ignores If-None-Match and always sends one ETag cannot freeze the feed.
    u.fetcher
        .then(URL, ScriptedFetcher::document(URL, &rss("two"), Some("\"v1\"")));
    assert_eq!(
        u.refresh(RefreshOptions::scheduled(None)).await.outcome,
        Outcome::Updated
    );
    assert!(u.published().await.contains("two"), "the new body is published");
    // The same body with the same ETag is unchanged by its fingerprint.
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
    let fetch = &u.refresher.config.fetch;
    let soon = Duration::from_millis(500);
    assert_eq!(direct_timeout(fetch, FetchMode::Auto, soon), None);
    let direct = direct_timeout(fetch, FetchMode::Direct, soon).unwrap();
    assert!(direct <= Duration::from_millis(500), "{direct:?}");
    let later = Duration::from_secs(40);
    let auto = direct_timeout(fetch, FetchMode::Auto, later).unwrap();
    assert!(auto <= Duration::from_secs(5) && auto >= MIN_REQUEST_TIME, "{auto:?}");
    let ample = Duration::from_secs(600);
    assert_eq!(
        direct_timeout(fetch, FetchMode::Auto, ample),
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

/// Issue 27, finding 5: a 304 to a request that sent no validators (a first refresh, a forced
/// one) is a failure that says so: no `last_success`, no file, and `--force` does not say "not
/// modified". With `auto` the solver is asked instead.
#[tokio::test]
async fn a_304_to_a_request_without_validators_is_a_failure() {
    let u = unit_with(FetchMode::Direct);
    u.fetcher.always(URL, not_modified());
    let report = u.refresh(RefreshOptions::scheduled(None)).await;
    match &report.outcome {
        Outcome::Failed {
            stage: Stage::Fetch,
            error: RefreshError::Fetch(FetchError::UnaskedNotModified { .. }),
        } => {}
        other => panic!("{other:?}"),
    }
    assert!(
        report.outcome.to_string().contains("sent no validators"),
        "{}",
        report.outcome
    );
    let record = u.record().await;
    assert_eq!((record.outcome, record.last_success), (Recorded::Failed, None));
    assert!(u.store.get("news.xml").await.unwrap().is_none(), "no file");

    // A published feed, refreshed with --force: no validators sent, so a 304 says nothing.
    let u = unit_with(FetchMode::Direct);
    u.fetcher
        .then(URL, ScriptedFetcher::document(URL, &rss("one"), Some("\"v1\"")));
    assert_eq!(u.refresh(RefreshOptions::cli(false)).await.outcome, Outcome::Updated);
    let success = u.record().await.last_success;
    u.fetcher.then(URL, not_modified());
    assert!(u.refresh(RefreshOptions::cli(true)).await.outcome.is_failure());
    assert_eq!(u.fetcher.last_validators(URL), None);
    assert_eq!(u.record().await.last_success, success, "last_success stands");

    // With `auto`, a site that answers 304 to everything is no feed directly: the solver is asked.
    let u = unit_with(FetchMode::Auto);
    u.fetcher.always(URL, not_modified());
    u.solver.page(URL, &rss("one"));
    let report = u.refresh(RefreshOptions::scheduled(None)).await;
    assert_eq!((report.outcome, report.route), (Outcome::Updated, Some(Route::Solver)));
}

/// Issue 27, finding 6: a solver's `Retry-After` of 99999999999 s holds the feed back for at
/// most `[fleet] max_backoff`, not until the year 5195; and a record an older build wrote with
/// such a `not_before` backs off no longer than that either.
#[tokio::test]
async fn retry_after_is_bounded_by_max_backoff() {
    let u = unit();
    u.solver.error(SolverError::RateLimited {
        url: "http://solver.test/v1".into(),
        retry_after_s: Some(99_999_999_999),
    });
    u.refresh(RefreshOptions::queued(None)).await;
    let mut record = u.record().await;
    let max_backoff = Config::default().fleet.max_backoff;
    let wait = record.not_before.unwrap() - record.last_attempt.unwrap();
    assert_eq!(wait.whole_seconds(), max_backoff.as_secs() as i64);

    record.not_before = Some(time::macros::datetime!(5195-01-01 0:00 UTC));
    let backoff = crate::status::Backoff {
        interval: Duration::from_secs(60),
        max: max_backoff,
    };
    let now = record.last_attempt.unwrap();
    assert_eq!(record.backing_off(backoff, now), Some(max_backoff));
}

/// Issue 27, finding 7: `flarefeed run`'s refreshes claim their feed, so a `flarefeed refresh`
/// of the same feed meanwhile stands back instead of running beside it (and one of the two
/// record writes being lost).
#[tokio::test]
async fn a_refresh_of_run_claims_its_feed() {
    let u = unit();
    u.solver.delay(Duration::from_millis(400));
    u.solver.always(URL, &rss("one"));
    let (refresher, feed) = (u.refresher.clone(), u.feed.clone());
    let running = tokio::spawn(async move { refresher.refresh(&feed, RefreshOptions::run()).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let beside = u.refresh(RefreshOptions::cli(false)).await;
    assert!(matches!(beside.outcome, Outcome::Busy { .. }), "{:?}", beside.outcome);
    assert_eq!(running.await.unwrap().outcome, Outcome::Updated);
    assert_eq!(u.solver.requests(), 1, "one refresh asked the solver");
}
