//! Many feeds on one schedule: which feeds a tick makes due, and how long a failing feed is
//! left alone.
//!
//! A feed's refreshes fall on fixed slots: a phase derived from a hash of its name, plus
//! multiples of its `interval`. So load spreads evenly over each interval, every planner (one
//! per tick, anywhere) agrees on the same slots, and planning reads nothing from the store.

use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::{Config, FeedConfig};
use crate::status::StatusRecord;

/// One feed a tick made due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub feed: String,
    /// The slot's start, in Unix seconds: with the name, it identifies the refresh, so that a
    /// tick planned twice enqueues it once.
    pub slot: i64,
}

impl Due {
    /// `<name>-<slot>`: the FIFO queue's deduplication id.
    pub fn deduplication_id(&self) -> String {
        format!("{}-{}", self.feed, self.slot)
    }
}

/// Where in its interval a feed's slots fall, from a hash of its name (SHA-256: the same on
/// every machine and in every version, unlike std's hasher).
pub fn phase(feed: &FeedConfig) -> u64 {
    let digest = Sha256::digest(feed.name.as_bytes());
    let seed = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    seed % feed.interval.as_secs().max(1)
}

/// The latest slot of `feed` in the tick's window (`at` − `tick`, `at`], if there is one.
pub fn due_slot(feed: &FeedConfig, at: i64, tick: Duration) -> Option<i64> {
    let interval = feed.interval.as_secs().max(1) as i64;
    let phase = phase(feed) as i64;
    let latest = at - (at - phase).rem_euclid(interval);
    (latest > at - tick.as_secs() as i64).then_some(latest)
}

/// The feeds with a slot in (`at` − `window`, `at`], with that slot, in configuration order:
/// what the tick plans, and what `flarefeed run` queues since it last looked.
pub fn due_in(config: &Config, at: i64, window: Duration) -> impl Iterator<Item = (&FeedConfig, i64)> {
    config
        .feeds
        .iter()
        .filter_map(move |feed| due_slot(feed, at, window).map(|slot| (feed, slot)))
}

/// Every feed due in the tick at `at` (Unix seconds), in configuration order.
pub fn plan(config: &Config, at: i64) -> Vec<Due> {
    due_in(config, at, config.fleet.tick)
        .map(|(feed, slot)| Due {
            feed: feed.name.clone(),
            slot,
        })
        .collect()
}

/// How long a failing feed is still left alone: after `k` consecutive failures, no attempt
/// before `last_attempt + min(interval × 2^k, max_backoff)`.
pub fn backing_off(
    record: &StatusRecord,
    interval: Duration,
    max_backoff: Duration,
    now: OffsetDateTime,
) -> Option<Duration> {
    let failures = record.consecutive_failures;
    if failures == 0 {
        return None;
    }
    let last = OffsetDateTime::parse(record.last_attempt.as_deref()?, &Rfc3339).ok()?;
    let factor = 2u32.checked_pow(failures).unwrap_or(u32::MAX);
    let wait = interval.checked_mul(factor).unwrap_or(max_backoff).min(max_backoff);
    let until = last + wait;
    (until > now).then(|| (until - now).try_into().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FleetConfig;

    fn feed(name: &str, interval_s: u64) -> FeedConfig {
        FeedConfig {
            interval: Duration::from_secs(interval_s),
            ..FeedConfig::new(name, "https://site.test/feed")
        }
    }

    fn config(feeds: Vec<FeedConfig>) -> Config {
        Config {
            solver: Default::default(),
            store: Default::default(),
            feeds,
            fleet: FleetConfig::default(),
        }
    }

    #[test]
    fn each_feed_is_due_once_per_interval_on_its_own_phase() {
        let f = feed("news", 900);
        let minute = Duration::from_secs(60);
        let start = 1_800_000_000;
        let slots: Vec<i64> = (0..=45).filter_map(|m| due_slot(&f, start + m * 60, minute)).collect();
        assert_eq!(slots.len(), 3, "{slots:?}");
        assert!(slots.windows(2).all(|w| w[1] - w[0] == 900));
        assert!(slots.iter().all(|s| (s - phase(&f) as i64).rem_euclid(900) == 0));
        // The same tick planned twice gives the same slot: the queue drops the duplicate.
        let at = slots[0] + 30;
        assert_eq!(due_slot(&f, at, minute), due_slot(&f, at, minute));
        // A slot exactly at the window's start belongs to the tick before.
        assert_eq!(due_slot(&f, slots[0] + 60, minute), None);
        assert_eq!(due_slot(&f, slots[0], minute), Some(slots[0]));
    }

    /// 1,000 feeds at 15 minutes: no minute carries more than 1.5 times the mean.
    #[test]
    fn a_thousand_feeds_spread_evenly() {
        let feeds: Vec<FeedConfig> = (0..1000).map(|i| feed(&format!("feed-{i}"), 900)).collect();
        let config = config(feeds);
        // A multiple of 15 minutes, so the fifteen ticks cover one interval exactly.
        let start = 1_800_000_000;
        let per_minute: Vec<usize> = (1..=15).map(|m| plan(&config, start + m * 60).len()).collect();
        assert_eq!(
            per_minute.iter().sum::<usize>(),
            1000,
            "each feed exactly once: {per_minute:?}"
        );
        let mean = 1000.0 / 15.0;
        let most = *per_minute.iter().max().unwrap() as f64;
        assert!(most <= 1.5 * mean, "{per_minute:?}");
        let names: std::collections::BTreeSet<String> = (1..=15)
            .flat_map(|m| plan(&config, start + m * 60))
            .map(|d| d.feed)
            .collect();
        assert_eq!(names.len(), 1000);
    }

    #[test]
    fn backoff_doubles_per_failure_up_to_the_cap() {
        let mut record = StatusRecord::never(&feed("news", 900));
        let now = OffsetDateTime::parse("2026-11-22T12:00:00Z", &Rfc3339).unwrap();
        let interval = Duration::from_secs(900);
        let cap = Duration::from_secs(24 * 3600);
        record.last_attempt = Some("2026-11-22T12:00:00Z".into());
        assert_eq!(backing_off(&record, interval, cap, now), None, "no failure, no backoff");
        for (failures, wait) in [(1, 1800), (2, 3600), (3, 7200), (7, 86_400), (40, 86_400)] {
            record.consecutive_failures = failures;
            assert_eq!(
                backing_off(&record, interval, cap, now),
                Some(Duration::from_secs(wait)),
                "{failures}"
            );
        }
        record.consecutive_failures = 1;
        assert_eq!(
            backing_off(&record, interval, cap, now + time::Duration::minutes(29)),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            backing_off(&record, interval, cap, now + time::Duration::minutes(30)),
            None
        );
    }
}
