//! A feed built from a page: the items its rules read, dated by the item memory, written as
//! Atom, then guarded, formatted and fingerprinted as a site's feed is, so an unchanged page
//! writes nothing.
//!
//! The memory is written before the feed, and only when the page's items changed (which
//! changes the feed too): a feed is never published with first-seen times that were not kept.

use chrono::{DateTime, FixedOffset};
use tracing::{info, warn};
use url::Url;

use super::attempt::Attempt;
use super::publish::Job;
use super::readers::Held;
use super::{Refresher, elapsed_ms};
use crate::config::FeedConfig;
use crate::feed;
use crate::items;
use crate::outcome::Stage;
use crate::scrape::{self, Dated, Extraction, Place, Rules, ScrapeError, atom};
use crate::status::Findings;
use crate::store::{store_now, within};

/// Why a page gave no items: the rules found none, or the page is a known one that is not the
/// page (a wall, Chrome's error page), which says more.
#[derive(Debug)]
pub(crate) enum NoItems {
    Rules(ScrapeError),
    NotThePage(feed::FeedError),
}

impl NoItems {
    fn stage(&self) -> Stage {
        match self {
            NoItems::Rules(_) => Stage::Extract,
            NoItems::NotThePage(_) => Stage::Guard,
        }
    }
}

/// The items `rules` read from `page` (Chrome's JSON view unwrapped for a JSON API).
pub(crate) fn read_items(rules: &Rules, page: &str, place: Place<'_>) -> Result<Extraction, NoItems> {
    let json_view = matches!(rules, Rules::Json(_))
        .then(|| feed::json_in_page(page))
        .flatten();
    let text = json_view.as_deref().unwrap_or(page);
    scrape::extract(rules, text, place).map_err(|e| match feed::known_page(page) {
        Some(known) => NoItems::NotThePage(known),
        None => NoItems::Rules(e),
    })
}

/// The feed's url as the published feed names it (its id, its link, its items' ids): without
/// a user and password, which must not be published. Its query stays: it is part of the page.
pub(crate) fn origin_url(feed: &FeedConfig) -> Url {
    let mut url = Url::parse(&feed.url).expect("a feed's url was checked when the configuration was loaded");
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url
}

/// Where the fetch ended (links resolve against it), else the feed's url.
pub(crate) fn landed(feed_url: &Url, final_url: Option<&str>) -> Url {
    final_url
        .and_then(|url| Url::parse(url).ok())
        .unwrap_or_else(|| feed_url.clone())
}

impl Refresher {
    /// From the page to the store: read, date, render, guard, remember, publish.
    pub(super) async fn publish_page(&self, job: &Job<'_>, rules: &Rules, page: String, found: Findings) -> Attempt {
        let feed = job.feed;
        let started = tokio::time::Instant::now();
        let feed_url = origin_url(feed);
        let landed = landed(&feed_url, found.final_url.as_deref());
        let extraction = read_items(
            rules,
            &page,
            Place {
                feed_url: &feed_url,
                landed: &landed,
            },
        );
        drop(page);
        let extraction = match extraction {
            Ok(extraction) => extraction,
            Err(no_items) => {
                let stage = no_items.stage();
                return match no_items {
                    NoItems::Rules(e) => Attempt::failed(found, stage, e),
                    NoItems::NotThePage(e) => Attempt::failed(found, stage, e),
                };
            }
        };
        let found = Findings {
            page: Some(extraction.counts()),
            ..found
        };
        for skipped in extraction.skipped.iter().take(3) {
            warn!(feed = %feed.name, stage = "extract", item = skipped.position, reason = %skipped.reason, "item skipped");
        }
        let store = self.store.as_ref();
        let key = items::key(&feed.name);
        let mut stored = match within(
            job.deadline,
            store,
            &key,
            crate::status::memory::read(store, &feed.name),
        )
        .await
        {
            Ok(stored) => stored,
            Err(e) => return Attempt::failed(found, Stage::Store, e),
        };
        let now = store_now(store);
        let ids: Vec<&str> = extraction.items.iter().map(|item| item.id.as_str()).collect();
        // Archived entries are kept for the archive's window, not the memory's 30 days.
        let window = feed.archive.map(|a| a.window());
        let (firsts, changed) = stored.memory.observe_keeping(&ids, now, window);
        let xml = render(feed, rules, &extraction, &firsts, &feed_url);
        info!(
            feed = %feed.name, stage = "extract", ms = elapsed_ms(started), items = extraction.items.len(),
            skipped = extraction.skipped.len(), unreadable_dates = extraction.unreadable_dates(), "items read from the page"
        );
        let checked = match self.check(feed, xml, None) {
            Ok(checked) => checked,
            Err(e) => return Attempt::failed(found, Stage::Guard, e),
        };
        let held = Held { stored, changed };
        self.publish_checked(job, checked, found, Some(held)).await
    }
}

/// The Atom document of the page's items: each dated by the page, or by when first seen.
pub(crate) fn render(
    feed: &FeedConfig,
    rules: &Rules,
    extraction: &Extraction,
    firsts: &[time::OffsetDateTime],
    feed_url: &Url,
) -> String {
    let entries: Vec<atom::Entry<'_>> = extraction
        .items
        .iter()
        .zip(firsts)
        .map(|(item, first)| atom::Entry {
            item,
            updated: match item.date {
                Dated::On(date) => date,
                Dated::Undated | Dated::Unreadable(_) => as_chrono(*first),
            },
        })
        .collect();
    let site = feed_url.host_str().unwrap_or(&feed.name);
    let title = rules
        .feed_title()
        .or(extraction.page_title.as_deref())
        .unwrap_or(&feed.name);
    let head = atom::Head {
        page_url: feed_url.as_str(),
        title,
        site,
    };
    atom::render(head, &entries)
}

fn as_chrono(at: time::OffsetDateTime) -> DateTime<FixedOffset> {
    DateTime::from_timestamp(at.unix_timestamp(), 0)
        .unwrap_or_default()
        .fixed_offset()
}
