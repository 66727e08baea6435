//! What flarefeed remembers of a feed's items between refreshes: when it first saw each one,
//! the archive's copies and the articles (its reads and writes: [`crate::status::memory`]).
//!
//! A feed built from a page dates an item that shows no date by when flarefeed first saw it, so
//! that time must hold across refreshes, restarts and the other environments sharing the store.
//! It lives beside the status records, at `status/items/<feed>.json` (private, as the records
//! are), as one small JSON object:
//!
//! ```json
//! {"items": {"https://forum.example/t/1": {"first": 1764490500},
//!            "https://forum.example/t/0": {"first": 1764400000, "gone": 1764480000}}}
//! ```
//!
//! It changes only when the page's set of items does (an item arrives, leaves, or comes back),
//! so an unchanged page writes nothing. An item that leaves is kept [`RETURN_WITHIN`] (30 days):
//! if it comes back by then it keeps its first-seen time. At most [`MAX_ENTRIES`] entries are
//! kept; past that the longest gone are forgotten first, never an item on the page.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// How long an item that left the page is remembered.
pub const RETURN_WITHIN: time::Duration = time::Duration::days(30);

/// The most entries kept: a page of 100 items replaced every day for 30 days is 3,000. An entry
/// is its id (at most 512 bytes, a link of about 80 bytes as a rule) and two numbers, so the
/// object stays under about 0.7 MB, and about 15 KB for a page of 50 items that changes slowly.
pub const MAX_ENTRIES: usize = 5_000;

/// Where the feed's items stand for full text after a refresh, for the record: a state, so an
/// unchanged refresh records the same figures (and need not write its record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArticleCounts {
    /// Items published with their article.
    pub cached: usize,
    /// Items whose article failed: kept with their own text, tried again up to three times.
    pub failed: usize,
    /// Items not tried yet: beyond `max_per_refresh` or the deadline, for the next refresh.
    pub waiting: usize,
}

/// The memory's key, below the store's prefix.
pub fn key(feed: &str) -> String {
    format!("status/items/{feed}.json")
}

/// The memory of one feed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Memory {
    #[serde(default)]
    pub items: BTreeMap<String, Seen>,
    /// Fields of a newer build, kept as they were.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One item: first seen, when it left the page if it has, and what the archive and full text
/// keep of it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Seen {
    /// Unix seconds, on the store's clock.
    pub first: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone: Option<i64>,
    /// Its place in the feed when first seen (0 the top): of items first seen together, the
    /// site's order says which is newer.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub place: u32,
    /// `archive`: the item as last published, whole and self-contained (the namespaces it uses
    /// declared on its start tag), and the dialect it belongs in (`rss`, `rdf`, `atom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xml: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialect: Option<String>,
    /// `[feeds.full_text]`: the article's content as HTML, once fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub article: Option<String>,
    /// Fetches of the article that failed; at [`MAX_ARTICLE_TRIES`] it is not tried again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub article_failures: u8,
}

/// How many times an article is tried before the item keeps its own text for good.
pub const MAX_ARTICLE_TRIES: u8 = 3;

fn is_zero(n: &u8) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

impl Memory {
    /// The first-seen time of each of `ids` (the page's items, in order) at `now`, and whether
    /// the memory changed and must be written before the feed is.
    pub fn observe(&mut self, ids: &[&str], now: OffsetDateTime) -> (Vec<OffsetDateTime>, bool) {
        self.observe_keeping(ids, now, None)
    }

    /// [`Memory::observe`], where an archived item (one with its `xml`) is kept for `archive`
    /// seconds after it was first seen, however long it has been gone.
    pub fn observe_keeping(
        &mut self,
        ids: &[&str],
        now: OffsetDateTime,
        archive: Option<i64>,
    ) -> (Vec<OffsetDateTime>, bool) {
        let at = now.unix_timestamp();
        let expired = |seen: &Seen| {
            let archived = seen.xml.is_some() && archive.is_some_and(|keep| at - seen.first <= keep);
            !archived && seen.gone.is_some_and(|gone| at - gone > RETURN_WITHIN.whole_seconds())
        };
        let mut changed = false;
        let mut firsts = Vec::with_capacity(ids.len());
        for (place, id) in ids.iter().enumerate() {
            let first = match self.items.get_mut(*id) {
                Some(seen) if !expired(seen) => {
                    if seen.gone.take().is_some() {
                        changed = true;
                    }
                    seen.first
                }
                _ => {
                    let seen = Seen {
                        first: at,
                        place: u32::try_from(place).unwrap_or(u32::MAX),
                        ..Seen::default()
                    };
                    self.items.insert(id.to_string(), seen);
                    changed = true;
                    at
                }
            };
            firsts.push(OffsetDateTime::from_unix_timestamp(first).unwrap_or(now));
        }
        let present: HashSet<&str> = ids.iter().copied().collect();
        for (id, seen) in self.items.iter_mut() {
            if seen.gone.is_none() && !present.contains(id.as_str()) {
                seen.gone = Some(at);
                // Its article is in its archived copy, if it has one; an item that comes back
                // has its article fetched again. So only the items on the page hold one.
                seen.article = None;
                changed = true;
            }
        }
        // Forgetting is not a change of its own: it rides on the next write.
        self.items.retain(|_, seen| !expired(seen));
        if self.items.len() > MAX_ENTRIES {
            let mut gone: Vec<(i64, String)> = self
                .items
                .iter()
                .filter_map(|(id, seen)| seen.gone.map(|g| (g, id.clone())))
                .collect();
            gone.sort();
            let excess = self.items.len() - MAX_ENTRIES;
            for (_, id) in gone.into_iter().take(excess) {
                self.items.remove(&id);
            }
        }
        (firsts, changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_764_000_000 + seconds).unwrap()
    }

    #[test]
    fn first_seen_holds_and_an_unchanged_page_changes_nothing() {
        let mut memory = Memory::default();
        let (firsts, changed) = memory.observe(&["a", "b"], at(0));
        assert_eq!(firsts, [at(0), at(0)]);
        assert!(changed);
        let (firsts, changed) = memory.observe(&["a", "b"], at(3600));
        assert_eq!((firsts, changed), (vec![at(0), at(0)], false));
        let (firsts, changed) = memory.observe(&["c", "a", "b"], at(7200));
        assert_eq!((firsts, changed), (vec![at(7200), at(0), at(0)], true));
    }

    #[test]
    fn an_item_that_returns_within_30_days_keeps_its_time_and_later_gets_a_new_one() {
        let mut memory = Memory::default();
        memory.observe(&["a", "b"], at(0));
        let (_, changed) = memory.observe(&["b"], at(100));
        assert!(changed);
        assert_eq!(memory.items["a"].gone, Some(at(100).unix_timestamp()));
        let day = 86_400;
        let (firsts, changed) = memory.observe(&["a", "b"], at(100 + 29 * day));
        assert_eq!((firsts[0], changed), (at(0), true));
        memory.observe(&["b"], at(200 + 29 * day));
        let (firsts, _) = memory.observe(&["a", "b"], at(300 + 60 * day));
        assert_eq!(firsts[0], at(300 + 60 * day));
    }

    #[test]
    fn the_memory_is_bounded_by_forgetting_the_longest_gone() {
        let mut memory = Memory::default();
        for round in 0..(MAX_ENTRIES as i64 / 100 + 5) {
            let ids: Vec<String> = (0..100).map(|i| format!("{round}-{i}")).collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            memory.observe(&ids, at(round * 60));
        }
        assert_eq!(memory.items.len(), MAX_ENTRIES);
        assert!(!memory.items.contains_key("0-0"));
        assert!(memory.items[&format!("{}-0", MAX_ENTRIES / 100 + 4)].gone.is_none());
    }

    #[test]
    fn fields_of_a_newer_build_are_kept() {
        let text = r#"{"items":{"a":{"first":5}},"archive":{"x":1}}"#;
        let memory: Memory = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&memory).unwrap(), text);
    }
}
