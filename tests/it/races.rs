//! One writer at a time, newest content wins: concurrent refreshes of one feed, on each store
//! flarefeed has (two independent S3 implementations, and a folder).
//!
//! The fake solver's replies are held at gates the tests open, so each race runs in the order
//! the test names, every time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use flarefeed::feed;
use flarefeed::refresh::{Outcome, RefreshOptions, Stage};
use flarefeed::status::{Recorded, Trigger};
use flarefeed::store::{Body, Condition, ObjectInfo, PutOptions, Store, StoreError, Stored, Version};

use crate::helpers::fake_solver::{Action, Gate, error_reply, ok_reply};
use crate::helpers::fixtures::recorded_response;
use crate::helpers::{Backend, FEED_URL, TestApp};

/// A [`TestApp`] on one backend, and the race's own moves.
struct Race(TestApp);

impl std::ops::Deref for Race {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.0
    }
}

impl Race {
    async fn start(backend: Backend) -> Self {
        Self(TestApp::builder().backend(backend).prefix("feeds/").start().await)
    }

    /// As `start`, with the refresher seeing the store through `wrap`.
    async fn wrapped(backend: Backend, wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store> + 'static) -> Self {
        Self(
            TestApp::builder()
                .backend(backend)
                .prefix("feeds/")
                .store_through(wrap)
                .start()
                .await,
        )
    }

    /// A refresh as `trigger` would ask for it, forced or not.
    async fn refresh(&self, trigger: Trigger, force: bool) -> Outcome {
        let options = match trigger {
            Trigger::Http => RefreshOptions::http(None, force),
            Trigger::Cli => RefreshOptions::cli(force),
            Trigger::Schedule => RefreshOptions::scheduled(None),
            Trigger::Queue => RefreshOptions::queued(None),
            Trigger::Other => unreachable!("no refresh is asked for as `other`"),
        };
        self.0.refresh(options).await.outcome
    }

    /// A refresh of its own task, so the test can act while it waits on the solver.
    fn spawn(self: &Arc<Self>, trigger: Trigger) -> tokio::task::JoinHandle<Outcome> {
        let race = self.clone();
        tokio::spawn(async move { race.refresh(trigger, false).await })
    }

    /// Makes the claim of the refresh in flight look expired, as it does to others once its
    /// holder has run past its deadline (a hung process, a clock far off).
    async fn expire_lease(&self) {
        let mut status = self.status().await;
        status.in_flight.as_mut().expect("a refresh in flight").expires = time::macros::datetime!(2001-01-01 0:00 UTC);
        let options = PutOptions {
            content_type: "application/json",
            cache_control: "no-cache",
            sha256: None,
            condition: Condition::Any,
        };
        let body = serde_json::to_vec(&status).unwrap();
        self.store
            .put(&self.feed.status_key(), body.into(), options)
            .await
            .unwrap();
    }
}

/// Version `n` of the feed: the text the site serves, and what flarefeed publishes of it.
fn version(n: usize) -> (Action, Vec<u8>, String) {
    let text = recorded_response("pypi-3.3.21/rss_nosession.json").replace("First item", &format!("First item, v{n}"));
    let published = crate::helpers::without_origin_self_link(&text);
    let formatted = feed::format(&published).unwrap();
    (
        ok_reply(FEED_URL, &text),
        formatted.to_xml().into_bytes(),
        formatted.fingerprint(),
    )
}

fn is_busy(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Busy { retry_after_s, .. } if *retry_after_s >= 1)
}

async fn a_refresh_in_flight_turns_every_other_away(backend: Backend) {
    let race = Arc::new(Race::start(backend).await);
    let gate = Gate::default();
    let (v1, v1_bytes, _) = version(1);
    race.fake.then(gate.hold(v1.clone()));
    let first = race.spawn(Trigger::Schedule);
    race.fake.requests_reach(1).await;

    let in_flight = race.status().await.in_flight.expect("the claim is in the record");
    assert_eq!(in_flight.trigger, Trigger::Schedule);
    for (trigger, force) in [
        (Trigger::Http, true),
        (Trigger::Http, false),
        (Trigger::Schedule, false),
        (Trigger::Cli, true),
    ] {
        match race.refresh(trigger, force).await {
            Outcome::Busy {
                retry_after_s, started, ..
            } => {
                assert_eq!(started, in_flight.started, "{trigger:?}");
                // The lease: the default budget, the status write's grace and the slack.
                let most = race.refresher.budget().as_secs() + 8 + 30;
                assert!((1..=most).contains(&retry_after_s), "{retry_after_s}");
            }
            other => panic!("{backend:?} {trigger:?} force={force}: {other:?}"),
        }
    }
    assert_eq!(
        race.solver_requests(),
        1,
        "a turned-away refresh must not ask the solver"
    );

    gate.open();
    assert_eq!(first.await.unwrap(), Outcome::Updated);
    assert_eq!(race.published().await, v1_bytes);
    let status = race.status().await;
    assert_eq!((status.outcome, status.in_flight), (Recorded::Updated, None));

    // The lease is gone with its refresh: the next one runs.
    race.fake.page(FEED_URL, v1);
    assert_eq!(race.refresh(Trigger::Http, true).await, Outcome::Unchanged);
}

/// The race of the issue: an older fetch answered after a newer one. The older refresh had
/// outlived its lease, so the newer one could claim the feed; the older must then write nothing.
async fn an_overtaken_refresh_writes_nothing(backend: Backend) {
    let race = Arc::new(Race::start(backend).await);
    let (v0, _, _) = version(0);
    race.fake.then(v0);
    assert_eq!(race.refresh(Trigger::Cli, false).await, Outcome::Updated);

    let gate = Gate::default();
    let (v1, _, _) = version(1);
    let (v2, v2_bytes, v2_sha) = version(2);
    race.fake.then(gate.hold(v1));
    race.fake.then(v2);
    let older = race.spawn(Trigger::Schedule);
    race.fake.requests_reach(2).await;
    race.expire_lease().await;

    // The newer fetch starts second and is answered first.
    assert_eq!(race.refresh(Trigger::Http, true).await, Outcome::Updated);
    gate.open();
    match older.await.unwrap() {
        Outcome::Failed {
            stage: Stage::Store,
            error: reason,
        } => assert!(
            reason.to_string().contains("changed by another refresh"),
            "{backend:?}: {reason}"
        ),
        other => panic!("{backend:?}: {other:?}"),
    }

    assert_eq!(
        race.published().await,
        v2_bytes,
        "{backend:?}: the older fetch overwrote the newer"
    );
    let status = race.status().await;
    assert_eq!(status.sha256.as_deref(), Some(v2_sha.as_str()), "{backend:?}");
    assert_eq!((status.outcome, status.consecutive_failures), (Recorded::Updated, 0));
    assert_eq!(status.in_flight, None);
}

/// The folder repro of the issue: a refresh that fails slowly while another publishes v2 must
/// not leave a record describing v1, or a later return to v1 would look "unchanged" and v2
/// would be served for good.
async fn an_overtaken_failure_leaves_the_record_describing_the_published_feed(backend: Backend) {
    let race = Arc::new(Race::start(backend).await);
    let (v1, v1_bytes, v1_sha) = version(1);
    race.fake.then(v1.clone());
    assert_eq!(race.refresh(Trigger::Cli, false).await, Outcome::Updated);

    let gate = Gate::default();
    let (v2, _, v2_sha) = version(2);
    race.fake.then(gate.hold(error_reply(
        "Error: Error solving the challenge. Timeout after 60.0 seconds.",
    )));
    race.fake.then(v2);
    let slow = race.spawn(Trigger::Schedule);
    race.fake.requests_reach(2).await;
    race.expire_lease().await;
    assert_eq!(race.refresh(Trigger::Cli, false).await, Outcome::Updated);
    gate.open();
    assert!(matches!(
        slow.await.unwrap(),
        Outcome::Failed {
            stage: Stage::Solver,
            ..
        }
    ));

    let status = race.status().await;
    assert_eq!(status.sha256.as_deref(), Some(v2_sha.as_str()), "{backend:?}");
    assert_eq!((status.outcome, status.consecutive_failures), (Recorded::Updated, 0));

    // The site goes back to v1: that is a change, and it is published.
    race.fake.then(v1);
    assert_eq!(race.refresh(Trigger::Cli, false).await, Outcome::Updated, "{backend:?}");
    assert_eq!(race.published().await, v1_bytes);
    assert_eq!(race.status().await.sha256.as_deref(), Some(v1_sha.as_str()));
}

/// Holds every reader of the status record until two have read it, then lets their writes of
/// it through one at a time: two refreshes that both read the record before either claims.
struct BothReadFirst {
    inner: Arc<dyn Store>,
    reads: AtomicUsize,
    both_read: tokio::sync::Barrier,
    one_write_at_a_time: tokio::sync::Mutex<()>,
}

#[async_trait]
impl Store for BothReadFirst {
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.inner.head(key).await
    }

    async fn get(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        let read = self.inner.get(key).await;
        if key.starts_with("status/") && self.reads.fetch_add(1, Ordering::SeqCst) < 2 {
            self.both_read.wait().await;
        }
        read
    }

    async fn put(&self, key: &str, body: Body, options: PutOptions<'_>) -> Result<Version, StoreError> {
        let _turn = self.one_write_at_a_time.lock().await;
        self.inner.put(key, body, options).await
    }

    async fn list(&self, folder: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(folder).await
    }

    fn locate(&self, key: &str) -> String {
        self.inner.locate(key)
    }
}

/// `min_interval_s` held only if the attempts were recorded before two refreshes both read
/// the record; the claim makes the second one lose.
async fn of_two_refreshes_that_read_together_one_claims(backend: Backend) {
    let race = Arc::new(
        Race::wrapped(backend, |inner| {
            Arc::new(BothReadFirst {
                inner,
                reads: AtomicUsize::new(0),
                both_read: tokio::sync::Barrier::new(2),
                one_write_at_a_time: tokio::sync::Mutex::new(()),
            })
        })
        .await,
    );
    let (v1, _, _) = version(1);
    race.fake.page(FEED_URL, v1);
    let (a, b) = tokio::join!(race.spawn(Trigger::Http), race.spawn(Trigger::Http));
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| o.name());
    assert!(is_busy(&outcomes[0]), "{backend:?}: {outcomes:?}");
    assert_eq!(outcomes[1], Outcome::Updated, "{backend:?}");
    assert_eq!(
        race.solver_requests(),
        1,
        "{backend:?}: both refreshes asked the solver"
    );
}

/// Each race, on each store.
macro_rules! on_every_store {
    ($($race:ident),* $(,)?) => {
        mod s3s {
            $(#[tokio::test]
            async fn $race() {
                super::$race(crate::helpers::Backend::S3s).await
            })*
        }
        mod moto {
            $(#[tokio::test]
            async fn $race() {
                super::$race(crate::helpers::Backend::Moto).await
            })*
        }
        mod folder {
            $(#[tokio::test]
            async fn $race() {
                super::$race(crate::helpers::Backend::Folder).await
            })*
        }
    };
}

on_every_store!(
    a_refresh_in_flight_turns_every_other_away,
    an_overtaken_refresh_writes_nothing,
    an_overtaken_failure_leaves_the_record_describing_the_published_feed,
    of_two_refreshes_that_read_together_one_claims,
);

/// Finding 2 on a real S3 server: this host's clock runs 10 minutes ahead of the server's. The
/// store's `Date` says so, and the claim is written on the store's clock; a second refresh
/// judges the live claim on the same clock, and stands back.
#[tokio::test]
async fn claims_are_written_and_judged_on_the_store_clock() {
    use crate::helpers::s3_server::Fault;
    let race = Arc::new(Race::start(Backend::S3s).await);
    race.s3().set_fault(Some(Fault::ClockOffset(-600)));
    let gate = Gate::default();
    race.fake
        .then(gate.hold(crate::helpers::rss_page("Mon, 01 Jan 2024 00:00:00 GMT")));
    let first = race.spawn(Trigger::Cli);
    race.fake.requests_reach(1).await;
    let claimed = race.status().await;
    let claim = claimed.in_flight.as_ref().expect("claimed");
    let behind = time::OffsetDateTime::now_utc() - claim.started;
    assert!(
        (behind.whole_seconds() - 600).abs() <= 3,
        "the claim started {behind} before this host's now"
    );
    // Judged on the store's clock the claim is live (on this host's, it ended minutes ago).
    assert!(
        claim.expires < time::OffsetDateTime::now_utc(),
        "a naive host would take it over"
    );
    match race.refresh(Trigger::Http, true).await {
        Outcome::Busy { .. } => {}
        other => panic!("{other:?}"),
    }
    gate.open();
    assert_eq!(first.await.unwrap(), Outcome::Updated);
    assert_eq!(race.solver_requests(), 1);
}

/// Issue 27, finding 11: the store's clock is believed only within S3's own 15-minute skew
/// limit. Moto (which takes skewed signatures) behind a proxy that says S3's `Date` is two hours
/// ahead: the store's clock moves 15 minutes, where it moved two hours and, with it, every
/// claim's times.
#[tokio::test]
async fn the_store_clock_is_believed_within_fifteen_minutes() {
    use crate::helpers::counting::CountingProxy;
    use crate::helpers::s3_server::{BUCKET, MotoServer, S3Endpoint};
    use flarefeed::config::Bucket;
    use flarefeed::store::{S3Store, Store, store_now};
    let moto = MotoServer::start().await;
    let proxy = CountingProxy::start(&moto.endpoint).await;
    let bucket = Bucket {
        bucket: BUCKET.into(),
        endpoint: Some(proxy.endpoint.clone()),
        path_style: true,
    };
    let store = S3Store::with_sdk_config(&moto.sdk_config(), &bucket, "");
    proxy.advance_clock(2 * 3600);
    let options = PutOptions {
        content_type: "text/plain",
        cache_control: "no-cache",
        sha256: None,
        condition: Condition::Any,
    };
    store.put("present", b"x".to_vec().into(), options).await.unwrap();
    let ahead = store_now(&store) - time::OffsetDateTime::now_utc();
    assert!(
        (ahead.whole_seconds() - 15 * 60).abs() <= 3,
        "the store's clock is {ahead} ahead of this host's"
    );
}
