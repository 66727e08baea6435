//! The configuration: TOML, loaded and validated at start (and, from `FLAREFEED_CONFIG_URL`,
//! again whenever it changes: [`remote`]). Every error names the key.

pub mod remote;

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use thiserror::Error;

use crate::feed::DEFAULT_MAX_BYTES;
use crate::redact::{Secret, redact_url};
use crate::solver::{SessionPolicy, SolverSettings};

/// Why the configuration cannot be used. The message names the key and the problem.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error(
        "no configuration: pass --config FILE, or set FLAREFEED_CONFIG (inline TOML), FLAREFEED_CONFIG_FILE (a path) or FLAREFEED_CONFIG_URL (s3://bucket/key or a path); or refresh one feed with --url URL"
    )]
    Missing,
    #[error("cannot read the configuration file {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("configuration from {origin} is not valid TOML for flarefeed: {detail}")]
    Parse { origin: String, detail: String },
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: String, problem: String },
    #[error("no feed named {name:?}; configured: {names}")]
    UnknownFeed { name: String, names: String },
    #[error(
        "configuration from {origin} is {bytes} bytes, over the limit of {MAX_CONFIG_BYTES} (1 MiB, about 10,000 feeds); split the feeds across deployments"
    )]
    TooLarge { origin: String, bytes: u64 },
}

/// The largest configuration read: it is parsed on every cold start and after every upload, and
/// a runaway file (a loop in a generator) must not take the function's memory.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The process environment, as [`Config::load`] and [`Config::parse`] read it (tests pass
/// their own).
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

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

/// The status site's summary for machines, beside the status records (and not one of them).
pub const SITE_INDEX: &str = "status/index.json";

/// `[site]`: the status site written beside the feeds ([`crate::site`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfig {
    /// Write `index.html`, `feeds.opml`, `status/index.json` and the badges (default true).
    pub enabled: bool,
    /// The page's title.
    pub title: String,
    /// Where readers find the feeds (`https://feeds.example.com/`): `feeds.opml` names each feed
    /// by it. Without it the OPML's urls are relative to the OPML itself.
    pub base_url: Option<String>,
}

impl Default for SiteConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            title: "flarefeed".into(),
            base_url: None,
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
    /// Finds and loads the configuration: `--config FILE`, else `FLAREFEED_CONFIG`, else
    /// `FLAREFEED_CONFIG_FILE`; then the environment's single-setting overrides.
    pub fn load(file: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let (origin, text) = if let Some(path) = file {
            (path.display().to_string(), read(path)?)
        } else if let Some(inline) = env("FLAREFEED_CONFIG").filter(|s| !s.trim().is_empty()) {
            ("FLAREFEED_CONFIG".to_string(), inline)
        } else if let Some(path) = env("FLAREFEED_CONFIG_FILE").filter(|s| !s.is_empty()) {
            (path.clone(), read(Path::new(&path))?)
        } else {
            return Err(ConfigError::Missing);
        };
        Self::checked(&text, &origin, env)
    }

    /// [`Config::parse`], and at least one feed: what a deployment can run on.
    pub fn checked(text: &str, origin: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                origin: origin.into(),
                bytes: text.len() as u64,
            });
        }
        let config = Self::parse(text, origin, env)?;
        if config.feeds.is_empty() {
            return Err(invalid(
                "feeds",
                "no feeds configured: add at least one [[feeds]] table",
            ));
        }
        Ok(config)
    }

    /// The configuration `flarefeed refresh --url` uses: defaults (or the configuration found, if
    /// any) with just this one feed.
    pub fn for_url(
        url: &str,
        name: Option<&str>,
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = match Self::load(file, env) {
            Ok(config) => config,
            Err(ConfigError::Missing) => Self::parse("", "defaults", env)?,
            Err(e) => return Err(e),
        };
        let name = match name {
            Some(name) => name.to_string(),
            None => name_from_url(url).ok_or_else(|| invalid("--url", format!("{url:?} is not an http(s) url")))?,
        };
        let feed = FeedConfig {
            fetch: config.fetch.mode,
            ..FeedConfig::new(&name, url)
        };
        check_feed(&feed, "--url")?;
        config.feeds = vec![feed];
        Ok(config)
    }

    /// Parses and validates TOML, then applies the environment's overrides.
    pub fn parse(text: &str, origin: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            detail: e.to_string().trim().to_string(),
        })?;
        let mut raw = raw;
        if let Some(url) = env("FLAREFEED_SOLVER_URL").filter(|s| !s.is_empty()) {
            raw.solver.url = url;
            raw.solver.urls = None;
        }
        if let Some(queue) = env("FLAREFEED_QUEUE_URL").filter(|s| !s.is_empty()) {
            raw.fleet.queue_url = Some(queue);
        }
        if let Some(mode) = env("FLAREFEED_FETCH").filter(|s| !s.is_empty()) {
            raw.fetch.mode = Some(match mode.trim() {
                "auto" => FetchMode::Auto,
                "direct" => FetchMode::Direct,
                "solver" => FetchMode::Solver,
                other => {
                    return Err(invalid(
                        "FLAREFEED_FETCH",
                        format!("{other:?} is none of auto, direct, solver"),
                    ));
                }
            });
        }
        if let Some(bucket) = env("FLAREFEED_BUCKET").filter(|s| !s.is_empty()) {
            raw.store.bucket = Some(bucket);
            raw.store.dir = None;
        }
        // Lambda sets the function's memory in the environment
        // (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime).
        let memory_mb = env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").and_then(|mb| mb.trim().parse().ok());
        raw.validate(memory_mb)
    }

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

/// A configuration file, refused unread when it is over [`MAX_CONFIG_BYTES`].
fn read(path: &Path) -> Result<String, ConfigError> {
    let failed = |e: std::io::Error| ConfigError::Read {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let bytes = std::fs::metadata(path).map_err(failed)?.len();
    if bytes > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            origin: path.display().to_string(),
            bytes,
        });
    }
    std::fs::read_to_string(path).map_err(failed)
}

/// `https://www.example.com/rss` → `www-example-com`.
fn name_from_url(url: &str) -> Option<String> {
    let parsed = Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))?;
    let host = parsed.host_str()?;
    // The host and the path, so that two feeds of one site get names of their own and never
    // overwrite each other's file: https://example.com/news/rss.xml -> example-com-news-rss-xml.
    let whole = format!("{host}{}", parsed.path());
    let mut name = String::with_capacity(whole.len());
    for c in whole.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if !(c == '-' && name.ends_with('-')) {
            name.push(c);
        }
    }
    let name = name.trim_matches('-');
    let name = name.get(..name.len().min(64)).unwrap_or(name).trim_end_matches('-');
    Some(name.to_string()).filter(|n| !n.is_empty())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    solver: RawSolver,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    feeds: Vec<RawFeed>,
    #[serde(default)]
    fleet: RawFleet,
    #[serde(default)]
    fetch: RawFetch,
    #[serde(default)]
    site: RawSite,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    enabled: Option<bool>,
    title: Option<String>,
    base_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFetch {
    mode: Option<FetchMode>,
    reprobe_after: Option<String>,
    timeout: Option<String>,
    user_agent: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    queue_url: Option<String>,
    tick: Option<String>,
    max_backoff: Option<String>,
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

/// A `"15m"`-style value at `key`, from `min` to `max`.
fn duration_at(key: &str, text: &str, min: Duration, max: Duration) -> Result<Duration, ConfigError> {
    let duration = parse_duration(text).ok_or_else(|| {
        invalid(
            key,
            format!(
                "{text:?} is not a duration: write a whole number and s, m, h or d (\"90s\", \"15m\", \"2h\", \"1d\")"
            ),
        )
    })?;
    if duration < min {
        return Err(invalid(
            key,
            format!("{text:?} is shorter than the minimum, {}s", min.as_secs()),
        ));
    }
    if duration > max {
        return Err(invalid(
            key,
            format!("{text:?} is longer than the maximum, {}", describe(max)),
        ));
    }
    Ok(duration)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSolver {
    url: String,
    /// Several solvers instead of `url`; each feed sticks to one ([`crate::solver::SolverPool`]).
    urls: Option<Vec<String>>,
    max_timeout_ms: u64,
    session: SessionPolicy,
    session_ttl_minutes: u64,
    /// The largest solver reply read, in MB; on Lambda, no more than the memory admits.
    max_reply_mb: Option<u64>,
    /// Session names are `<session_prefix>-<feed>`; default: from where the feeds are published.
    session_prefix: Option<String>,
}

impl Default for RawSolver {
    fn default() -> Self {
        let d = SolverSettings::default();
        Self {
            url: d.url,
            urls: None,
            max_timeout_ms: d.max_timeout.as_millis() as u64,
            session: d.session,
            session_ttl_minutes: d.session_ttl_minutes,
            max_reply_mb: None,
            session_prefix: None,
        }
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    bucket: Option<String>,
    dir: Option<PathBuf>,
    prefix: Option<String>,
    endpoint: Option<String>,
    path_style: Option<bool>,
    cache_control: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    name: String,
    url: String,
    key: Option<String>,
    min_items: Option<usize>,
    min_interval_s: Option<u64>,
    interval: Option<String>,
    fetch: Option<FetchMode>,
    user_agent: Option<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    proxy: Option<String>,
    max_timeout_ms: Option<u64>,
}

impl RawConfig {
    fn validate(self, function_memory_mb: Option<u64>) -> Result<Config, ConfigError> {
        let solver = &self.solver;
        if solver.max_reply_mb == Some(0) {
            return Err(invalid("solver.max_reply_mb", "must be at least 1"));
        }
        let configured = solver.max_reply_mb.map(|mb| (mb as usize).saturating_mul(1024 * 1024));
        let max_reply_bytes = match function_memory_mb {
            Some(mb) => configured.unwrap_or(usize::MAX).min(reply_cap_for_memory(mb)),
            None => configured.unwrap_or(DEFAULT_MAX_BYTES),
        };
        let urls = match &solver.urls {
            None => vec![solver.url.clone()],
            Some(_) if solver.url != SolverSettings::default().url => {
                return Err(invalid("solver.urls", "give either url or urls, not both"));
            }
            Some(urls) if urls.is_empty() => return Err(invalid("solver.urls", "lists no solver")),
            Some(urls) => urls.clone(),
        };
        for (i, url) in urls.iter().enumerate() {
            let key = if solver.urls.is_some() {
                format!("solver.urls[{i}]")
            } else {
                "solver.url".into()
            };
            check_http_url(url, &key)?;
            if urls[..i].contains(url) {
                return Err(invalid(key, format!("{url:?} is listed twice")));
            }
        }
        check_max_timeout("solver.max_timeout_ms", solver.max_timeout_ms)?;
        if solver.session_ttl_minutes == 0 {
            return Err(invalid("solver.session_ttl_minutes", "must be at least 1"));
        }
        let store = self.store.validate()?;
        let session_prefix = match &solver.session_prefix {
            Some(prefix) => {
                let valid = (1..=40).contains(&prefix.len())
                    && prefix
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !valid {
                    return Err(invalid(
                        "solver.session_prefix",
                        "must be 1 to 40 letters, digits, '-' or '_'",
                    ));
                }
                prefix.clone()
            }
            None => default_session_prefix(&store),
        };
        let solver = SolverSettings {
            url: urls[0].clone(),
            urls,
            max_timeout: Duration::from_millis(solver.max_timeout_ms),
            session: solver.session,
            session_ttl_minutes: solver.session_ttl_minutes,
            session_prefix,
            max_reply_bytes,
            function_memory_mb,
            ..SolverSettings::default()
        };
        let fetch = self.fetch.validate()?;
        let mut feeds: Vec<FeedConfig> = Vec::with_capacity(self.feeds.len());
        // Names and keys seen so far: a set, so that 60,000 feeds validate in linear time.
        let mut names = std::collections::HashSet::with_capacity(self.feeds.len());
        let mut keys = std::collections::HashSet::with_capacity(self.feeds.len());
        for (i, raw) in self.feeds.into_iter().enumerate() {
            let at = format!("feeds[{i}]");
            // FeedConfig::new holds the defaults; the file overrides what it sets.
            let mut feed = FeedConfig::new(&raw.name, &raw.url);
            if let Some(key) = raw.key {
                feed.key = key;
            }
            if let Some(min_items) = raw.min_items {
                feed.min_items = min_items;
            }
            if let Some(seconds) = raw.min_interval_s {
                if seconds > MAX_INTERVAL.as_secs() {
                    return Err(invalid(
                        format!("{at}.min_interval_s"),
                        format!("must be at most {} (30 days)", MAX_INTERVAL.as_secs()),
                    ));
                }
                feed.min_interval = Duration::from_secs(seconds);
            }
            if let Some(interval) = &raw.interval {
                feed.interval = duration_at(&format!("{at}.interval"), interval, MIN_INTERVAL, MAX_INTERVAL)?;
            }
            feed.fetch = raw.fetch.unwrap_or(fetch.mode);
            if let Some(agent) = raw.user_agent {
                check_header_value(&format!("{at}.user_agent"), &agent)?;
                feed.request.user_agent = Some(agent);
            }
            for (name, value) in raw.headers {
                let key = format!("{at}.headers.{name}");
                check_header_name(&key, &name)?;
                check_header_value(&key, &value)?;
                feed.request.headers.push((name, Secret::new(value)));
            }
            if let Some(proxy) = raw.proxy {
                check_proxy(&format!("{at}.proxy"), &proxy)?;
                feed.request.proxy = Some(Secret::new(proxy));
            }
            if let Some(ms) = raw.max_timeout_ms {
                check_max_timeout(&format!("{at}.max_timeout_ms"), ms)?;
                feed.request.max_timeout = Some(Duration::from_millis(ms));
            }
            check_feed(&feed, &at)?;
            if !names.insert(feed.name.clone()) {
                return Err(invalid(
                    format!("{at}.name"),
                    format!("{:?} is used by another feed", feed.name),
                ));
            }
            if !keys.insert(feed.key.clone()) {
                return Err(invalid(
                    format!("{at}.key"),
                    format!("{:?} is used by another feed", feed.key),
                ));
            }
            feeds.push(feed);
        }
        let defaults = FleetConfig::default();
        let fleet = FleetConfig {
            queue_url: self.fleet.queue_url,
            tick: match &self.fleet.tick {
                Some(tick) => duration_at("fleet.tick", tick, Duration::from_secs(1), MAX_TICK)?,
                None => defaults.tick,
            },
            max_backoff: match &self.fleet.max_backoff {
                Some(cap) => duration_at("fleet.max_backoff", cap, MIN_INTERVAL, MAX_INTERVAL)?,
                None => defaults.max_backoff,
            },
        };
        if let Some(url) = &fleet.queue_url {
            check_http_url(url, "fleet.queue_url")?;
        }
        let defaults = SiteConfig::default();
        let title = self.site.title.unwrap_or(defaults.title);
        if title.trim().is_empty() || title.chars().count() > 120 || title.chars().any(char::is_control) {
            return Err(invalid("site.title", "must be 1 to 120 characters on one line"));
        }
        if let Some(base) = &self.site.base_url {
            check_http_url(base, "site.base_url")?;
            if !base.ends_with('/') || base.contains(['?', '#', '@']) {
                return Err(invalid(
                    "site.base_url",
                    "must end in '/' and hold no query, fragment or credentials",
                ));
            }
        }
        let site = SiteConfig {
            enabled: self.site.enabled.unwrap_or(defaults.enabled),
            title,
            base_url: self.site.base_url,
        };
        Ok(Config {
            solver,
            store,
            feeds,
            fleet,
            fetch,
            site,
        })
    }
}

impl RawStore {
    fn validate(self) -> Result<StoreConfig, ConfigError> {
        let defaults = StoreConfig::default();
        let location = match (self.bucket, self.dir) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "store",
                    "set either bucket (S3) or dir (local folder), not both",
                ));
            }
            (Some(bucket), None) => {
                let valid = (3..=63).contains(&bucket.len())
                    && bucket
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
                if !valid {
                    return Err(invalid(
                        "store.bucket",
                        format!("{bucket:?} is not a valid S3 bucket name"),
                    ));
                }
                if let Some(endpoint) = &self.endpoint {
                    check_http_url(endpoint, "store.endpoint")?;
                }
                StoreLocation::Bucket(Bucket {
                    bucket,
                    endpoint: self.endpoint,
                    path_style: self.path_style.unwrap_or(false),
                })
            }
            (None, dir) => {
                if self.endpoint.is_some() || self.path_style.is_some() {
                    return Err(invalid(
                        "store.endpoint",
                        "endpoint and path_style only apply with store.bucket",
                    ));
                }
                StoreLocation::Dir(dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DIR)))
            }
        };
        let mut prefix = self.prefix.unwrap_or_default();
        if prefix.starts_with('/') || prefix.split('/').any(|part| part == "..") {
            return Err(invalid("store.prefix", "must be relative: no leading '/' and no '..'"));
        }
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let cache_control = self.cache_control.unwrap_or(defaults.cache_control);
        if cache_control.trim().is_empty() || cache_control.contains(['\r', '\n']) {
            return Err(invalid(
                "store.cache_control",
                "must be a non-empty single-line header value",
            ));
        }
        Ok(StoreConfig {
            location,
            prefix,
            cache_control,
        })
    }
}

fn check_feed(feed: &FeedConfig, at: &str) -> Result<(), ConfigError> {
    let name_ok = !feed.name.is_empty()
        && feed
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !name_ok || feed.name.len() > 64 {
        return Err(invalid(
            format!("{at}.name"),
            format!("{:?} must match [a-z0-9-]+ (at most 64 characters)", feed.name),
        ));
    }
    check_http_url(&feed.url, &format!("{at}.url"))?;
    let key = &feed.key;
    if key.is_empty()
        || key.starts_with('/')
        || key.ends_with('/')
        || key.split('/').any(|p| p == ".." || p == "." || p.is_empty())
    {
        return Err(invalid(
            format!("{at}.key"),
            format!("{key:?} must be a relative path without '.', '..' or empty parts"),
        ));
    }
    if key == "status" || key.starts_with("status/") {
        return Err(invalid(
            format!("{at}.key"),
            "`status` and keys under status/ are reserved for status records",
        ));
    }
    if SITE_KEYS.contains(&key.as_str()) {
        return Err(invalid(
            format!("{at}.key"),
            format!("{key:?} is reserved for the status site"),
        ));
    }
    Ok(())
}

impl RawFetch {
    fn validate(self) -> Result<FetchConfig, ConfigError> {
        let defaults = FetchConfig::default();
        let user_agent = self.user_agent.unwrap_or(defaults.user_agent);
        check_header_value("fetch.user_agent", &user_agent)?;
        Ok(FetchConfig {
            mode: self.mode.unwrap_or(defaults.mode),
            reprobe_after: match &self.reprobe_after {
                Some(text) => duration_at("fetch.reprobe_after", text, MIN_INTERVAL, MAX_INTERVAL)?,
                None => defaults.reprobe_after,
            },
            timeout: match &self.timeout {
                Some(text) => duration_at("fetch.timeout", text, Duration::from_secs(1), MAX_FETCH_TIMEOUT)?,
                None => defaults.timeout,
            },
            user_agent,
        })
    }
}

fn check_max_timeout(key: &str, ms: u64) -> Result<(), ConfigError> {
    if !(1_000..=600_000).contains(&ms) {
        return Err(invalid(key, "must be between 1000 and 600000 (milliseconds)"));
    }
    Ok(())
}

/// A header name is an RFC 9110 token.
fn check_header_name(key: &str, name: &str) -> Result<(), ConfigError> {
    const SEPARATORS: &[u8] = b"!#$%&'*+-.^_`|~";
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || SEPARATORS.contains(&b));
    if !token {
        return Err(invalid(
            key,
            "is not a valid header name: use letters, digits and !#$%&'*+-.^_`|~ only",
        ));
    }
    Ok(())
}

/// A header value is one line of visible characters, spaces and tabs (RFC 9110 field-value).
/// The value itself is never repeated in the message: it may be a secret.
fn check_header_value(key: &str, value: &str) -> Result<(), ConfigError> {
    let ok = value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80);
    if !ok {
        return Err(invalid(
            key,
            "holds a control character (a line break, say), which a header value cannot",
        ));
    }
    Ok(())
}

/// A proxy is an http, https, socks5 or socks5h url with a host.
fn check_proxy(key: &str, proxy: &str) -> Result<(), ConfigError> {
    match Url::parse(proxy) {
        Ok(u) if matches!(u.scheme(), "http" | "https" | "socks5" | "socks5h") && u.host_str().is_some() => Ok(()),
        Ok(u) => Err(invalid(
            key,
            format!(
                "{:?} has scheme {:?}: a proxy is http://, https://, socks5:// or socks5h://",
                redact_url(proxy),
                u.scheme()
            ),
        )),
        Err(e) => Err(invalid(key, format!("{:?} is not a url: {e}", redact_url(proxy)))),
    }
}

fn check_http_url(url: &str, key: &str) -> Result<(), ConfigError> {
    match Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        Ok(_) => Err(invalid(
            key,
            format!("{:?} must be an http or https url", redact_url(url)),
        )),
        Err(e) => Err(invalid(key, format!("{:?} is not a url: {e}", redact_url(url)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_secrets_in_configuration_errors() {
        let error = Config::parse("[solver]\nurl = \"ftp://user:pa55@h/v1\"\n", "test", &|_: &str| None)
            .unwrap_err()
            .to_string();
        assert!(!error.contains("pa55"), "{error}");
    }

    #[test]
    fn session_prefixes_differ_per_deployment() {
        let parse = |store: &str, solver: &str| {
            let toml = format!(
                "[solver]\n{solver}\n[store]\n{store}\n[[feeds]]\nname = \"feed\"\nurl = \"https://example.com/f\"\n"
            );
            Config::parse(&toml, "test", &|_: &str| None).map(|c| c.solver.session_prefix)
        };
        let a = parse("bucket = \"team-a\"", "").unwrap();
        let b = parse("bucket = \"team-b\"", "").unwrap();
        let a_prefixed = parse("bucket = \"team-a\"\nprefix = \"x/\"", "").unwrap();
        let local = parse("dir = \"public\"", "").unwrap();
        assert!(a.starts_with("flarefeed-") && a.len() == "flarefeed-".len() + 8, "{a}");
        assert_eq!(a, parse("bucket = \"team-a\"", "").unwrap(), "stable across starts");
        assert!(a != b && a != a_prefixed && a != local);
        assert_eq!(parse("dir = \"public\"", "session_prefix = \"mine\"").unwrap(), "mine");
        assert!(parse("dir = \"public\"", "session_prefix = \"a b\"").is_err());
    }

    #[test]
    fn reply_cap_follows_lambda_memory() {
        let inline = "[solver]\nurl = \"http://127.0.0.1:8191/v1\"\n[store]\ndir = \"public\"\n[[feeds]]\nname = \"a\"\nurl = \"https://example.com/feed\"\n";
        let with = |memory: Option<&str>, toml: &str| {
            let memory = memory.map(str::to_string);
            let env = move |key: &str| {
                (key == "AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                    .then(|| memory.clone())
                    .flatten()
            };
            Config::parse(toml, "test", &env).unwrap().solver
        };
        assert_eq!(with(None, inline).max_reply_bytes, DEFAULT_MAX_BYTES);
        let lambda = with(Some("128"), inline);
        assert_eq!(lambda.max_reply_bytes, 29 * 1024 * 1024);
        assert_eq!(lambda.function_memory_mb, Some(128));
        assert_eq!(with(Some("1024"), inline).max_reply_bytes, 328 * 1024 * 1024);
        let configured = inline.replace("[store]", "max_reply_mb = 5\n[store]");
        assert_eq!(with(None, &configured).max_reply_bytes, 5 * 1024 * 1024);
        assert_eq!(with(Some("1024"), &configured).max_reply_bytes, 5 * 1024 * 1024);
        let too_big = inline.replace("[store]", "max_reply_mb = 500\n[store]");
        assert_eq!(with(Some("128"), &too_big).max_reply_bytes, 29 * 1024 * 1024);
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test", &no_env)
    }

    #[test]
    fn defaults_fill_everything_in() {
        let config = parse("[[feeds]]\nname = \"nodeseek\"\nurl = \"https://www.nodeseek.com/rss.xml\"\n").unwrap();
        let solver = SolverSettings {
            session_prefix: default_session_prefix(&StoreConfig::default()),
            ..SolverSettings::default()
        };
        assert_eq!(config.solver, solver);
        assert_eq!(config.store, StoreConfig::default());
        assert_eq!(
            config.feeds,
            [FeedConfig::new("nodeseek", "https://www.nodeseek.com/rss.xml")]
        );
    }

    #[test]
    fn every_documented_key_is_read() {
        let config = parse(
            r#"
            [solver]
            url = "http://solver:8191/v1"
            max_timeout_ms = 30000
            session = "none"
            session_ttl_minutes = 5
            [store]
            bucket = "my-feeds"
            prefix = "feeds"
            endpoint = "http://127.0.0.1:9000"
            path_style = true
            cache_control = "public, max-age=60"
            [[feeds]]
            name = "a"
            url = "https://a.test/rss"
            key = "x/a.rss"
            min_items = 3
            min_interval_s = 10
            "#,
        )
        .unwrap();
        assert_eq!(config.solver.max_timeout, Duration::from_secs(30));
        assert_eq!(config.solver.session, SessionPolicy::None);
        assert_eq!(config.store.prefix, "feeds/");
        assert_eq!(
            config.store.location,
            StoreLocation::Bucket(Bucket {
                bucket: "my-feeds".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                path_style: true
            })
        );
        assert_eq!(config.feeds[0].key, "x/a.rss");
        assert_eq!(config.feeds[0].min_items, 3);
        assert_eq!(config.feeds[0].min_interval, Duration::from_secs(10));
    }

    #[test]
    fn several_solvers_instead_of_one() {
        let feeds = "[[feeds]]\nname = \"a\"\nurl = \"https://a.test/f\"\n";
        let config = Config::parse(feeds, "test", &|_| None).unwrap();
        assert_eq!(config.solver.urls, ["http://localhost:8191/v1"]);
        let pool = format!("[solver]\nurls = [\"http://10.0.0.1:8191/v1\", \"http://10.0.0.2:8191/v1\"]\n{feeds}");
        let config = Config::parse(&pool, "test", &|_| None).unwrap();
        assert_eq!(config.solver.urls.len(), 2);
        assert_eq!(config.solver.url, "http://10.0.0.1:8191/v1");
        let env = |key: &str| (key == "FLAREFEED_SOLVER_URL").then(|| "http://10.0.0.9:8191/v1".to_string());
        assert_eq!(
            Config::parse(&pool, "test", &env).unwrap().solver.urls,
            ["http://10.0.0.9:8191/v1"]
        );
        for (bad, words) in [
            (
                format!("[solver]\nurl = \"http://x:1/v1\"\nurls = [\"http://y:1/v1\"]\n{feeds}"),
                "either url or urls",
            ),
            (format!("[solver]\nurls = []\n{feeds}"), "lists no solver"),
            (
                format!("[solver]\nurls = [\"http://y:1/v1\", \"http://y:1/v1\"]\n{feeds}"),
                "listed twice",
            ),
            (format!("[solver]\nurls = [\"ftp://y\"]\n{feeds}"), "solver.urls[0]"),
        ] {
            let error = Config::parse(&bad, "test", &|_| None).unwrap_err().to_string();
            assert!(error.contains(words), "{error:?} should say {words:?}");
        }
    }

    #[test]
    fn durations_intervals_and_the_fleet_section() {
        for (text, seconds) in [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86_400), (" 1m ", 60)] {
            assert_eq!(parse_duration(text), Some(Duration::from_secs(seconds)), "{text}");
        }
        for text in ["", "15", "m", "1.5h", "-1m", "15 m", "1w", "15min"] {
            assert_eq!(parse_duration(text), None, "{text}");
        }
        let feeds = "[[feeds]]\nname = \"a\"\nurl = \"https://a.test/f\"\n";
        let config = Config::parse(feeds, "test", &|_| None).unwrap();
        assert_eq!(config.feeds[0].interval, DEFAULT_INTERVAL);
        assert_eq!(config.fleet, FleetConfig::default());

        let text = format!(
            "[fleet]\nqueue_url = \"https://sqs.eu-west-1.amazonaws.com/1/q.fifo\"\ntick = \"30s\"\nmax_backoff = \"6h\"\n{feeds}interval = \"2h\"\n"
        );
        let config = Config::parse(&text, "test", &|_| None).unwrap();
        assert_eq!(config.feeds[0].interval, Duration::from_secs(7200));
        assert_eq!(config.fleet.tick, Duration::from_secs(30));
        assert_eq!(config.fleet.max_backoff, Duration::from_secs(6 * 3600));
        let env = |key: &str| (key == "FLAREFEED_QUEUE_URL").then(|| "http://127.0.0.1:5000/1/other.fifo".to_string());
        let config = Config::parse(&text, "test", &env).unwrap();
        assert_eq!(
            config.fleet.queue_url.as_deref(),
            Some("http://127.0.0.1:5000/1/other.fifo")
        );

        for (bad, words) in [
            (format!("{feeds}interval = \"30s\""), "shorter than the minimum, 60s"),
            (format!("{feeds}interval = \"soon\""), "not a duration"),
            (format!("[fleet]\ntick = \"1x\"\n{feeds}"), "fleet.tick"),
            // Finding 10: absurd durations are refused, with the bound.
            (
                format!("{feeds}interval = \"9999999d\""),
                "longer than the maximum, 30d",
            ),
            (
                format!("[fleet]\nmax_backoff = \"9999999d\"\n{feeds}"),
                "fleet.max_backoff",
            ),
            (
                format!("[fleet]\ntick = \"2h\"\n{feeds}"),
                "longer than the maximum, 1h",
            ),
            (format!("{feeds}min_interval_s = 99999999999"), "min_interval_s"),
            (format!("[fetch]\ntimeout = \"1d\"\n{feeds}"), "maximum, 15m"),
            (
                format!("[fleet]\nqueue_url = \"not a url\"\n{feeds}"),
                "fleet.queue_url",
            ),
        ] {
            let error = Config::parse(&bad, "test", &|_| None).unwrap_err().to_string();
            assert!(error.contains(words), "{error:?} should say {words:?}");
        }
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[solver]\nurl = \"ftp://x\"", "solver.url"),
            ("[solver]\nmax_timeout_ms = 5", "solver.max_timeout_ms"),
            ("[store]\nbucket = \"b-b\"\ndir = \"x\"", "store"),
            ("[store]\nbucket = \"Bad_Bucket\"", "store.bucket"),
            ("[store]\nendpoint = \"http://x\"", "store.endpoint"),
            (
                "[[feeds]]\nname = \"Bad Name\"\nurl = \"https://a.test\"",
                "feeds[0].name",
            ),
            ("[[feeds]]\nname = \"a\"\nurl = \"not a url\"", "feeds[0].url"),
            (
                "[[feeds]]\nname = \"a\"\nurl = \"https://a.test\"\nkey = \"../x\"",
                "feeds[0].key",
            ),
            (
                "[[feeds]]\nname = \"a\"\nurl = \"https://a.test\"\nkey = \"status/a.json\"",
                "feeds[0].key",
            ),
            (
                "[[feeds]]\nname = \"a\"\nurl = \"https://a.test\"\nkey = \"status\"",
                "feeds[0].key",
            ),
            (
                "[[feeds]]\nname = \"a\"\nurl = \"https://a.test\"\n[[feeds]]\nname = \"a\"\nurl = \"https://b.test\"",
                "feeds[1].name",
            ),
        ];
        for (text, key) in cases {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(&format!("`{key}`")), "{text:?} gave {error}");
        }
        let unknown = parse("[solver]\nurll = \"x\"").unwrap_err().to_string();
        assert!(unknown.contains("urll"), "{unknown}");
        let wrong_type = parse("[solver]\nmax_timeout_ms = \"60s\"").unwrap_err().to_string();
        assert!(wrong_type.contains("max_timeout_ms"), "{wrong_type}");
        let policy = parse("[solver]\nsession = \"sometimes\"").unwrap_err().to_string();
        assert!(policy.contains("sometimes") && policy.contains("reuse"), "{policy}");
    }

    #[test]
    fn environment_overrides_single_settings() {
        let env = |key: &str| match key {
            "FLAREFEED_SOLVER_URL" => Some("http://10.0.0.1:8191/v1".to_string()),
            "FLAREFEED_BUCKET" => Some("env-bucket".to_string()),
            _ => None,
        };
        let config = Config::parse("[store]\ndir = \"out\"", "test", &env).unwrap();
        assert_eq!(config.solver.url, "http://10.0.0.1:8191/v1");
        assert!(
            matches!(config.store.location, StoreLocation::Bucket(Bucket { ref bucket, .. }) if bucket == "env-bucket")
        );
    }

    #[test]
    fn sources_are_taken_in_order() {
        let inline = "[[feeds]]\nname = \"inline\"\nurl = \"https://a.test\"";
        let env = |key: &str| (key == "FLAREFEED_CONFIG").then(|| inline.to_string());
        assert_eq!(Config::load(None, &env).unwrap().feeds[0].name, "inline");
        assert!(matches!(Config::load(None, &no_env), Err(ConfigError::Missing)));
        let missing = Config::load(Some(Path::new("/nonexistent/flarefeed.toml")), &env).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/flarefeed.toml"));
        let empty = |key: &str| (key == "FLAREFEED_CONFIG").then(|| "[solver]".to_string());
        assert!(Config::load(None, &empty).unwrap_err().to_string().contains("`feeds`"));
    }

    #[test]
    fn url_mode_needs_no_configuration() {
        let config = Config::for_url("https://www.nodeseek.com/rss.xml", None, None, &no_env).unwrap();
        assert_eq!(
            config.feeds,
            [FeedConfig::new(
                "www-nodeseek-com-rss-xml",
                "https://www.nodeseek.com/rss.xml"
            )]
        );
        assert_eq!(config.store.location, StoreLocation::Dir("public".into()));
        assert_eq!(config.solver.url, "http://localhost:8191/v1");
        let named = Config::for_url("https://a.test/x", Some("mine"), None, &no_env).unwrap();
        assert_eq!(named.feeds[0].key, "mine.xml");
        assert!(Config::for_url("file:///etc/passwd", None, None, &no_env).is_err());
    }

    #[test]
    fn unknown_feed_lists_the_names() {
        let config = parse(
            "[[feeds]]\nname = \"a\"\nurl = \"https://a.test\"\n[[feeds]]\nname = \"b\"\nurl = \"https://b.test\"",
        )
        .unwrap();
        assert!(config.feed("c").unwrap_err().to_string().contains("configured: a, b"));
    }

    #[test]
    fn fetch_settings_and_request_options_are_read_and_checked() {
        let feeds = "[[feeds]]\nname = \"a\"\nurl = \"https://a.test/f\"\n";
        let config = parse(feeds).unwrap();
        assert_eq!(
            (config.fetch.mode, config.feeds[0].fetch),
            (FetchMode::Auto, FetchMode::Auto)
        );
        assert!(
            config
                .fetch
                .user_agent
                .starts_with(concat!("flarefeed/", env!("CARGO_PKG_VERSION")))
        );
        let text = format!(
            "[fetch]\nmode = \"solver\"\nreprobe_after = \"6h\"\ntimeout = \"5s\"\n{feeds}\
             fetch = \"direct\"\nuser_agent = \"r/1\"\nproxy = \"socks5://u:p@127.0.0.1:1080\"\nmax_timeout_ms = 9000\n\
             [feeds.headers]\nX-Api-Key = \"k3y\"\n[[feeds]]\nname = \"b\"\nurl = \"https://b.test/f\"\n"
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.fetch.reprobe_after, Duration::from_secs(6 * 3600));
        assert_eq!(config.fetch.timeout, Duration::from_secs(5));
        let (a, b) = (&config.feeds[0], &config.feeds[1]);
        assert_eq!((a.fetch, b.fetch), (FetchMode::Direct, FetchMode::Solver));
        assert_eq!(a.request.headers[0].1.expose(), "k3y");
        assert_eq!(a.request.max_timeout, Some(Duration::from_millis(9000)));
        assert!(
            !format!("{a:?}").contains("k3y") && !format!("{a:?}").contains("u:p"),
            "{a:?}"
        );
        let env = |key: &str| (key == "FLAREFEED_FETCH").then(|| "direct".to_string());
        assert_eq!(
            Config::parse(feeds, "test", &env).unwrap().feeds[0].fetch,
            FetchMode::Direct
        );
        for (bad, key) in [
            (
                format!("{feeds}[feeds.headers]\n\"Bad Name\" = \"x\"\n"),
                "feeds[0].headers.Bad Name",
            ),
            (
                format!("{feeds}[feeds.headers]\nX-A = \"a\\r\\nInjected: 1\"\n"),
                "feeds[0].headers.X-A",
            ),
            (format!("{feeds}proxy = \"ftp://p:1\"\n"), "feeds[0].proxy"),
            (format!("{feeds}max_timeout_ms = 10\n"), "feeds[0].max_timeout_ms"),
            (format!("{feeds}fetch = \"sometimes\"\n"), "sometimes"),
            (format!("[fetch]\ntimeout = \"0s\"\n{feeds}"), "fetch.timeout"),
        ] {
            let error = parse(&bad).unwrap_err().to_string();
            assert!(error.contains(key), "{bad:?} gave {error}");
            assert!(!error.contains("Injected: 1"), "a header value is repeated: {error}");
        }
    }
}
