//! The Lambda function: one binary for EventBridge schedules and an authenticated function URL.
//!
//! A function URL request (payload 2.0, `requestContext.http`) is routed as HTTP; anything else
//! is a scheduled or direct event naming a feed. Either way one invocation makes at most one
//! FlareSolverr request, for a configured feed: a request can never choose the url fetched.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::config::Config;
use crate::refresh::{Outcome, RefreshOptions, Refresher, Trigger};

/// Time kept back from the solver for formatting, the store and the status record.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(10);

/// Why a scheduled or direct invocation failed; the invocation then counts as failed in CloudWatch.
#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("the event names no feed and {count} are configured; send {{\"feed\": \"<name>\"}} with one of: {names}")]
    FeedNotNamed { count: usize, names: String },
    #[error("no feed named {name:?}; configured: {names}")]
    UnknownFeed { name: String, names: String },
    #[error("refresh of {feed} failed at {stage}: {reason}")]
    RefreshFailed {
        feed: String,
        stage: String,
        reason: String,
    },
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match error {
            HandlerError::FeedNotNamed { .. } | HandlerError::UnknownFeed { .. } => "flarefeed.BadEvent",
            HandlerError::RefreshFailed { .. } => "flarefeed.RefreshFailed",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// Everything an invocation needs, built once per cold start.
pub struct App {
    refresher: Refresher,
    /// SHA-256 of `FLAREFEED_TOKEN`: comparing digests keeps the comparison constant-time
    /// whatever the length of the token offered.
    token: Option<[u8; 32]>,
}

impl App {
    pub fn new(refresher: Refresher, token: Option<&str>) -> Self {
        Self {
            refresher,
            // Trimmed like the offered token: a trailing newline from `echo` or a secrets file
            // must not lock everyone out.
            token: token.map(str::trim).filter(|t| !t.is_empty()).map(digest),
        }
    }

    /// Handles one invocation. `deadline` is the Lambda's, in milliseconds since the epoch.
    pub async fn handle(&self, event: Value, deadline_ms: Option<u64>) -> Result<Value, HandlerError> {
        let deadline = solver_deadline(deadline_ms);
        if event.pointer("/requestContext/http").is_some() {
            return Ok(self.http(event, deadline).await);
        }
        self.scheduled(&event, deadline).await
    }

    async fn scheduled(&self, event: &Value, deadline: Option<Instant>) -> Result<Value, HandlerError> {
        let config = self.refresher.config();
        let named = event
            .get("feed")
            .or_else(|| event.pointer("/detail/feed"))
            .and_then(Value::as_str);
        let names = || config.feed_names().join(", ");
        let feed = match named {
            Some(name) => config.find_feed(name).ok_or_else(|| HandlerError::UnknownFeed {
                name: name.to_string(),
                names: names(),
            })?,
            None if config.feeds.len() == 1 => &config.feeds[0],
            None => {
                return Err(HandlerError::FeedNotNamed {
                    count: config.feeds.len(),
                    names: names(),
                });
            }
        };
        let options = RefreshOptions {
            deadline,
            trigger: Trigger::Schedule,
            force: false,
        };
        let report = self.refresher.refresh(feed, options).await;
        match &report.outcome {
            Outcome::Failed { stage, reason } => Err(HandlerError::RefreshFailed {
                feed: feed.name.clone(),
                stage: stage.to_string(),
                reason: reason.clone(),
            }),
            _ => Ok(serde_json::to_value(&report).expect("a report always serializes")),
        }
    }

    async fn http(&self, event: Value, deadline: Option<Instant>) -> Value {
        let request: LambdaFunctionUrlRequest = match serde_json::from_value(event) {
            Ok(request) => request,
            Err(e) => return error(400, &format!("not a function URL request: {e}")),
        };
        let method = request
            .request_context
            .http
            .method
            .clone()
            .unwrap_or_else(|| "GET".into())
            .to_ascii_uppercase();
        let raw_path = request
            .raw_path
            .clone()
            .or_else(|| request.request_context.http.path.clone())
            .unwrap_or_default();
        let path = match raw_path.trim_end_matches('/') {
            "" => "/",
            trimmed => trimmed,
        };
        info!(method = %method, path = %path, "function URL request");

        let allowed = match path {
            "/health" | "/status" | "/feeds" => "GET",
            p if p.starts_with("/refresh/") => "POST",
            _ => {
                return error(
                    404,
                    &format!(
                        "no such route: {path}; routes: GET /health, GET /status, GET /feeds, POST /refresh/<feed>"
                    ),
                );
            }
        };
        if method != allowed {
            return respond(
                405,
                &json!({"error": format!("{method} is not allowed on {path}; use {allowed}")}),
                &[("allow", allowed)],
            );
        }
        if path == "/health" {
            return respond(200, &json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}), &[]);
        }
        if let Err(reason) = self.authorize(&request) {
            warn!(path = %path, "unauthorized function URL request");
            return respond(401, &json!({"error": reason}), &[("www-authenticate", "Bearer")]);
        }
        let config = self.refresher.config();
        match path {
            "/status" => match self.refresher.statuses().await {
                Ok(records) => respond(200, &records, &[]),
                Err(e) => error(502, &e.to_string()),
            },
            "/feeds" => {
                let feeds: Vec<Value> = config
                    .feeds
                    .iter()
                    .map(|f| json!({"name": f.name, "key": format!("{}{}", config.store.prefix, f.key)}))
                    .collect();
                respond(200, &feeds, &[])
            }
            _ => {
                let name = &path["/refresh/".len()..];
                let Some(feed) = config.find_feed(name) else {
                    return error(
                        404,
                        &format!("no feed named {name:?}; configured: {}", config.feed_names().join(", ")),
                    );
                };
                let force = request
                    .query_string_parameters
                    .get("force")
                    .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
                let options = RefreshOptions {
                    deadline,
                    trigger: Trigger::Http,
                    force,
                };
                let report = self.refresher.refresh(feed, options).await;
                match &report.outcome {
                    Outcome::Updated | Outcome::Unchanged => respond(200, &report, &[]),
                    Outcome::Skipped { retry_after_s } => {
                        let retry = retry_after_s.to_string();
                        let body = json!({"error": format!("refreshed less than min_interval_s ago; retry in {retry_after_s} s, or add ?force=1"), "retry_after_s": retry_after_s});
                        respond(429, &body, &[("retry-after", &retry)])
                    }
                    // Even with ?force=1: force lifts min_interval_s, never the one-refresh-at-a-time rule.
                    Outcome::Busy { retry_after_s, started } => {
                        let retry = retry_after_s.to_string();
                        let body = json!({
                            "error": format!("a refresh of {name} started at {started} is still in flight; it ends within {retry_after_s} s, then retry"),
                            "in_flight_since": started,
                            "retry_after_s": retry_after_s,
                        });
                        respond(409, &body, &[("retry-after", &retry)])
                    }
                    Outcome::Failed { stage, reason } => {
                        let body = json!({"error": reason, "stage": stage, "report": report});
                        respond(502, &body, &[])
                    }
                }
            }
        }
    }

    /// A request AWS_IAM signed is authorized whatever the token: with AuthType AWS_IAM, Lambda
    /// has already checked the SigV4 signature and the caller's permission before invoking the
    /// function, and reports the caller in `requestContext.authorizer.iam`
    /// (https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html). SigV4 uses the
    /// Authorization header itself, so such a request can never carry the bearer token too.
    /// Otherwise a bearer token is needed, when one is configured. The scheme is matched in
    /// any case, as RFC 7235 section 2.1 requires.
    fn authorize(&self, request: &LambdaFunctionUrlRequest) -> Result<(), String> {
        let signed = request
            .request_context
            .authorizer
            .as_ref()
            .and_then(|a| a.iam.as_ref())
            .is_some();
        if signed {
            return Ok(());
        }
        let Some(expected) = &self.token else {
            return Err("this function URL has no FLAREFEED_TOKEN and the request is not AWS_IAM-signed; set a token or use AuthType AWS_IAM".into());
        };
        let offered = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, credentials) = v.trim_start().split_once([' ', '\t'])?;
                scheme.eq_ignore_ascii_case("bearer").then_some(credentials)
            })
            .ok_or("missing Authorization: Bearer <token>")?;
        if bool::from(digest(offered.trim()).ct_eq(expected)) {
            Ok(())
        } else {
            Err("wrong token".into())
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The solver's deadline: the Lambda's, less the safety margin.
///
/// A deadline more than a day in the past is no deadline: Lambda never sends one, but emulators
/// do (cargo-lambda's `watch` sends a constant 600000, in 1970). Then the configured timeouts
/// alone bound the request.
fn solver_deadline(deadline_ms: Option<u64>) -> Option<Instant> {
    let deadline_ms = deadline_ms?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    if deadline_ms.saturating_add(24 * 3600 * 1000) < now_ms {
        warn!(
            deadline_ms,
            "the runtime's deadline is long past (an emulator?); using the configured timeouts"
        );
        return None;
    }
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    Some(Instant::now() + left.saturating_sub(SAFETY_MARGIN))
}

/// A function URL response with a JSON body, built with the standard type so every consumer of
/// the payload format (Lambda, cargo-lambda's emulator) reads it: it always has `cookies`.
fn respond(status: u16, body: &impl Serialize, headers: &[(&'static str, &str)]) -> Value {
    use aws_lambda_events::http::{HeaderValue, header};
    let mut response = LambdaFunctionUrlResponse::default();
    response.status_code = i64::from(status);
    response
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in headers {
        let value = HeaderValue::from_str(value).expect("header values here are ASCII");
        response.headers.insert(*name, value);
    }
    response.body = Some(serde_json::to_string(body).expect("response bodies always serialize"));
    serde_json::to_value(response).expect("a function URL response always serializes")
}

fn error(status: u16, message: &str) -> Value {
    respond(status, &json!({"error": message}), &[])
}

/// The runtime's own default logging (level from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else
/// info; stdout; no timestamps, which CloudWatch adds), except that the runtime's log of each raw
/// event is never written, whatever the level: a function URL event carries the caller's
/// `Authorization: Bearer <token>`.
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
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .init();
}

/// lambda_runtime 1.x logs every raw event at TRACE from this module.
const RAW_EVENT_LOG_OFF: &str = "lambda_runtime::layers::api_response=debug";

/// The Lambda entry point: configuration from `FLAREFEED_CONFIG`, clients built once, then the
/// runtime loop.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let env = |key: &str| std::env::var(key).ok();
    let config = Config::load(None, &env)?;
    let token = env("FLAREFEED_TOKEN");
    let app = Arc::new(App::new(Refresher::connect(config).await, token.as_deref()));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let app = app.clone();
        async move { app.handle(event.payload, Some(event.context.deadline)).await }
    }))
    .await
}
