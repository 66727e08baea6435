//! The Lambda handler, driven by the sample events in `events/` and by variations of them.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use flarefeed::config::FeedConfig;
use flarefeed::handler::{App, HandlerError};
use serde_json::{Value, json};

use crate::helpers::fake_solver::{Action, error_reply};
use crate::helpers::{DEMO_URL, TOKEN, TestApp, event, parts, request, rss_page};

/// The function over a folder store (prefix `p/`) with `demo`, the events' feed, and
/// optionally a second feed, with `token` as FLAREFEED_TOKEN.
struct Harness {
    test: TestApp,
    app: App,
}

impl Harness {
    async fn start(token: Option<&str>, two_feeds: bool) -> Self {
        let mut feeds = vec![FeedConfig::new("demo", DEMO_URL)];
        if two_feeds {
            feeds.push(FeedConfig::new("other", "https://other.example.test/feed.xml"));
        }
        let test = TestApp::builder().prefix("p/").feeds(feeds).start().await;
        test.fake.page(DEMO_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
        Self {
            app: test.app(token),
            test,
        }
    }

    fn dir(&self) -> &std::path::Path {
        self.test.dir()
    }

    /// A function URL request: always a response, errors included.
    async fn http(&self, event: Value) -> (u16, Value, HeaderMap) {
        let response = self
            .app
            .serve(request(&event, None))
            .await
            .expect("HTTP requests always get a response");
        let (status, body, headers) = parts(response).await;
        assert_eq!(headers["content-type"], "application/json");
        (status, body, headers)
    }

    /// Any other event: the report, or the invocation's error.
    async fn invoke(&self, event: Value, deadline_ms: Option<u64>) -> Result<Value, HandlerError> {
        let response = self.app.serve(request(&event, deadline_ms)).await?;
        let (status, body, _) = parts(response).await;
        assert_eq!(status, 200);
        Ok(body)
    }
}

fn with_path(mut event: Value, method: &str, path: &str) -> Value {
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
    event["requestContext"]["http"]["method"] = json!(method);
    event
}

#[tokio::test]
async fn every_sample_event_does_what_its_name_says() {
    let h = Harness::start(Some(TOKEN), false).await;
    let mut names: Vec<String> = std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "eventbridge-envelope.json",
            "scheduled.json",
            "sqs.json",
            "tick.json",
            "url-health.json",
            "url-refresh-unauthorized.json",
            "url-refresh.json",
            "url-status.json",
            "url-unknown-feed.json"
        ],
        "a new sample event needs a case here"
    );

    let (status, body, _) = h.http(event("url-health.json")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body, headers) = h.http(event("url-refresh-unauthorized.json")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert!(body["error"].as_str().unwrap().contains("Bearer"));
    assert!(
        !h.dir().join("p/demo.xml").exists(),
        "an unauthorized request must not refresh"
    );
    let (status, body, _) = h.http(event("url-refresh.json")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "updated");
    assert!(h.dir().join("p/demo.xml").exists());
    let (status, body, _) = h.http(event("url-unknown-feed.json")).await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("configured: demo"));

    let scheduled = h.invoke(event("scheduled.json"), None).await.unwrap();
    assert_eq!(scheduled["outcome"], "unchanged");
    let queued = h.invoke(event("sqs.json"), None).await.unwrap();
    assert_eq!(queued, json!({"batchItemFailures": []}));
    // A tick needs the fleet's queue, which this function has not (see fleet.rs for one that has).
    let tick = h.invoke(event("tick.json"), None).await.unwrap_err();
    assert!(matches!(tick, HandlerError::Queue(_)), "{tick}");
    let envelope = h.invoke(event("eventbridge-envelope.json"), None).await.unwrap();
    assert_eq!(envelope["outcome"], "unchanged");
    assert_eq!(envelope["feed"], "demo");

    let (status, body, _) = h.http(event("url-status.json")).await;
    assert_eq!(status, 200);
    assert_eq!(body[0]["feed"], "demo");
    assert_eq!(body[0]["outcome"], "unchanged");
    assert_eq!(body[0]["consecutive_failures"], 0);
}

#[tokio::test]
async fn routes_methods_and_errors_are_json() {
    let h = Harness::start(Some(TOKEN), false).await;
    let (status, body, headers) = h
        .http(with_path(event("url-refresh.json"), "GET", "/refresh/demo"))
        .await;
    assert_eq!((status, headers["allow"].to_str().ok()), (405, Some("POST")));
    assert!(body["error"].is_string());
    let (status, _, _) = h.http(with_path(event("url-status.json"), "POST", "/status")).await;
    assert_eq!(status, 405);
    let (status, body, _) = h.http(with_path(event("url-status.json"), "GET", "/nowhere")).await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("no such route"));
    let (status, body, _) = h.http(with_path(event("url-status.json"), "GET", "/feeds")).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!([{"name": "demo", "key": "p/demo.xml"}]));
    let (status, _, _) = h
        .http(with_path(event("url-refresh-unauthorized.json"), "GET", "/feeds"))
        .await;
    assert_eq!(status, 401);
    let mut wrong = event("url-status.json");
    wrong["headers"]["authorization"] = json!("Bearer not-the-token");
    assert_eq!(h.http(wrong).await.0, 401);
}

/// Routes take plain `http::Request`s too: what lambda_http builds, without its extensions.
#[tokio::test]
async fn routes_serve_requests_built_by_hand() {
    let h = Harness::start(Some(TOKEN), false).await;
    let call = |method: &str, uri: &str, token: Option<&str>| {
        let mut builder = axum::http::Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("bearer {token}"));
        }
        let request = builder.body(lambda_http::Body::Empty).unwrap();
        async { parts(h.app.serve(request).await.expect("requests always get a response")).await }
    };
    let (status, body, headers) = call("DELETE", "/refresh/demo", Some(TOKEN)).await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(headers.get_all("allow").iter().collect::<Vec<_>>(), ["POST"]);
    assert_eq!(body["error"], "DELETE is not allowed on /refresh/demo; use POST");
    assert_eq!(
        call("GET", "/health/", None).await.0,
        200,
        "a trailing slash is the same route"
    );
    assert_eq!(call("GET", "/status", None).await.0, 401);
    let (status, body, _) = call("GET", "/status/?x=1", Some(TOKEN)).await;
    assert_eq!((status, body[0]["outcome"].as_str()), (200, Some("never")));
    let (status, body, _) = call("POST", "/refresh/demo", Some(TOKEN)).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("updated")), "{body}");
    assert_eq!(call("POST", "/refresh/demo", Some(TOKEN)).await.0, 429);
    let (status, body, _) = call("POST", "/refresh/demo?force=true", Some(TOKEN)).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("unchanged")), "{body}");
    let (status, body, _) = call("POST", "/refresh/a/b", Some(TOKEN)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(call("GET", "/", None).await.0, 404);
}

#[tokio::test]
async fn http_refresh_maps_outcomes_to_statuses() {
    let h = Harness::start(Some(TOKEN), false).await;
    let (status, body, _) = h.http(event("url-refresh.json")).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("updated")));

    let (status, body, headers) = h.http(event("url-refresh.json")).await;
    assert_eq!(status, 429, "{body}");
    assert!(headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);

    let mut forced = event("url-refresh.json");
    forced["rawQueryString"] = json!("force=1");
    forced["queryStringParameters"] = json!({"force": "1"});
    let (status, body, _) = h.http(forced.clone()).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("unchanged")));

    h.test.fake.then(error_reply(
        "Error: Error solving the challenge. Timeout after 60.0 seconds.",
    ));
    let (status, body, _) = h.http(forced).await;
    assert_eq!(status, 502);
    assert_eq!(body["stage"], "solver");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("could not solve the challenge")
    );
}

/// While a refresh is in flight, an HTTP refresh of the same feed gets 409 with Retry-After,
/// even forced, and a scheduled one is skipped without failing the invocation.
#[tokio::test]
async fn a_refresh_in_flight_answers_409_and_skips_schedules() {
    let h = Arc::new(Harness::start(Some(TOKEN), false).await);
    let gate = crate::helpers::fake_solver::Gate::default();
    h.test.fake.then(gate.hold(rss_page("Mon, 01 Jan 2024 00:00:00 GMT")));
    let first = {
        let h = h.clone();
        tokio::spawn(async move { h.http(event("url-refresh.json")).await })
    };
    h.test.fake.requests_reach(1).await;

    let mut forced = event("url-refresh.json");
    forced["rawQueryString"] = json!("force=1");
    forced["queryStringParameters"] = json!({"force": "1"});
    let (status, body, headers) = h.http(forced).await;
    assert_eq!(status, 409, "{body}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(body["retry_after_s"], retry);
    assert!(
        body["error"].as_str().unwrap().contains("holds the feed until"),
        "{body}"
    );
    assert!(body["holder"].as_str().unwrap().contains("pid"), "{body}");
    assert!(body["in_flight_since"].is_string(), "{body}");

    let scheduled = h.invoke(event("scheduled.json"), None).await.unwrap();
    assert_eq!(scheduled["outcome"], "busy", "{scheduled}");

    let (status, body, _) = h.http(with_path(event("url-status.json"), "GET", "/status")).await;
    assert_eq!(status, 200);
    assert_eq!(body[0]["in_flight"]["trigger"], "http", "{body}");

    gate.open();
    let (status, body, _) = first.await.unwrap();
    assert_eq!((status, body["outcome"].as_str()), (200, Some("updated")));
    assert_eq!(
        h.test.fake.log().iter().filter(|c| c["cmd"] == "request.get").count(),
        1
    );
}

#[tokio::test]
async fn a_request_cannot_choose_the_url_fetched() {
    let h = Harness::start(Some(TOKEN), false).await;
    let mut sneaky = event("url-refresh.json");
    sneaky["rawQueryString"] = json!("url=https://evil.example.test/&force=1");
    sneaky["queryStringParameters"] = json!({"url": "https://evil.example.test/", "force": "1"});
    sneaky["body"] = json!("{\"url\": \"https://evil.example.test/\"}");
    assert_eq!(h.http(sneaky).await.0, 200);
    let fetched: Vec<Value> = h
        .test
        .fake
        .log()
        .into_iter()
        .filter(|c| c["cmd"] == "request.get")
        .map(|c| c["url"].clone())
        .collect();
    assert_eq!(fetched, [json!(DEMO_URL)]);
}

#[tokio::test]
async fn without_a_token_only_iam_signed_requests_pass() {
    let h = Harness::start(None, false).await;
    let (status, body, _) = h.http(event("url-status.json")).await;
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("AWS_IAM"));
    let mut signed = event("url-status.json");
    signed["requestContext"]["authorizer"] = json!({"iam": {"accessKey": "AKIA", "accountId": "123456789012", "callerId": "x", "userArn": "arn:aws:iam::123456789012:user/op", "userId": "x"}});
    assert_eq!(h.http(signed).await.0, 200);
    assert_eq!(h.http(event("url-health.json")).await.0, 200);
}

#[tokio::test]
async fn scheduled_events_name_their_feed_or_fail_loudly() {
    let h = Harness::start(Some(TOKEN), true).await;
    let unnamed = h.invoke(json!({}), None).await.unwrap_err();
    assert!(
        matches!(unnamed, HandlerError::FeedNotNamed { count: 2, .. }),
        "{unnamed}"
    );
    assert!(unnamed.to_string().contains("demo, other"));
    let unknown = h.invoke(json!({"feed": "nope"}), None).await.unwrap_err();
    assert!(matches!(unknown, HandlerError::UnknownFeed { .. }));
    h.test.fake.then(error_reply(
        "Error: Error solving the challenge. Cloudflare has blocked this request.",
    ));
    let failed = h.invoke(event("scheduled.json"), None).await.unwrap_err();
    assert!(
        failed
            .to_string()
            .starts_with("refresh of demo failed at solver: Cloudflare blocked FlareSolverr"),
        "{failed}"
    );
    let diagnostic: lambda_http::lambda_runtime::Diagnostic = failed.into();
    assert_eq!(diagnostic.error_type, "flarefeed.RefreshFailed");

    let single = Harness::start(Some(TOKEN), false).await;
    assert_eq!(single.invoke(json!({}), None).await.unwrap()["feed"], "demo");
}

#[tokio::test]
async fn the_lambda_deadline_bounds_the_solver() {
    let h = Harness::start(Some(TOKEN), false).await;
    h.test.fake.then(Action::Hang);
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let started = std::time::Instant::now();
    let error = h
        .invoke(event("scheduled.json"), Some(now_ms + 12_000))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("did not answer"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(11),
        "the safety margin was not kept: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_emulators_constant_deadline_is_not_taken_for_a_spent_one() {
    let h = Harness::start(Some(TOKEN), false).await;
    // cargo-lambda's `watch` sends lambda-runtime-deadline-ms: 600000 on every invocation.
    let report = h.invoke(event("scheduled.json"), Some(600_000)).await.unwrap();
    assert_eq!(report["outcome"], "updated");
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let spent = h
        .invoke(event("scheduled.json"), Some(now_ms - 1_000))
        .await
        .unwrap_err();
    assert!(
        spent.to_string().contains("raise the Lambda function's timeout"),
        "{spent}"
    );
}

#[tokio::test]
async fn auth_edge_cases_do_not_lock_people_out() {
    // A configured token with a trailing newline (from `echo` or a secrets file) still matches.
    let h = Harness::start(Some(&format!("{TOKEN}\n")), false).await;
    assert_eq!(h.http(event("url-status.json")).await.0, 200);
    // The scheme is case-insensitive (RFC 7235 section 2.1).
    for scheme in ["BEARER", "bearer", "BeArEr"] {
        let mut request = event("url-status.json");
        request["headers"]["authorization"] = json!(format!("{scheme} {TOKEN}"));
        assert_eq!(h.http(request).await.0, 200, "{scheme}");
    }
    let mut basic = event("url-status.json");
    basic["headers"]["authorization"] = json!(format!("Basic {TOKEN}"));
    assert_eq!(h.http(basic).await.0, 401);
    // With AuthType AWS_IAM and a token both set, a SigV4-signed request carries the signature
    // in Authorization, never the token: Lambda's IAM check is enough.
    let mut signed = event("url-status.json");
    signed["headers"]["authorization"] = json!(
        "AWS4-HMAC-SHA256 Credential=AKIA/20261122/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"
    );
    signed["requestContext"]["authorizer"] = json!({"iam": {"accessKey": "AKIA", "accountId": "123456789012", "callerId": "x", "userArn": "arn:aws:iam::123456789012:user/op", "userId": "x"}});
    assert_eq!(h.http(signed).await.0, 200);
}

/// The fleet's worker: one refresh per record; listed for a retry are only the records that
/// were not attempted or whose outcome could not be recorded.
#[tokio::test]
async fn queued_records_are_refreshed_and_only_unattempted_ones_come_back() {
    let h = Harness::start(Some(TOKEN), true).await;
    let mut batch = event("sqs.json");
    let template = batch["Records"][0].clone();
    let record = |id: &str, body: &str| {
        let mut record = template.clone();
        record["messageId"] = json!(id);
        record["body"] = json!(body);
        record
    };
    batch["Records"] = json!([
        record("good", r#"{"feed": "demo"}"#),
        record("unknown", r#"{"feed": "nope"}"#),
        record("garbled", "demo"),
        record("unnamed", "{}"),
    ]);
    let reply = h.invoke(batch.clone(), None).await.unwrap();
    assert_eq!(
        reply,
        json!({"batchItemFailures": [
            {"itemIdentifier": "unknown"}, {"itemIdentifier": "garbled"}, {"itemIdentifier": "unnamed"}
        ]})
    );
    assert!(h.dir().join("p/demo.xml").exists());

    // A failure that was recorded is consumed; the next queued refresh backs off without
    // asking the solver.
    h.test.fake.then(error_reply(
        "Error: Error solving the challenge. Cloudflare has blocked this request.",
    ));
    batch["Records"] = json!([record("failing", r#"{"feed": "demo"}"#)]);
    assert_eq!(
        h.invoke(batch.clone(), None).await.unwrap(),
        json!({"batchItemFailures": []})
    );
    let asked = h.test.solver_requests();
    assert_eq!(h.invoke(batch, None).await.unwrap(), json!({"batchItemFailures": []}));
    assert_eq!(h.test.solver_requests(), asked, "a feed backing off was fetched");
    let record = h.test.status().await;
    assert_eq!(record.consecutive_failures, 1);
}
