//! Where a configuration comes from: `--config FILE`, `FLAREFEED_CONFIG` (inline TOML),
//! `FLAREFEED_CONFIG_FILE`, or defaults with one `--url`; then the environment's single-setting
//! overrides (`FLAREFEED_SOLVER_URL`, `FLAREFEED_QUEUE_URL`, `FLAREFEED_FETCH`,
//! `FLAREFEED_BUCKET`, and Lambda's memory size).

use std::path::Path;

use reqwest::Url;

use super::raw::{RawConfig, check_feed};
use super::{Config, ConfigError, FeedConfig, FetchMode, MAX_CONFIG_BYTES, invalid};

/// The process environment, as [`Config::load`] and [`Config::parse`] read it (tests pass
/// their own).
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
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
}

/// A configuration file, refused unread when it is over [`MAX_CONFIG_BYTES`].
pub(super) fn read(path: &Path) -> Result<String, ConfigError> {
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
