//! The configuration as the code uses it: every value validated, every default filled in.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::redact::Secret;
use crate::solver::SolverSettings;

/// Where feeds and status records are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A local folder (the default, [`DEFAULT_DIR`]).
    Dir(PathBuf),
    Bucket(Bucket),
}

/// The folder `refresh --url` and a configuration without `store` publish to.
pub const DEFAULT_DIR: &str = "public";

/// An S3 bucket, or a bucket on an S3-compatible server at `endpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub path_style: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub location: StoreLocation,
    /// Prepended to every key; empty or ending in `/`.
    pub prefix: String,
    /// `Cache-Control` of published feeds.
    pub cache_control: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            location: StoreLocation::Dir(PathBuf::from(DEFAULT_DIR)),
            prefix: String::new(),
            cache_control: "public, max-age=300".into(),
        }
    }
}

/// One configured feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedConfig {
    /// `[a-z0-9-]+`, unique; names the session, the status record and the schedule.
    pub name: String,
    /// The only url ever fetched for this feed.
    pub url: String,
    /// Where readers find it, below the store's prefix.
    pub key: String,
    pub min_items: usize,
    /// An HTTP-triggered refresh this soon after the last attempt is skipped.
    pub min_interval: Duration,
    /// How often the fleet's planner refreshes it, and the base of its backoff.
    pub interval: Duration,
    /// Directly, through the solver, or directly first (`fetch`; default `[fetch] mode`).
    pub fetch: FetchMode,
    /// What its requests carry, directly and through the solver.
    pub request: RequestOptions,
    /// How to build the feed from the page at `url` (`[feeds.html]`, `[feeds.json]`); `None`:
    /// the url is a feed.
    pub scrape: Option<crate::scrape::Rules>,
    /// `[[feeds.rules]]`: block and allow rules, in order.
    pub rules: Vec<crate::rewrite::Rule>,
    /// Items that left the site's feed, kept in the published one (default off).
    pub archive: Option<crate::rewrite::Archive>,
    /// Each item's article, fetched through the wall (default off).
    pub full_text: Option<crate::rewrite::FullText>,
}

/// How a feed is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FetchMode {
    /// Directly first; the solver only when the site needs it, remembered for `reprobe_after`.
    #[default]
    Auto,
    /// Only directly: the solver is never asked.
    Direct,
    /// Only through the solver, as before direct fetching.
    Solver,
}

/// A feed's own request options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestOptions {
    /// The direct request's `User-Agent`; else `[fetch] user_agent`.
    pub user_agent: Option<String>,
    /// Extra headers of the direct request (an API key, say). Values are secrets: never logged,
    /// recorded or reported.
    pub headers: Vec<(String, Secret)>,
    /// An http, https or socks5 proxy, for the direct request and the solver's.
    pub proxy: Option<Secret>,
    /// The solver's maxTimeout for this feed, instead of `[solver] max_timeout_ms`.
    pub max_timeout: Option<Duration>,
}

/// `[fetch]`: how feeds are fetched unless they say otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchConfig {
    /// Every feed's `fetch` unless it sets its own.
    pub mode: FetchMode,
    /// After the solver was needed, how long a feed goes straight to it before direct is tried
    /// again.
    pub reprobe_after: Duration,
    /// The longest a direct request may take, redirects and body included.
    pub timeout: Duration,
    /// The direct request's `User-Agent`.
    pub user_agent: String,
}

/// The default `User-Agent`: it names flarefeed and its version, honestly.
pub const DEFAULT_USER_AGENT: &str = concat!(
    "flarefeed/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/flarefeed/flarefeed; feed mirror)"
);

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            mode: FetchMode::Auto,
            reprobe_after: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(20),
            user_agent: DEFAULT_USER_AGENT.to_string(),
        }
    }
}

/// A feed's `interval` when the configuration gives none.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// The shortest `interval`: a Cloudflare-protected site is not polled faster than this.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);
/// The longest `interval`, `max_backoff`, `reprobe_after` and `min_interval_s`: a bound that
/// keeps every time computed from them far inside what a date can hold.
pub const MAX_INTERVAL: Duration = Duration::from_secs(30 * 86_400);
/// The longest `[fleet] tick`; see [`FleetConfig::tick`].
pub const MAX_TICK: Duration = Duration::from_secs(3600);
/// The longest direct request (`[fetch] timeout`): as long as the longest Lambda invocation.
pub const MAX_FETCH_TIMEOUT: Duration = Duration::from_secs(900);

/// `[fleet]`: many feeds planned on a tick and refreshed from a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// The SQS FIFO queue the planner sends due feeds to (`FLAREFEED_QUEUE_URL` overrides).
    pub queue_url: Option<String>,
    /// How often ticks come; a tick plans the slots in the tick before it.
    pub tick: Duration,
    /// The longest a failing feed is left alone.
    pub max_backoff: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            queue_url: None,
            tick: Duration::from_secs(60),
            max_backoff: Duration::from_secs(24 * 3600),
        }
    }
}

/// `"90s"`, `"15m"`, `"2h"`, `"1d"`: a whole number and one unit.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let unit_at = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(unit_at);
    let seconds: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    number
        .parse::<u64>()
        .ok()?
        .checked_mul(seconds)
        .map(Duration::from_secs)
}

impl FeedConfig {
    /// A feed with every default, as `flarefeed refresh --url` makes it.
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.to_string(),
            url: url.to_string(),
            key: format!("{name}.xml"),
            min_items: 1,
            min_interval: Duration::from_secs(60),
            interval: DEFAULT_INTERVAL,
            fetch: FetchMode::default(),
            request: RequestOptions::default(),
            scrape: None,
            rules: Vec::new(),
            archive: None,
            full_text: None,
        }
    }

    /// The key of this feed's status record, below the store's prefix.
    pub fn status_key(&self) -> String {
        format!("status/{}.json", self.name)
    }
}

/// The whole configuration, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub solver: SolverSettings,
    pub store: StoreConfig,
    pub feeds: Vec<FeedConfig>,
    pub fleet: FleetConfig,
    pub fetch: FetchConfig,
    pub site: SiteConfig,
}

/// The status site's pages, beside the feeds: no feed may take these keys.
pub const SITE_KEYS: [&str; 2] = ["index.html", "feeds.opml"];

/// The status site's summary for machines, beside its page: public as the page is.
pub const SITE_INDEX: &str = "index.json";

/// Where builds before issue 27 kept the site's summary: among the status records, which stay
/// private, so a CDN could not serve it. Read once, when [`SITE_INDEX`] is not there yet.
pub const LEGACY_SITE_INDEX: &str = "status/index.json";

/// `[site]`: the status site written beside the feeds ([`crate::site`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfig {
    /// Write `index.html`, `feeds.opml`, `index.json` and the badges (default true).
    pub enabled: bool,
    /// The page's title.
    pub title: String,
    /// Where readers find the feeds (`https://feeds.example.com/`): `feeds.opml` names each feed
    /// by it, and each published feed's self link is its url below it. Without it the OPML's
    /// urls are relative to the OPML itself, and feeds carry no self link.
    pub base_url: Option<String>,
    /// A WebSub hub: every feed links to it, and it is told of every change (needs `base_url`).
    pub websub_hub: Option<String>,
}

impl Default for SiteConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            title: "flarefeed".into(),
            base_url: None,
            websub_hub: None,
        }
    }
}

/// Every default and no feed.
impl Default for Config {
    fn default() -> Self {
        Self {
            solver: SolverSettings::default(),
            store: StoreConfig::default(),
            feeds: Vec::new(),
            fleet: FleetConfig::default(),
            fetch: FetchConfig::default(),
            site: SiteConfig::default(),
        }
    }
}

impl Config {
    /// The feed called `name`, or an error that lists the names there are.
    pub fn feed(&self, name: &str) -> Result<&FeedConfig, ConfigError> {
        self.feeds
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| ConfigError::UnknownFeed {
                name: name.to_string(),
                names: self.some_feed_names(),
            })
    }

    /// The first 20 feed names, and how many more there are: a message stays one readable line
    /// with 10,000 feeds.
    pub fn some_feed_names(&self) -> String {
        const SHOWN: usize = 20;
        let names = self.feed_names();
        let mut text = names[..names.len().min(SHOWN)].join(", ");
        if names.len() > SHOWN {
            text.push_str(&format!(" and {} more", names.len() - SHOWN));
        }
        text
    }

    pub fn feed_names(&self) -> Vec<&str> {
        self.feeds.iter().map(|f| f.name.as_str()).collect()
    }
}

/// A duration as the configuration writes it: `"30d"`, `"1h"`, `"15m"`, `"90s"`.
pub fn describe(bound: Duration) -> String {
    let seconds = bound.as_secs();
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `flarefeed-` and a short hash of where the feeds are published (bucket, endpoint and prefix,
/// or folder and prefix): two deployments sharing one FlareSolverr publish to different places,
/// so their sessions for a feed of the same name get different names.
pub fn default_session_prefix(store: &StoreConfig) -> String {
    use sha2::{Digest, Sha256};
    let place = match &store.location {
        StoreLocation::Dir(dir) => format!("dir:{}/{}", dir.display(), store.prefix),
        StoreLocation::Bucket(Bucket { bucket, endpoint, .. }) => {
            format!("s3:{}/{bucket}/{}", endpoint.as_deref().unwrap_or(""), store.prefix)
        }
    };
    format!("flarefeed-{}", &hex::encode(Sha256::digest(place.as_bytes()))[..8])
}

/// Memory a refresh needs besides the reply: the runtime, the SDK, TLS, buffers.
pub const RESERVED_MEMORY_MB: u64 = 40;

/// The largest reply a function with `memory_mb` of memory can take. A refresh peaks at under
/// 3 times the reply on top of the process (bench/memory.py), so a reply at the cap fits.
pub fn reply_cap_for_memory(memory_mb: u64) -> usize {
    let mb = (memory_mb.saturating_sub(RESERVED_MEMORY_MB) / 3).max(1);
    (mb * 1024 * 1024) as usize
}
