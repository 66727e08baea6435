//! A real S3-compatible server on 127.0.0.1: s3s-fs in-process over a temp folder, behind a
//! thin layer that logs every request and can inject faults.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use flarefeed::config::{Bucket, StoreConfig, StoreLocation};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const BUCKET: &str = "feeds-bucket";
pub const ACCESS_KEY: &str = "flarefeed-test";
pub const SECRET_KEY: &str = "flarefeed-test-secret";

/// A fault the layer injects, per HTTP method (`None` for every method).
#[derive(Debug, Clone)]
pub enum Fault {
    /// 403 AccessDenied, as S3 answers a missing IAM permission.
    Deny(Option<hyper::Method>),
    /// 403 AccessDenied on PUTs of this key of the bucket only: a policy that lets the status
    /// records be written but not the feed.
    DenyPutOf(String),
    /// Wait this long before answering.
    Slow(Duration),
    /// Hold every PUT this long before it is carried out, so that reads overlap writes.
    SlowWrites(Duration),
    /// Close every connection at once, new and pooled, as a server that is down or restarting.
    Down,
    /// Answer with a `Date` this many seconds off the host's clock: a host whose clock is off
    /// by the opposite.
    ClockOffset(i64),
}

#[derive(Default)]
struct State {
    log: Vec<(String, String)>,
    fault: Option<Fault>,
    /// PUTs received and not yet answered, by path.
    writing: std::collections::HashMap<String, usize>,
}

pub struct S3Server {
    pub endpoint: String,
    _root: tempfile::TempDir,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl S3Server {
    pub async fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let s3 = builder.build();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let writes = Arc::new(tokio::sync::Mutex::new(()));
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                if matches!(shared.lock().unwrap().fault, Some(Fault::Down)) {
                    drop(socket);
                    continue;
                }
                // As real S3 endpoints do: without it, streamed bodies stall ~40 ms on delayed ACKs.
                let _ = socket.set_nodelay(true);
                let s3 = s3.clone();
                let state = shared.clone();
                let writes = writes.clone();
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let s3 = s3.clone();
                    let state = state.clone();
                    let writes = writes.clone();
                    async move {
                        let fault = {
                            let mut state = state.lock().unwrap();
                            state
                                .log
                                .push((request.method().to_string(), request.uri().path().to_string()));
                            state.fault.clone()
                        };
                        match fault {
                            // A connection opened before the server went down: hyper drops it
                            // without an answer, as a server that died mid-connection.
                            Some(Fault::Down) => Err(std::io::Error::other("the server is down")),
                            Some(Fault::Deny(ref method)) if method.as_ref().is_none_or(|m| m == request.method()) => {
                                Ok(access_denied())
                            }
                            Some(Fault::DenyPutOf(ref key))
                                if request.method() == hyper::Method::PUT
                                    && request.uri().path() == format!("/{BUCKET}/{key}") =>
                            {
                                Ok(access_denied())
                            }
                            Some(Fault::Slow(wait)) => {
                                tokio::time::sleep(wait).await;
                                Ok(forward(&s3, request).await)
                            }
                            Some(Fault::ClockOffset(seconds)) => {
                                let mut response = forward(&s3, request).await;
                                let now = std::time::SystemTime::now();
                                let by = Duration::from_secs(seconds.unsigned_abs());
                                let at = if seconds >= 0 { now + by } else { now - by };
                                let date = httpdate(at);
                                response.headers_mut().insert("date", date.parse().unwrap());
                                Ok(response)
                            }
                            Some(Fault::SlowWrites(wait)) if request.method() == hyper::Method::PUT => {
                                let path = request.uri().path().to_string();
                                *state.lock().unwrap().writing.entry(path.clone()).or_default() += 1;
                                tokio::time::sleep(wait).await;
                                let response = forward(&s3, request).await;
                                *state.lock().unwrap().writing.entry(path).or_default() -= 1;
                                Ok(response)
                            }
                            // s3s-fs checks a write's condition, then writes: two conditional
                            // writes at once could both pass. S3 decides them atomically
                            // (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html),
                            // so this layer carries out one PUT at a time, as S3 would order them.
                            _ if request.method() == hyper::Method::PUT => {
                                let _one_at_a_time = writes.lock().await;
                                Ok(forward(&s3, request).await)
                            }
                            _ => Ok(forward(&s3, request).await),
                        }
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Self {
            endpoint,
            _root: root,
            state,
            task,
        }
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        self.state.lock().unwrap().fault = fault;
    }

    /// `(method, path)` of every request so far.
    pub fn log(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().log.clone()
    }

    /// How many PUTs of `key` in the bucket are under way now.
    pub fn writing(&self, key: &str) -> usize {
        let path = format!("/{BUCKET}/{key}");
        self.state.lock().unwrap().writing.get(&path).copied().unwrap_or(0)
    }

    /// How many PUTs reached `key` in the bucket.
    pub fn puts_of(&self, key: &str) -> usize {
        let path = format!("/{BUCKET}/{key}");
        self.log().iter().filter(|(m, p)| m == "PUT" && *p == path).count()
    }
}

/// The tests' S3 credentials and short timeouts, for either server.
fn sdk_config() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(6))
        .build();
    aws_config::SdkConfig::builder()
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(Credentials::new(
            ACCESS_KEY, SECRET_KEY, None, None, "test",
        )))
        .behavior_version(BehaviorVersion::latest())
        .timeout_config(timeouts)
        // s3s-fs renames an object's body into place atomically but keeps its checksum in a
        // separate file, so a GET racing a PUT can pair the new body with the old checksum.
        // S3 itself stores them together; here the tests compare bodies themselves.
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .build()
}

fn client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&sdk_config())
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// moto's S3 server, a second S3 implementation written independently of s3s (and of
/// flarefeed): it answers an `If-Match` on a missing key with 404 NoSuchKey as AWS does, where
/// s3s answers 412. Started with `python -m moto.server` on a free loopback port, from the
/// venv the tests provision ([`super::tools`]).
pub struct MotoServer {
    pub endpoint: String,
    _child: tokio::process::Child,
}

impl MotoServer {
    pub async fn start() -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(super::tools::python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        let endpoint = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(at) = line.find("http://127.0.0.1:") {
                    return line[at..].split_whitespace().next().unwrap().to_string();
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            panic!("moto's server did not start:\n{seen}")
        })
        .await
        .expect("moto's server starts within 60 s");
        // Its request log goes on to stderr: keep reading, or the pipe fills and moto blocks.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        client(&endpoint).create_bucket().bucket(BUCKET).send().await.unwrap();
        Self {
            endpoint,
            _child: child,
        }
    }
}

/// What a test needs of either S3 server: where it is, as flarefeed's configuration and the
/// SDK's.
pub trait S3Endpoint {
    fn endpoint(&self) -> &str;

    fn store_config(&self, prefix: &str) -> StoreConfig {
        StoreConfig {
            location: StoreLocation::Bucket(self.bucket()),
            prefix: prefix.into(),
            cache_control: "public, max-age=123".into(),
        }
    }

    fn bucket(&self) -> Bucket {
        Bucket {
            bucket: BUCKET.into(),
            endpoint: Some(self.endpoint().into()),
            path_style: true,
        }
    }

    /// The tests' credentials and short timeouts.
    fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config()
    }

    /// A plain S3 client for assertions.
    fn client(&self) -> aws_sdk_s3::Client {
        client(self.endpoint())
    }

    /// Puts `body` at `key` in the tests' bucket, as an operator or another program would.
    fn put(&self, key: &str, body: impl Into<Vec<u8>>) -> impl std::future::Future<Output = ()> {
        let request = self
            .client()
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(body.into().into());
        async move {
            request.send().await.unwrap();
        }
    }

    /// The text at `key` in the tests' bucket.
    fn text(&self, key: &str) -> impl std::future::Future<Output = String> {
        let request = self.client().get_object().bucket(BUCKET).key(key);
        async move {
            let object = request.send().await.unwrap();
            let bytes = object.body.collect().await.unwrap().into_bytes();
            String::from_utf8(bytes.to_vec()).unwrap()
        }
    }

    /// The environment the real binary needs to reach this server with the SDK's default
    /// chain (its endpoint comes from the configuration, or from AWS_ENDPOINT_URL).
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

impl S3Endpoint for S3Server {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl MotoServer {
    /// A client of moto's SQS, which speaks the real API on the same port as its S3.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sqs_sdk_config())
    }

    /// The tests' SDK configuration, pointed at moto for every service.
    pub fn sqs_sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config().into_builder().endpoint_url(&self.endpoint).build()
    }

    /// Up to ten messages waiting in `queue`, received (and so in flight for the queue's
    /// visibility timeout).
    pub async fn receive(&self, queue: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let received = self
            .sqs()
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        received.messages().to_vec()
    }

    /// A new FIFO queue, without content-based deduplication (flarefeed sends its own ids).
    pub async fn fifo_queue(&self, name: &str) -> String {
        let created = self
            .sqs()
            .create_queue()
            .queue_name(name)
            .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
            .send()
            .await
            .unwrap();
        created.queue_url().unwrap().to_string()
    }
}

impl S3Endpoint for MotoServer {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

async fn forward(s3: &s3s::service::S3Service, request: hyper::Request<hyper::body::Incoming>) -> s3s::HttpResponse {
    match s3.call(request.map(s3s::Body::from)).await {
        Ok(response) => response,
        Err(e) => hyper::Response::builder()
            .status(500)
            .body(s3s::Body::from(format!("{e:?}")))
            .unwrap(),
    }
}

/// An HTTP date (RFC 9110's IMF-fixdate), as a server's `Date` header.
fn httpdate(at: std::time::SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.format(&format).unwrap()
}

fn access_denied() -> s3s::HttpResponse {
    let body = r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>test</RequestId></Error>"#;
    hyper::Response::builder()
        .status(403)
        .header("content-type", "application/xml")
        .body(s3s::Body::from(body.to_string()))
        .unwrap()
}
