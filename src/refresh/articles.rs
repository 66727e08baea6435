//! `[feeds.full_text]`: each item's article, fetched once by the feed's own route (directly
//! first, the solver past a wall) and cached in the item memory. At most `max_per_refresh` a
//! refresh, and only while the refresh's deadline leaves room for a whole solver request and
//! the writes after it: the articles left over wait for the next refresh. A failed article keeps
//! the item's own text and is tried again later, [`items::MAX_ARTICLE_TRIES`] times in all.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};
use url::Url;

use super::Refresher;
use super::publish::Job;
use super::via_solver::solve_request;
use crate::config::{FeedConfig, FetchMode};
use crate::fetch::{DirectReply, FetchError};
use crate::items::{self, ArticleCounts, Memory};
use crate::rewrite::{FullText, outline};
use crate::scrape;
use crate::solver::STARTUP_MARGIN;

/// What fetching did to the memory.
pub(super) struct Fetched {
    pub(super) changed: bool,
    pub(super) counts: ArticleCounts,
}

/// The largest article kept: the item memory holds every article of the feed, and is read at
/// every refresh.
const MAX_ARTICLE_BYTES: usize = 256 * 1024;

/// Room kept after the last article for the memory, the feed and the record.
const WRITES_RESERVE: Duration = Duration::from_secs(20);

impl Refresher {
    /// Fetches the articles of `text`'s items that have none cached, in feed order.
    pub(super) async fn fetch_articles(
        &self,
        job: &Job<'_>,
        full_text: &FullText,
        text: &str,
        memory: &mut Memory,
        now: time::OffsetDateTime,
    ) -> Fetched {
        let feed = job.feed;
        let mut fetched = Fetched {
            changed: false,
            counts: ArticleCounts::default(),
        };
        let Ok(outline) = outline::outline(text) else {
            return fetched;
        };
        let wanted: Vec<(String, String)> = outline
            .items
            .iter()
            .filter(|item| crate::rewrite::keeps(&feed.rules, item))
            .filter_map(|item| Some((item.key()?.to_string(), item.link.clone()?)))
            .collect();
        let keys: Vec<&str> = wanted.iter().map(|(key, _)| key.as_str()).collect();
        let window = feed.archive.map(|a| a.window());
        let (_, observed) = memory.observe_keeping(&keys, now, window);
        fetched.changed = observed;
        let mut tries = 0;
        for (key, link) in &wanted {
            let seen = memory.items.get(key).cloned().unwrap_or_default();
            if seen.article.is_some() || seen.article_failures >= items::MAX_ARTICLE_TRIES {
                continue;
            }
            if tries == full_text.max_per_refresh || !self.room_for_an_article(feed, job.deadline) {
                continue;
            }
            tries += 1;
            let article = self.article(job, full_text, link).await;
            let entry = memory.items.entry(key.clone()).or_default();
            match article {
                Ok(content) => {
                    info!(feed = %feed.name, stage = "full_text", bytes = content.len(), "article fetched");
                    entry.article = Some(content);
                }
                Err(why) => {
                    warn!(feed = %feed.name, stage = "full_text", error = %why, "article not fetched; the item keeps its own text");
                    entry.article_failures += 1;
                }
            }
            fetched.changed = true;
        }
        for (key, _) in &wanted {
            match memory.items.get(key) {
                Some(seen) if seen.article.is_some() => fetched.counts.cached += 1,
                Some(seen) if seen.article_failures > 0 => fetched.counts.failed += 1,
                _ => fetched.counts.waiting += 1,
            }
        }
        fetched
    }

    /// Whether the deadline leaves room for one more article by the feed's route, and the
    /// writes after it.
    fn room_for_an_article(&self, feed: &FeedConfig, deadline: Instant) -> bool {
        let direct = self.config.fetch.timeout;
        let solver = feed.request.max_timeout.unwrap_or(self.config.solver.max_timeout) + STARTUP_MARGIN;
        let longest = match feed.fetch {
            FetchMode::Direct => direct,
            FetchMode::Solver => solver,
            FetchMode::Auto => direct + solver,
        };
        deadline.saturating_duration_since(Instant::now()) >= longest + WRITES_RESERVE
    }

    /// One article's content, or why not.
    async fn article(&self, job: &Job<'_>, full_text: &FullText, link: &str) -> Result<String, String> {
        let feed = job.feed;
        let url = Url::parse(link).map_err(|e| format!("{link:?} is not a url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{link:?} is not an http or https url"));
        }
        let page = match feed.fetch {
            FetchMode::Solver => self.article_via_solver(feed, link, job.deadline).await?,
            mode => match self.article_direct(feed, &url).await {
                Ok(page) => page,
                Err(e) if mode == FetchMode::Auto && e.wants_solver() => {
                    info!(feed = %feed.name, stage = "full_text", reason = %e, "article walled; asking the solver");
                    self.article_via_solver(feed, link, job.deadline).await?
                }
                Err(e) => return Err(e.to_string()),
            },
        };
        if let Some(known) = crate::feed::known_page(&page) {
            return Err(known.to_string());
        }
        let content = scrape::article(&page, &full_text.selector, &url).ok_or_else(|| {
            format!(
                "the selector {:?} matched nothing in the article",
                full_text.selector_text
            )
        })?;
        if content.len() > MAX_ARTICLE_BYTES {
            return Err(format!(
                "the article's content is {} bytes, over the {MAX_ARTICLE_BYTES}-byte cap: narrow the selector",
                content.len()
            ));
        }
        Ok(content)
    }

    /// The article directly, with the feed's user agent and proxy; its headers only where the
    /// article is on the feed's own origin, since they may hold its secrets.
    async fn article_direct(&self, feed: &FeedConfig, url: &Url) -> Result<String, FetchError> {
        let same_origin = Url::parse(&feed.url).is_ok_and(|own| own.origin() == url.origin());
        let mut request = self.direct_request(feed, None, self.config.fetch.timeout);
        request.url = url.as_str();
        if !same_origin {
            request.headers = &[];
        }
        match self.fetcher.get(&request).await? {
            DirectReply::Document {
                body,
                charset,
                final_url,
                ..
            } => super::direct::page_or_wall(&body, charset.as_deref(), false, &final_url),
            DirectReply::NotModified { final_url } => Err(FetchError::UnaskedNotModified { url: final_url }),
        }
    }

    async fn article_via_solver(&self, feed: &FeedConfig, link: &str, deadline: Instant) -> Result<String, String> {
        let request = crate::solver::SolveRequest {
            url: link,
            ..solve_request(feed, deadline)
        };
        let solution = self.solver.solve(&request).await.map_err(|e| e.to_string())?;
        solution.into_any_page().map_err(|e| e.to_string())
    }
}
