//! A counting proxy on loopback in front of moto's server: every S3 and SQS request the real
//! binary makes passes through it and is logged (method, path, SQS action), so a test can count
//! what each kind of refresh costs in AWS requests. It can also move the clock S3 reports in
//! its `Date` header, which is the clock flarefeed judges records by (`Store::clock_offset`):
//! hours pass for the refreshes in a test that takes seconds.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request that went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// For SQS (the SDK's JSON protocol), the action: `SendMessageBatch`, `SendMessage`.
    pub sqs: Option<String>,
    /// The bytes of its body.
    pub bytes: usize,
}

impl Seen {
    pub fn is_s3(&self) -> bool {
        self.sqs.is_none()
    }
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    /// Seconds added to every `Date` header.
    clock: i64,
    /// How many PUTs still to answer with S3's 500 InternalError, after reading their bodies.
    failing_puts: usize,
}

pub struct CountingProxy {
    /// `http://127.0.0.1:<port>`: the endpoint to give the SDK.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CountingProxy {
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state: Arc<Mutex<State>> = Arc::default();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let (upstream, shared) = (upstream.trim_end_matches('/').to_string(), state.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (client, upstream, state) = (client.clone(), upstream.clone(), shared.clone());
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let (client, upstream, state) = (client.clone(), upstream.clone(), state.clone());
                    async move { Ok::<_, Infallible>(forward(request, &client, &upstream, &state).await) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Self { endpoint, state, task }
    }

    /// The requests since the last call, oldest first.
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state.lock().unwrap().seen)
    }

    /// Answers the next `n` PUTs, once their whole body is read, with 500 InternalError, which
    /// the SDK retries as a transient error.
    pub fn fail_next_puts(&self, n: usize) {
        self.state.lock().unwrap().failing_puts = n;
    }

    /// Moves S3's clock (its `Date` header) forward by `seconds` more.
    pub fn advance_clock(&self, seconds: i64) {
        self.state.lock().unwrap().clock += seconds;
    }
}

async fn forward(
    request: Request<hyper::body::Incoming>,
    client: &reqwest::Client,
    upstream: &str,
    state: &Mutex<State>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let sqs = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|target| target.strip_prefix("AmazonSQS."))
        .map(str::to_string);
    let fail = {
        let mut state = state.lock().unwrap();
        state.seen.push(Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            sqs,
            bytes: body.len(),
        });
        let fail = parts.method == hyper::Method::PUT && state.failing_puts > 0;
        state.failing_puts -= usize::from(fail);
        fail
    };
    if fail {
        // S3's own words for it (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
        let error = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>\
                     <Message>We encountered an internal error. Please try again.</Message></Error>";
        return Response::builder()
            .status(500)
            .header("content-type", "application/xml")
            .body(Full::new(Bytes::from(error)))
            .unwrap();
    }
    let url = format!("{upstream}{}", parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut outgoing = client.request(parts.method.clone(), url).body(body);
    for (name, value) in &parts.headers {
        // The Host header is kept: it is signed, and s3s checks signatures.
        if name != hyper::header::CONTENT_LENGTH {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = match outgoing.send().await {
        Ok(answer) => answer,
        Err(e) => {
            return Response::builder()
                .status(502)
                .body(Full::new(Bytes::from(e.to_string())))
                .unwrap();
        }
    };
    let clock = state.lock().unwrap().clock;
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if name == reqwest::header::DATE && clock != 0 {
            use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
            let shifted = value
                .to_str()
                .ok()
                .and_then(|text| DateTime::from_str(text, DateTimeFormat::HttpDate).ok())
                .and_then(|at| {
                    DateTime::from_secs(at.secs() + clock)
                        .fmt(DateTimeFormat::HttpDate)
                        .ok()
                })
                .unwrap_or_else(|| value.to_str().unwrap_or_default().to_string());
            response = response.header(name.as_str(), shifted);
        } else if name != reqwest::header::CONTENT_LENGTH && name != reqwest::header::TRANSFER_ENCODING {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    let body = answer.bytes().await.unwrap_or_default();
    response.body(Full::new(body)).unwrap()
}
