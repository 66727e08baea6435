//! One refresh, end to end: fake FlareSolverr and a real S3-compatible server (or a folder).

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use flarefeed::feed;
use flarefeed::refresh::{Outcome, RefreshOptions, Stage};
use flarefeed::status::{self, Recorded, StatusRecord};

use crate::helpers::fake_solver::{Action, error_reply, ok_reply, pre_wrapped};
use crate::helpers::fixtures::{fixture, recorded_response};
use crate::helpers::s3_server::{BUCKET, Fault, S3Endpoint};
use crate::helpers::{Backend, FEED_URL, TestApp, formatted_rss, rss_page};

fn cli() -> RefreshOptions {
    RefreshOptions::cli(false)
}

/// An app on the s3s server, with the `feeds/` prefix.
async fn on_s3() -> TestApp {
    TestApp::builder().backend(Backend::S3s).prefix("feeds/").start().await
}

async fn refresh(h: &TestApp) -> Outcome {
    h.refresh(cli()).await.outcome
}

/// An object as S3 serves it, with its headers and metadata (key with the prefix).
async fn s3_object(h: &TestApp, key: &str) -> GetObjectOutput {
    h.s3()
        .client()
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap()
}

async fn bytes(h: &TestApp, key: &str) -> Vec<u8> {
    s3_object(h, key)
        .await
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
        .to_vec()
}

#[tokio::test]
async fn s3_gets_the_formatted_feed_with_type_cache_control_and_fingerprint() {
    let h = on_s3().await;
    h.fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let report = h.refresh(cli()).await;
    assert_eq!(report.outcome, Outcome::Updated);
    assert_eq!(report.items, Some(2));

    let expected = formatted_rss("Mon, 01 Jan 2024 00:00:00 GMT");
    let object = s3_object(&h, "feeds/news.xml").await;
    assert_eq!(object.content_type(), Some("application/rss+xml; charset=utf-8"));
    assert_eq!(object.cache_control(), Some("public, max-age=123"));
    let sha = object.metadata().unwrap().get("sha256").unwrap().clone();
    assert_eq!(sha, feed::format(&expected).unwrap().fingerprint());
    assert_eq!(bytes(&h, "feeds/news.xml").await, expected.as_bytes());

    let status = h.status().await;
    assert_eq!(status.outcome, Recorded::Updated);
    assert_eq!(status.feed, "news");
    assert_eq!(status.url, FEED_URL);
    assert_eq!(status.sha256.as_deref(), Some(sha.as_str()));
    assert_eq!((status.items, status.bytes), (Some(2), Some(expected.len())));
    assert_eq!(status.consecutive_failures, 0);
    assert_eq!(status.last_error, None);
    assert_eq!(status.last_attempt, status.last_success);
    assert!(status.solver_ms.is_some() && status.total_ms.is_some());
}

#[tokio::test]
async fn an_unchanged_feed_is_not_written_again_even_with_a_new_build_date() {
    let h = on_s3().await;
    h.fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    assert_eq!(refresh(&h).await, Outcome::Updated);
    let before = s3_object(&h, "feeds/news.xml").await;

    assert_eq!(refresh(&h).await, Outcome::Unchanged);
    h.fake.page(FEED_URL, rss_page("Sun, 22 Nov 2026 04:00:00 GMT"));
    assert_eq!(refresh(&h).await, Outcome::Unchanged);

    assert_eq!(h.s3().puts_of("feeds/news.xml"), 1, "{:?}", h.s3().log());
    let after = s3_object(&h, "feeds/news.xml").await;
    assert_eq!(after.e_tag(), before.e_tag());
    assert_eq!(after.last_modified(), before.last_modified());
    assert_eq!(h.status().await.outcome, Recorded::Unchanged);
    // Two status writes a refresh: the claim, then the outcome.
    assert_eq!(h.s3().puts_of("feeds/status/news.json"), 6);
}

#[tokio::test]
async fn a_real_change_is_published() {
    let h = on_s3().await;
    h.fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    refresh(&h).await;
    let changed = recorded_response("pypi-3.3.21/rss_nosession.json").replace("First item", "First item, edited");
    h.fake.page(FEED_URL, ok_reply(FEED_URL, &changed));
    assert_eq!(refresh(&h).await, Outcome::Updated);
    assert!(
        String::from_utf8(bytes(&h, "feeds/news.xml").await)
            .unwrap()
            .contains("First item, edited")
    );
    assert_eq!(h.s3().puts_of("feeds/news.xml"), 2);
}

#[tokio::test]
async fn every_kind_of_failure_leaves_the_published_feed_byte_identical() {
    let h = on_s3().await;
    h.fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    assert_eq!(refresh(&h).await, Outcome::Updated);
    let good = bytes(&h, "feeds/news.xml").await;
    let good_status = h.status().await;

    let json = crate::helpers::fixtures::fixture("flaresolverr/pypi-3.3.21/json_nosession.json");
    let failures: Vec<(Action, Stage, &str)> = vec![
        (
            error_reply("Error: Error solving the challenge. Timeout after 60.0 seconds."),
            Stage::Solver,
            "could not solve the challenge",
        ),
        (
            ok_reply(FEED_URL, &fixture("pages/cloudflare-challenge.html")),
            Stage::Guard,
            "Cloudflare challenge page",
        ),
        (
            ok_reply(FEED_URL, &fixture("pages/cloudflare-block.html")),
            Stage::Guard,
            "block page",
        ),
        (
            ok_reply(FEED_URL, &pre_wrapped(&fixture("feeds/zero-items.xml"))),
            Stage::Guard,
            "0 items",
        ),
        (
            ok_reply(FEED_URL, "<rss version=\"2.0\"><channel><item>"),
            Stage::Guard,
            "not well-formed",
        ),
        (ok_reply(FEED_URL, ""), Stage::Extract, "empty page"),
        (
            ok_reply(FEED_URL, &recorded_response("upstream-3.5.0/json_nosession.json")),
            Stage::Extract,
            "JSON",
        ),
        (Action::Reply(200, json), Stage::Extract, "JSON"),
    ];
    for (i, (action, stage, words)) in failures.into_iter().enumerate() {
        h.fake.then(action);
        match refresh(&h).await {
            Outcome::Failed {
                stage: got,
                error: reason,
            } => {
                assert_eq!(got, stage, "{reason}");
                assert!(reason.to_string().contains(words), "{reason:?} should say {words:?}");
            }
            other => panic!("case {i}: {other:?}"),
        }
        assert_eq!(bytes(&h, "feeds/news.xml").await, good, "case {i} changed the feed");
        let status = h.status().await;
        assert_eq!(status.outcome, Recorded::Failed);
        assert_eq!(status.consecutive_failures, i as u32 + 1);
        assert!(status.last_error.as_deref().unwrap().starts_with(&format!("{stage}: ")));
        assert_eq!(status.last_success, good_status.last_success);
        assert_eq!(status.sha256, good_status.sha256);
        assert_eq!(status.items, good_status.items);
    }
    assert_eq!(h.s3().puts_of("feeds/news.xml"), 1);

    // A store that refuses writes: the feed stays, and the stage says where it broke.
    let changed = recorded_response("pypi-3.3.21/rss_nosession.json").replace("Second item", "Changed");
    h.fake.page(FEED_URL, ok_reply(FEED_URL, &changed));
    h.s3().set_fault(Some(Fault::DenyPutOf("feeds/news.xml".into())));
    match refresh(&h).await {
        Outcome::Failed {
            stage: Stage::Store,
            error: reason,
        } => assert!(reason.to_string().contains("access denied (AccessDenied)"), "{reason}"),
        other => panic!("{other:?}"),
    }
    h.s3().set_fault(None);
    assert_eq!(bytes(&h, "feeds/news.xml").await, good);

    // And the next good fetch recovers.
    assert_eq!(refresh(&h).await, Outcome::Updated);
    let status = h.status().await;
    assert_eq!(
        (status.outcome, status.consecutive_failures, status.last_error),
        (Recorded::Updated, 0, None)
    );
}

#[tokio::test]
async fn atom_and_rdf_get_their_content_types() {
    let h = on_s3().await;
    h.fake.then(ok_reply(
        FEED_URL,
        &recorded_response("upstream-3.5.0/atom_nosession.json"),
    ));
    assert_eq!(refresh(&h).await, Outcome::Updated);
    assert_eq!(
        s3_object(&h, "feeds/news.xml").await.content_type(),
        Some("application/atom+xml; charset=utf-8")
    );
    h.fake.then(ok_reply(FEED_URL, &fixture("feeds/rdf.xml")));
    assert_eq!(refresh(&h).await, Outcome::Updated);
    assert_eq!(
        s3_object(&h, "feeds/news.xml").await.content_type(),
        Some("application/rdf+xml; charset=utf-8")
    );
}

// ---- the local folder store ----

#[tokio::test]
async fn the_folder_store_publishes_skips_unchanged_and_keeps_the_last_good_copy() {
    let h = TestApp::start().await;
    h.fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    assert_eq!(h.refresh(cli()).await.outcome, Outcome::Updated);
    let good = h.published().await;
    assert_eq!(good, formatted_rss("Mon, 01 Jan 2024 00:00:00 GMT").as_bytes());
    let written = std::fs::metadata(h.dir().join("news.xml")).unwrap().modified().unwrap();

    h.fake.page(FEED_URL, rss_page("Tue, 02 Jan 2024 00:00:00 GMT"));
    assert_eq!(h.refresh(cli()).await.outcome, Outcome::Unchanged);
    assert_eq!(
        std::fs::metadata(h.dir().join("news.xml")).unwrap().modified().unwrap(),
        written
    );
    assert_eq!(h.published().await, good);

    h.fake
        .then(ok_reply(FEED_URL, &fixture("pages/cloudflare-challenge.html")));
    let report = h.refresh(cli()).await;
    assert!(
        matches!(
            report.outcome,
            Outcome::Failed {
                stage: Stage::Guard,
                ..
            }
        ),
        "{report:?}"
    );
    assert_eq!(h.published().await, good);
    let status = h.status().await;
    assert_eq!((status.outcome, status.consecutive_failures), (Recorded::Failed, 1));
    assert!(status.last_error.unwrap().contains("Cloudflare challenge page"));

    // --force publishes even when unchanged.
    let forced = RefreshOptions::cli(true);
    assert_eq!(h.refresher.refresh(&h.feed, forced).await.outcome, Outcome::Updated);
    assert_eq!(
        h.published().await,
        formatted_rss("Tue, 02 Jan 2024 00:00:00 GMT").as_bytes()
    );
    let mut leftovers: Vec<_> = std::fs::read_dir(h.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    leftovers.sort();
    // The feed, the status records, and the status site's pages: no temp file.
    assert_eq!(
        leftovers,
        ["feeds.opml", "index.html", "index.json", "news.xml", "status"],
        "temp files left behind"
    );
}

#[tokio::test]
async fn http_refreshes_within_min_interval_are_skipped_unless_forced() {
    let h = TestApp::start().await;
    h.fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let http = RefreshOptions::http(None, false);
    assert_eq!(h.refresher.refresh(&h.feed, http).await.outcome, Outcome::Updated);
    let attempts = h.fake.commands().len();
    match h.refresher.refresh(&h.feed, http).await.outcome {
        Outcome::Skipped { retry_after_s } => assert!((1..=60).contains(&retry_after_s)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.fake.commands().len(),
        attempts,
        "a skipped refresh must not call the solver"
    );
    let forced = RefreshOptions::http(None, true);
    assert_eq!(h.refresher.refresh(&h.feed, forced).await.outcome, Outcome::Unchanged);
    let scheduled = RefreshOptions::scheduled(None);
    assert_eq!(
        h.refresher.refresh(&h.feed, scheduled).await.outcome,
        Outcome::Unchanged
    );
}

#[tokio::test]
async fn statuses_cover_every_configured_feed() {
    let h = TestApp::start().await;
    let statuses = || status::all(h.store.as_ref(), &h.config);
    assert_eq!(statuses().await.unwrap()[0].outcome, Recorded::Never);
    h.fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let report = h.refresh(cli()).await;
    assert_eq!(statuses().await.unwrap()[0].outcome, Recorded::Updated);
    assert_eq!(report.location, h.dir().join("news.xml").display().to_string());
}

#[tokio::test]
async fn a_deadline_bounds_a_silent_solver() {
    let h = TestApp::start().await;
    h.fake.then(Action::Hang);
    let options = RefreshOptions {
        deadline: Some(tokio::time::Instant::now() + Duration::from_secs(2)),
        ..cli()
    };
    let report = h.refresher.refresh(&h.feed, options).await;
    assert!(
        matches!(report.outcome, Outcome::Failed { stage: Stage::Solver, error: ref reason } if reason.to_string().contains("did not answer"))
    );
    assert!(report.total_ms < 10_000);
}

#[tokio::test]
async fn a_slow_s3_fails_in_bounded_time_and_keeps_the_feed() {
    let h = on_s3().await;
    h.fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    assert_eq!(refresh(&h).await, Outcome::Updated);
    let good = bytes(&h, "feeds/news.xml").await;
    h.s3().set_fault(Some(Fault::Slow(Duration::from_secs(30))));
    let started = std::time::Instant::now();
    match refresh(&h).await {
        Outcome::Failed { stage, error: reason } => {
            assert!(matches!(stage, Stage::Status | Stage::Store), "{stage}");
            assert!(reason.to_string().contains("did not answer in time"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    h.s3().set_fault(None);
    assert_eq!(bytes(&h, "feeds/news.xml").await, good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_reader_never_sees_a_partial_feed_across_sixteen_updates() {
    let h = Arc::new(on_s3().await);
    h.fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    assert_eq!(refresh(&h).await, Outcome::Updated);

    // Sixteen different versions, one per refresh, so every refresh really writes.
    let original = recorded_response("pypi-3.3.21/rss_nosession.json");
    let mut versions = vec![bytes(&h, "feeds/news.xml").await];
    for i in 0..16 {
        let text = original.replace("First item", &format!("First item, version {i}"));
        let published = crate::helpers::without_origin_self_link(&text);
        versions.push(feed::format(&published).unwrap().to_xml().into_bytes());
        h.fake.then(ok_reply(FEED_URL, &text));
    }

    // Every PUT is held 20 ms, as a large feed over a slow link would be, and the reader counts
    // the reads that began or ended while the feed was being written: the claim is about those.
    h.s3().set_fault(Some(Fault::SlowWrites(Duration::from_millis(20))));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (h, done, versions) = (h.clone(), done.clone(), versions.clone());
        tokio::spawn(async move {
            let mut overlapping = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let writing_before = h.s3().writing("feeds/news.xml");
                let body = bytes(&h, "feeds/news.xml").await;
                let writing_after = h.s3().writing("feeds/news.xml");
                assert!(
                    versions.contains(&body),
                    "a read saw a feed that was never published whole:\n{}",
                    String::from_utf8_lossy(&body)
                );
                feed::check(std::str::from_utf8(&body).unwrap(), feed::GuardOptions::default()).unwrap();
                let status: StatusRecord =
                    serde_json::from_slice(&bytes(&h, "feeds/status/news.json").await).expect("status is valid JSON");
                assert_eq!(status.feed, "news");
                if writing_before + writing_after > 0 {
                    overlapping += 1;
                }
            }
            overlapping
        })
    };

    // One refresh of a feed runs at a time (see races.rs), so the sixteen follow each other
    // while the reader reads as fast as it can.
    for _ in 0..16 {
        assert_eq!(refresh(&h).await, Outcome::Updated);
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let overlapping = reader.await.unwrap();
    assert!(
        overlapping >= 16,
        "only {overlapping} reads overlapped one of the 16 writes"
    );
    h.s3().set_fault(None);
    assert_eq!(h.s3().puts_of("feeds/news.xml"), 17);
    let status = h.status().await;
    assert_eq!((status.outcome, status.consecutive_failures), (Recorded::Updated, 0));
    assert!(versions.contains(&bytes(&h, "feeds/news.xml").await));
}

#[tokio::test]
async fn a_redirect_is_recorded_in_the_report_and_the_status() {
    let h = TestApp::start().await;
    h.fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let report = h.refresh(cli()).await;
    assert_eq!(report.final_url, None, "no redirect, nothing recorded");
    let moved = "https://cdn.example.test/moved/rss.xml";
    let page = rss_page("Tue, 02 Jan 2024 00:00:00 GMT");
    let response = match &page {
        crate::helpers::fake_solver::Action::Reply(_, body) => serde_json::from_str::<serde_json::Value>(body).unwrap()
            ["solution"]["response"]
            .as_str()
            .unwrap()
            .to_string(),
        other => panic!("{other:?}"),
    };
    h.fake.then(ok_reply(moved, &response));
    let report = h.refresh(cli()).await;
    assert_eq!(report.final_url.as_deref(), Some(moved));
    let status: serde_json::Value = serde_json::from_slice(&h.object("status/news.json").await.unwrap()).unwrap();
    assert_eq!(status["final_url"], moved, "{status}");
    assert_eq!(status["url"], FEED_URL);
}

/// Every S3 call gives up at the refresh's deadline, not at the SDK's own 20 s/45 s, and the
/// status write keeps a grace the Lambda handler's margin covers.
#[tokio::test]
async fn a_slow_s3_gives_up_at_the_deadline() {
    assert!(flarefeed::handler::SAFETY_MARGIN >= flarefeed::refresh::STATUS_WRITE_GRACE + Duration::from_secs(1));
    let h = on_s3().await;
    h.fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    assert_eq!(refresh(&h).await, Outcome::Updated);
    let good = bytes(&h, "feeds/news.xml").await;
    h.s3().set_fault(Some(Fault::Slow(Duration::from_secs(30))));
    let started = tokio::time::Instant::now();
    let options = RefreshOptions {
        deadline: Some(started + Duration::from_secs(2)),
        ..cli()
    };
    let report = h.refresher.refresh(&h.feed, options).await;
    let took = started.elapsed();
    match report.outcome {
        Outcome::Failed { stage, error: reason } => {
            assert_eq!(stage, Stage::Status, "the status read is the first S3 call");
            assert!(reason.to_string().contains("did not answer in time"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        took < Duration::from_secs(2) + flarefeed::refresh::STATUS_WRITE_GRACE,
        "took {took:?}"
    );
    h.s3().set_fault(None);
    assert_eq!(bytes(&h, "feeds/news.xml").await, good);
}

/// `flarefeed status` without a configuration lists the records it finds; on S3 that is a
/// ListObjectsV2 of one level of `status/`, other objects left out.
#[tokio::test]
async fn recorded_statuses_lists_one_level_of_status_records_on_s3() {
    let h = on_s3().await;
    h.fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    assert_eq!(refresh(&h).await, Outcome::Updated);
    for key in [
        "feeds/status/notes.txt",
        "feeds/status/deeper/x.json",
        "feeds/other.xml",
        // The site's summary where an earlier build kept it.
        "feeds/status/index.json",
    ] {
        h.s3().put(key, b"{}".to_vec()).await;
    }
    let records = status::found(h.store.as_ref()).await.unwrap();
    let feeds: Vec<&str> = records.iter().map(|r| r.feed.as_str()).collect();
    assert_eq!(feeds, ["news"]);
    assert_eq!(
        h.store.list("status/").await.unwrap(),
        [
            "status/index.json",
            "status/news.json",
            "status/news.svg",
            "status/notes.txt"
        ]
    );
}
