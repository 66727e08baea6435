//! The Lambda function: one binary for EventBridge schedules and an authenticated function URL.
//!
//! [lambda_http] turns a function URL request (payload 2.0) into an `http::Request`, and any
//! other event into a pass-through `POST /events` whose body is the raw event. Pass-through
//! bodies are parsed into typed [`Invocation`]s; requests go to an axum router
//! ([`routes`]). One function serves both, so the reserved concurrency that protects the solver
//! covers both. Either way an invocation makes at most one FlareSolverr request, for a
//! configured feed: a request can never choose the url fetched.

mod events;
mod routes;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use lambda_http::lambda_runtime::Diagnostic;
use lambda_http::request::RequestContext;
use lambda_http::tower::ServiceExt;
use lambda_http::{RequestExt, service_fn};
use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::time::Instant;
use tracing::{info, warn};

pub use events::{ACCEPTED, FeedInput, Invocation, Tick, TickInput};

use crate::config::remote::{ConfigUrl, Watched};
use crate::config::{Config, ConfigError, process_env};
use crate::queue::QueueError;
use crate::refresh::{Deployment, Outcome, RefreshError, RefreshOptions, Report, Stage};
use crate::solver::SolverError;

/// Time kept back from the solver for formatting, the store and the status record.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(10);

/// Why a non-HTTP invocation failed; the invocation then counts as failed in CloudWatch, and
/// an asynchronous one goes to the on-failure destination.
#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("this event is none of the kinds flarefeed accepts: {ACCEPTED}; it failed to parse: {detail}")]
    BadEvent { detail: String },
    #[error("the event names no feed and {count} are configured; send {{\"feed\": \"<name>\"}} with one of: {names}")]
    FeedNotNamed { count: usize, names: String },
    #[error(transparent)]
    UnknownFeed(ConfigError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("refresh of {feed} failed at {stage}: {source}")]
    RefreshFailed {
        feed: String,
        stage: Stage,
        source: RefreshError,
    },
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match error {
            HandlerError::BadEvent { .. } | HandlerError::FeedNotNamed { .. } | HandlerError::UnknownFeed { .. } => {
                "flarefeed.BadEvent"
            }
            HandlerError::RefreshFailed { .. } => "flarefeed.RefreshFailed",
            HandlerError::Queue(_) => "flarefeed.QueueFailed",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// What the routes share: built once per cold start.
pub(crate) struct Shared {
    deployment: Deployment,
    /// SHA-256 of `FLAREFEED_TOKEN`: comparing digests keeps the comparison constant-time
    /// whatever the length of the token offered.
    token: Option<[u8; 32]>,
}

/// The refresh's deadline, carried to the routes as a request extension.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(Option<Instant>);

/// Everything an invocation needs, built once per cold start: the refresher's clients and the
/// router.
pub struct App {
    live: tokio::sync::RwLock<Live>,
    /// `FLAREFEED_CONFIG_URL`, re-read before each invocation when it changed.
    watched: Option<Watched>,
    token: Option<[u8; 32]>,
}

/// What an invocation runs on: swapped whole when the configuration changes.
#[derive(Clone)]
struct Live {
    shared: Arc<Shared>,
    router: axum::Router,
}

impl Live {
    fn new(deployment: Deployment, token: Option<[u8; 32]>) -> Self {
        let shared = Arc::new(Shared { deployment, token });
        Self {
            router: routes::router(shared.clone()),
            shared,
        }
    }
}

impl App {
    pub fn new(deployment: Deployment, token: Option<&str>) -> Self {
        // Trimmed like the offered token: a trailing newline from `echo` or a secrets file must
        // not lock everyone out.
        let token = token.map(str::trim).filter(|t| !t.is_empty()).map(digest);
        Self {
            live: tokio::sync::RwLock::new(Live::new(deployment, token)),
            watched: None,
            token,
        }
    }

    /// An app whose configuration comes from `watched`, and follows it when it changes.
    pub fn watching(deployment: Deployment, watched: Watched, token: Option<&str>) -> Self {
        Self {
            watched: Some(watched),
            ..Self::new(deployment, token)
        }
    }

    /// The live deployment, after at most one conditional read of a watched configuration. A
    /// new valid configuration gets new clients (solver, store, queue), metrics as before.
    async fn current(&self) -> Live {
        if let Some(watched) = &self.watched
            && let Some(config) = watched.check().await
        {
            let metrics = self.live.read().await.shared.deployment.refresher.metrics();
            let mut deployment = Deployment::connect((*config).clone()).await;
            if metrics {
                deployment.refresher = deployment.refresher.with_metrics();
            }
            *self.live.write().await = Live::new(deployment, self.token);
        }
        self.live.read().await.clone()
    }

    /// Serves one invocation. A pass-through event is a schedule or a direct invocation: its
    /// failure is an `Err`, so Lambda counts it as failed. A request always gets an `Ok`
    /// response, errors included. The deadline comes from the Lambda context, when there is one.
    pub async fn serve(&self, request: lambda_http::Request) -> Result<Response, HandlerError> {
        let deadline = solver_deadline(request.lambda_context_ref().map(|context| context.deadline));
        let live = self.current().await;
        if let Some(RequestContext::PassThrough) = request.request_context_ref() {
            // lambda_http turns a pass-through reply body into JSON, and anything that is not
            // JSON text into null, silently: these bodies are always JSON text.
            return match Invocation::parse(request.body())? {
                Invocation::Sqs(event) => Ok(routes::json_response(
                    StatusCode::OK,
                    &live.shared.work(event, deadline).await,
                )),
                Invocation::Tick(tick) => Ok(routes::json_response(StatusCode::OK, &live.shared.tick(&tick).await?)),
                invocation => {
                    let report = live.shared.scheduled(&invocation, deadline).await?;
                    Ok(routes::json_response(StatusCode::OK, &report))
                }
            };
        }
        let (mut parts, body) = request.into_parts();
        parts.uri = without_trailing_slash(&parts.uri);
        parts.extensions.insert(Deadline(deadline));
        routes::log_request(&parts.method, parts.uri.path());
        let request = axum::http::Request::from_parts(parts, axum::body::Body::new(body));
        Ok(live
            .router
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {}))
    }
}

/// What a tick did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    pub enqueued: usize,
    pub feeds: Vec<String>,
}

impl Shared {
    async fn scheduled(&self, invocation: &Invocation, deadline: Option<Instant>) -> Result<Report, HandlerError> {
        let config = &self.deployment.config;
        let feed = match invocation.feed() {
            Some(name) => config.feed(name).map_err(HandlerError::UnknownFeed)?,
            None if config.feeds.len() == 1 => &config.feeds[0],
            None => {
                return Err(HandlerError::FeedNotNamed {
                    count: config.feeds.len(),
                    names: config.feed_names().join(", "),
                });
            }
        };
        let report = self
            .deployment
            .refresher
            .refresh(feed, RefreshOptions::scheduled(deadline))
            .await;
        match report.outcome {
            Outcome::Failed { stage, error } => Err(HandlerError::RefreshFailed {
                feed: report.feed,
                stage,
                source: error,
            }),
            _ => Ok(report),
        }
    }

    /// The fleet's planner: the feeds with a slot in the tick's window go to the queue. It
    /// reads nothing from the store; the slots are fixed ([`crate::fleet`]).
    pub async fn tick(&self, tick: &TickInput) -> Result<Planned, HandlerError> {
        let deployment = &self.deployment;
        let queue = deployment.queue.as_ref().ok_or(QueueError::NotConfigured)?;
        let due = crate::fleet::plan(&deployment.config, tick.at()?);
        queue.enqueue(&due).await?;
        let feeds: Vec<String> = due.into_iter().map(|d| d.feed).collect();
        info!(enqueued = feeds.len(), "tick planned");
        Ok(Planned {
            enqueued: feeds.len(),
            feeds,
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
    pub async fn work(&self, event: SqsEvent, deadline: Option<Instant>) -> SqsBatchResponse {
        let config = &self.deployment.config;
        let mut response = SqsBatchResponse::default();
        for record in event.records {
            let id = record.message_id.unwrap_or_default();
            let feed = match record.body.as_deref().map(serde_json::from_str::<FeedInput>) {
                Some(Ok(FeedInput { feed: Some(name) })) => config.feed(&name).map_err(|e| e.to_string()),
                Some(Ok(FeedInput { feed: None })) => Err("the message names no feed".into()),
                Some(Err(e)) => Err(format!("the message is not {{\"feed\": \"<name>\"}}: {e}")),
                None => Err("the message has no body".into()),
            };
            let retry = match feed {
                Err(reason) => {
                    warn!(message_id = %id, reason = %reason, "queued message not attempted");
                    true
                }
                Ok(feed) => {
                    let options = RefreshOptions::queued(deadline);
                    let report = self.deployment.refresher.refresh(feed, options).await;
                    matches!(
                        &report.outcome,
                        Outcome::Busy { .. }
                            | Outcome::Failed {
                                stage: Stage::Status,
                                ..
                            }
                            | Outcome::Failed {
                                error: RefreshError::Solver(SolverError::NoTimeLeft { .. }),
                                ..
                            }
                    )
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

/// `/status/` is `/status`, and an empty path is `/`, as the routes were always matched.
fn without_trailing_slash(uri: &Uri) -> Uri {
    let path = uri.path();
    let trimmed = match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    if trimmed == path {
        return uri.clone();
    }
    let rebuilt = match uri.query() {
        Some(query) => format!("{trimmed}?{query}"),
        None => trimmed.to_string(),
    };
    rebuilt.parse().unwrap_or_else(|_| uri.clone())
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The solver's deadline: the Lambda's, less the safety margin.
///
/// A deadline more than a day in the past is no deadline: Lambda never sends one, but emulators
/// do (cargo-lambda's `watch` sends a constant 600000, in 1970). Then the refresh gets
/// [`crate::refresh::Refresher::budget`].
fn solver_deadline(deadline_ms: Option<u64>) -> Option<Instant> {
    let deadline_ms = deadline_ms?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    if deadline_ms.saturating_add(24 * 3600 * 1000) < now_ms {
        warn!(
            deadline_ms,
            "the runtime's deadline is long past (an emulator?); a refresh gets the default budget instead"
        );
        return None;
    }
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    Some(Instant::now() + left.saturating_sub(SAFETY_MARGIN))
}

/// The runtime's own default logging (level from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else
/// info; stdout; no timestamps, which CloudWatch adds; no colour), except that the runtime's log
/// of each raw event is never written, whatever the level: a function URL event carries the
/// caller's `Authorization: Bearer <token>`.
fn init_logging() {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy()
        .add_directive(RAW_EVENT_LOG_OFF.parse().expect("a valid directive"));
    tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        // CloudWatch shows escape codes as they are.
        .with_ansi(false)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .init();
}

/// lambda_runtime 1.x logs every raw event at TRACE from this module.
const RAW_EVENT_LOG_OFF: &str = "lambda_runtime::layers::api_response=debug";

/// The Lambda entry point: configuration from `FLAREFEED_CONFIG`, clients built once, then
/// lambda_http's runtime loop.
pub async fn run() -> Result<(), lambda_http::Error> {
    init_logging();
    let token = process_env("FLAREFEED_TOKEN");
    // FLAREFEED_CONFIG (or _FILE) first; else FLAREFEED_CONFIG_URL, followed as it changes.
    let (config, watched) = match Config::load(None, &process_env) {
        Ok(config) => (config, None),
        Err(ConfigError::Missing) if let Some(url) = process_env("FLAREFEED_CONFIG_URL") => {
            let (watched, config) = Watched::open(ConfigUrl::parse(&url)?).await?;
            ((*config).clone(), Some(watched))
        }
        Err(e) => return Err(e.into()),
    };
    let mut deployment = Deployment::connect(config).await;
    deployment.refresher = deployment.refresher.with_metrics();
    let app = Arc::new(match watched {
        Some(watched) => App::watching(deployment, watched, token.as_deref()),
        None => App::new(deployment, token.as_deref()),
    });
    lambda_http::run(service_fn(move |request: lambda_http::Request| {
        let app = app.clone();
        async move { app.serve(request).await }
    }))
    .await
}
