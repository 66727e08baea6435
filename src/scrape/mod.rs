//! A feed built from a page that has none: items read from its HTML by CSS selectors
//! ([`html`]) or from its JSON API by dot paths ([`json`]), then written as an Atom document
//! ([`atom`]) that goes through the same guard, formatter and fingerprint as a site's feed.
//!
//! Everything here is pure: a page and its url in, items or a refusal that names the rule out.
//! When flarefeed first saw each item is the item memory's business ([`crate::items`]).

pub mod atom;
pub mod date;
mod decode;
mod html;
mod json;
mod rules;

use chrono::{DateTime, FixedOffset};
use thiserror::Error;
use url::Url;

pub use decode::decode;
pub use rules::{DateRule, Field, HtmlRules, JsonRules, Link, Part, Path, Rules, Template, selector_from};

/// One item as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Stable and unique in the feed: the configured id (an absolute IRI as it is, anything
    /// else as a fragment of the page's url), else the absolute link.
    pub id: String,
    /// Whitespace collapsed.
    pub title: String,
    /// Absolute, http or https.
    pub link: String,
    /// HTML, its links made absolute, scripts and styles left out.
    pub content: Option<String>,
    pub author: Option<String>,
    pub date: Dated,
}

/// What the page says of an item's date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dated {
    /// The rule's field read a date.
    On(DateTime<FixedOffset>),
    /// No date field, or nothing in it: dated by when first seen.
    Undated,
    /// A text no format reads: dated by when first seen, and counted.
    Unreadable(String),
}

/// The items of one page, and what was left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extraction {
    /// The page's `<title>` (whitespace collapsed), for the feed's title and for messages.
    pub page_title: Option<String>,
    pub items: Vec<Item>,
    pub skipped: Vec<Skipped>,
    /// How many elements (or array entries) the item rule matched.
    pub matched: usize,
}

impl Extraction {
    /// Items whose date text no format read.
    pub fn unreadable_dates(&self) -> usize {
        self.items
            .iter()
            .filter(|item| matches!(item.date, Dated::Unreadable(_)))
            .count()
    }

    pub fn counts(&self) -> Counts {
        Counts {
            matched: self.matched,
            skipped: self.skipped.len(),
            unreadable_dates: self.unreadable_dates(),
        }
    }
}

/// What a page's items came to, in figures: what the status record and the report keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Elements (or array entries) the item rule matched.
    pub matched: usize,
    /// Left out: no title, no link, a link that is no web url, an id already seen.
    pub skipped: usize,
    /// Published, but dated by when first seen: their date text was not read by any format.
    pub unreadable_dates: usize,
}

/// An item left out, by its place among the matches (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub position: usize,
    pub reason: SkipReason,
}

/// Why an item was left out.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SkipReason {
    #[error("no title: `title` ({rule:?}) found nothing in it")]
    NoTitle { rule: String },
    #[error("no link: `link` ({rule:?}) found nothing in it")]
    NoLink { rule: String },
    #[error("its link {value:?} is not an http or https url")]
    BadLink { value: String },
    #[error("its id {id:?} is an earlier item's too")]
    DuplicateId { id: String },
}

impl SkipReason {
    /// The rule at fault, for a failure when every item was skipped.
    fn rule(&self) -> Option<(&'static str, &str)> {
        match self {
            SkipReason::NoTitle { rule } => Some(("title", rule)),
            SkipReason::NoLink { rule } => Some(("link", rule)),
            _ => None,
        }
    }
}

/// Why a page gave no feed. Each message names the rule and says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScrapeError {
    #[error(
        "the item selector {selector:?} matched nothing on the page{}: the page changed under the selectors (a redesign?) or is not the page meant; try selectors with `flarefeed preview NAME`",
        titled(title)
    )]
    NoItems { selector: String, title: Option<String> },
    #[error(
        "all {count} items that {selector:?} matched were skipped: `{field}` ({rule:?}) found nothing usable in any of them ({example}); fix the `{field}` selector with `flarefeed preview NAME`"
    )]
    AllSkipped {
        count: usize,
        selector: String,
        field: &'static str,
        rule: String,
        example: String,
    },
    #[error("this feed is not built from a page: give it [feeds.html] or [feeds.json] to preview it")]
    NotAPage,
    #[error("the page is not JSON ({detail}): check that the url is the API's, or use [feeds.html]")]
    NotJson { detail: String },
    #[error(
        "`items` ({path:?}) leads to {found}, not an array of items: check the path against the API's JSON with `flarefeed preview NAME --json`"
    )]
    NotAnArray { path: String, found: String },
}

fn titled(title: &Option<String>) -> String {
    title
        .as_ref()
        .map(|t| format!(" titled {:?}", crate::redact::one_line(t)))
        .unwrap_or_default()
}

/// Where a page is: its feed's url, which ids are made from, so they hold whatever the fetch
/// went through, and where the fetch ended, which links resolve against.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub feed_url: &'a Url,
    pub landed: &'a Url,
}

impl<'a> Place<'a> {
    /// A page fetched from its feed's url itself.
    pub fn at(url: &'a Url) -> Self {
        Self {
            feed_url: url,
            landed: url,
        }
    }
}

/// Every match of the rules in `page`, the skipped ones included, even when none is an item:
/// what `flarefeed preview` shows. Only a JSON document the paths cannot walk fails.
pub fn extract_all(rules: &Rules, page: &str, place: Place<'_>) -> Result<Extraction, ScrapeError> {
    Ok(match rules {
        Rules::Html(rules) => html::extract(rules, page, place),
        Rules::Json(rules) => json::extract(rules, page, place)?,
    })
}

/// The items `rules` read from `page`: at least one, or why there is none.
pub fn extract(rules: &Rules, page: &str, place: Place<'_>) -> Result<Extraction, ScrapeError> {
    let extraction = extract_all(rules, page, place)?;
    if !extraction.items.is_empty() {
        return Ok(extraction);
    }
    let selector = match rules {
        Rules::Html(rules) => rules.item_text.clone(),
        Rules::Json(rules) => rules.items.text.clone(),
    };
    // Every match skipped: name the field that failed most, with one item's reason.
    let failing = extraction.skipped.iter().filter_map(|s| s.reason.rule()).fold(
        Vec::<(&str, &str, usize)>::new(),
        |mut counts, (field, rule)| {
            match counts.iter_mut().find(|(f, _, _)| *f == field) {
                Some(entry) => entry.2 += 1,
                None => counts.push((field, rule, 1)),
            }
            counts
        },
    );
    match (failing.iter().max_by_key(|(_, _, n)| *n), extraction.skipped.first()) {
        (Some((field, rule, _)), Some(first)) => Err(ScrapeError::AllSkipped {
            count: extraction.matched,
            selector,
            field: if *field == "title" { "title" } else { "link" },
            rule: rule.to_string(),
            example: format!("item {}: {}", first.position, first.reason),
        }),
        _ => Err(ScrapeError::NoItems {
            selector,
            title: extraction.page_title,
        }),
    }
}

/// An article's content: the inner HTML of `selector`'s first match, with absolute links and
/// without scripts, as `[feeds.full_text]` publishes it.
pub fn article(page: &str, selector: &scraper::Selector, page_url: &Url) -> Option<String> {
    html::first_inner_html(page, selector, page_url)
}

/// The longest id kept as it is: a longer one (a link with a long query) is hashed, so the item
/// memory's entries stay small.
const MAX_ID_BYTES: usize = 512;

/// An item's id from its configured value (or, without one, its link), as an IRI.
fn item_id(value: Option<&str>, link: &str, page_url: &Url) -> String {
    let id = match value {
        None => link.to_string(),
        Some(value) => match Url::parse(value) {
            Ok(url) if url.has_host() || url.scheme() == "urn" || url.scheme() == "tag" => value.to_string(),
            _ => {
                let mut page = page_url.clone();
                page.set_fragment(Some(value));
                page.to_string()
            }
        },
    };
    if id.len() <= MAX_ID_BYTES {
        return id;
    }
    use sha2::{Digest, Sha256};
    format!("urn:sha256:{}", hex::encode(Sha256::digest(id.as_bytes())))
}

/// `value` resolved against `base`, if it is then an http or https url.
fn absolute_link(value: &str, base: &Url) -> Result<String, SkipReason> {
    match base.join(value.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(url.to_string()),
        _ => Err(SkipReason::BadLink {
            value: value.chars().take(200).collect(),
        }),
    }
}

/// Runs of whitespace as one space, trimmed.
fn collapse(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Checks one item and adds it, or notes why not: the rules both sources share.
struct Collector<'a> {
    feed_url: &'a Url,
    seen: std::collections::HashSet<String>,
    out: Extraction,
}

/// An item's fields as read, before they are checked.
struct Read {
    title: Option<String>,
    link: Option<String>,
    content: Option<String>,
    author: Option<String>,
    date: Dated,
    id: Option<String>,
}

impl<'a> Collector<'a> {
    fn new(feed_url: &'a Url, page_title: Option<String>) -> Self {
        Self {
            feed_url,
            seen: Default::default(),
            out: Extraction {
                page_title,
                ..Default::default()
            },
        }
    }

    /// The item at `position` (1-based), with the rules' texts for messages.
    fn add(&mut self, position: usize, read: Read, base: &Url, (title_rule, link_rule): (&str, &str)) {
        self.out.matched += 1;
        let skip = |reason| Skipped { position, reason };
        let Some(title) = read.title.map(|t| collapse(&t)).filter(|t| !t.is_empty()) else {
            let rule = title_rule.to_string();
            self.out.skipped.push(skip(SkipReason::NoTitle { rule }));
            return;
        };
        let Some(value) = read.link.filter(|l| !l.trim().is_empty()) else {
            let rule = link_rule.to_string();
            self.out.skipped.push(skip(SkipReason::NoLink { rule }));
            return;
        };
        let link = match absolute_link(&value, base) {
            Ok(link) => link,
            Err(reason) => {
                self.out.skipped.push(skip(reason));
                return;
            }
        };
        let id_value = read.id.map(|id| id.trim().to_string()).filter(|id| !id.is_empty());
        let id = item_id(id_value.as_deref(), &link, self.feed_url);
        if !self.seen.insert(id.clone()) {
            self.out.skipped.push(skip(SkipReason::DuplicateId { id }));
            return;
        }
        self.out.items.push(Item {
            id,
            title,
            link,
            content: read.content.filter(|c| !c.trim().is_empty()),
            author: read.author.map(|a| collapse(&a)).filter(|a| !a.is_empty()),
            date: read.date,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_iris() {
        let page = Url::parse("https://forum.example/board?page=1").unwrap();
        assert_eq!(
            item_id(None, "https://forum.example/t/1", &page),
            "https://forum.example/t/1"
        );
        assert_eq!(
            item_id(Some("42"), "https://x/", &page),
            "https://forum.example/board?page=1#42"
        );
        assert_eq!(
            item_id(Some("a b"), "https://x/", &page),
            "https://forum.example/board?page=1#a%20b"
        );
        assert_eq!(item_id(Some("urn:uuid:1"), "https://x/", &page), "urn:uuid:1");
        assert!(item_id(Some(&"x".repeat(600)), "https://x/", &page).starts_with("urn:sha256:"));
    }

    #[test]
    fn links_must_be_web_urls() {
        let base = Url::parse("https://forum.example/board/").unwrap();
        assert_eq!(absolute_link("../t/1", &base).unwrap(), "https://forum.example/t/1");
        assert!(absolute_link("javascript:void(0)", &base).is_err());
        assert!(absolute_link("mailto:a@b", &base).is_err());
    }
}
