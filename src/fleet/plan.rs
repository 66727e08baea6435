//! Which feeds a tick makes due.
//!
//! A feed's refreshes fall on fixed slots: a phase derived from a hash of its name, plus
//! multiples of its `interval`. So load spreads evenly over each interval, every planner (one
//! per tick, anywhere) agrees on the same slots, and planning reads nothing from the store.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::{Config, FeedConfig};

/// One feed a tick made due.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// The latest slot of `feed` in the window (`at` − `window`, `at`], if there is one. Every
/// step saturates: no interval or window, however large, wraps.
pub fn due_slot(feed: &FeedConfig, at: i64, window: Duration) -> Option<i64> {
    let interval = i64::try_from(feed.interval.as_secs().max(1)).unwrap_or(i64::MAX);
    let phase = i64::try_from(phase(feed)).unwrap_or(0);
    let latest = at.saturating_sub(at.saturating_sub(phase).rem_euclid(interval));
    let start = at.saturating_sub(i64::try_from(window.as_secs()).unwrap_or(i64::MAX));
    (latest > start).then_some(latest)
}

/// SQS FIFO drops a deduplication id it has taken within the last 5 minutes
/// (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/using-messagededuplicationid-property.html);
/// a slot planned again later than this would run twice. A minute's margin for clocks.
const DEDUPLICATION_INTERVAL: Duration = Duration::from_secs(4 * 60);

/// What a tick that fires `every` so often plans: the slots since two ticks and 30 s before
/// it, so that a tick that runs up to 30 s late, or one missed tick, loses no slot, and one
/// that runs twice queues nothing more (each slot is planned again only within SQS's
/// deduplication interval, which drops it). A schedule too slow for that overlap (over 105 s)
/// plans its own period and one minute more, or just its period beyond 4 minutes.
pub fn window(every: Duration) -> Duration {
    let every = every.max(Duration::from_secs(1));
    let overlapping = every.saturating_mul(2).saturating_add(Duration::from_secs(30));
    if overlapping <= DEDUPLICATION_INTERVAL {
        overlapping
    } else {
        DEDUPLICATION_INTERVAL.max(every)
    }
}

/// The feeds with a slot in (`at` − `window`, `at`], with that slot, in configuration order:
/// what the tick plans, and what `flarefeed run` queues since it last looked.
pub fn due_in(config: &Config, at: i64, window: Duration) -> impl Iterator<Item = (&FeedConfig, i64)> {
    config
        .feeds
        .iter()
        .filter_map(move |feed| due_slot(feed, at, window).map(|slot| (feed, slot)))
}

/// Every feed due in the tick at `at` (Unix seconds) of a schedule that fires `every` so often,
/// in configuration order (see [`window`]).
pub fn plan(config: &Config, at: i64, every: Duration) -> Vec<Due> {
    due_in(config, at, window(every))
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
        let per_minute: Vec<usize> = (1..=15)
            .map(|m| due_in(&config, start + m * 60, Duration::from_secs(60)).count())
            .collect();
        assert_eq!(
            per_minute.iter().sum::<usize>(),
            1000,
            "each feed exactly once: {per_minute:?}"
        );
        let mean = 1000.0 / 15.0;
        let most = *per_minute.iter().max().unwrap() as f64;
        assert!(most <= 1.5 * mean, "{per_minute:?}");
        let names: std::collections::BTreeSet<String> = (1..=15)
            .flat_map(|m| plan(&config, start + m * 60, Duration::from_secs(60)))
            .map(|d| d.feed)
            .collect();
        assert_eq!(names.len(), 1000);
    }

    /// Ticks every minute that run late (up to 30 s), twice, or not at all once: every slot is
    /// planned at least once, and each time again only within the deduplication interval.
    #[test]
    fn late_doubled_and_missed_ticks_lose_no_slot() {
        let feeds: Vec<FeedConfig> = (0..200).map(|i| feed(&format!("feed-{i}"), 900)).collect();
        let config = config(feeds);
        let minute = Duration::from_secs(60);
        let start = 1_800_000_000;
        let mut first_planned: std::collections::HashMap<Due, i64> = Default::default();
        let mut tick_times = Vec::new();
        for m in 1..=30 {
            let at = start + m * 60;
            match m % 7 {
                3 => continue,                              // missed
                4 => tick_times.extend([at + 30, at + 31]), // late, and twice
                _ => tick_times.push(at),
            }
        }
        for at in tick_times {
            for due in plan(&config, at, minute) {
                let first = *first_planned.entry(due.clone()).or_insert(at);
                assert!(
                    at - first < DEDUPLICATION_INTERVAL.as_secs() as i64,
                    "{due:?} planned again too late"
                );
            }
        }
        for f in &config.feeds {
            let slots: Vec<i64> = (0..)
                .map(|k| start + (phase(f) as i64) + k * 900)
                .take_while(|slot| *slot <= start + 29 * 60)
                .filter(|slot| *slot > start)
                .collect();
            for slot in slots {
                let due = Due {
                    feed: f.name.clone(),
                    slot,
                };
                assert!(first_planned.contains_key(&due), "{due:?} lost");
            }
        }
    }

    /// An interval or window near the types' limits neither panics nor wraps.
    #[test]
    fn absurd_durations_saturate() {
        let huge = feed("huge", u64::MAX);
        assert!(due_slot(&huge, 1_800_000_000, Duration::MAX).is_some_and(|s| s <= 1_800_000_000));
        assert!(due_slot(&feed("a", 900), i64::MIN, Duration::MAX).is_none_or(|s| s <= i64::MIN + 900));
        assert!(window(Duration::MAX) >= DEDUPLICATION_INTERVAL);
        assert_eq!(window(Duration::from_secs(60)), Duration::from_secs(150));
    }
}
