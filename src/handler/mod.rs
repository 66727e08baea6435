//! The Lambda function: one binary for EventBridge schedules and an authenticated function URL.
//!
//! [lambda_http] turns a function URL request (payload 2.0) into an `http::Request`, and any
//! other event into a pass-through `POST /events` whose body is the raw event. Pass-through
//! bodies are parsed into typed [`Invocation`]s; requests go to an axum router
//! ([`routes`]). One function serves both, so the reserved concurrency that protects the solver
//! covers both. Either way an invocation makes at most one FlareSolverr request, for a
//! configured feed: a request can never choose the url fetched.

mod error;
mod events;
mod invocations;
mod routes;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{StatusCode, Uri};
use axum::response::Response;
use lambda_http::request::RequestContext;
use lambda_http::tower::ServiceExt;
use lambda_http::{RequestExt, service_fn};
use tokio::time::Instant;
use tracing::warn;

pub use error::{ACCEPTED, HandlerError};
pub use events::{FeedInput, Invocation, Tick, TickInput};
pub use invocations::Planned;

use crate::config::process_env;
use crate::config::remote::{Checked, Watched};
use crate::deployment::Deployment;
use crate::observer::Observer;
use invocations::{Deadline, Shared, digest};

/// Time kept back from the solver for formatting, the store and the status record.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(10);

/// The longest a configuration check may take without a deadline (an emulator).
const CONFIG_CHECK_TIME: Duration = Duration::from_secs(45);

/// Everything an invocation needs, built once per cold start: the refresher's clients and the
/// router.
pub struct App {
    live: tokio::sync::RwLock<Live>,
    /// `FLAREFEED_CONFIG_URL`, re-read before each invocation when it changed.
    watched: Option<Watched>,
    token: Option<[u8; 32]>,
    /// Wired into every deployment this app builds (the metrics).
    observer: Option<Arc<dyn Observer>>,
    /// The watched configuration is checked at most this often ([`App::checking_every`]).
    check_every: Duration,
    /// When it was last checked, by this process (one warm execution environment).
    checked: std::sync::Mutex<Option<Instant>>,
}

/// How often a warm function checks its configuration object by default: an upload is taken
/// within a minute, and a fleet's ticks and refreshes make at most one GET of it a minute per
/// execution environment, not one each (issue 21). `FLAREFEED_CONFIG_CHECK_S` sets it; 0
/// checks at every invocation.
pub const CONFIG_CHECK_EVERY: Duration = Duration::from_secs(60);

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
            observer: None,
            check_every: Duration::ZERO,
            checked: std::sync::Mutex::new(None),
        }
    }

    /// Checks the watched configuration at most every `every` (zero: at each invocation).
    /// Lambda keeps a process across invocations ("a single execution environment may be
    /// reused by subsequent function invocations … all of these invocations are handled by a
    /// single process", https://docs.aws.amazon.com/lambda/latest/operatorguide/execution-environment.html),
    /// so the interval holds per warm environment; a cold start always reads the object.
    /// The configuration was read just before (at the cold start), which counts as a check.
    pub fn checking_every(mut self, every: Duration) -> Self {
        self.check_every = every;
        self.checked = std::sync::Mutex::new(Some(Instant::now()));
        self
    }

    /// Whether the configuration is due for a check now, marking it checked if so.
    fn check_due(&self) -> bool {
        let mut checked = self.checked.lock().expect("the check time is never poisoned");
        let due = checked.is_none_or(|at| at.elapsed() >= self.check_every);
        if due {
            *checked = Some(Instant::now());
        }
        due
    }

    /// An app whose configuration comes from `watched`, and follows it when it changes: each
    /// new configuration gets a deployment of its own, with `observer` wired in as in the first.
    pub fn watching(
        deployment: Deployment,
        watched: Watched,
        token: Option<&str>,
        observer: Option<Arc<dyn Observer>>,
    ) -> Self {
        Self {
            watched: Some(watched),
            observer,
            ..Self::new(deployment, token)
        }
    }

    /// The live deployment, after at most one conditional read of a watched configuration,
    /// given up at `deadline` (the SDK's own timeouts know nothing of the invocation's). A new
    /// valid configuration gets new clients (solver, store, queue); an invalid one is counted
    /// (`ConfigInvalid`) and the last valid one stays.
    async fn current(&self, deadline: Option<Instant>) -> Live {
        if let Some(watched) = self.watched.as_ref().filter(|_| self.check_due()) {
            let by = deadline.unwrap_or_else(|| Instant::now() + CONFIG_CHECK_TIME);
            match tokio::time::timeout_at(by, watched.check()).await {
                Ok(Checked::Changed(config)) => {
                    let deployment = Deployment::connect((*config).clone(), self.observer.clone()).await;
                    *self.live.write().await = Live::new(deployment, self.token);
                }
                Ok(Checked::Invalid(error)) => {
                    if let Some(observer) = &self.observer {
                        observer.config_invalid(&error.to_string());
                    }
                }
                Ok(Checked::Unchanged | Checked::Unreadable(_)) => {}
                Err(_) => warn!("the configuration could not be checked in time; the last valid one stays in use"),
            }
        }
        self.live.read().await.clone()
    }

    /// Serves one invocation. A pass-through event is a schedule or a direct invocation: its
    /// failure is an `Err`, so Lambda counts it as failed. A request always gets an `Ok`
    /// response, errors included. The deadline comes from the Lambda context, when there is one.
    pub async fn serve(&self, request: lambda_http::Request) -> Result<Response, HandlerError> {
        let deadline = solver_deadline(request.lambda_context_ref().map(|context| context.deadline));
        let live = self.current(deadline).await;
        if let Some(RequestContext::PassThrough) = request.request_context_ref() {
            // lambda_http turns a pass-through reply body into JSON, and anything that is not
            // JSON text into null, silently: these bodies are always JSON text.
            return match Invocation::parse(request.body())? {
                Invocation::Sqs(event) => Ok(routes::json_response(
                    StatusCode::OK,
                    &live.shared.work(event, deadline).await,
                )),
                Invocation::Tick(tick) => Ok(routes::json_response(
                    StatusCode::OK,
                    &live.shared.tick(&tick, deadline).await?,
                )),
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

/// The Lambda entry point: the configuration found ([`crate::deployment::load`]), clients
/// built once, metrics wired in, then lambda_http's runtime loop.
pub async fn run_lambda() -> Result<(), lambda_http::Error> {
    init_logging();
    let token = process_env("FLAREFEED_TOKEN");
    let loaded = crate::deployment::load(None).await?;
    let observer: Arc<dyn Observer> = Arc::new(crate::metrics::Emf);
    if let Some(refused) = &loaded.refused {
        observer.config_invalid(&refused.to_string());
    }
    let deployment = Deployment::connect(loaded.config, Some(observer.clone())).await;
    let check_every = match process_env("FLAREFEED_CONFIG_CHECK_S") {
        None => CONFIG_CHECK_EVERY,
        Some(text) => text
            .trim()
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| format!("FLAREFEED_CONFIG_CHECK_S={text:?} is not a number of seconds (60 by default; 0 checks at every invocation)"))?,
    };
    let app = Arc::new(match loaded.watched {
        Some(watched) => {
            App::watching(deployment, watched, token.as_deref(), Some(observer)).checking_every(check_every)
        }
        None => App::new(deployment, token.as_deref()),
    });
    lambda_http::run(service_fn(move |request: lambda_http::Request| {
        let app = app.clone();
        async move { app.serve(request).await }
    }))
    .await
}
