//! Fetching a feed directly, without Chrome: the port ([`Fetcher`]), its HTTP adapter
//! ([`HttpFetcher`]), and how a direct reply that is not the feed is classed ([`DirectClass`]).
//!
//! A plain GET takes tens of milliseconds where a solver takes seconds, returns the site's own
//! bytes rather than Chrome's page source, and can be conditional: a feed server answers most
//! polls of an unchanged feed with 304. The refresh tries it first and asks the solver only
//! when the site needs it ([`crate::refresh`]).

mod http;
mod redirect;
#[cfg(any(test, feature = "test-util"))]
mod scripted;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use http::HttpFetcher;
pub(crate) use http::{ReadError, read_capped};
#[cfg(any(test, feature = "test-util"))]
pub use scripted::ScriptedFetcher;

use crate::feed::FeedError;
use crate::redact::Secret;

/// The `Accept` of a direct request: feeds first, any XML next, anything last (a site that
/// negotiates badly still answers).
pub const ACCEPT: &str = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8";

/// At most this many redirects, http and https only.
pub const MAX_REDIRECTS: usize = 10;

/// Which way a feed was fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Direct,
    Solver,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Route::Direct => "direct",
            Route::Solver => "solver",
        })
    }
}

/// What a direct reply that was not a publishable feed was: the record keeps it, so an
/// operator sees why a feed needs the solver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectClass {
    /// A Cloudflare or DDoS-Guard challenge page.
    Challenge,
    /// Cloudflare's error 1020 or another "Access denied".
    Block,
    /// Another HTTP error status.
    Status,
    /// A 200 that is HTML or anything else the guard refuses.
    NotAFeed,
    /// No connection, a reset, a redirect that could not be followed, a body over the cap.
    Network,
    Timeout,
    /// A reply whose class this build does not know (a record from a newer one).
    #[serde(other)]
    Other,
}

/// `ETag` and `Last-Modified` of the last direct 200, sent back as `If-None-Match` and
/// `If-Modified-Since`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

impl Validators {
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// One direct GET.
#[derive(Debug, Clone, Copy)]
pub struct DirectRequest<'a> {
    pub url: &'a str,
    pub user_agent: &'a str,
    /// Extra headers; their values are never logged.
    pub headers: &'a [(String, Secret)],
    pub proxy: Option<&'a Secret>,
    /// Sent as `If-None-Match` / `If-Modified-Since`, when given.
    pub validators: Option<&'a Validators>,
    /// The whole request, redirects and body included, ends by then.
    pub timeout: Duration,
    /// The largest body read, after decompression.
    pub max_bytes: usize,
}

/// A direct reply worth looking at: the document, or "not modified".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectReply {
    /// 304: the feed is the one the validators name.
    NotModified { final_url: String },
    /// A 2xx body, decompressed, and what to decode it with.
    Document {
        body: Vec<u8>,
        /// The `Content-Type`'s charset, for a document without a BOM or declaration.
        charset: Option<String>,
        validators: Validators,
        /// Where the redirects ended.
        final_url: String,
    },
}

/// Why a direct request gave no document. Each message names the class and the url, redacted.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("{url} answered HTTP {status} with a {by} challenge page: the site wants a browser")]
    Challenge { url: String, status: u16, by: String },
    #[error("{url} answered HTTP {status}, access denied ({detail}): the site blocks this address")]
    Blocked { url: String, status: u16, detail: String },
    #[error("{url} answered HTTP {status}{}", retry_after.as_ref().map(|s| format!(" (Retry-After: {s})")).unwrap_or_default())]
    Status {
        url: String,
        status: u16,
        retry_after: Option<String>,
    },
    #[error("{url} did not answer with a feed: {source}")]
    NotAFeed { url: String, source: FeedError },
    #[error("cannot fetch {url}: {detail}")]
    Network { url: String, detail: String },
    #[error("{url} did not answer within {seconds} s ([fetch] timeout)")]
    Timeout { url: String, seconds: u64 },
    #[error("{url} sent more than {limit} bytes; refused to protect memory")]
    TooLarge { url: String, limit: usize },
    /// A redirect that is not followed: nothing was sent to its target.
    #[error("{url} redirected to {target}, which is not followed: {reason}")]
    RedirectRefused {
        url: String,
        target: String,
        reason: String,
    },
    /// A 304 to a request that asked for no comparison: it says nothing about what the feed
    /// is, and taken for "unchanged" it would pass a feed never fetched for a good one.
    #[error(
        "{url} answered 304 Not Modified to a request that sent no validators (no If-None-Match, no If-Modified-Since): there is no copy it could be unchanged from; the site, or a cache in front of it, is broken"
    )]
    UnaskedNotModified { url: String },
}

impl FetchError {
    /// The class the status record keeps.
    pub fn class(&self) -> DirectClass {
        match self {
            FetchError::Challenge { .. } => DirectClass::Challenge,
            FetchError::Blocked { .. } => DirectClass::Block,
            FetchError::Status { .. } | FetchError::UnaskedNotModified { .. } => DirectClass::Status,
            FetchError::NotAFeed { .. } => DirectClass::NotAFeed,
            FetchError::Network { .. } | FetchError::TooLarge { .. } | FetchError::RedirectRefused { .. } => {
                DirectClass::Network
            }
            FetchError::Timeout { .. } => DirectClass::Timeout,
        }
    }
}

impl FetchError {
    /// Whether the site put a wall in front of the page (a challenge, a block): the solver's
    /// to pass, where a 404 or a timeout is not.
    pub fn wants_solver(&self) -> bool {
        matches!(self, FetchError::Challenge { .. } | FetchError::Blocked { .. })
    }
}

/// The port: one direct GET of a feed; and the one POST flarefeed makes, telling a WebSub hub
/// that a published feed changed.
#[async_trait]
pub trait Fetcher: Send + Sync {
    async fn get(&self, request: &DirectRequest<'_>) -> Result<DirectReply, FetchError>;

    /// `POST hub` with `hub.mode=publish&hub.url=<topic>`, form-encoded, within `timeout`: the
    /// publisher's ping of WebSub §7 (https://www.w3.org/TR/websub/#publishing), as hubs take
    /// it (https://pubsubhubbub.appspot.com/: "hub.mode equal to publish, hub.url equal to the
    /// feed URL"). Any 2xx is success.
    async fn ping_hub(&self, hub: &str, topic: &str, timeout: Duration) -> Result<(), FetchError>;
}

/// The body of a hub ping for `topic`.
pub fn hub_ping_body(topic: &str) -> String {
    let topic: String = url::form_urlencoded::byte_serialize(topic.as_bytes()).collect();
    format!("hub.mode=publish&hub.url={topic}")
}

/// Challenge markers in a body (Cloudflare's interstitials, DDoS-Guard's check).
const CHALLENGE_MARKERS: [&str; 5] = [
    "Just a moment...",
    "/cdn-cgi/challenge-platform/",
    "_cf_chl_opt",
    "DDoS-Guard",
    "Checking your browser before accessing",
];

/// Classes an error status: a challenge (`cf-mitigated: challenge`, which Cloudflare sets on
/// every challenge page; or a Cloudflare or DDoS-Guard server answering 403, 429 or 503 with a
/// challenge marker), a block (error 1020, "Access denied"), or a plain status.
pub fn classify_status(
    url: &str,
    status: u16,
    server: Option<&str>,
    mitigated: Option<&str>,
    retry_after: Option<&str>,
    body_head: &str,
) -> FetchError {
    let url = url.to_string();
    let server = server.unwrap_or("").to_ascii_lowercase();
    let by = if server.contains("ddos-guard") {
        "DDoS-Guard"
    } else {
        "Cloudflare"
    };
    if mitigated.is_some_and(|m| m.trim().eq_ignore_ascii_case("challenge")) {
        return FetchError::Challenge {
            url,
            status,
            by: by.into(),
        };
    }
    let protected = server.contains("cloudflare") || server.contains("ddos-guard");
    if protected && matches!(status, 403 | 429 | 503) && CHALLENGE_MARKERS.iter().any(|m| body_head.contains(m)) {
        return FetchError::Challenge {
            url,
            status,
            by: by.into(),
        };
    }
    let lower = body_head.to_ascii_lowercase();
    if status == 403 && (lower.contains("error code: 1020") || lower.contains("error 1020")) {
        return FetchError::Blocked {
            url,
            status,
            detail: "Cloudflare error 1020".into(),
        };
    }
    if status == 403 && lower.contains("access denied") {
        return FetchError::Blocked {
            url,
            status,
            detail: "access denied".into(),
        };
    }
    FetchError::Status {
        url,
        status,
        retry_after: retry_after.map(|s| s.chars().take(40).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_blocks_and_statuses_are_told_apart() {
        let url = "https://site.test/feed";
        let class =
            |status, server, mitigated, body: &str| classify_status(url, status, server, mitigated, None, body).class();
        assert_eq!(
            class(403, Some("cloudflare"), Some("challenge"), ""),
            DirectClass::Challenge
        );
        // cf-mitigated is enough, whatever the status and server.
        assert_eq!(class(200, None, Some("challenge"), ""), DirectClass::Challenge);
        let page = "<title>Just a moment...</title><script src=\"/cdn-cgi/challenge-platform/h/g\">";
        assert_eq!(class(503, Some("cloudflare"), None, page), DirectClass::Challenge);
        assert_eq!(
            class(403, Some("ddos-guard"), None, "<title>DDoS-Guard</title>"),
            DirectClass::Challenge
        );
        // A marker without a protecting server, or a status that is not a challenge's, is not.
        assert_eq!(class(503, Some("nginx"), None, page), DirectClass::Status);
        assert_eq!(class(404, Some("cloudflare"), None, page), DirectClass::Status);
        assert_eq!(
            class(403, Some("cloudflare"), None, "error code: 1020"),
            DirectClass::Block
        );
        assert_eq!(class(403, None, None, "<h1>Access denied</h1>"), DirectClass::Block);
        let limited = classify_status(url, 429, Some("nginx"), None, Some("120"), "");
        assert_eq!(limited.class(), DirectClass::Status);
        assert!(limited.to_string().contains("Retry-After: 120"), "{limited}");
        let unknown: DirectClass = serde_json::from_str("\"captcha\"").unwrap();
        assert_eq!(unknown, DirectClass::Other);
    }
}
