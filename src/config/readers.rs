//! What readers get, per feed: `[[feeds.rules]]`, `archive` and `[feeds.full_text]`, as written
//! and validated; every error names its key (`feeds[N].rules[M]`).

use serde::Deserialize;

use super::{ConfigError, invalid};
use crate::rewrite::{Archive, FullText, Rule};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    block: Option<String>,
    allow: Option<String>,
    field: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArchive {
    items: Option<usize>,
    days: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFullText {
    selector: String,
    max_per_refresh: Option<usize>,
}

pub(super) fn rules(raw: Vec<RawRule>, at: &str) -> Result<Vec<Rule>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, rule)| {
            Rule::parse(rule.block.as_deref(), rule.allow.as_deref(), rule.field.as_deref())
                .map_err(|problem| invalid(format!("{at}.rules[{i}]"), problem))
        })
        .collect()
}

pub(super) fn archive(raw: Option<RawArchive>, at: &str) -> Result<Option<Archive>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let defaults = Archive::default();
    let archive = Archive {
        items: raw.items.unwrap_or(defaults.items),
        days: raw.days.unwrap_or(defaults.days),
    };
    if !(1..=Archive::MAX_ITEMS).contains(&archive.items) {
        return Err(invalid(
            format!("{at}.archive.items"),
            format!("must be 1 to {}", Archive::MAX_ITEMS),
        ));
    }
    if !(1..=Archive::MAX_DAYS).contains(&archive.days) {
        return Err(invalid(
            format!("{at}.archive.days"),
            format!("must be 1 to {}", Archive::MAX_DAYS),
        ));
    }
    Ok(Some(archive))
}

pub(super) fn full_text(raw: Option<RawFullText>, at: &str) -> Result<Option<FullText>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let selector = crate::scrape::selector_from(raw.selector.trim())
        .map_err(|problem| invalid(format!("{at}.full_text.selector"), problem))?;
    let max_per_refresh = raw.max_per_refresh.unwrap_or(FullText::DEFAULT_PER_REFRESH);
    if !(1..=FullText::MAX_PER_REFRESH).contains(&max_per_refresh) {
        return Err(invalid(
            format!("{at}.full_text.max_per_refresh"),
            format!("must be 1 to {}", FullText::MAX_PER_REFRESH),
        ));
    }
    Ok(Some(FullText {
        selector_text: raw.selector.trim().to_string(),
        selector,
        max_per_refresh,
    }))
}
