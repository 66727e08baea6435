//! The FlareSolverr client: typed commands, both builds' reply shapes, typed errors, and the
//! per-feed session policy.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::redact_url;
use crate::error_chain;

/// Time FlareSolverr may need beyond `maxTimeout`: it does not count starting Chrome, and a
/// 5 s maxTimeout was seen to take 17 s of wall time.
pub const STARTUP_MARGIN: Duration = Duration::from_secs(30);

/// Below this much time before the deadline no request is sent at all.
pub const MIN_REQUEST_TIME: Duration = Duration::from_secs(1);

/// The smallest maxTimeout worth asking for when a deadline squeezes it.
const MIN_MAX_TIMEOUT: Duration = Duration::from_secs(5);

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
        "FlareSolverr at {url} did not answer within {seconds} s; it may be stuck or overloaded: check its logs, or give the request more time (max_timeout_ms, Lambda timeout)"
    )]
    Timeout { url: String, seconds: u64 },
    #[error(
        "FlareSolverr could not solve the challenge in time: {message}; raise [solver] max_timeout_ms, or try again later"
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
        "FlareSolverr rejected the request as malformed: {message}; this flarefeed and this FlareSolverr disagree on the API"
    )]
    Rejected { message: String },
    #[error("the site answered HTTP {status} for {url} (as FlareSolverr reports it); check the feed url")]
    Upstream { status: u16, url: String },
    #[error("FlareSolverr's reply is malformed: {detail}; is [solver] url really FlareSolverr's /v1 endpoint?")]
    Malformed { detail: String },
    #[error("FlareSolverr's reply is larger than {limit} bytes; refused to protect memory: {}", too_large_hint(*memory_mb))]
    TooLarge { limit: usize, memory_mb: Option<u64> },
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
            _ => false,
        }
    }
}

/// One command to `/v1`. Field names are FlareSolverr's.
#[derive(Debug, Serialize)]
struct Command<'a> {
    cmd: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(rename = "maxTimeout", skip_serializing_if = "Option::is_none")]
    max_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_ttl_minutes: Option<u64>,
}

impl<'a> Command<'a> {
    /// `request.get` of `url`, in `session` if one is given.
    fn get(url: &'a str, max_timeout: Duration, session: Option<&'a str>, ttl_minutes: u64) -> Self {
        Self {
            cmd: "request.get",
            url: Some(url),
            max_timeout: Some(max_timeout.as_millis() as u64),
            session,
            session_ttl_minutes: session.map(|_| ttl_minutes),
        }
    }

    /// A `sessions.*` command on session `id`.
    fn session(cmd: &'a str, id: &'a str) -> Self {
        Self {
            cmd,
            url: None,
            max_timeout: None,
            session: Some(id),
            session_ttl_minutes: None,
        }
    }
}

/// A reply of either build; every field may be missing.
#[derive(Debug)]
struct Reply {
    status: Option<String>,
    message: Option<String>,
    solution: Option<Solution>,
    /// The shape a malformed request gets instead of `status`/`message`.
    error: Option<serde_json::Value>,
}

/// [`Reply`] as read, with `solution.response` still the JSON text inside the body: the page
/// is the reply's bulk, and decoding it once, straight into its own string, keeps a refresh's
/// memory at the body plus the page (serde_json would add a scratch copy).
#[derive(Deserialize)]
struct RawReply<'a> {
    status: Option<String>,
    message: Option<String>,
    #[serde(borrow)]
    solution: Option<RawSolution<'a>>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawSolution<'a> {
    url: Option<String>,
    status: Option<u16>,
    #[serde(borrow)]
    response: Option<&'a serde_json::value::RawValue>,
}

impl RawReply<'_> {
    fn decode(self) -> Result<Reply, serde_json::Error> {
        let solution = match self.solution {
            None => None,
            Some(raw) => Some(Solution {
                url: raw.url,
                solver: None,
                status: raw.status,
                response: match raw.response.map(serde_json::value::RawValue::get) {
                    None | Some("null") => None,
                    Some(text) if text.starts_with('"') => Some(Body::Text(json_string(text)?)),
                    Some(json) => Some(Body::Json(serde_json::from_str(json)?)),
                },
            }),
        };
        Ok(Reply {
            status: self.status,
            message: self.message,
            solution,
            error: self.error,
        })
    }
}

/// Decodes a JSON string literal (already checked by serde_json) into one exactly sized string.
fn json_string(literal: &str) -> Result<String, serde_json::Error> {
    use serde::de::Error;
    let bad = |what: &str| serde_json::Error::custom(format!("bad string in solution.response: {what}"));
    let inner = &literal[1..literal.len() - 1];
    let escapes = memchr::memchr_iter(b'\\', inner.as_bytes()).count();
    let mut out = String::with_capacity(inner.len() - escapes);
    let mut rest = inner;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escape = &rest[at + 1..];
        let mut chars = escape.chars();
        let used = match chars.next() {
            Some('"') => {
                out.push('"');
                1
            }
            Some('\\') => {
                out.push('\\');
                1
            }
            Some('/') => {
                out.push('/');
                1
            }
            Some('b') => {
                out.push('\u{8}');
                1
            }
            Some('f') => {
                out.push('\u{c}');
                1
            }
            Some('n') => {
                out.push('\n');
                1
            }
            Some('r') => {
                out.push('\r');
                1
            }
            Some('t') => {
                out.push('\t');
                1
            }
            Some('u') => {
                let unit = |from: usize| {
                    escape
                        .get(from..from + 4)
                        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                        .ok_or_else(|| bad("a short \\u escape"))
                };
                let first = unit(1)?;
                match first {
                    0xD800..=0xDBFF => {
                        let second = if escape.get(5..7) == Some("\\u") { unit(7)? } else { 0 };
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return Err(bad("a lone surrogate"));
                        }
                        let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                        out.push(char::from_u32(code).ok_or_else(|| bad("a surrogate pair"))?);
                        11
                    }
                    0xDC00..=0xDFFF => return Err(bad("a lone surrogate")),
                    code => {
                        out.push(char::from_u32(code).ok_or_else(|| bad("an escape"))?);
                        5
                    }
                }
            }
            _ => return Err(bad("an unknown escape")),
        };
        rest = &escape[used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `solution` of a `request.get` reply.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Solution {
    /// The url Chrome ended on (after redirects).
    pub url: Option<String>,
    /// Which solver answered (its url, without secrets): with several, the status record says.
    pub solver: Option<String>,
    /// The upstream status; always 200 in the official build, real in the PyPI build.
    pub status: Option<u16>,
    pub response: Option<Body>,
}

/// `solution.response`: Chrome's page source as a string, or, from the PyPI build, a JSON value.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Body {
    Text(String),
    Json(serde_json::Value),
}

/// The port: one page of a feed through the solver.
#[async_trait]
pub trait Solver: Send + Sync {
    /// Fetches `url` for feed `feed`, finishing by `deadline` if one is given.
    async fn solve(&self, feed: &str, url: &str, deadline: Option<Instant>) -> Result<Solution, SolverError>;
}

/// The test adapter: answers from a script, in order, and can act (as another refresh would)
/// while it "solves".
#[cfg(test)]
#[derive(Default)]
pub(crate) struct ScriptedSolver {
    answers: std::sync::Mutex<std::collections::VecDeque<Result<Solution, SolverError>>>,
    during: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

#[cfg(test)]
impl ScriptedSolver {
    /// The next request gets this page, as the PyPI build returns a feed (raw text).
    pub fn page(&self, url: &str, text: &str) {
        let solution = Solution {
            url: Some(url.to_string()),
            solver: None,
            status: Some(200),
            response: Some(Body::Text(text.to_string())),
        };
        self.answers.lock().unwrap().push_back(Ok(solution));
    }

    pub fn error(&self, error: SolverError) {
        self.answers.lock().unwrap().push_back(Err(error));
    }

    /// Runs `act` while the next request is being solved.
    pub fn meanwhile(&self, act: impl FnOnce() + Send + 'static) {
        *self.during.lock().unwrap() = Some(Box::new(act));
    }
}

#[cfg(test)]
#[async_trait]
impl Solver for ScriptedSolver {
    async fn solve(&self, _feed: &str, _url: &str, _deadline: Option<Instant>) -> Result<Solution, SolverError> {
        if let Some(act) = self.during.lock().unwrap().take() {
            act();
        }
        self.answers
            .lock()
            .unwrap()
            .pop_front()
            .expect("the test scripted an answer for every request")
    }
}

/// The real adapter: FlareSolverr over HTTP.
#[derive(Debug, Clone)]
pub struct FlareSolverr {
    http: reqwest::Client,
    settings: SolverSettings,
}

impl FlareSolverr {
    /// Builds the HTTP client once; clone the result rather than building another.
    pub fn new(settings: SolverSettings) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("a plain rustls client always builds");
        Self { http, settings }
    }

    /// `request.get` for `url`, in `session` if given.
    pub async fn request_get(
        &self,
        url: &str,
        session: Option<&str>,
        deadline: Option<Instant>,
    ) -> Result<Solution, SolverError> {
        let (max_timeout, http_timeout) = self.budget(deadline)?;
        let command = Command::get(url, max_timeout, session, self.settings.session_ttl_minutes);
        let reply = self.send(&command, http_timeout).await?;
        let mut solution = reply.solution.ok_or_else(|| SolverError::Malformed {
            detail: "\"ok\" reply without a solution".into(),
        })?;
        solution.solver = Some(redact_url(&self.settings.url));
        if let Some(status) = solution.status.filter(|s| *s >= 400) {
            return Err(SolverError::Upstream {
                status,
                url: redact_url(solution.url.as_deref().unwrap_or(url)),
            });
        }
        if solution.response.is_none() {
            return Err(SolverError::Malformed {
                detail: "the solution has no response (was returnOnlyCookies set?)".into(),
            });
        }
        Ok(solution)
    }

    /// `sessions.create` with a fixed id; an existing session is fine.
    pub async fn sessions_create(&self, id: &str, deadline: Option<Instant>) -> Result<(), SolverError> {
        let command = Command::session("sessions.create", id);
        self.send(&command, self.short_timeout(deadline)?).await.map(drop)
    }

    /// `sessions.destroy`: stops that session's Chrome.
    pub async fn sessions_destroy(&self, id: &str, deadline: Option<Instant>) -> Result<(), SolverError> {
        let command = Command::session("sessions.destroy", id);
        self.send(&command, self.short_timeout(deadline)?).await.map(drop)
    }

    /// maxTimeout to ask for and the HTTP timeout to wait, both within the deadline.
    fn budget(&self, deadline: Option<Instant>) -> Result<(Duration, Duration), SolverError> {
        let wanted = self.settings.max_timeout + STARTUP_MARGIN;
        let Some(deadline) = deadline else {
            return Ok((self.settings.max_timeout, wanted));
        };
        let left = self.time_left(deadline)?;
        // The deadline may squeeze maxTimeout (not below a useful minimum), never raise it.
        let squeezed = left.saturating_sub(STARTUP_MARGIN).max(MIN_MAX_TIMEOUT);
        let max_timeout = self.settings.max_timeout.min(squeezed);
        Ok((max_timeout, wanted.min(left)))
    }

    fn short_timeout(&self, deadline: Option<Instant>) -> Result<Duration, SolverError> {
        match deadline {
            Some(deadline) => Ok(STARTUP_MARGIN.min(self.time_left(deadline)?)),
            None => Ok(STARTUP_MARGIN),
        }
    }

    fn time_left(&self, deadline: Instant) -> Result<Duration, SolverError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < MIN_REQUEST_TIME {
            return Err(SolverError::NoTimeLeft {
                left_ms: left.as_millis() as u64,
            });
        }
        Ok(left)
    }

    async fn send(&self, command: &Command<'_>, timeout: Duration) -> Result<Reply, SolverError> {
        let url = &self.settings.url;
        let started = Instant::now();
        let timed_out = || SolverError::Timeout {
            url: redact_url(url),
            seconds: timeout.as_secs_f64().ceil() as u64,
        };
        let exchange = async {
            let response = self
                .http
                .post(url)
                .json(command)
                .send()
                .await
                .map_err(|e| transport_error(url, e, &timed_out))?;
            let status = response.status();
            let body = read_capped(response, self.settings.max_reply_bytes)
                .await
                .map_err(|e| match e {
                    ReadError::TooLarge => SolverError::TooLarge {
                        limit: self.settings.max_reply_bytes,
                        memory_mb: self.settings.function_memory_mb,
                    },
                    ReadError::Transport(e) if e.is_timeout() => timed_out(),
                    ReadError::Transport(e) => SolverError::Malformed {
                        detail: format!("the reply was cut off: {}", error_chain(&e.without_url())),
                    },
                })?;
            Ok::<_, SolverError>((status, body))
        };
        let (status, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| timed_out())??;
        debug!(
            cmd = command.cmd,
            status = status.as_u16(),
            bytes = body.len(),
            ms = started.elapsed().as_millis() as u64,
            "solver replied"
        );
        parse_reply(status, &body)
    }
}

fn transport_error(url: &str, error: reqwest::Error, timed_out: &dyn Fn() -> SolverError) -> SolverError {
    // reqwest's messages name the url, credentials and all.
    let error = error.without_url();
    if error.is_timeout() {
        timed_out()
    } else if error.is_connect() || error.is_request() {
        SolverError::Unreachable {
            url: redact_url(url),
            detail: error_chain(&error),
        }
    } else {
        SolverError::Malformed {
            detail: error_chain(&error),
        }
    }
}

enum ReadError {
    TooLarge,
    Transport(reqwest::Error),
}

async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|n| n as usize > cap) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::with_capacity(response.content_length().map_or(64 * 1024, |n| n as usize));
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > cap {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn parse_reply(status: reqwest::StatusCode, body: &[u8]) -> Result<Reply, SolverError> {
    let reply: Reply = serde_json::from_slice::<RawReply<'_>>(body)
        .and_then(RawReply::decode)
        .map_err(|e| {
            let head: String = String::from_utf8_lossy(&body[..body.len().min(200)]).chars().collect();
            SolverError::Malformed {
                detail: format!("HTTP {status}, not FlareSolverr JSON ({e}): {head:?}"),
            }
        })?;
    if let Some(error) = reply.error {
        let message = error.as_str().map_or_else(|| error.to_string(), str::to_string);
        return Err(SolverError::Rejected { message });
    }
    match reply.status.as_deref() {
        Some("ok") if status.is_success() => Ok(reply),
        Some("error") | Some("ok") => Err(classify(reply.message.as_deref().unwrap_or("(no message)"))),
        other => Err(SolverError::Malformed {
            detail: format!("HTTP {status} with status {other:?}"),
        }),
    }
}

/// Sorts an error message into what the operator should do about it.
fn classify(message: &str) -> SolverError {
    let message = short_message(message);
    let lower = message.to_lowercase();
    const SESSION_MARKERS: [&str; 11] = [
        "session doesn't exist",
        "invalid session id",
        "no such window",
        "chrome not reachable",
        "target window already closed",
        "not connected to devtools",
        "session deleted",
        "browser has closed",
        "tab crashed",
        "浏览器未开启或已关闭",
        "disconnected",
    ];
    if lower.contains("timeout after") {
        SolverError::ChallengeTimeout { message }
    } else if lower.contains("cloudflare has blocked this request") {
        SolverError::Blocked { message }
    } else if SESSION_MARKERS.iter().any(|m| lower.contains(m)) {
        SolverError::Session { message }
    } else {
        SolverError::Failed { message }
    }
}

/// The message without `Error: ` and without the Chrome stack trace FlareSolverr appends.
fn short_message(message: &str) -> String {
    let message = message.strip_prefix("Error: ").unwrap_or(message);
    let cut = ["\\n", "\n", "Stacktrace:"]
        .iter()
        .filter_map(|m| message.find(m))
        .min()
        .unwrap_or(message.len());
    message[..cut].trim().to_string()
}

#[async_trait]
impl Solver for FlareSolverr {
    async fn solve(&self, feed: &str, url: &str, deadline: Option<Instant>) -> Result<Solution, SolverError> {
        if self.settings.session == SessionPolicy::None {
            return self.request_get(url, None, deadline).await;
        }
        let session = format!("{}-{feed}", self.settings.session_prefix);
        let in_session = || async {
            self.sessions_create(&session, deadline).await?;
            self.request_get(url, Some(&session), deadline).await
        };
        let first = match in_session().await {
            Err(e) if e.may_be_session_failure() => e,
            other => return other,
        };
        warn!(feed, session, error = %first, "session failed; recreating it and retrying once");
        self.destroy_quietly(&session, deadline).await;
        let second = match in_session().await {
            Err(e) if e.may_be_session_failure() => e,
            other => return other,
        };
        warn!(feed, session, error = %second, "session failed again; dropping it and fetching without a session");
        self.destroy_quietly(&session, deadline).await;
        let result = self.request_get(url, None, deadline).await;
        if result.is_ok() {
            info!(
                feed,
                "fetched without a session; the session is recreated on the next refresh"
            );
        }
        result
    }
}

/// Several FlareSolverrs. Each feed sticks to one, chosen by rendezvous (highest random
/// weight) hashing of its name over the urls, so that its session stays warm there, and adding
/// or removing a solver moves only the feeds that solver gains or loses. A solver that cannot be
/// reached hands the feed to the next in the same order, within the same refresh.
pub struct SolverPool {
    members: Vec<FlareSolverr>,
}

impl SolverPool {
    pub fn new(settings: &SolverSettings) -> Self {
        let members = settings
            .urls
            .iter()
            .map(|url| {
                FlareSolverr::new(SolverSettings {
                    url: url.clone(),
                    urls: vec![url.clone()],
                    ..settings.clone()
                })
            })
            .collect();
        Self { members }
    }

    /// The solvers in the order `feed` tries them.
    pub fn order(&self, feed: &str) -> Vec<&str> {
        self.ranked(feed).into_iter().map(|m| m.settings.url.as_str()).collect()
    }

    fn ranked(&self, feed: &str) -> Vec<&FlareSolverr> {
        let mut ranked: Vec<&FlareSolverr> = self.members.iter().collect();
        ranked.sort_by_key(|member| std::cmp::Reverse(rendezvous(feed, &member.settings.url)));
        ranked
    }
}

/// The weight of `url` for `feed`: SHA-256, so the same everywhere and in every version.
fn rendezvous(feed: &str, url: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{feed}\n{url}").as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

#[async_trait]
impl Solver for SolverPool {
    async fn solve(&self, feed: &str, url: &str, deadline: Option<Instant>) -> Result<Solution, SolverError> {
        let mut unreachable = None;
        for member in self.ranked(feed) {
            match member.solve(feed, url, deadline).await {
                Err(e @ SolverError::Unreachable { .. }) => {
                    warn!(feed, error = %e, "solver unreachable; trying the feed's next one");
                    unreachable = Some(e);
                }
                other => return other,
            }
        }
        Err(unreachable.expect("a pool has at least one solver"))
    }
}

impl FlareSolverr {
    async fn destroy_quietly(&self, session: &str, deadline: Option<Instant>) {
        if let Err(e) = self.sessions_destroy(session, deadline).await {
            debug!(session, error = %e, "destroying the session failed (it may already be gone)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_keeps_feeds_on_their_solver_and_spreads_them() {
        let urls = |n: usize| SolverSettings {
            urls: (0..n).map(|i| format!("http://solver-{i}:8191/v1")).collect(),
            ..SolverSettings::default()
        };
        let three = SolverPool::new(&urls(3));
        let four = SolverPool::new(&urls(4));
        let mut load = [0; 3];
        let mut moved = 0;
        for i in 0..3000 {
            let feed = format!("feed-{i}");
            let first = three.order(&feed)[0];
            load[first.as_bytes()[14] as usize - b'0' as usize] += 1;
            assert_eq!(three.order(&feed), three.order(&feed), "stable");
            // A fourth solver takes feeds only for itself; no feed moves between the others.
            let now = four.order(&feed)[0];
            if now != first {
                assert_eq!(now, "http://solver-3:8191/v1");
                moved += 1;
            }
        }
        assert!(load.iter().all(|&n| (850..=1150).contains(&n)), "{load:?}");
        assert!((600..=900).contains(&moved), "{moved} of 3000 moved to the new solver");
    }

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

    #[test]
    fn json_strings_decode_as_serde_json_does() {
        for value in [
            "",
            "plain",
            "a\"b\\c/d\n\r\t\u{8}\u{c}",
            "中文 😀 \u{1f}",
            "&lt;rss&gt; <pre>\\u0041",
        ] {
            let literal = serde_json::to_string(value).unwrap();
            assert_eq!(json_string(&literal).unwrap(), value, "{literal}");
        }
        assert_eq!(json_string(r#""\u00e9\ud83d\ude00\/""#).unwrap(), "é😀/");
        assert!(json_string(r#""\ud800""#).is_err());
        assert!(json_string(r#""\udc00x""#).is_err());
    }

    #[test]
    fn stack_traces_are_cut() {
        let e = classify(
            "Error: Error solving the challenge. Message: unknown error: net::ERR_CONNECTION_REFUSED\\n  (Session info: chrome=156)\\nStacktrace:\\n#0 0x55",
        );
        assert_eq!(
            e,
            SolverError::Failed {
                message: "Error solving the challenge. Message: unknown error: net::ERR_CONNECTION_REFUSED".into()
            }
        );
    }

    #[test]
    fn messages_are_sorted() {
        assert!(matches!(
            classify("Error: Error solving the challenge. Timeout after 5.0 seconds."),
            SolverError::ChallengeTimeout { .. }
        ));
        assert!(matches!(
            classify("Error: Error solving the challenge. Cloudflare has blocked this request. Probably"),
            SolverError::Blocked { .. }
        ));
        assert!(classify("Error: 浏览器未开启或已关闭。").may_be_session_failure());
        assert!(classify("Error: The session doesn't exist.").may_be_session_failure());
    }

    #[test]
    fn session_retries_are_decided_by_what_says_the_site_failed() {
        for unseen in [
            "Error: Error solving the challenge. 'NoneType' object has no attribute 'send'",
            "Error: something no build has said yet",
            "Error: セッションが壊れました",
        ] {
            assert!(classify(unseen).may_be_session_failure(), "{unseen}");
        }
        for site in [
            "Error: Error solving the challenge. Timeout after 60.0 seconds.",
            "Error: Error solving the challenge. Cloudflare has blocked this request. Probably your IP is banned for this site, check in your web browser.",
            "Error: Error solving the challenge. Message: unknown error: net::ERR_NAME_NOT_RESOLVED\\n  (Session info: chrome=156)",
            "Error: Error solving the challenge. Message: unknown error: net::ERR_CONNECTION_REFUSED",
        ] {
            assert!(!classify(site).may_be_session_failure(), "{site}");
        }
    }
}
