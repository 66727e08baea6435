//! The configuration: TOML, loaded and validated at start (and, from `FLAREFEED_CONFIG_URL`,
//! again whenever it changes: [`remote`]). Every error names the key.
//!
//! - `types`: the configuration as the code uses it, with its defaults and bounds.
//! - `raw`: the TOML as written, and its validation into those types.
//! - `page`: `[feeds.html]` and `[feeds.json]`, the rules of a feed built from a page.
//! - `readers`: what readers get per feed: rules, the archive, full text.
//! - `sources`: where a configuration is found (a file, the environment, one url) and the
//!   environment's single-setting overrides.

mod page;
mod raw;
mod readers;
pub mod remote;
mod sources;
#[cfg(test)]
mod tests;
mod types;

use std::path::PathBuf;

use thiserror::Error;

pub use sources::process_env;
pub use types::*;

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

pub(crate) fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}
