//! The status site, written into the store beside the feeds: `index.html` (every feed, its
//! state and a bar of its last attempts), `feeds.opml` (every published feed, for a reader to
//! subscribe to all at once), `index.json` (the same summary for machines) and
//! `status/<name>.svg` (a badge).
//!
//! A refresh whose feed's summary changed (its state, what is published, its failures in a row)
//! updates the site; an unchanged one writes nothing. `index.json` is the one source: it
//! is re-read and written with a conditional write, retried on conflict, so two refreshes that
//! finish together both land in it. The pages are rendered from the index being written and put
//! *before* it, so that the last writer of the index is also the last writer of the pages.

mod badge;
mod opml;
mod page;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::config::{Config, FeedConfig, SITE_KEYS};
use crate::fetch::Route;
use crate::redact::{one_line, redact_url};
use crate::status::{DEFAULT_LEASE, StatusRecord};
use crate::store::{Condition, PutOptions, Store, StoreError, Stored};

pub use page::{human_bytes, minutes, render as render_page};

/// The summary for machines, beside the page.
pub const INDEX_JSON: &str = crate::config::SITE_INDEX;

/// The index as stored, and the condition its next write must meet: the new key, or, where it is
/// not there yet, the summary an earlier build kept among the status records (written to the
/// new key as a new object).
async fn read_index(store: &dyn Store) -> Result<(Option<Stored>, Condition), StoreError> {
    if let Some(stored) = store.get(INDEX_JSON).await? {
        let condition = Condition::Matches(stored.version.clone());
        return Ok((Some(stored), condition));
    }
    Ok((store.get(crate::config::LEGACY_SITE_INDEX).await?, Condition::Absent))
}

/// How often a conditional write of the index is tried before the update is given up (and
/// logged: the next change writes it again): enough for every solver slot finishing at once.
const TRIES: usize = 24;

/// How long readers and CDNs may keep a page: short, as the page changes with every refresh.
const CACHE_CONTROL: &str = "public, max-age=60";

/// What a feed is, for the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Published, and its last success within twice its interval (and the record's lag).
    Ok,
    /// No success within twice its interval (and the record's lag).
    Stale,
    /// Its last attempt failed.
    Failing,
    /// Never refreshed.
    Never,
    /// A refresh is running now.
    Busy,
    /// A state of a newer build.
    #[serde(other)]
    Other,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Stale => "stale",
            State::Failing => "failing",
            State::Never => "never refreshed",
            State::Busy => "busy",
            State::Other => "unknown",
        }
    }
}

/// `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub title: String,
    #[serde(with = "time::serde::rfc3339")]
    pub generated: OffsetDateTime,
    pub feeds: Vec<FeedSummary>,
}

/// One feed on the site. Everything in it is safe to publish: the url without userinfo or
/// query, no header, and texts from sites and solvers on one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedSummary {
    pub name: String,
    /// The published feed's key, relative to the site.
    pub href: String,
    /// The source, redacted.
    pub url: String,
    pub state: State,
    pub interval_s: u64,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_success: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_attempt: Option<OffsetDateTime>,
    /// `stage: message`.
    pub last_error: Option<String>,
    pub failures: u32,
    pub route: Option<Route>,
    /// The solver that got the feed (its url without secrets), and those of a pool that met a
    /// wall before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solver: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passed_over: Vec<String>,
    pub items: Option<usize>,
    pub bytes: Option<usize>,
    /// The fingerprint of what readers get, if anything is published.
    pub sha256: Option<String>,
    /// The last attempts, oldest first, a letter each: `u` updated, `n` unchanged, `f` failed,
    /// `i` interrupted.
    pub history: String,
}

impl FeedSummary {
    /// `feed` as its record says, at `now`.
    pub fn of(feed: &FeedConfig, record: &StatusRecord, now: OffsetDateTime) -> Self {
        let state = match record.busy(now, DEFAULT_LEASE) {
            Some(_) => State::Busy,
            None => settled_state(
                feed,
                (record.last_attempt, record.last_success),
                record.consecutive_failures,
                now,
            ),
        };
        Self {
            name: feed.name.clone(),
            href: feed.key.clone(),
            url: redact_url(&feed.url),
            state,
            interval_s: feed.interval.as_secs(),
            last_success: record.last_success,
            last_attempt: record.last_attempt,
            last_error: record.last_error.as_deref().map(one_line),
            failures: record.consecutive_failures,
            route: record.fetched_by,
            solver: record.solver.clone(),
            passed_over: record.passed_over.clone(),
            items: record.items,
            bytes: record.bytes,
            sha256: record.sha256.clone(),
            history: record.history.iter().map(|a| a.1.letter()).collect(),
        }
    }

    /// The summary as it reads at `now`: a state that time changes (ok turning stale, a busy
    /// refresh long finished) worked out again from what the summary says. A feed whose
    /// refreshes stopped is stale on the page as in `flarefeed status`, though nothing wrote
    /// its summary since.
    fn restated(mut self, feed: &FeedConfig, now: OffsetDateTime) -> Self {
        if self.state != State::Other {
            self.state = settled_state(feed, (self.last_attempt, self.last_success), self.failures, now);
        }
        self
    }

    /// A feed with no record yet.
    pub fn never(feed: &FeedConfig) -> Self {
        Self::of(feed, &StatusRecord::never(feed), OffsetDateTime::UNIX_EPOCH)
    }

    /// What makes a change worth writing: the state, what is published, the failures in a row.
    fn key(&self) -> (State, Option<&str>, u32) {
        (self.state, self.sha256.as_deref(), self.failures)
    }
}

/// A feed's state when no refresh of it is running: failing, never refreshed, stale (no success
/// within twice its interval and the record's lag) or ok.
fn settled_state(
    feed: &FeedConfig,
    (last_attempt, last_success): (Option<OffsetDateTime>, Option<OffsetDateTime>),
    failures: u32,
    now: OffsetDateTime,
) -> State {
    // An unchanged refresh may leave its record unwritten for up to the record's lag
    // (`status::record_lag`), so a success counts as at least that much more recent.
    let stale_after = time::Duration::try_from(
        feed.interval
            .saturating_mul(2)
            .saturating_add(crate::status::record_lag(feed)),
    )
    .unwrap_or(time::Duration::MAX);
    if failures > 0 {
        State::Failing
    } else if last_attempt.is_none() && last_success.is_none() {
        State::Never
    } else if last_success.is_none_or(|at| at.saturating_add(stale_after) < now) {
        State::Stale
    } else {
        State::Ok
    }
}

/// What an update wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub gets: usize,
    pub puts: usize,
}

/// After a refresh of `feed`: updates the site if the feed's summary changed between `before`
/// and `after` (none written for an unchanged refresh). Gives up at `deadline`.
pub async fn update(
    store: &dyn Store,
    config: &Config,
    feed: &FeedConfig,
    before: Option<&StatusRecord>,
    after: &StatusRecord,
    now: OffsetDateTime,
) -> Result<Written, StoreError> {
    let summary = FeedSummary::of(feed, after, now);
    // A record without history was written by a build before the site (or never): its feed may
    // be missing from the site, so its first refresh here writes it, changed or not.
    let previous = before
        .filter(|b| !b.history.is_empty())
        .map(|b| FeedSummary::of(feed, b, now));
    if previous.as_ref().is_some_and(|p| p.key() == summary.key()) {
        return Ok(Written::default());
    }
    let mut written = Written::default();
    for _ in 0..TRIES {
        let (stored, condition) = read_index(store).await?;
        written.gets += 1;
        let old = stored.and_then(|stored| {
            serde_json::from_slice::<Index>(&stored.body)
                .inspect_err(|e| warn!(error = %e, "index.json does not parse; it is written again"))
                .ok()
        });
        let index = merged(config, old.as_ref(), summary.clone(), now);
        written.puts += write_pages(store, config, old.as_ref(), &index, Some(&feed.name)).await?;
        match put_index(store, &index, condition).await {
            Ok(()) => {
                written.puts += 1;
                return Ok(written);
            }
            Err(StoreError::Conflict { .. }) => {
                info!(feed = %feed.name, "index.json changed meanwhile; reading it again");
                // A pause that differs between writers, so that they stop colliding.
                tokio::time::sleep(jitter(&feed.name, written.gets)).await;
            }
            Err(e) => return Err(e),
        }
    }
    warn!(feed = %feed.name, tries = TRIES, "index.json kept changing; this update is given up, the next refresh writes it");
    Err(StoreError::Conflict {
        target: store.locate(INDEX_JSON),
    })
}

/// Writes the whole site from every configured feed's record: `flarefeed site`, and after a
/// configuration change.
pub async fn rebuild(
    store: &dyn Store,
    config: &Config,
    records: &[StatusRecord],
    now: OffsetDateTime,
) -> Result<Index, StoreError> {
    let feeds = config
        .feeds
        .iter()
        .zip(records)
        .map(|(feed, record)| FeedSummary::of(feed, record, now))
        .collect();
    let mut index = Index {
        title: config.site.title.clone(),
        generated: now,
        feeds,
    };
    // Written over the index as read, never over a refresh's update that landed meanwhile: on
    // a conflict, a feed the stored index says was attempted later keeps the stored summary.
    for _ in 0..TRIES {
        let (stored, condition) = read_index(store).await?;
        if let Some(newer) = stored.and_then(|s| serde_json::from_slice::<Index>(&s.body).ok()) {
            for summary in &mut index.feeds {
                let theirs = newer.feeds.iter().find(|f| f.name == summary.name);
                if let Some(theirs) = theirs.filter(|t| t.last_attempt > summary.last_attempt) {
                    *summary = theirs.clone();
                }
            }
        }
        write_pages(store, config, None, &index, None).await?;
        match put_index(store, &index, condition).await {
            Err(StoreError::Conflict { .. }) => continue,
            other => return other.map(|()| index),
        }
    }
    Err(StoreError::Conflict {
        target: store.locate(INDEX_JSON),
    })
}

/// The index with `summary` in place, in configuration order, every other feed's state worked
/// out again for `now`; feeds no longer configured are dropped, and configured feeds the index
/// does not know yet appear as never refreshed.
fn merged(config: &Config, old: Option<&Index>, summary: FeedSummary, now: OffsetDateTime) -> Index {
    let feeds = config
        .feeds
        .iter()
        .map(|feed| {
            if feed.name == summary.name {
                return summary.clone();
            }
            old.and_then(|old| old.feeds.iter().find(|f| f.name == feed.name))
                .map(|carried| carried.clone().restated(feed, now))
                .unwrap_or_else(|| FeedSummary::never(feed))
        })
        .collect();
    Index {
        title: config.site.title.clone(),
        generated: now,
        feeds,
    }
}

async fn put_index(store: &dyn Store, index: &Index, condition: Condition) -> Result<(), StoreError> {
    let body = serde_json::to_vec(index).expect("an index always serializes");
    let options = PutOptions {
        content_type: "application/json",
        cache_control: CACHE_CONTROL,
        sha256: None,
        condition,
    };
    store.put(INDEX_JSON, body.into(), options).await.map(drop)
}

/// `index.html` always; `feeds.opml` when the published feeds changed; the badge of `only` (or
/// of every feed) when its state changed. Returns the PUTs made.
async fn write_pages(
    store: &dyn Store,
    config: &Config,
    old: Option<&Index>,
    index: &Index,
    only: Option<&str>,
) -> Result<usize, StoreError> {
    let put = |key: &'static str, body: Vec<u8>, content_type: &'static str| {
        let options = PutOptions {
            content_type,
            cache_control: CACHE_CONTROL,
            sha256: None,
            condition: Condition::Any,
        };
        async move { store.put(key, body.into(), options).await.map(drop) }
    };
    let [html_key, opml_key] = SITE_KEYS;
    let mut puts = 0;
    put(html_key, page::render(index).into_bytes(), "text/html; charset=utf-8").await?;
    puts += 1;
    let opml = opml::render(index, config.site.base_url.as_deref());
    if old.is_none_or(|old| opml::render(old, config.site.base_url.as_deref()) != opml) {
        put(opml_key, opml.into_bytes(), "text/x-opml; charset=utf-8").await?;
        puts += 1;
    }
    for summary in &index.feeds {
        if only.is_some_and(|only| only != summary.name) {
            continue;
        }
        let was = old.and_then(|old| old.feeds.iter().find(|f| f.name == summary.name));
        if was.is_some_and(|was| badge::kind(was.state) == badge::kind(summary.state)) {
            continue;
        }
        let options = PutOptions {
            content_type: "image/svg+xml",
            cache_control: CACHE_CONTROL,
            sha256: None,
            condition: Condition::Any,
        };
        let key = format!("status/{}.svg", summary.name);
        store.put(&key, badge::render(summary).into(), options).await?;
        puts += 1;
    }
    Ok(puts)
}

/// 5 to 50 ms, growing with the tries and different for each feed.
fn jitter(feed: &str, tries: usize) -> Duration {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{feed}/{tries}").as_bytes());
    let spread = u64::from(digest[0]) % 20;
    Duration::from_millis(5 + (spread + tries as u64 * 5).min(45))
}

/// How long after `since` is `at`, in words: "3 min ago", "2 h ago", "5 d ago".
pub fn ago(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let seconds = (now - at).whole_seconds();
    if seconds < 0 {
        return "just now".into();
    }
    let seconds = seconds as u64;
    match seconds {
        0..60 => format!("{seconds} s ago"),
        60..3600 => format!("{} min ago", seconds / 60),
        3600..172_800 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// Issue 27, finding 9: a feed whose refreshes stopped is stale on the page once another
    /// feed's refresh writes it, as `flarefeed status` says, though nothing wrote its summary.
    #[test]
    fn a_carried_feed_is_restated_when_the_index_is_written() {
        let now = datetime!(2026-12-04 12:00 UTC);
        let (a, b) = (
            FeedConfig::new("a", "https://a.test/feed"),
            FeedConfig::new("b", "https://b.test/feed"),
        );
        let config = Config {
            feeds: vec![a.clone(), b.clone()],
            ..Config::default()
        };
        let long_ago = now - time::Duration::days(10);
        let stopped = FeedSummary {
            state: State::Ok,
            last_attempt: Some(long_ago),
            last_success: Some(long_ago),
            ..FeedSummary::never(&b)
        };
        let old = Index {
            title: "t".into(),
            generated: long_ago,
            feeds: vec![FeedSummary::never(&a), stopped],
        };
        let index = merged(&config, Some(&old), FeedSummary::never(&a), now);
        assert_eq!(index.feeds[1].state, State::Stale);
        // A recent success stays ok.
        let recent = FeedSummary {
            state: State::Ok,
            last_attempt: Some(now),
            last_success: Some(now),
            ..FeedSummary::never(&b)
        };
        let old = Index {
            feeds: vec![FeedSummary::never(&a), recent],
            ..old
        };
        assert_eq!(
            merged(&config, Some(&old), FeedSummary::never(&a), now).feeds[1].state,
            State::Ok
        );
    }
}
