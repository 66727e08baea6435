//! Which feeds a tick makes due.
//!
//! A feed's refreshes fall on fixed slots: a phase derived from a hash of its name, plus
//! multiples of its `interval`. So load spreads evenly over each interval, every planner (one
//! per tick, anywhere) agrees on the same slots, and planning reads nothing from the store.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::{Config, FeedConfig};

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
            feeds,
            fleet: FleetConfig::default(),
            ..Config::default()
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
}
