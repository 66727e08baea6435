//! `flarefeed preview`: what a feed built from a page would publish, for writing its selectors.
//! The page is fetched as a refresh fetches it (directly first, the solver past a wall), or read
//! from a saved copy; nothing is claimed, remembered or written.

use tokio::time::Instant;
use tracing::info;

use super::direct::page_or_wall;
use super::page::{NoItems, landed, origin_url, read_items};
use super::via_solver::solve_request;
use super::{Refresher, elapsed_ms};
use crate::config::{FeedConfig, FetchMode};
use crate::fetch::{DirectReply, FetchError, Route};
use crate::outcome::{RefreshError, Stage};
use crate::redact::redact_url;
use crate::scrape::{self, Extraction, Place, Rules};

/// A page's items as a refresh would read them.
#[derive(Debug)]
pub struct Preview {
    /// How the page was fetched; `None` for a saved page.
    pub route: Option<Route>,
    /// Where the fetch ended, when a redirect took it away from the feed's url.
    pub final_url: Option<String>,
    /// The feed's title: the configured one, else the page's.
    pub title: String,
    pub extraction: Extraction,
}

/// Why there is nothing to show: where it stopped, and why.
#[derive(Debug)]
pub struct PreviewFailure {
    pub stage: Stage,
    pub error: RefreshError,
    /// What was read before every item was found wanting.
    pub extraction: Option<Extraction>,
}

impl PreviewFailure {
    fn new(stage: Stage, error: impl Into<RefreshError>) -> Self {
        Self {
            stage,
            error: error.into(),
            extraction: None,
        }
    }
}

impl Refresher {
    /// The items `feed`'s rules read from its page: `saved`, or the page fetched by the feed's
    /// route.
    pub async fn preview(&self, feed: &FeedConfig, saved: Option<String>) -> Result<Preview, PreviewFailure> {
        let Some(rules) = &feed.scrape else {
            return Err(PreviewFailure::new(Stage::Extract, scrape::ScrapeError::NotAPage));
        };
        let (page, route, final_url) = match saved {
            Some(page) => (page, None, None),
            None => {
                let (page, route, final_url) = self.fetch_page(feed, rules).await?;
                (page, Some(route), final_url)
            }
        };
        let feed_url = origin_url(feed);
        let landed = landed(&feed_url, final_url.as_deref());
        let place = Place {
            feed_url: &feed_url,
            landed: &landed,
        };
        match read_items(rules, &page, place) {
            Ok(extraction) => Ok(Preview {
                route,
                final_url,
                title: rules
                    .feed_title()
                    .or(extraction.page_title.as_deref())
                    .unwrap_or(&feed.name)
                    .to_string(),
                extraction,
            }),
            Err(NoItems::NotThePage(e)) => Err(PreviewFailure::new(Stage::Guard, e)),
            Err(NoItems::Rules(e)) => {
                // Every item skipped: show them, and why.
                let all = scrape::extract_all(rules, &page, place).ok();
                Err(PreviewFailure {
                    extraction: all,
                    ..PreviewFailure::new(Stage::Extract, e)
                })
            }
        }
    }

    /// The page by the feed's route: directly first (`auto`, `direct`), the solver past a wall
    /// or a failed direct request (`auto`), or only the solver (`solver`).
    async fn fetch_page(
        &self,
        feed: &FeedConfig,
        rules: &Rules,
    ) -> Result<(String, Route, Option<String>), PreviewFailure> {
        let deadline = Instant::now() + self.budget();
        if feed.fetch != FetchMode::Solver {
            let fetching = Instant::now();
            let request = self.direct_request(feed, None, self.config.fetch.timeout);
            let direct = match self.fetcher.get(&request).await {
                Ok(DirectReply::Document {
                    body,
                    charset,
                    final_url,
                    ..
                }) => {
                    let json = matches!(rules, Rules::Json(_));
                    page_or_wall(&body, charset.as_deref(), json, &final_url).map(|text| (text, final_url))
                }
                Ok(DirectReply::NotModified { final_url }) => Err(FetchError::UnaskedNotModified { url: final_url }),
                Err(e) => Err(e),
            };
            info!(feed = %feed.name, stage = "fetch", ms = elapsed_ms(fetching), ok = direct.is_ok(), "direct reply");
            match direct {
                Ok((text, final_url)) => {
                    let moved = Some(final_url).filter(|url| *url != redact_url(&feed.url));
                    return Ok((text, Route::Direct, moved));
                }
                Err(e) if feed.fetch == FetchMode::Direct => return Err(PreviewFailure::new(Stage::Fetch, e)),
                Err(e) => info!(feed = %feed.name, reason = %e, "not the page directly; asking the solver"),
            }
        }
        let solution = self
            .solver
            .solve(&solve_request(feed, deadline))
            .await
            .map_err(|e| PreviewFailure::new(Stage::Solver, e))?;
        let final_url = solution
            .url
            .as_deref()
            .filter(|url| !url.is_empty() && *url != feed.url)
            .map(redact_url);
        let page = solution
            .into_any_page()
            .map_err(|e| PreviewFailure::new(Stage::Extract, e))?;
        Ok((page, Route::Solver, final_url))
    }
}
