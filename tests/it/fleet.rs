//! The fleet on real AWS APIs (moto's server on loopback speaks SQS and S3): a tick plans the
//! due feeds into a FIFO queue, and the worker publishes what the queue hands it.

use std::collections::BTreeSet;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use flarefeed::config::FeedConfig;
use flarefeed::fleet;
use serde_json::{Value, json};

use crate::helpers::fake_solver::error_reply;
use crate::helpers::{FEED_URL, TOKEN, TestApp, event, parts, request, rss_page};

/// Five feeds every minute (so every tick makes each due), and one a day.
fn feeds() -> Vec<FeedConfig> {
    let mut feeds: Vec<FeedConfig> = (1..=5)
        .map(|i| FeedConfig {
            interval: std::time::Duration::from_secs(60),
            ..FeedConfig::new(&format!("minutely-{i}"), FEED_URL)
        })
        .collect();
    feeds.push(FeedConfig {
        interval: std::time::Duration::from_secs(86_400),
        ..FeedConfig::new("daily", FEED_URL)
    });
    feeds
}

/// Everything in the queue now, as the event source mapping would hand it to the function:
/// an SQS event of those messages.
async fn drain(app: &TestApp) -> Vec<Value> {
    let sqs = app.moto().sqs();
    let mut records = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(app.queue_url.as_deref().unwrap())
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        if received.messages().is_empty() {
            return records;
        }
        for message in received.messages() {
            let attributes = message.attributes().unwrap();
            let attribute = |name: MessageSystemAttributeName| attributes.get(&name).cloned().unwrap_or_default();
            records.push(json!({
                "messageId": message.message_id(),
                "receiptHandle": message.receipt_handle(),
                "body": message.body(),
                "attributes": {
                    "MessageGroupId": attribute(MessageSystemAttributeName::MessageGroupId),
                    "MessageDeduplicationId": attribute(MessageSystemAttributeName::MessageDeduplicationId),
                },
                "eventSource": "aws:sqs",
            }));
            sqs.delete_message()
                .queue_url(app.queue_url.as_deref().unwrap())
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

async fn invoke(app: &flarefeed::handler::App, event: Value) -> Value {
    let response = app.serve(request(&event, None)).await.expect("the invocation succeeds");
    parts(response).await.1
}

#[tokio::test]
async fn a_tick_queues_the_due_feeds_once_and_the_worker_publishes_them() {
    let test = TestApp::builder().with_queue().feeds(feeds()).start().await;
    test.fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let app = test.app(Some(TOKEN));

    // A tick at a time the daily feed is not due.
    let daily = &test.config.feeds[5];
    let mut at = 1_795_320_060;
    while fleet::due_slot(daily, at, fleet::plan::window(test.config.fleet.tick)).is_some() {
        at += 60;
    }
    let tick = json!({"tick": time::OffsetDateTime::from_unix_timestamp(at).unwrap()
        .format(&time::format_description::well_known::Rfc3339).unwrap()});
    let planned = invoke(&app, tick.clone()).await;
    let minutely: Vec<String> = (1..=5).map(|i| format!("minutely-{i}")).collect();
    assert_eq!(planned, json!({"enqueued": 5, "feeds": minutely}));

    // The same tick again (a retried schedule): the queue drops the duplicates.
    assert_eq!(invoke(&app, tick).await["enqueued"], 5);
    let records = drain(&test).await;
    assert_eq!(records.len(), 5, "{records:#?}");
    let groups: BTreeSet<&str> = records
        .iter()
        .map(|r| r["attributes"]["MessageGroupId"].as_str().unwrap())
        .collect();
    assert_eq!(groups, minutely.iter().map(String::as_str).collect());
    for record in &records {
        let group = record["attributes"]["MessageGroupId"].as_str().unwrap();
        assert_eq!(record["body"], json!({"feed": group}).to_string());
        // `<name>-<slot>`: the feed's slot in this tick's window, on its phase.
        let dedup = record["attributes"]["MessageDeduplicationId"].as_str().unwrap();
        let slot: i64 = dedup.strip_prefix(&format!("{group}-")).unwrap().parse().unwrap();
        let feed = test.config.feeds.iter().find(|f| f.name == group).unwrap();
        assert!(at - 60 < slot && slot <= at, "{dedup} is outside the tick at {at}");
        assert_eq!(
            (slot - fleet::phase(feed) as i64).rem_euclid(60),
            0,
            "{dedup} is off the feed's phase"
        );
    }

    // The worker: one record at a time, as the event source mapping's BatchSize 1 sends them.
    for record in records {
        let reply = invoke(&app, json!({"Records": [record]})).await;
        assert_eq!(reply, json!({"batchItemFailures": []}));
    }
    for name in &minutely {
        assert!(
            test.object(&format!("{name}.xml")).await.is_some(),
            "{name} was not published"
        );
    }
    assert!(test.object("daily.xml").await.is_none());
}

#[tokio::test]
async fn a_failing_feed_is_consumed_then_backs_off() {
    let test = TestApp::builder().with_queue().feeds(feeds()).start().await;
    let app = test.app(Some(TOKEN));
    let mut sqs = event("sqs.json");
    sqs["Records"][0]["body"] = json!(r#"{"feed": "minutely-1"}"#);
    test.fake.then(error_reply(
        "Error: Error solving the challenge. Cloudflare has blocked this request.",
    ));
    assert_eq!(invoke(&app, sqs.clone()).await, json!({"batchItemFailures": []}));
    let asked = test.solver_requests();
    assert_eq!(invoke(&app, sqs).await, json!({"batchItemFailures": []}));
    assert_eq!(test.solver_requests(), asked, "a feed in backoff was fetched again");
}

#[tokio::test]
async fn a_tick_without_a_queue_fails_and_says_how_to_give_one() {
    let test = TestApp::builder().feeds(feeds()).start().await;
    let response = test.app(None).serve(request(&event("tick.json"), None)).await;
    let error = response.expect_err("a tick without a queue fails");
    assert!(error.to_string().contains("FLAREFEED_QUEUE_URL"), "{error}");
}

/// FLAREFEED_CONFIG_URL on S3 (moto): the function follows the object as it is uploaded, and an
/// invalid upload leaves the last valid configuration in use.
#[tokio::test]
async fn the_configuration_in_s3_is_followed_and_an_invalid_upload_is_refused() {
    use crate::helpers::s3_server::{BUCKET, MotoServer, S3Endpoint};
    use flarefeed::config::remote::{ConfigUrl, Watched};
    use flarefeed::deployment::Deployment;
    use flarefeed::handler::App;

    let moto = MotoServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = |feeds: &[&str]| {
        let mut text = format!(
            "[solver]\nurl = \"http://127.0.0.1:9/v1\"\n[store]\ndir = \"{}\"\n",
            dir.path().display()
        );
        for name in feeds {
            text.push_str(&format!(
                "[[feeds]]\nname = \"{name}\"\nurl = \"https://site.test/{name}\"\n"
            ));
        }
        text
    };
    let upload = |text: String| moto.put("config/flarefeed.toml", text);
    upload(config(&["one"])).await;

    let url = ConfigUrl::parse(&format!("s3://{BUCKET}/config/flarefeed.toml")).unwrap();
    let opened = Watched::open_with(url.clone(), Some(moto.client())).await.unwrap();
    let app = App::watching(
        Deployment::connect((*opened.config).clone(), None).await,
        opened.watched,
        Some(TOKEN),
        None,
    );
    let feeds = async |app: &App| {
        let mut request = event("url-status.json");
        request["rawPath"] = json!("/feeds");
        request["requestContext"]["http"]["path"] = json!("/feeds");
        let body = invoke(app, request).await;
        body.as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(feeds(&app).await, ["one"]);

    upload(config(&["one", "two"])).await;
    assert_eq!(
        feeds(&app).await,
        ["one", "two"],
        "an upload is taken at the next invocation"
    );
    upload("[[feeds]]\nname = \"Not Valid\"\n".into()).await;
    assert_eq!(
        feeds(&app).await,
        ["one", "two"],
        "an invalid upload keeps the last valid configuration"
    );
    // A cold start now runs on the last valid copy, kept beside the object, and says why.
    let copied = moto.text("config/flarefeed.toml.last-valid").await;
    assert_eq!(copied, config(&["one", "two"]));
    let cold = Watched::open_with(url.clone(), Some(moto.client())).await.unwrap();
    assert_eq!(cold.config.feed_names(), ["one", "two"]);
    let refused = cold.refused.expect("the upload was refused").to_string();
    assert!(refused.contains("feeds"), "the error says why: {refused}");

    upload(config(&["three"])).await;
    assert_eq!(feeds(&app).await, ["three"]);
}

/// Several solvers: each feed sticks to its own, and falls over to its next when that one
/// cannot be reached; the status record names the solver that answered.
#[tokio::test]
async fn feeds_stick_to_their_solver_and_fall_over_when_it_is_down() {
    use crate::helpers::fake_solver::FakeSolver;
    use flarefeed::deployment::Deployment;
    use flarefeed::refresh::RefreshOptions;
    use flarefeed::solver::{SessionPolicy, SolverPool, SolverSettings};

    let up = [FakeSolver::start().await, FakeSolver::start().await];
    for fake in &up {
        fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    }
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", listener.local_addr().unwrap())
    };
    let urls = vec![up[0].url.clone(), up[1].url.clone(), down.clone()];
    let settings = SolverSettings {
        url: urls[0].clone(),
        urls: urls.clone(),
        session: SessionPolicy::None,
        ..SolverSettings::default()
    };
    let pool = SolverPool::new(&settings);
    // The ports, and so the ranking, differ each run: pick 9 feeds that rank a live solver
    // first and 3 that rank the dead one first, so the failover is always exercised.
    let candidates = (0..).map(|i| format!("feed-{i}"));
    let (dead_first, live_first): (Vec<String>, Vec<String>) =
        candidates.take(400).partition(|name| pool.order(name)[0] == down);
    let names: Vec<String> = live_first
        .into_iter()
        .take(9)
        .chain(dead_first.into_iter().take(3))
        .collect();
    assert_eq!(
        names.len(),
        12,
        "400 names always hold 3 that rank the dead solver first"
    );
    let feeds: Vec<FeedConfig> = names.iter().map(|n| FeedConfig::new(n, FEED_URL)).collect();
    let test = TestApp::builder().feeds(feeds.clone()).start().await;
    let mut config = (*test.config).clone();
    config.solver = settings.clone();
    let deployment = Deployment::connect(config, None).await;

    let mut fell_over = 0;
    for feed in &feeds {
        let report = deployment.refresher.refresh(feed, RefreshOptions::cli(false)).await;
        let order = pool.order(&feed.name);
        let expected = if order[0] == down { order[1] } else { order[0] };
        fell_over += usize::from(order[0] == down);
        assert_eq!(report.solver.as_deref(), Some(expected), "{}: {report:?}", feed.name);
        let record: flarefeed::status::StatusRecord =
            serde_json::from_slice(&test.object(&feed.status_key()).await.unwrap()).unwrap();
        assert_eq!(record.solver.as_deref(), Some(expected));
    }
    assert!(fell_over > 0, "no feed had the dead solver first; pick more feeds");
    // Each live solver served exactly the feeds that rank it first (or second, behind the dead one).
    let served: usize = up.iter().map(|f| f.log().len()).sum();
    assert_eq!(served, feeds.len());
}

/// `flarefeed run`'s engine: 50 feeds every 2 s, 4 at once, for 7 s. Each feed is refreshed
/// about once per interval, never two at once, and the failing one backs off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_local_fleet_refreshes_each_feed_on_its_interval_one_at_a_time() {
    use flarefeed::fleet::local::{Progress, serve};
    use flarefeed::solver::{ScriptedSolver, SolverError};
    use std::sync::Arc;
    use std::time::Duration;

    let mut feeds: Vec<FeedConfig> = (0..49)
        .map(|i| FeedConfig {
            interval: Duration::from_secs(2),
            ..FeedConfig::new(&format!("feed-{i}"), &format!("https://site.test/{i}"))
        })
        .collect();
    feeds.push(FeedConfig {
        interval: Duration::from_secs(2),
        ..FeedConfig::new("sick", "https://site.test/sick")
    });
    // Every feed answers after a short while, except `sick`.
    let solver = Arc::new(ScriptedSolver::default());
    solver.delay(Duration::from_millis(150));
    let page = crate::helpers::fixtures::recorded_response("pypi-3.3.21/rss_nosession.json");
    for feed in &feeds[..49] {
        solver.always(&feed.url, &page);
    }
    solver.always_fail(
        "https://site.test/sick",
        SolverError::Blocked {
            message: "Cloudflare has blocked this request".into(),
        },
    );
    let test = TestApp::builder()
        .backend(crate::helpers::Backend::Memory)
        .feeds(feeds)
        .tick(Duration::from_secs(1))
        .solver(solver.clone())
        .start()
        .await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let progress = Arc::new(Progress::default());
    let shutdown = async move {
        let _ = stopped.await;
    };
    let running = tokio::spawn(serve(
        test.config.clone(),
        test.refresher.clone(),
        4,
        None,
        shutdown,
        progress.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(7)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the run stops once the refreshes in flight finish")
        .unwrap();

    for i in 0..49 {
        let calls = solver.calls(&format!("feed-{i}"));
        let (total, running, most) = (calls.total, calls.running, calls.most);
        // 7 s at one slot every 2 s: 3 or 4 slots, and the first tick takes the slot before it.
        assert!((3..=5).contains(&total), "feed-{i} was refreshed {total} times in 7 s");
        assert_eq!(
            (running, most),
            (0, 1),
            "feed-{i} ran twice at once, or was left running"
        );
    }
    // The failing feed: once, then 2 x 2^1 = 4 s of backoff, then at most once more.
    let sick = solver.calls("sick").total;
    assert!((1..=2).contains(&sick), "the failing feed was fetched {sick} times");
    assert!(progress.failed.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert!(progress.in_flight.lock().unwrap().is_empty());
    assert!(progress.updated.load(std::sync::atomic::Ordering::Relaxed) >= 49);
}

/// Finding 4, against the real SQS adapter: an SQS endpoint on loopback whose SendMessageBatch
/// fails chosen entries (as SQS does, in `Failed` of a 200 answer). Every batch is still sent,
/// the retryable entry is sent again and queued, and the sender's fault is reported by name.
#[tokio::test]
async fn a_partly_failed_send_message_batch_queues_the_rest_and_names_the_refused() {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use flarefeed::fleet::Due;
    use flarefeed::fleet::queue::{SqsQueue, send_all};
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    #[derive(Default)]
    struct Sqs {
        /// Entries refused per group so far.
        refused: HashMap<String, usize>,
        queued: Vec<String>,
        calls: usize,
    }
    let state = Arc::new(Mutex::new(Sqs::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let shared = state.clone();
    let server = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let shared = shared.clone();
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let shared = shared.clone();
                async move {
                    let target = request.headers()["x-amz-target"].to_str().unwrap().to_string();
                    assert_eq!(target, "AmazonSQS.SendMessageBatch");
                    let body: Value =
                        serde_json::from_slice(&request.into_body().collect().await.unwrap().to_bytes()).unwrap();
                    let mut sqs = shared.lock().unwrap();
                    sqs.calls += 1;
                    let (mut successful, mut failed) = (Vec::new(), Vec::new());
                    for entry in body["Entries"].as_array().unwrap() {
                        let (id, group) = (entry["Id"].as_str().unwrap(), entry["MessageGroupId"].as_str().unwrap());
                        let refusals = sqs.refused.entry(group.to_string()).or_default();
                        if group == "feed-flaky" && *refusals < 2 {
                            *refusals += 1;
                            failed.push(json!({"Id": id, "SenderFault": false, "Code": "InternalError", "Message": "try again"}));
                        } else if group == "feed-bad" {
                            failed.push(json!({"Id": id, "SenderFault": true, "Code": "InvalidParameterValue", "Message": "bad\nline"}));
                        } else {
                            sqs.queued.push(group.to_string());
                            successful.push(json!({"Id": id, "MessageId": format!("m-{id}"), "MD5OfMessageBody": "0", "SequenceNumber": "1"}));
                        }
                    }
                    let answer = json!({"Successful": successful, "Failed": failed}).to_string();
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .header("content-type", "application/x-amz-json-1.0")
                            .body(Full::new(Bytes::from(answer)))
                            .unwrap(),
                    )
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(socket), service));
        }
    });

    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
            aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "test"),
        ))
        .build();
    let queue = SqsQueue::with_sdk_config(&sdk, &format!("{endpoint}/123456789012/refresh.fifo"));
    // 25 feeds, three batches; the flaky one and the bad one in the first.
    let mut due: Vec<Due> = (0..23)
        .map(|i| Due {
            feed: format!("feed-{i:02}"),
            slot: 1_800_000_000,
        })
        .collect();
    due.insert(
        0,
        Due {
            feed: "feed-flaky".into(),
            slot: 1_800_000_000,
        },
    );
    due.insert(
        1,
        Due {
            feed: "feed-bad".into(),
            slot: 1_800_000_000,
        },
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let sent = send_all(&queue, &due, deadline).await;
    server.abort();

    assert_eq!(sent.not_queued.len(), 1, "{sent:?}");
    let (feed, detail) = &sent.not_queued[0];
    assert_eq!(feed, "feed-bad");
    assert_eq!(detail, "InvalidParameterValue: bad", "one line");
    assert_eq!(sent.queued.len(), 24);
    let sqs = state.lock().unwrap();
    assert!(sqs.queued.contains(&"feed-flaky".to_string()), "sent again until taken");
    assert!(sqs.queued.contains(&"feed-22".to_string()), "the last batch was sent");
    assert_eq!(sqs.calls, 3 + 2, "three batches, and the flaky entry twice more");
    let error = sent.error(&queue).unwrap().to_string();
    assert!(
        error.contains("1 of 25 due feeds were not queued") && error.contains("feed-bad"),
        "{error}"
    );
}

/// What issue 21 relies on, against moto's SQS rather than our own fake: a FIFO queue hands out
/// one message of a message group at a time. While the first message of group `a` is in flight
/// (received, not deleted), a second receive gets `b`'s message but not `a`'s second; once the
/// first is deleted, the second is delivered
/// (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-queues-understanding-logic.html).
#[tokio::test]
async fn a_fifo_group_has_one_message_in_flight_on_moto() {
    use crate::helpers::s3_server::MotoServer;
    let moto = MotoServer::start().await;
    let queue = moto.fifo_queue("groups.fifo").await;
    let sqs = moto.sqs();
    for (group, id) in [("a", "a-1"), ("a", "a-2"), ("b", "b-1")] {
        sqs.send_message()
            .queue_url(&queue)
            .message_body(id)
            .message_group_id(group)
            .message_deduplication_id(id)
            .send()
            .await
            .unwrap();
    }
    let receive = async || {
        sqs.receive_message()
            .queue_url(&queue)
            .max_number_of_messages(1)
            .visibility_timeout(60)
            .send()
            .await
            .unwrap()
            .messages()
            .to_vec()
    };
    let first = receive().await;
    assert_eq!(first.iter().map(|m| m.body().unwrap()).collect::<Vec<_>>(), ["a-1"]);
    let second = receive().await;
    assert_eq!(
        second.iter().map(|m| m.body().unwrap()).collect::<Vec<_>>(),
        ["b-1"],
        "a's second message waits while its first is in flight"
    );
    assert!(
        receive().await.is_empty(),
        "nothing of a's group while a-1 is in flight"
    );
    sqs.delete_message()
        .queue_url(&queue)
        .receipt_handle(first[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    let third = receive().await;
    assert_eq!(third.iter().map(|m| m.body().unwrap()).collect::<Vec<_>>(), ["a-2"]);
}

/// Issue 27: a pool learns which solver gets past a site's wall. One solver answers "ok" with
/// the Cloudflare challenge still in the page (as FlareSolverr does on some Turnstile pages),
/// the other solves it. Every feed is published, those that rank the walled solver first going
/// on to the other within the same refresh; the records and the site name the solver that got
/// past and the one that did not. A second refresh, in a new process (its pool knows nothing),
/// never asks the walled solver: each record names the solver that got the feed.
#[tokio::test]
async fn a_pool_passes_over_a_walled_solver_and_remembers_which_one_gets_past() {
    use crate::helpers::fake_solver::{Action, FakeSolver};
    use crate::helpers::fixtures::fixture;
    use flarefeed::deployment::Deployment;
    use flarefeed::refresh::{Outcome, RefreshOptions};
    use flarefeed::solver::{SessionPolicy, SolverPool, SolverSettings};

    let (walled, solving) = (FakeSolver::start().await, FakeSolver::start().await);
    let challenge = fixture("bad/cf-challenge.json");
    let settings = SolverSettings {
        url: walled.url.clone(),
        urls: vec![walled.url.clone(), solving.url.clone()],
        session: SessionPolicy::None,
        ..SolverSettings::default()
    };
    let pool = SolverPool::new(&settings);
    // The ranking depends on the ports: take 3 feeds that rank the walled solver first and 3
    // that rank the solving one first, each on a site of its own.
    let (walled_first, solving_first): (Vec<String>, Vec<String>) = (0..)
        .map(|i| format!("feed-{i}"))
        .take(200)
        .partition(|name| pool.order(name)[0] == walled.url);
    let names: Vec<String> = walled_first
        .into_iter()
        .take(3)
        .chain(solving_first.into_iter().take(3))
        .collect();
    assert_eq!(names.len(), 6);
    let feeds: Vec<FeedConfig> = names
        .iter()
        .map(|name| FeedConfig::new(name, &format!("https://{name}.example.test/rss.xml")))
        .collect();
    for feed in &feeds {
        walled.page(&feed.url, Action::Reply(200, challenge.clone()));
        solving.page(&feed.url, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    }
    let test = TestApp::builder().feeds(feeds.clone()).start().await;
    let mut config = (*test.config).clone();
    config.solver = settings.clone();

    let first = Deployment::connect(config.clone(), None).await;
    for feed in &feeds {
        let report = first.refresher.refresh(feed, RefreshOptions::cli(false)).await;
        assert_eq!(report.outcome, Outcome::Updated, "{}: {report:?}", feed.name);
        assert_eq!(report.solver.as_deref(), Some(solving.url.as_str()), "{}", feed.name);
        let record: flarefeed::status::StatusRecord =
            serde_json::from_slice(&test.object(&feed.status_key()).await.unwrap()).unwrap();
        let walled_first = pool.order(&feed.name)[0] == walled.url;
        let expected: Vec<String> = if walled_first { vec![walled.url.clone()] } else { vec![] };
        assert_eq!(record.passed_over, expected, "{}", feed.name);
    }
    assert_eq!(
        walled.log().len(),
        3,
        "the walled solver was asked by the feeds that rank it first"
    );
    let page = String::from_utf8(test.object("index.html").await.unwrap()).unwrap();
    assert!(
        page.contains("past a wall that stopped 127.0.0.1"),
        "the site says which solver got past"
    );

    // Another feed of a site the pool has learnt, new to the records, that ranks the walled
    // solver first: the solver that got past that site's wall is asked first.
    let extra = (200..)
        .map(|i| format!("feed-{i}"))
        .find(|name| pool.order(name)[0] == walled.url)
        .unwrap();
    let site = reqwest::Url::parse(&feeds[0].url).unwrap();
    let extra = FeedConfig::new(&extra, &format!("https://{}/other.xml", site.host_str().unwrap()));
    solving.page(&extra.url, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let report = first.refresher.refresh(&extra, RefreshOptions::cli(false)).await;
    assert_eq!(report.solver.as_deref(), Some(solving.url.as_str()), "{report:?}");
    assert_eq!(
        walled.log().len(),
        3,
        "the pool asked the walled solver for a site it learnt"
    );

    // A new process: its pool has learnt nothing, the records say which solver got each feed.
    // Twice: a feed stays with the solver that got past its wall while that one gets it.
    let second = Deployment::connect(config, None).await;
    for feed in feeds.iter().chain(&feeds) {
        let report = second.refresher.refresh(feed, RefreshOptions::cli(false)).await;
        assert_eq!(report.outcome, Outcome::Unchanged, "{}: {report:?}", feed.name);
        assert_eq!(report.solver.as_deref(), Some(solving.url.as_str()), "{}", feed.name);
    }
    assert_eq!(walled.log().len(), 3, "the second refresh asked the walled solver");
}

/// Issue 27, finding 12, on moto: an environment that read an older configuration never
/// writes it over the last valid copy of one uploaded later. Here the copy already holds a
/// configuration uploaded after the one this cold start reads (as a faster environment that
/// read the newer upload left it): the copy stands, where it was overwritten with the older one.
#[tokio::test]
async fn an_older_configuration_is_never_written_over_a_newer_copy() {
    use crate::helpers::s3_server::{BUCKET, MotoServer, S3Endpoint};
    use flarefeed::config::remote::{ConfigUrl, Watched};
    let moto = MotoServer::start().await;
    let config = |name: &str| {
        format!(
            "[solver]\nurl = \"http://127.0.0.1:9/v1\"\n[store]\ndir = \"out\"\n[[feeds]]\nname = \"{name}\"\nurl = \"https://site.test/{name}\"\n"
        )
    };
    moto.put("config/flarefeed.toml", config("older")).await;
    let later = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let newer = config("newer");
    moto.client()
        .put_object()
        .bucket(BUCKET)
        .key("config/flarefeed.toml.last-valid")
        .metadata("flarefeed-source-version", "\"etag-of-the-newer-upload\"")
        .metadata("flarefeed-source-uploaded", later.to_string())
        .body(newer.clone().into_bytes().into())
        .send()
        .await
        .unwrap();
    let url = ConfigUrl::parse(&format!("s3://{BUCKET}/config/flarefeed.toml")).unwrap();
    let opened = Watched::open_with(url, Some(moto.client())).await.unwrap();
    assert_eq!(opened.config.feed_names(), ["older"], "it runs on what it read");
    let copied = moto.text("config/flarefeed.toml.last-valid").await;
    assert_eq!(copied, newer, "the newer copy was overwritten");
}
