//! The real binary as a Lambda function, against a Runtime API emulator on 127.0.0.1.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlResponse;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Notify, mpsc};

use crate::helpers::fake_solver::FakeSolver;
use crate::helpers::rss_page;
use crate::helpers::s3_server::{BUCKET, MotoServer, S3Endpoint};
use crate::helpers::{DEMO_URL, TOKEN, event};

/// What the function answered for one invocation.
#[derive(Debug)]
enum Answer {
    Response(Value),
    Error(Value),
}

#[derive(Default)]
struct Shared {
    answers: std::sync::Mutex<HashMap<String, Answer>>,
    init_error: std::sync::Mutex<Option<String>>,
    answered: Notify,
}

/// The Runtime API: `next` hands out queued events; `response`/`error` record the answer.
struct RuntimeApi {
    address: String,
    queue: mpsc::UnboundedSender<(String, Value)>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RuntimeApi {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (queue, receiver) = mpsc::unbounded_channel::<(String, Value)>();
        let receiver = Arc::new(Mutex::new(receiver));
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let _ = socket.set_nodelay(true);
                let receiver = receiver.clone();
                let shared = state.clone();
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let receiver = receiver.clone();
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(route(request, receiver, shared).await) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Self {
            address,
            queue,
            shared,
            task,
        }
    }

    async fn invoke(&self, id: &str, payload: Value) -> Answer {
        self.queue.send((id.to_string(), payload)).unwrap();
        let wait = async {
            loop {
                let notified = self.shared.answered.notified();
                if let Some(answer) = self.shared.answers.lock().unwrap().remove(id) {
                    return answer;
                }
                if let Some(error) = self.shared.init_error.lock().unwrap().clone() {
                    panic!("the function failed to start: {error}");
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .expect("the function answered in time")
    }
}

async fn route(
    request: Request<hyper::body::Incoming>,
    receiver: Arc<Mutex<mpsc::UnboundedReceiver<(String, Value)>>>,
    shared: Arc<Shared>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let parsed = || serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let accepted = || {
        Response::builder()
            .status(202)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    };
    if path == "/2018-06-01/runtime/invocation/next" {
        let (id, payload) = receiver
            .lock()
            .await
            .recv()
            .await
            .expect("the test keeps the queue open");
        let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 60_000;
        return Response::builder()
            .header("lambda-runtime-aws-request-id", id)
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:eu-west-1:123456789012:function:flarefeed",
            )
            .header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(payload.to_string())))
            .unwrap();
    }
    if path == "/2018-06-01/runtime/init/error" {
        *shared.init_error.lock().unwrap() = Some(String::from_utf8_lossy(&body).into_owned());
        shared.answered.notify_waiters();
        return accepted();
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let ["2018-06-01", "runtime", "invocation", id, kind] = parts.as_slice() {
        let answer = if *kind == "response" {
            Answer::Response(parsed())
        } else {
            Answer::Error(parsed())
        };
        shared.answers.lock().unwrap().insert(id.to_string(), answer);
        shared.answered.notify_waiters();
        return accepted();
    }
    Response::builder().status(404).body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn the_binary_serves_schedules_and_function_urls() {
    let Demo { fake, api, store } = Demo::start().await;
    let mut function = spawn_function(&api, &fake, store.path(), "flarefeed=info")
        .spawn()
        .unwrap();

    // lambda_http's pass-through rule: the reply body must be JSON text, or the caller gets
    // null without a word.
    match api.invoke("scheduled-1", event("scheduled.json")).await {
        Answer::Response(report) => {
            assert!(
                report.is_object(),
                "a pass-through reply must reach the caller as JSON: {report}"
            );
            assert_eq!(report["outcome"], "updated", "{report}");
        }
        other => panic!("{other:?}"),
    }
    assert!(store.path().join("demo.xml").exists());
    assert!(store.path().join("status/demo.json").exists());

    // lambda_http's HTTP rule: an error is an Ok response; an Err would reach the caller as
    // Lambda's bare 502.
    for (id, name, status) in [
        ("url-401", "url-refresh-unauthorized.json", 401),
        ("url-404", "url-unknown-feed.json", 404),
        ("url-health", "url-health.json", 200),
    ] {
        match api.invoke(id, event(name)).await {
            Answer::Response(reply) => {
                assert_eq!(reply["statusCode"], status, "{reply}");
                // What Lambda and cargo-lambda read: the function URL response type.
                let typed: LambdaFunctionUrlResponse = serde_json::from_value(reply.clone()).unwrap();
                assert_eq!(typed.headers["content-type"], "application/json");
                let body: Value = serde_json::from_str(typed.body.as_deref().unwrap()).unwrap();
                assert!(body.is_object(), "{reply}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    match api.invoke("url-200", event("url-refresh.json")).await {
        Answer::Response(reply) => {
            assert_eq!(reply["statusCode"], 200, "{reply}");
            let body: Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
            assert_eq!(body["outcome"], "unchanged");
        }
        other => panic!("{other:?}"),
    }

    match api.invoke("queued", event("sqs.json")).await {
        Answer::Response(reply) => assert_eq!(reply, serde_json::json!({"batchItemFailures": []})),
        other => panic!("{other:?}"),
    }
    fake.then(crate::helpers::fake_solver::error_reply(
        "Error: Error solving the challenge. Timeout after 60.0 seconds.",
    ));
    let bad_event = api.invoke("bad-event", serde_json::json!({"feed": 1})).await;
    assert_failed(bad_event, "flarefeed.BadEvent", "expected a string");
    let failing = api.invoke("scheduled-failing", event("scheduled.json")).await;
    assert_failed(failing, "flarefeed.RefreshFailed", "failed at solver");
    function.kill().await.unwrap();
}

/// The function as deployed with a fleet: its configuration in `s3://BUCKET/flarefeed.toml` on
/// `moto`, reached at `endpoint` (moto's, or a proxy in front of it), and the fleet's `queue`.
fn deployed_function(
    api: &RuntimeApi,
    fake: &FakeSolver,
    dir: &std::path::Path,
    (moto, endpoint): (&MotoServer, &str),
    queue: &str,
) -> tokio::process::Command {
    let mut function = spawn_function(api, fake, dir, "flarefeed=info");
    function
        .env_remove("FLAREFEED_CONFIG")
        .env("FLAREFEED_CONFIG_URL", format!("s3://{BUCKET}/flarefeed.toml"))
        .env("FLAREFEED_QUEUE_URL", queue)
        .env("AWS_ENDPOINT_URL", endpoint)
        .envs(moto.env());
    function
}

/// What a function under test runs on: a fake solver serving the demo feed, the Runtime API
/// emulator, and a folder for the store.
struct Demo {
    fake: FakeSolver,
    api: RuntimeApi,
    store: tempfile::TempDir,
}

impl Demo {
    async fn start() -> Self {
        let fake = FakeSolver::start().await;
        fake.page(DEMO_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
        Self {
            fake,
            api: RuntimeApi::start().await,
            store: tempfile::tempdir().unwrap(),
        }
    }
}

/// An invocation that failed with Lambda's `errorType` `error_type`, its message saying `says`.
#[track_caller]
fn assert_failed(answer: Answer, error_type: &str, says: &str) {
    match answer {
        Answer::Error(error) => {
            assert_eq!(error["errorType"], error_type, "{error}");
            assert!(error["errorMessage"].as_str().unwrap().contains(says), "{error}");
        }
        other => panic!("{other:?}"),
    }
}

/// The release-less binary as a Lambda function against `api`, with a folder store in `dir`.
fn spawn_function(
    api: &RuntimeApi,
    fake: &FakeSolver,
    dir: &std::path::Path,
    rust_log: &str,
) -> tokio::process::Command {
    let config = format!(
        "[solver]\nurl = \"{}\"\n[store]\ndir = \"{}\"\n[[feeds]]\nname = \"demo\"\nurl = \"{DEMO_URL}\"\nmin_interval_s = 0\n",
        fake.url,
        dir.display()
    );
    let mut command = crate::helpers::flarefeed_async(dir);
    command
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "flarefeed")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/flarefeed")
        .env("FLAREFEED_CONFIG", config)
        .env("FLAREFEED_TOKEN", TOKEN)
        .env("RUST_LOG", rust_log)
        .kill_on_drop(true);
    command
}

/// lambda_runtime logs every raw event at TRACE, and a function URL event carries the bearer
/// token; the function's logs must not, whatever RUST_LOG says.
#[tokio::test]
async fn the_token_never_reaches_the_logs_even_at_trace() {
    let Demo { fake, api, store } = Demo::start().await;
    let mut function = spawn_function(&api, &fake, store.path(), "trace")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    match api.invoke("url-200", event("url-refresh.json")).await {
        Answer::Response(reply) => assert_eq!(reply["statusCode"], 200, "{reply}"),
        other => panic!("{other:?}"),
    }
    function.start_kill().unwrap();
    let out = function.wait_with_output().await.unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "the logs are verbose:\n{logs}"
    );
    assert!(!logs.contains(TOKEN), "the token is in the logs:\n{logs}");
    assert!(!logs.contains('\u{1b}'), "CloudWatch would show escape codes:\n{logs}");
}

/// Each refresh the function makes prints one CloudWatch EMF line on stdout: a JSON object on a
/// line of its own, with every metric it declares at its root.
#[tokio::test]
async fn each_refresh_prints_one_valid_emf_line() {
    let Demo { fake, api, store } = Demo::start().await;
    let mut function = spawn_function(&api, &fake, store.path(), "flarefeed=info")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for id in ["first", "second"] {
        assert!(matches!(
            api.invoke(id, event("scheduled.json")).await,
            Answer::Response(_)
        ));
    }
    assert!(matches!(
        api.invoke("health", event("url-health.json")).await,
        Answer::Response(_)
    ));
    function.start_kill().unwrap();
    let out = function.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let documents: Vec<Value> = stdout
        .lines()
        .filter(|line| line.contains("\"_aws\""))
        .map(|line| serde_json::from_str(line).expect("an EMF line is a JSON object and nothing else"))
        .collect();
    assert_eq!(documents.len(), 2, "one line per refresh, none for /health:\n{stdout}");
    for (document, published) in documents.iter().zip([1, 0]) {
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert!(document["_aws"]["Timestamp"].is_i64());
        assert_eq!(directive["Namespace"], "flarefeed");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Feed"], []]));
        assert_eq!(document["Feed"], "demo");
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(document[name].is_number(), "{name} is declared but missing: {document}");
            assert!(metric["Unit"].is_string());
        }
        assert_eq!(document["Published"], published, "{document}");
        assert_eq!(document["Failed"], 0);
        assert!(document["StaleSeconds"].as_u64().unwrap() < 60);
    }
}

/// The fleet as deployed, with the real binary: configuration from S3 (FLAREFEED_CONFIG_URL),
/// a tick that queues the due feeds in an SQS FIFO queue, and the queue's records published to
/// S3, all on moto's server through the AWS SDK's default chain (AWS_ENDPOINT_URL).
#[tokio::test]
async fn the_binary_runs_the_fleet_on_sqs_and_s3() {
    let fake = FakeSolver::start().await;
    fake.page(DEMO_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let moto = MotoServer::start().await;
    let queue = moto.fifo_queue("fleet.fifo").await;
    let config = |names: &[&str]| {
        let mut text = format!(
            "[solver]\nurl = \"{}\"\nsession = \"none\"\n[store]\nbucket = \"{BUCKET}\"\nendpoint = \"{}\"\npath_style = true\n",
            fake.url, moto.endpoint
        );
        for name in names {
            text.push_str(&format!(
                "[[feeds]]\nname = \"{name}\"\nurl = \"{DEMO_URL}\"\ninterval = \"1m\"\n"
            ));
        }
        text
    };
    let upload = async |text: String| moto.put("flarefeed.toml", text).await;
    upload(config(&["a", "b", "c"])).await;

    let api = RuntimeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut function = deployed_function(&api, &fake, dir.path(), (&moto, &moto.endpoint), &queue);
    // Every invocation checks the object, so that an upload is taken at the next one.
    function.env("FLAREFEED_CONFIG_CHECK_S", "0");
    let mut function = function.spawn().unwrap();

    let tick = async |id: &str| api.invoke(id, serde_json::json!({"tick": true})).await;
    match tick("tick-1").await {
        Answer::Response(reply) => assert_eq!(reply["enqueued"], 3, "{reply}"),
        other => panic!("{other:?}"),
    }
    let received = moto.receive(&queue).await;
    assert_eq!(received.len(), 3);
    for (i, message) in received.iter().enumerate() {
        let event = serde_json::json!({"Records": [{
            "messageId": message.message_id(),
            "body": message.body(),
            "eventSource": "aws:sqs",
        }]});
        match api.invoke(&format!("worker-{i}"), event).await {
            Answer::Response(reply) => assert_eq!(reply, serde_json::json!({"batchItemFailures": []})),
            other => panic!("{other:?}"),
        }
    }
    for name in ["a", "b", "c"] {
        let object = moto
            .client()
            .head_object()
            .bucket(BUCKET)
            .key(format!("{name}.xml"))
            .send()
            .await;
        assert!(object.is_ok(), "{name}.xml was not published to S3");
    }

    // An invalid upload changes nothing; a valid one is taken at the next invocation.
    upload("[[feeds]]\nname = \"Not Valid\"\n".into()).await;
    match tick("tick-2").await {
        Answer::Response(reply) => assert_eq!(reply["enqueued"], 3, "{reply}"),
        other => panic!("{other:?}"),
    }
    upload(config(&["a", "b", "c", "d"])).await;
    match tick("tick-3").await {
        Answer::Response(reply) => assert_eq!(reply["enqueued"], 4, "{reply}"),
        other => panic!("{other:?}"),
    }
    function.kill().await.unwrap();

    // Finding 5: a bad upload, then a cold start. The new environment runs on the last valid
    // configuration (kept beside the object), says why, and counts it (ConfigInvalid).
    upload("[[feeds]]\nname = \"Not Valid\"\n".into()).await;
    let cold_api = RuntimeApi::start().await;
    let mut cold = spawn_function(&cold_api, &fake, dir.path(), "flarefeed=info");
    cold.env_remove("FLAREFEED_CONFIG")
        .env("FLAREFEED_CONFIG_URL", format!("s3://{BUCKET}/flarefeed.toml"))
        // Every invocation checks the object, so that an upload is taken at the next one.
        .env("FLAREFEED_CONFIG_CHECK_S", "0")
        .env("FLAREFEED_QUEUE_URL", &queue)
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .envs(moto.env())
        .stdout(std::process::Stdio::piped());
    let cold = cold.spawn().unwrap();
    match cold_api.invoke("cold-tick", serde_json::json!({"tick": true})).await {
        Answer::Response(reply) => assert_eq!(reply["enqueued"], 4, "the last valid configuration: {reply}"),
        other => panic!("{other:?}"),
    }
    let mut cold = cold;
    cold.start_kill().unwrap();
    let out = cold.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let counted = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|doc| {
            doc["ConfigInvalid"] == 1 && doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] == "ConfigInvalid"
        });
    assert!(counted, "a ConfigInvalid metric line:\n{stdout}");
    assert!(stdout.contains("running on the last valid one"), "{stdout}");

    // With no valid configuration ever, a cold start still fails, clearly.
    moto.put("other.toml", b"[[feeds]]\nname = \"Not Valid\"\n".to_vec())
        .await;
    let mut never = spawn_function(&cold_api, &fake, dir.path(), "flarefeed=info");
    never
        .env_remove("FLAREFEED_CONFIG")
        .env("FLAREFEED_CONFIG_URL", format!("s3://{BUCKET}/other.toml"))
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .envs(moto.env())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let failed = tokio::time::timeout(std::time::Duration::from_secs(30), never.output())
        .await
        .expect("it exits")
        .unwrap();
    assert!(!failed.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&failed.stdout),
        String::from_utf8_lossy(&failed.stderr)
    );
    assert!(said.contains("feeds[0]") || said.contains("missing field"), "{said}");
}

/// Issue 21: what each kind of refresh costs in AWS requests, counted through the real binary
/// under the Runtime API emulator, on moto's S3 and SQS behind a counting proxy. Ten feeds at
/// 15 minutes; the proxy's `Date` moves S3's clock, so the hour's average is measured too.
#[tokio::test]
async fn each_kind_of_refresh_makes_few_requests() {
    use crate::helpers::counting::{CountingProxy, Seen};
    use crate::helpers::origin::Origin;

    let fake = FakeSolver::start().await;
    fake.page(DEMO_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let origin = Origin::start().await;
    origin.page(
        "/plain.xml",
        crate::helpers::fixtures::fixture("feeds/rich.xml").as_bytes(),
    );
    let moto = MotoServer::start().await;
    let queue = moto.fifo_queue("cost.fifo").await;
    let proxy = CountingProxy::start(&moto.endpoint).await;
    let mut config = format!(
        "[solver]\nurl = \"{}\"\nsession = \"none\"\n[store]\nbucket = \"{BUCKET}\"\nendpoint = \"{}\"\npath_style = true\n\
         [[feeds]]\nname = \"plain\"\nurl = \"{}\"\ninterval = \"1m\"\n\
         [[feeds]]\nname = \"solved\"\nurl = \"{DEMO_URL}\"\nfetch = \"solver\"\ninterval = \"15m\"\n",
        fake.url,
        proxy.endpoint,
        origin.url("/plain.xml")
    );
    for i in 0..8 {
        config.push_str(&format!(
            "[[feeds]]\nname = \"other-{i}\"\nurl = \"{DEMO_URL}\"\ninterval = \"15m\"\n"
        ));
    }
    moto.put("flarefeed.toml", config).await;

    let api = RuntimeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut function = deployed_function(&api, &fake, dir.path(), (&moto, &proxy.endpoint), &queue);
    // `plain` is fetched directly from the origin on loopback; `solved` names the solver.
    function.env_remove("FLAREFEED_FETCH");
    let mut function = function.spawn().unwrap();

    let mut n = 0;
    let mut invoke = async |payload: Value| {
        n += 1;
        match api.invoke(&format!("call-{n}"), payload).await {
            Answer::Response(reply) => reply,
            other => panic!("{other:?}"),
        }
    };
    let queued = |feed: &str| {
        serde_json::json!({"Records": [{
            "messageId": format!("m-{feed}"),
            "body": serde_json::json!({"feed": feed}).to_string(),
            "eventSource": "aws:sqs",
        }]})
    };
    /// (S3 PUTs of the feeds and records, S3 PUTs of the site, S3 GETs and HEADs, SQS calls).
    fn count(seen: &[Seen]) -> (usize, usize, usize, Vec<String>) {
        let site = |s: &&Seen| {
            s.path.ends_with("/index.json")
                || s.path.ends_with(".html")
                || s.path.ends_with(".svg")
                || s.path.ends_with(".opml")
        };
        let puts = seen
            .iter()
            .filter(|s| s.is_s3() && s.method == "PUT" && !site(s))
            .count();
        let site_puts = seen
            .iter()
            .filter(|s| s.is_s3() && s.method == "PUT" && site(s))
            .count();
        let reads = seen
            .iter()
            .filter(|s| s.is_s3() && matches!(s.method.as_str(), "GET" | "HEAD") && !site(s))
            .count();
        let sqs = seen.iter().filter_map(|s| s.sqs.clone()).collect();
        (puts, site_puts, reads, sqs)
    }

    // The cold start reads the configuration and its last valid copy, writing that copy when
    // it differs (here, the first time); the tick within the minute reads nothing more.
    let reply = invoke(serde_json::json!({"tick": true})).await;
    assert!(reply["enqueued"].as_u64().is_some(), "{reply}");
    let cold = count(&proxy.take());
    // A tick sends one batch per ten due feeds, none when no feed is due at this minute.
    let batches = |sqs: &[String]| sqs.iter().all(|call| call == "SendMessageBatch") && sqs.len() <= 1;
    assert!(
        cold.0 <= 1 && cold.2 <= 2 && batches(&cold.3),
        "cold start and tick: {cold:?}"
    );
    invoke(serde_json::json!({"tick": true})).await;
    let tick = count(&proxy.take());
    assert!(
        tick.0 + tick.1 + tick.2 == 0 && batches(&tick.3),
        "a warm tick: {tick:?}"
    );

    // A changed refresh: the feed's PUT and one record PUT (no claim), plus the site's writes.
    invoke(queued("plain")).await;
    let changed = count(&proxy.take());
    assert_eq!((changed.0, changed.3.len()), (2, 0), "changed: {changed:?}");
    assert!(
        changed.2 <= 2,
        "changed: the record's GET and the feed's HEAD: {changed:?}"
    );

    // Unchanged by 304: one GET (the record), nothing written.
    invoke(queued("plain")).await;
    let not_modified = count(&proxy.take());
    assert_eq!(not_modified, (0, 0, 1, vec![]), "unchanged by 304");
    assert_eq!(
        origin.requests("/plain.xml").last().unwrap().header("if-none-match"),
        Some(crate::helpers::origin::ETAG)
    );

    // Unchanged by fingerprint, through the solver.
    invoke(queued("solved")).await;
    proxy.take();
    invoke(queued("solved")).await;
    assert_eq!(count(&proxy.take()), (0, 0, 1, vec![]), "unchanged by fingerprint");

    // A failure is recorded (one PUT; the site when its summary changes); a backoff reads only.
    fake.then(crate::helpers::fake_solver::error_reply(
        "Error: Error solving the challenge. Timeout after 60.0 seconds.",
    ));
    invoke(queued("solved")).await;
    let failed = count(&proxy.take());
    assert_eq!((failed.0, failed.3.len()), (1, 0), "failed: {failed:?}");
    invoke(queued("solved")).await;
    assert_eq!(count(&proxy.take()), (0, 0, 1, vec![]), "backoff");

    // Unchanged refreshes over twice the record's lag: one record PUT a lag. `plain` is
    // refreshed every minute, so its lag is 4 minutes (four intervals; an hour for a feed of 15
    // minutes, where the ratio is the same), and S3's clock moves 8 minutes in all: the store's
    // clock is believed only within S3's own 15-minute skew limit.
    let mut hour = (0, 0, 0);
    for _ in 0..8 {
        proxy.advance_clock(60);
        invoke(queued("plain")).await;
        let (puts, site_puts, reads, sqs) = count(&proxy.take());
        assert!(sqs.is_empty());
        hour = (hour.0 + puts, hour.1 + site_puts, hour.2 + reads);
    }
    let per_refresh = |total: usize| total as f64 / 8.0;
    assert!(
        per_refresh(hour.0) <= 0.25,
        "PUTs per unchanged refresh over twice the lag: {hour:?}"
    );
    assert!(
        per_refresh(hour.2) <= 1.25,
        "GETs and HEADs per unchanged refresh: {hour:?}"
    );
    assert_eq!(hour.1, 0, "the site's summary did not change");

    // Busy: a refresh that claimed the feed elsewhere (an older build, a CLI without the
    // queue) turns the queued one away, having read the record only.
    let key = "status/plain.json";
    let stored = moto.client().get_object().bucket(BUCKET).key(key).send().await.unwrap();
    let mut record: Value = serde_json::from_slice(&stored.body.collect().await.unwrap().into_bytes()).unwrap();
    // The clock back to the real one, which moto's Last-Modified (a claim's bound) keeps.
    proxy.advance_clock(-8 * 60);
    let now = time::OffsetDateTime::now_utc();
    record["in_flight"] = serde_json::json!({
        "trigger": "cli",
        "started": now.format(&time::format_description::well_known::Rfc3339).unwrap(),
        "expires": (now + time::Duration::minutes(10)).format(&time::format_description::well_known::Rfc3339).unwrap(),
    });
    moto.put(key, serde_json::to_vec(&record).unwrap()).await;
    let reply = invoke(queued("plain")).await;
    assert_eq!(
        reply["batchItemFailures"].as_array().unwrap().len(),
        1,
        "retried later: {reply}"
    );
    assert_eq!(count(&proxy.take()), (0, 0, 1, vec![]), "busy");

    // Asked for by hand through the function URL: one SendMessage, nothing else.
    let mut asked = event("url-refresh.json");
    asked["rawPath"] = serde_json::json!("/refresh/solved");
    asked["requestContext"]["http"]["path"] = serde_json::json!("/refresh/solved");
    let reply = invoke(asked).await;
    assert_eq!(reply["statusCode"], 202, "{reply}");
    assert_eq!(
        count(&proxy.take()),
        (0, 0, 0, vec!["SendMessage".to_string()]),
        "asked"
    );

    // `flarefeed refresh` with the deployment's queue: sent into the feed's group, nothing run
    // here (it reads the configuration, and writes nothing).
    let cli = crate::helpers::flarefeed_async(dir.path())
        .args(["refresh", "solved", "--force"])
        .env("FLAREFEED_CONFIG_URL", format!("s3://{BUCKET}/flarefeed.toml"))
        .env("FLAREFEED_QUEUE_URL", &queue)
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .envs(moto.env())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success() && stdout.starts_with("solved  queued  to "),
        "{stdout}{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let by_cli = count(&proxy.take());
    assert_eq!(
        (by_cli.0, by_cli.1, by_cli.3.clone()),
        (0, 0, vec!["SendMessage".to_string()]),
        "cli: {by_cli:?}"
    );
    let mut bodies = Vec::new();
    for _ in 0..5 {
        let waiting = moto.receive(&queue).await;
        bodies.extend(waiting.iter().filter_map(|m| m.body().map(str::to_string)));
    }
    assert!(
        bodies
            .iter()
            .any(|b| b == r#"{"asked":true,"feed":"solved","force":true}"#),
        "{bodies:?}"
    );

    println!(
        "requests per refresh: tick {tick:?}; changed {changed:?}; 304 {not_modified:?}; failed {failed:?}; \
         unchanged over twice the lag (PUTs, site PUTs, reads) {hour:?} in 8"
    );
    function.kill().await.unwrap();
}
