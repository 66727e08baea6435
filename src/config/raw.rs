//! The TOML as written, and its validation: every key checked, every error naming the key.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use super::*;
use crate::feed::DEFAULT_MAX_BYTES;
use crate::redact::{Secret, redact_url};
use crate::solver::{SessionPolicy, SolverSettings};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) solver: RawSolver,
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    feeds: Vec<RawFeed>,
    #[serde(default)]
    pub(super) fleet: RawFleet,
    #[serde(default)]
    pub(super) fetch: RawFetch,
    #[serde(default)]
    site: RawSite,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    enabled: Option<bool>,
    title: Option<String>,
    base_url: Option<String>,
    websub_hub: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFetch {
    pub(super) mode: Option<FetchMode>,
    reprobe_after: Option<String>,
    timeout: Option<String>,
    user_agent: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    pub(super) queue_url: Option<String>,
    tick: Option<String>,
    max_backoff: Option<String>,
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
pub(super) struct RawSolver {
    pub(super) url: String,
    /// Several solvers instead of `url`; each feed sticks to one ([`crate::solver::SolverPool`]).
    pub(super) urls: Option<Vec<String>>,
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) bucket: Option<String>,
    pub(super) dir: Option<PathBuf>,
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
    html: Option<super::page::RawHtml>,
    json: Option<super::page::RawJson>,
    #[serde(default)]
    rules: Vec<super::readers::RawRule>,
    archive: Option<super::readers::RawArchive>,
    full_text: Option<super::readers::RawFullText>,
}

impl RawConfig {
    pub(super) fn validate(self, function_memory_mb: Option<u64>) -> Result<Config, ConfigError> {
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
            feed.scrape = super::page::rules(raw.html, raw.json, &at)?;
            feed.rules = super::readers::rules(raw.rules, &at)?;
            feed.archive = super::readers::archive(raw.archive, &at)?;
            feed.full_text = super::readers::full_text(raw.full_text, &at)?;
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
        if let Some(hub) = &self.site.websub_hub {
            check_http_url(hub, "site.websub_hub")?;
            if self.site.base_url.is_none() {
                return Err(invalid(
                    "site.websub_hub",
                    "needs site.base_url: a hub is told the feeds' public urls, and readers find the hub through them",
                ));
            }
        }
        let site = SiteConfig {
            enabled: self.site.enabled.unwrap_or(defaults.enabled),
            title,
            base_url: self.site.base_url,
            websub_hub: self.site.websub_hub,
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
    pub(super) fn validate(self) -> Result<StoreConfig, ConfigError> {
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

pub(super) fn check_feed(feed: &FeedConfig, at: &str) -> Result<(), ConfigError> {
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
    if SITE_KEYS.contains(&key.as_str()) || key == SITE_INDEX {
        return Err(invalid(
            format!("{at}.key"),
            format!("{key:?} is reserved for the status site"),
        ));
    }
    Ok(())
}

impl RawFetch {
    pub(super) fn validate(self) -> Result<FetchConfig, ConfigError> {
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
