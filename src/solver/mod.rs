//! The solver port and its adapters: FlareSolverr over HTTP ([`client`]), a pool of them
//! ([`pool`]), and, for tests (feature `test-util`), a scripted one. The wire format, both
//! builds' reply shapes and the sorting of their errors are in [`wire`].

mod client;
mod pool;
#[cfg(any(test, feature = "test-util"))]
mod scripted;
mod wire;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::time::Instant;

use crate::feed::FeedError;
use crate::redact::Secret;

pub use client::FlareSolverr;
pub use pool::SolverPool;
#[cfg(any(test, feature = "test-util"))]
pub use scripted::{Calls, ScriptedSolver};

/// Time FlareSolverr may need beyond `maxTimeout`: it does not count starting Chrome, and a
/// 5 s maxTimeout was seen to take 17 s of wall time.
pub const STARTUP_MARGIN: Duration = Duration::from_secs(30);

/// Below this much time before the deadline no request is sent at all.
pub const MIN_REQUEST_TIME: Duration = Duration::from_secs(1);

/// How a feed uses FlareSolverr sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionPolicy {
    /// Every request starts a fresh Chrome (slow, but nothing to go stale).
    None,
    /// A named session per feed (`flarefeed-<feed>`) keeps Chrome warm between refreshes.
    #[default]
    Reuse,
}

/// What the client needs to know about the solver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SolverSettings {
    /// The `/v1` endpoint, e.g. `http://localhost:8191/v1` (the first of `urls`).
    pub url: String,
    /// Every solver, in configuration order: `[url]`, or `[solver] urls`.
    pub urls: Vec<String>,
    pub max_timeout: Duration,
    pub session: SessionPolicy,
    pub session_ttl_minutes: u64,
    /// Session names are `<session_prefix>-<feed>`: a prefix per deployment keeps two
    /// deployments that share one FlareSolverr out of each other's sessions.
    pub session_prefix: String,
    /// The largest reply body read, in bytes.
    pub max_reply_bytes: usize,
    /// The Lambda function's memory in MB, when the cap was derived from it.
    pub function_memory_mb: Option<u64>,
    /// What a request may take beyond maxTimeout ([`STARTUP_MARGIN`]), and what
    /// `sessions.create` may take at all: past it the solver counts as hung.
    pub startup_margin: Duration,
    /// No connection within this long: the solver counts as unreachable.
    pub connect_timeout: Duration,
}

impl Default for SolverSettings {
    fn default() -> Self {
        Self {
            url: "http://localhost:8191/v1".into(),
            urls: vec!["http://localhost:8191/v1".into()],
            max_timeout: Duration::from_secs(60),
            session: SessionPolicy::Reuse,
            session_ttl_minutes: 60,
            session_prefix: "flarefeed".into(),
            max_reply_bytes: crate::feed::DEFAULT_MAX_BYTES,
            function_memory_mb: None,
            startup_margin: STARTUP_MARGIN,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Why no page came back. Each message tells the operator where to look.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SolverError {
    #[error(
        "cannot reach FlareSolverr at {url}: {detail}; is it running? (docker run -p 8191:8191 ghcr.io/flaresolverr/flaresolverr) Check [solver] url or FLAREFEED_SOLVER_URL"
    )]
    Unreachable { url: String, detail: String },
    #[error(
        "FlareSolverr at {url} did not answer within {seconds} s; it may be stuck or overloaded: check its logs, or give the request more time ([solver] max_timeout_ms, or --max-timeout with --url; the Lambda timeout)"
    )]
    Timeout { url: String, seconds: u64 },
    #[error(
        "FlareSolverr could not solve the challenge in time: {message}; raise [solver] max_timeout_ms (--max-timeout with --url), or try again later"
    )]
    ChallengeTimeout { message: String },
    #[error(
        "only {left_ms} ms were left before the deadline, too little to ask FlareSolverr: raise the Lambda function's timeout (it needs max_timeout_ms plus about 40 s)"
    )]
    NoTimeLeft { left_ms: u64 },
    #[error(
        "Cloudflare blocked FlareSolverr: {message}; the site refuses the solver's IP address: run FlareSolverr from another address"
    )]
    Blocked { message: String },
    #[error("FlareSolverr's browser session failed: {message}")]
    Session { message: String },
    #[error("FlareSolverr reported an error: {message}")]
    Failed { message: String },
    #[error(
        "the solver refused the request as invalid: {message}; this flarefeed and the solver disagree on the API (is [solver] url a FlareSolverr-compatible /v1?)"
    )]
    Rejected { message: String },
    #[error("the site answered HTTP {status} for {url} (as the solver reports it); {}", upstream_hint(*status))]
    Upstream { status: u16, url: String },
    /// Chrome's own network error for the url (`net::ERR_…`): the site, not the solver.
    #[error(
        "Chrome could not load the feed's url ({code}): {}",
        crate::feed::explain_net_error(code)
    )]
    Chrome { code: String },
    #[error("FlareSolverr's reply is malformed: {detail}; is [solver] url really FlareSolverr's /v1 endpoint?")]
    Malformed { detail: String },
    /// JSON, but in no shape a FlareSolverr-compatible solver answers: the url is right, the
    /// API is not one flarefeed knows.
    #[error(
        "the solver answered JSON that flarefeed does not understand ({detail}); it is not FlareSolverr's /v1 API or a compatible one (FlareBypasser, Byparr, flaresolverr-go)"
    )]
    Unrecognised { detail: String },
    #[error(
        "FlareSolverr at {url} is unavailable: HTTP {status}, and not FlareSolverr's JSON ({detail}); a proxy or load balancer in front of it answered: check that the solver runs"
    )]
    Unavailable { url: String, status: u16, detail: String },
    #[error("FlareSolverr at {url} is busy: HTTP 429{}; it limits requests per client, so spread the feeds over time or over more solvers", retry_after_s.map(|s| format!(", retry after {s} s")).unwrap_or_default())]
    RateLimited { url: String, retry_after_s: Option<u64> },
    #[error("FlareSolverr's reply is larger than {limit} bytes; refused to protect memory: {}", too_large_hint(*memory_mb))]
    TooLarge { limit: usize, memory_mb: Option<u64> },
}

/// What a site's HTTP error asks of the operator: a 5xx is the site failing, and passes.
fn upstream_hint(status: u16) -> &'static str {
    match status {
        500..=599 => "the site is failing; it is tried again at the next refresh",
        401 | 403 => "the site refuses the solver: it may block its address, or want a login",
        404 | 410 => "the feed is not there: check the feed url",
        429 => "the site limits requests: lengthen the feed's interval",
        _ => "check the feed url",
    }
}

/// What to raise when a reply is over the cap.
fn too_large_hint(memory_mb: Option<u64>) -> String {
    match memory_mb {
        Some(mb) => format!(
            "the cap follows the Lambda function's memory ({mb} MB); raise its MemorySize (the template's MemorySize parameter): every 3 MB more admits 1 MB more reply"
        ),
        None => "if the feed really is this large, raise [solver] max_reply_mb".to_string(),
    }
}

impl SolverError {
    /// Whether the solver itself is out of service for this request, so that a pool hands the
    /// feed to its next solver: no connection (refused, or none within the connect timeout), no
    /// answer within maxTimeout and the startup margin, a 5xx that is not the solver's JSON (a
    /// proxy's 502), a 429. The solver's own answers (a challenge not solved, a block, a bad
    /// request) say nothing about the other solvers, and are final.
    pub fn solver_unavailable(&self) -> bool {
        matches!(
            self,
            SolverError::Unreachable { .. }
                | SolverError::Timeout { .. }
                | SolverError::Unavailable { .. }
                | SolverError::RateLimited { .. }
        )
    }

    /// Whether a failed request made in a session may be the session's fault, so that
    /// recreating it could help.
    ///
    /// Decided by what says the *site* failed, not by how a broken session is worded: builds
    /// and languages word that differently (the PyPI build says "浏览器未开启或已关闭。" or
    /// "'NoneType' object has no attribute 'send'" for the same dead Chrome). The site's own
    /// failures are the challenge not solved in time, a Cloudflare block, and Chrome's
    /// `net::ERR_…` for the url; every other error FlareSolverr reports gets the one retry.
    pub fn may_be_session_failure(&self) -> bool {
        match self {
            SolverError::Session { .. } => true,
            SolverError::Failed { message } => !message.contains("net::ERR_"),
            SolverError::Chrome { .. } => false,
            _ => false,
        }
    }
}

/// `solution` of a `request.get` reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// The url Chrome ended on (after redirects).
    pub url: Option<String>,
    /// Which solver answered (its url, without secrets): with several, the status record says.
    pub solver: Option<String>,
    /// The upstream status; always 200 in the official build, real in the PyPI build.
    pub status: Option<u16>,
    pub response: Option<Body>,
    /// The solvers of a pool that answered with a wall they did not get past (a challenge, a
    /// block page) and were passed over for this one; without secrets.
    pub passed_over: Vec<String>,
}

impl Solution {
    /// The page to look for the feed in: Chrome's page source, or the raw text. A JSON value
    /// (the PyPI build parses a JSON reply from the site) or no page at all is no feed, said
    /// here, where the shapes of the reply are known.
    pub fn into_page(self) -> Result<String, FeedError> {
        match self.response {
            Some(Body::Text(text)) => Ok(text),
            Some(Body::Json(_)) => Err(FeedError::Json),
            None => Err(FeedError::Empty),
        }
    }

    /// The page a feed built from a page reads: Chrome's page source, the raw text, or the
    /// JSON an API answered with (the PyPI build's JSON value, as its text).
    pub fn into_any_page(self) -> Result<String, FeedError> {
        match self.response {
            Some(Body::Text(text) | Body::Json(text)) => Ok(text),
            None => Err(FeedError::Empty),
        }
    }
}

/// `solution.response`: Chrome's page source as a string, or, from the PyPI build, a JSON value
/// (kept as its text: it is read, if at all, by a feed built from a JSON API, lazily).
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Text(String),
    Json(String),
}

/// One page asked of the solver, with the feed's own options.
#[derive(Debug, Clone, Copy)]
pub struct SolveRequest<'a> {
    /// The feed's name: its session, and its place in a pool.
    pub feed: &'a str,
    pub url: &'a str,
    /// Finish by then, if given.
    pub deadline: Option<Instant>,
    /// The feed's own maxTimeout, instead of `[solver] max_timeout_ms`.
    pub max_timeout: Option<Duration>,
    /// The feed's proxy, for Chrome.
    pub proxy: Option<&'a Secret>,
    /// The solver (its url without secrets) that got past this feed's wall where another did
    /// not, from its status record: a pool asks it first.
    pub prefer: Option<&'a str>,
}

impl<'a> SolveRequest<'a> {
    /// `url` for `feed`, with the solver's defaults.
    pub fn new(feed: &'a str, url: &'a str, deadline: Option<Instant>) -> Self {
        Self {
            feed,
            url,
            deadline,
            max_timeout: None,
            proxy: None,
            prefer: None,
        }
    }
}

/// The port: one page of a feed through the solver.
#[async_trait]
pub trait Solver: Send + Sync {
    async fn solve(&self, request: &SolveRequest<'_>) -> Result<Solution, SolverError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_reply_names_the_setting_to_raise() {
        let lambda = SolverError::TooLarge {
            limit: 72 * 1024 * 1024,
            memory_mb: Some(256),
        };
        assert!(
            lambda.to_string().contains("memory (256 MB); raise its MemorySize"),
            "{lambda}"
        );
        let local = SolverError::TooLarge {
            limit: 1024,
            memory_mb: None,
        };
        assert!(local.to_string().contains("raise [solver] max_reply_mb"), "{local}");
    }
}
