//! The function URL's routes: an axum router over the requests lambda_http builds.
//!
//! Every answer, errors included, is an `Ok` response with a JSON body: an `Err` would reach
//! the caller as Lambda's bare 502.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use serde::Serialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use super::invocations::{Deadline, Shared, digest};
use crate::deployment::Asked;
use crate::outcome::Outcome;
use crate::refresh::RefreshOptions;
use crate::status;

/// The routes, as the 404 lists them.
const ROUTES: &str = "GET /health, GET /status, GET /feeds, POST /refresh/<feed>";

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", only(Method::GET, get(health)))
        .route("/status", only(Method::GET, get(status)))
        .route("/feeds", only(Method::GET, get(feeds)))
        .route("/refresh/{feed}", only(Method::POST, post(refresh)))
        .fallback(no_such_route)
        .with_state(shared)
}

/// A route that answers any other method with 405, an `Allow` header and a JSON body.
fn only(allowed: Method, route: MethodRouter<Arc<Shared>>) -> MethodRouter<Arc<Shared>> {
    route.fallback(move |method: Method, uri: Uri| async move {
        let body = json!({"error": format!("{method} is not allowed on {}; use {allowed}", uri.path())});
        let mut response = json_response(StatusCode::METHOD_NOT_ALLOWED, &body);
        let allow = HeaderValue::from_str(allowed.as_str()).expect("a method is a header value");
        response.headers_mut().insert(header::ALLOW, allow);
        response
    })
}

async fn no_such_route(uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("no such route: {}; routes: {ROUTES}", uri.path()),
    )
}

async fn health() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}),
    )
}

async fn status(_: Authorized, State(shared): State<Arc<Shared>>) -> Response {
    let deployment = &shared.deployment;
    match status::all(deployment.store.as_ref(), &deployment.config).await {
        Ok(records) => json_response(StatusCode::OK, &records),
        Err(e) => error(StatusCode::BAD_GATEWAY, &e.to_string()),
    }
}

async fn feeds(_: Authorized, State(shared): State<Arc<Shared>>) -> Response {
    let config = &shared.deployment.config;
    let feeds: Vec<_> = config
        .feeds
        .iter()
        .map(|f| json!({"name": f.name, "key": format!("{}{}", config.store.prefix, f.key)}))
        .collect();
    json_response(StatusCode::OK, &feeds)
}

async fn refresh(
    _: Authorized,
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    deadline: Deadline,
    uri: Uri,
    extensions: Extensions,
) -> Response {
    let config = &shared.deployment.config;
    let feed = match config.feed(&name) {
        Ok(feed) => feed,
        Err(unknown) => return error(StatusCode::NOT_FOUND, &unknown.to_string()),
    };
    let force = forced(&extensions, &uri);
    let report = match shared
        .deployment
        .ask(feed, force, RefreshOptions::http(deadline.0, force))
        .await
    {
        Ok(Asked::Ran(report)) => *report,
        Ok(Asked::Queued { queue }) => {
            info!(feed = %feed.name, force, queue = %queue, "refresh queued");
            return json_response(
                StatusCode::ACCEPTED,
                &json!({
                    "queued": feed.name,
                    "force": force,
                    "message": format!("{}: queued; GET /status shows its outcome once it has run", feed.name),
                }),
            );
        }
        Err(e) => return error(StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    // The message is the outcome's one wording; the status code and headers say the rest.
    let message = report.outcome.to_string();
    match &report.outcome {
        Outcome::Updated | Outcome::Unchanged => json_response(StatusCode::OK, &report),
        // Backoff is not asked for by this route's options; answered like a skip should that
        // change.
        Outcome::Skipped { retry_after_s } | Outcome::Backoff { retry_after_s, .. } => {
            let body = json!({
                "error": format!("{message}, or add ?force=1"),
                "retry_after_s": retry_after_s,
            });
            retry_after(json_response(StatusCode::TOO_MANY_REQUESTS, &body), *retry_after_s)
        }
        // Even with ?force=1: force lifts min_interval_s, never the one-refresh-at-a-time rule.
        Outcome::Busy {
            retry_after_s,
            started,
            until,
            holder,
            ..
        } => {
            let body = json!({
                "error": format!("{name}: {message}"),
                "in_flight_since": crate::outcome::rfc3339(*started),
                "in_flight_until": crate::outcome::rfc3339(*until),
                "holder": holder,
                "retry_after_s": retry_after_s,
            });
            retry_after(json_response(StatusCode::CONFLICT, &body), *retry_after_s)
        }
        Outcome::Failed { stage, .. } => {
            let body = json!({"error": message, "stage": stage, "report": report});
            json_response(StatusCode::BAD_GATEWAY, &body)
        }
    }
}

/// `?force=1` (or `true`, `yes`): from the parameters lambda_http parsed off the event, or from
/// the uri of a request built by hand.
fn forced(extensions: &Extensions, uri: &Uri) -> bool {
    let yes = |value: &str| matches!(value, "1" | "true" | "yes");
    match extensions.query_string_parameters_ref() {
        Some(parameters) => parameters.all("force").unwrap_or_default().into_iter().any(yes),
        None => uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .any(|(key, value)| key == "force" && yes(value)),
    }
}

/// Proof that the request may use the authenticated routes; the extractor answers 401 itself.
///
/// A request AWS_IAM signed is authorized whatever the token: with AuthType AWS_IAM, Lambda has
/// already checked the SigV4 signature and the caller's permission before invoking the
/// function, and reports the caller in `requestContext.authorizer.iam`
/// (https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html). SigV4 uses the Authorization
/// header itself, so such a request can never carry the bearer token too. Otherwise a bearer
/// token is needed, when one is configured. The scheme is matched in any case, as RFC 7235
/// section 2.1 requires.
pub(super) struct Authorized;

impl FromRequestParts<Arc<Shared>> for Authorized {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, Response> {
        match authorize(parts, shared) {
            Ok(()) => Ok(Authorized),
            Err(reason) => {
                warn!(path = %parts.uri.path(), "unauthorized function URL request");
                let mut response = error(StatusCode::UNAUTHORIZED, reason);
                let challenge = HeaderValue::from_static("Bearer");
                response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
                Err(response)
            }
        }
    }
}

fn authorize(parts: &Parts, shared: &Shared) -> Result<(), &'static str> {
    let signed = match parts.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.authorizer.as_ref().is_some_and(|a| a.iam.is_some()),
        _ => false,
    };
    if signed {
        return Ok(());
    }
    let Some(expected) = &shared.token else {
        return Err(
            "this function URL has no FLAREFEED_TOKEN and the request is not AWS_IAM-signed; set a token or use AuthType AWS_IAM",
        );
    };
    let offered = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, credentials) = v.trim_start().split_once([' ', '\t'])?;
            scheme.eq_ignore_ascii_case("bearer").then_some(credentials)
        })
        .ok_or("missing Authorization: Bearer <token>")?;
    if bool::from(digest(offered.trim()).ct_eq(expected)) {
        Ok(())
    } else {
        Err("wrong token")
    }
}

impl FromRequestParts<Arc<Shared>> for Deadline {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<Shared>) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Deadline>().copied().unwrap_or(Deadline(None)))
    }
}

/// A JSON answer that no cache keeps.
pub(super) fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let text = serde_json::to_string(body).expect("response bodies always serialize");
    let mut response = (status, text).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({"error": message}))
}

fn retry_after(mut response: Response, seconds: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// Logs the request line of every function URL request (never its headers: they carry the
/// token).
pub(super) fn log_request(method: &Method, path: &str) {
    info!(method = %method, path = %path, "function URL request");
}
