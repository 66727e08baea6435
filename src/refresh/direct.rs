//! The direct GET, conditional when the record has validators for the feed's url.
//!
//! The validator rules, all here but the last:
//! - **Sending** (`Conditional::to_send`): only validators recorded for this same url, only
//!   when a published copy's fingerprint is known (without a copy to stand for, a 304 would say
//!   nothing), and never for a forced refresh, which reads the feed whole.
//! - **A 304** short-circuits only when validators were sent. One to a request that sent none
//!   (a first refresh, a forced one) is a failure that says so: there is nothing it could be
//!   unchanged from.
//! - **Every 200 is read** and fingerprinted, whatever its ETag: a server that ignores
//!   `If-None-Match` and always sends the same ETag would otherwise freeze the feed.
//! - **Recording**: the attempt finds the validators to keep (a 200's own; for a 304, those it
//!   sent), and the record's transition keeps them after a direct success and clears them
//!   after anything else ([`crate::status::StatusRecord::succeeded`]).

use std::time::Duration;

use tokio::time::Instant;
use tracing::info;

use super::attempt::Attempt;
use super::publish::Job;
use super::{Refresher, elapsed_ms};
use crate::config::FeedConfig;
use crate::feed;
use crate::fetch::{DirectReply, DirectRequest, FetchError, Route, Validators};
use crate::interrupt::interruptible;
use crate::outcome::{Recorded, RefreshError, Stage};
use crate::redact::redact_url;
use crate::scrape::{self, Rules};
use crate::status::{Findings, StatusRecord};

/// The validators of one direct request: those the record holds for the url, and whether they
/// may be used.
struct Conditional<'a> {
    recorded: Option<&'a Validators>,
    /// A published copy's fingerprint is known and the refresh is not forced.
    usable: bool,
}

impl<'a> Conditional<'a> {
    fn new(job: &Job<'_>, record: &'a StatusRecord) -> Self {
        Self {
            recorded: record.validators_for(&job.feed.url),
            usable: !job.options.publish_unchanged && job.copy.sha256().is_some(),
        }
    }

    /// What to send as `If-None-Match` / `If-Modified-Since`.
    fn to_send(&self) -> Option<&'a Validators> {
        self.recorded.filter(|_| self.usable)
    }
}

impl Refresher {
    /// The direct GET of `feed` with its own user agent, headers and proxy.
    pub(super) fn direct_request<'a>(
        &'a self,
        feed: &'a FeedConfig,
        validators: Option<&'a crate::fetch::Validators>,
        timeout: Duration,
    ) -> DirectRequest<'a> {
        DirectRequest {
            url: &feed.url,
            user_agent: feed
                .request
                .user_agent
                .as_deref()
                .unwrap_or(&self.config.fetch.user_agent),
            headers: &feed.request.headers,
            proxy: feed.request.proxy.as_ref(),
            validators,
            timeout,
            max_bytes: self.config.solver.max_reply_bytes,
        }
    }

    /// The direct GET. `Ok` is the attempt's end (published, unchanged, or failed at the
    /// store); `Err` is a reply that was not a publishable feed, with what was found on the
    /// way, for the solver to go on from.
    pub(super) async fn direct(
        &self,
        job: &Job<'_>,
        record: &StatusRecord,
        timeout: Duration,
    ) -> Result<Attempt, (Findings, FetchError)> {
        let feed = job.feed;
        let conditional = Conditional::new(job, record);
        let request = self.direct_request(feed, conditional.to_send(), timeout);
        let fetching = Instant::now();
        let reply = match interruptible(job.interrupt, self.fetcher.get(&request)).await {
            Ok(reply) => reply,
            Err(by) => {
                let error = RefreshError::Interrupted { by: by.into() };
                return Ok(Attempt::failed(Findings::default(), Stage::Fetch, error));
            }
        };
        info!(feed = %feed.name, stage = "fetch", ms = elapsed_ms(fetching), ok = reply.is_ok(), "direct reply");
        let reply = reply.map_err(|error| (Findings::default(), error))?;
        let landed = |final_url: String| Some(final_url).filter(|url| *url != redact_url(&feed.url));
        let (body, charset, validators, final_url) = match reply {
            DirectReply::NotModified { final_url } => {
                let Some(sent) = conditional.to_send() else {
                    return Err((Findings::default(), FetchError::UnaskedNotModified { url: final_url }));
                };
                let found = Findings {
                    route: Some(Route::Direct),
                    final_url: landed(final_url),
                    validators: Some(sent.clone()),
                    ..Findings::default()
                };
                info!(feed = %feed.name, stage = "fetch", "304 not modified: nothing read or written");
                let sha256 = job.copy.sha256().unwrap_or_default().to_string();
                return Ok(Attempt::served(found, Recorded::Unchanged, sha256));
            }
            DirectReply::Document {
                body,
                charset,
                validators,
                final_url,
            } => (body, charset, validators, final_url),
        };
        let found = Findings {
            route: Some(Route::Direct),
            final_url: landed(final_url.clone()),
            validators: Some(validators),
            ..Findings::default()
        };
        let not_a_feed = |source| FetchError::NotAFeed {
            url: final_url.clone(),
            source,
        };
        if let Some(rules) = &feed.scrape {
            let page = page_or_wall(&body, charset.as_deref(), matches!(rules, Rules::Json(_)), &final_url);
            drop(body);
            return match page {
                Ok(text) => Ok(self.publish_page(job, rules, text, found).await),
                Err(wall) => Err((found, wall)),
            };
        }
        let text = match feed::decode_owned(body, charset.as_deref()) {
            Ok(text) => text,
            Err(source) => return Err((found, not_a_feed(source))),
        };
        let checked = match self.check(feed, text, None) {
            Ok(checked) => checked,
            Err(source) => return Err((found, not_a_feed(source))),
        };
        Ok(self.publish_checked(job, checked, found, None).await)
    }
}

/// A site's page as text, decoded as a browser decodes it; or, when it is a wall (a challenge
/// or block page answered with 200), that wall, for the solver to pass.
pub(super) fn page_or_wall(
    body: &[u8],
    charset: Option<&str>,
    json: bool,
    final_url: &str,
) -> Result<String, FetchError> {
    let text = scrape::decode(body, charset, json).into_owned();
    match feed::wall(&text) {
        Some(wall) => Err(walled(final_url.to_string(), wall)),
        None => Ok(text),
    }
}

/// A page that answered 200 with a wall: the same classes as a challenge or block status.
fn walled(url: String, wall: feed::FeedError) -> FetchError {
    match wall {
        feed::FeedError::CloudflareBlock => FetchError::Blocked {
            url,
            status: 200,
            detail: "a Cloudflare block page".into(),
        },
        feed::FeedError::DdosGuard => FetchError::Challenge {
            url,
            status: 200,
            by: "DDoS-Guard".into(),
        },
        _ => FetchError::Challenge {
            url,
            status: 200,
            by: "Cloudflare".into(),
        },
    }
}
