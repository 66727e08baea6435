//! The real adapter: one FlareSolverr over HTTP, with the per-feed session policy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::wire::{Command, Proxy, Reply, parse_reply};
use super::{MIN_REQUEST_TIME, SessionPolicy, Solution, SolveRequest, Solver, SolverError, SolverSettings};
use crate::error_chain;
use crate::fetch::{ReadError, read_capped};
use crate::redact::redact_url;

/// The smallest maxTimeout worth asking for when a deadline squeezes it.
const MIN_MAX_TIMEOUT: Duration = Duration::from_secs(5);

/// The real adapter: FlareSolverr over HTTP.
#[derive(Debug, Clone)]
pub struct FlareSolverr {
    http: reqwest::Client,
    settings: SolverSettings,
    /// What this solver showed of sessions, shared by clones: once it refused
    /// `sessions.create`, it is asked without sessions for the rest of the process.
    sessions: Arc<Sessions>,
}

/// Whether a solver has sessions, as far as its answers showed.
#[derive(Debug, Default)]
struct Sessions {
    refused: AtomicBool,
    /// Held while the first `sessions.create` is out, so that refreshes that start together ask
    /// once, not once each.
    first: tokio::sync::Mutex<bool>,
}

/// What `sessions.create` came to.
enum Created {
    Session,
    /// The solver has no sessions: ask without.
    Unsupported,
}

impl FlareSolverr {
    /// The `/v1` endpoint it talks to.
    pub fn url(&self) -> &str {
        &self.settings.url
    }

    /// Builds the HTTP client once; clone the result rather than building another.
    pub fn new(settings: SolverSettings) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            // No pooled connections: solvers close idle ones early (FlareBypasser runs gunicorn's
            // UvicornWorker, whose keep-alive is gunicorn's `keepalive`, 2 s by default, as its
            // installed gunicorn/config.py says), and a POST on a connection the solver is
            // closing fails with no retry. A connect costs nothing beside a 1 to 60 s solve.
            .pool_max_idle_per_host(0)
            .build()
            .expect("a plain rustls client always builds");
        Self {
            http,
            settings,
            sessions: Arc::default(),
        }
    }

    /// Whether this solver refused `sessions.create`, so is asked without sessions.
    pub fn sessionless(&self) -> bool {
        self.sessions.refused.load(Ordering::Relaxed)
    }

    /// `request.get` for `url`, in `session` if given.
    pub async fn request_get(
        &self,
        request: &SolveRequest<'_>,
        session: Option<&str>,
    ) -> Result<Solution, SolverError> {
        let (url, deadline) = (request.url, request.deadline);
        let wanted = request.max_timeout.unwrap_or(self.settings.max_timeout);
        let (max_timeout, http_timeout) = self.budget(wanted, deadline)?;
        let proxy = request.proxy.map(|p| Proxy::from_url(p.expose()));
        let command = Command::get(url, max_timeout, session, self.settings.session_ttl_minutes, proxy);
        let reply = self.send(&command, http_timeout).await?;
        let mut solution = reply.solution.ok_or_else(|| SolverError::Unrecognised {
            detail: "an \"ok\" reply without a solution".into(),
        })?;
        solution.solver = Some(redact_url(&self.settings.url));
        if let Some(status) = solution.status.filter(|s| *s >= 400) {
            return Err(SolverError::Upstream {
                status,
                url: redact_url(solution.url.as_deref().unwrap_or(url)),
            });
        }
        if solution.response.is_none() {
            return Err(SolverError::Unrecognised {
                detail: "the solution has no response; was returnOnlyCookies set?".into(),
            });
        }
        Ok(solution)
    }

    /// `sessions.create` with a fixed id; an existing session is fine.
    pub async fn sessions_create(&self, id: &str, deadline: Option<Instant>) -> Result<(), SolverError> {
        self.create_session(id, &SolveRequest::new("", "", deadline))
            .await
            .map(drop)
    }

    /// `sessions.create` for `request`'s feed: a session keeps the proxy it is created with.
    ///
    /// A solver without sessions says so in its own way, and each way is read as "no sessions":
    /// FlareBypasser's FastAPI answers 422 `{"detail": …}` (no `url`), or an error naming an
    /// unknown command when there is one; Byparr ignores `cmd` and answers a GET, a solution or a
    /// `detail`; a proxy or another server may answer 404 or 405. FlareSolverr itself answers
    /// `{"status": "ok", "message": "Session created successfully."}` and never any of those.
    /// The first refusal marks the solver sessionless for the process, said once in the log.
    async fn create_session(&self, id: &str, request: &SolveRequest<'_>) -> Result<Created, SolverError> {
        let deadline = request.deadline;
        let proxy = request.proxy.map(|p| Proxy::from_url(p.expose()));
        let command = Command::session("sessions.create", id, proxy);
        let timeout = self.short_timeout(deadline)?;
        let (status, _, body) = self.exchange(&command, timeout).await?;
        let refused = matches!(status.as_u16(), 404 | 405)
            || serde_json::from_slice::<SessionReply>(&body).is_ok_and(|reply| reply.refuses_sessions());
        if refused {
            if !self.sessions.refused.swap(true, Ordering::Relaxed) {
                warn!(
                    solver = %redact_url(&self.settings.url), status = status.as_u16(),
                    "this solver has no sessions (it refused sessions.create); asking it without sessions from now on"
                );
            }
            return Ok(Created::Unsupported);
        }
        self.reply(status, None, body).map(|_| Created::Session)
    }

    /// `sessions.destroy`: stops that session's Chrome.
    pub async fn sessions_destroy(&self, id: &str, deadline: Option<Instant>) -> Result<(), SolverError> {
        let command = Command::session("sessions.destroy", id, None);
        self.send(&command, self.short_timeout(deadline)?).await.map(drop)
    }

    /// maxTimeout to ask for and the HTTP timeout to wait, both within the deadline.
    fn budget(&self, max_timeout: Duration, deadline: Option<Instant>) -> Result<(Duration, Duration), SolverError> {
        let margin = self.settings.startup_margin;
        let wanted = max_timeout + margin;
        let Some(deadline) = deadline else {
            return Ok((max_timeout, wanted));
        };
        let left = self.time_left(deadline)?;
        // The deadline may squeeze maxTimeout (not below a useful minimum), never raise it.
        let squeezed = left.saturating_sub(margin).max(MIN_MAX_TIMEOUT);
        let max_timeout = max_timeout.min(squeezed);
        Ok((max_timeout, wanted.min(left)))
    }

    fn short_timeout(&self, deadline: Option<Instant>) -> Result<Duration, SolverError> {
        match deadline {
            Some(deadline) => Ok(self.settings.startup_margin.min(self.time_left(deadline)?)),
            None => Ok(self.settings.startup_margin),
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
        let (status, retry_after, body) = self.exchange(command, timeout).await?;
        self.reply(status, retry_after, body)
    }

    /// One command and its answer's status, `Retry-After` (seconds) and body.
    async fn exchange(
        &self,
        command: &Command<'_>,
        timeout: Duration,
    ) -> Result<(reqwest::StatusCode, Option<u64>, Vec<u8>), SolverError> {
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
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
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
            Ok::<_, SolverError>((status, retry_after, body))
        };
        let (status, retry_after, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| timed_out())??;
        debug!(
            cmd = command.cmd,
            status = status.as_u16(),
            bytes = body.len(),
            ms = started.elapsed().as_millis() as u64,
            "solver replied"
        );
        Ok((status, retry_after, body))
    }

    /// What an answer says: a 429 is the solver busy; a 5xx that is not JSON, a proxy's page.
    fn reply(
        &self,
        status: reqwest::StatusCode,
        retry_after: Option<u64>,
        body: Vec<u8>,
    ) -> Result<Reply, SolverError> {
        let url = &self.settings.url;
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(SolverError::RateLimited {
                url: redact_url(url),
                retry_after_s: retry_after,
            });
        }
        // Read before the body is handed over (and decoded in place); only a 5xx needs it.
        let proxy_page = status.is_server_error() && !is_json(&body);
        match parse_reply(status, body) {
            Err(SolverError::Malformed { detail }) if proxy_page => Err(SolverError::Unavailable {
                url: redact_url(url),
                status: status.as_u16(),
                detail,
            }),
            other => other,
        }
    }
}

/// An answer to `sessions.create`, as much of it as says whether the solver has sessions: the
/// rest, and `detail` or `solution` of any size, are skipped unread.
#[derive(serde::Deserialize)]
struct SessionReply {
    #[serde(default, deserialize_with = "super::wire::any_text")]
    status: Option<String>,
    #[serde(default, deserialize_with = "super::wire::any_text")]
    message: Option<String>,
    #[serde(default)]
    detail: Present,
    #[serde(default)]
    solution: Present,
}

/// Whether a key is there at all, whatever its value (`null` included), read without building it.
#[derive(Default)]
struct Present(bool);

impl<'de> serde::Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Present(true))
    }
}

impl SessionReply {
    /// Whether it says the solver has no sessions (see [`FlareSolverr::create_session`]).
    fn refuses_sessions(&self) -> bool {
        if self.detail.0 || self.solution.0 {
            return true;
        }
        let message = self.message.as_deref().unwrap_or_default().to_lowercase();
        self.status.as_deref() == Some("error")
            && (message.contains("unknown command")
                || message.contains("not supported")
                || (message.contains("'cmd'") && message.contains("invalid")))
    }
}

/// Whether `body` is JSON at all: a solver's own error is, a proxy's 502 page is not.
fn is_json(body: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

fn transport_error(url: &str, error: reqwest::Error, timed_out: &dyn Fn() -> SolverError) -> SolverError {
    // reqwest's messages name the url, credentials and all.
    let error = error.without_url();
    // No connection within the connect timeout (a stopped VM, a security group dropping
    // packets) is unreachable, not a slow answer.
    if error.is_connect() || (error.is_request() && !error.is_timeout()) {
        SolverError::Unreachable {
            url: redact_url(url),
            detail: error_chain(&error),
        }
    } else if error.is_timeout() {
        timed_out()
    } else {
        SolverError::Malformed {
            detail: error_chain(&error),
        }
    }
}

#[async_trait]
impl Solver for FlareSolverr {
    async fn solve(&self, request: &SolveRequest<'_>) -> Result<Solution, SolverError> {
        let (feed, deadline) = (request.feed, request.deadline);
        if self.settings.session == SessionPolicy::None || self.sessionless() {
            return self.request_get(request, None).await;
        }
        let session = format!("{}-{feed}", self.settings.session_prefix);
        let in_session = || async {
            match self.create_session_once(&session, request).await? {
                Created::Session => self.request_get(request, Some(&session)).await,
                Created::Unsupported => self.request_get(request, None).await,
            }
        };
        let first = match in_session().await {
            // A solver found to have no sessions just answered without one: nothing to retry.
            Err(e) if e.may_be_session_failure() && !self.sessionless() => e,
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
        let result = self.request_get(request, None).await;
        if result.is_ok() {
            info!(
                feed,
                "fetched without a session; the session is recreated on the next refresh"
            );
        }
        result
    }
}

impl FlareSolverr {
    /// [`FlareSolverr::create_session`], one at a time until the solver has answered one: so
    /// refreshes that start together ask a solver without sessions once, not once each. Only
    /// the `sessions.create` is held, never the page.
    async fn create_session_once(&self, id: &str, request: &SolveRequest<'_>) -> Result<Created, SolverError> {
        let mut answered = self.sessions.first.lock().await;
        if self.sessionless() {
            return Ok(Created::Unsupported);
        }
        if *answered {
            drop(answered);
            return self.create_session(id, request).await;
        }
        let created = self.create_session(id, request).await;
        *answered = created.is_ok();
        created
    }

    async fn destroy_quietly(&self, session: &str, deadline: Option<Instant>) {
        if let Err(e) = self.sessions_destroy(session, deadline).await {
            debug!(session, error = %e, "destroying the session failed (it may already be gone)");
        }
    }
}

#[cfg(test)]
mod session_reply_tests {
    use super::SessionReply;

    /// Issue 27, finding 3: the answer to `sessions.create` is read for whether it refuses
    /// sessions, whatever the size of its `detail`, and never built into a tree.
    #[test]
    fn a_detail_of_any_shape_refuses_sessions() {
        for body in [
            r#"{"detail": [{"loc": ["body", "url"], "msg": "field required"}]}"#.to_string(),
            r#"{"detail": null}"#.to_string(),
            format!(r#"{{"detail": [{}0]}}"#, "0,".repeat(100_000)),
            r#"{"status": "error", "message": "Error: Request parameter 'cmd' = 'sessions.create' is invalid."}"#
                .to_string(),
        ] {
            let reply: SessionReply = serde_json::from_str(&body).unwrap();
            assert!(reply.refuses_sessions(), "{}", &body[..60.min(body.len())]);
        }
        let created: SessionReply =
            serde_json::from_str(r#"{"status": "ok", "message": "Session created successfully.", "session": "s"}"#)
                .unwrap();
        assert!(!created.refuses_sessions());
    }
}
