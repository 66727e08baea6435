//! `[feeds.html]` and `[feeds.json]`: a feed built from a page, its rules as written and their
//! validation into [`crate::scrape::Rules`]. Every selector and path is parsed here, so a bad
//! one is a configuration error that names its key, never a refresh's failure.

use serde::Deserialize;

use super::{ConfigError, invalid};
use crate::scrape::{DateRule, Field, HtmlRules, JsonRules, Link, Path, Rules, Template, selector_from};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHtml {
    item: String,
    title: String,
    link: String,
    content: Option<String>,
    date: Option<String>,
    date_format: Option<String>,
    timezone: Option<String>,
    author: Option<String>,
    id: Option<String>,
    feed_title: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJson {
    items: String,
    title: String,
    link: Option<String>,
    link_template: Option<String>,
    content: Option<String>,
    date: Option<String>,
    date_format: Option<String>,
    timezone: Option<String>,
    author: Option<String>,
    id: Option<String>,
    feed_title: Option<String>,
}

/// The feed's rules, if it has a source of either kind; `at` is `feeds[N]`.
pub(super) fn rules(html: Option<RawHtml>, json: Option<RawJson>, at: &str) -> Result<Option<Rules>, ConfigError> {
    match (html, json) {
        (Some(_), Some(_)) => Err(invalid(
            at,
            "has both [feeds.html] and [feeds.json]: a feed is built from one source; keep one",
        )),
        (Some(html), None) => html.validate(&format!("{at}.html")).map(|r| Some(Rules::Html(r))),
        (None, Some(json)) => json.validate(&format!("{at}.json")).map(|r| Some(Rules::Json(r))),
        (None, None) => Ok(None),
    }
}

fn field(at: &str, key: &str, text: &str) -> Result<Field, ConfigError> {
    Field::parse(text).map_err(|problem| invalid(format!("{at}.{key}"), problem))
}

fn path(at: &str, key: &str, text: &str) -> Result<Path, ConfigError> {
    Path::parse(text).map_err(|problem| invalid(format!("{at}.{key}"), problem))
}

fn dates(at: &str, format: Option<&str>, timezone: Option<&str>) -> Result<DateRule, ConfigError> {
    DateRule::parse(format, timezone).map_err(|(key, problem)| invalid(format!("{at}.{key}"), problem))
}

fn feed_title(at: &str, title: Option<String>) -> Result<Option<String>, ConfigError> {
    match title {
        Some(title) if title.trim().is_empty() || title.chars().any(char::is_control) => Err(invalid(
            format!("{at}.feed_title"),
            "must be a non-empty title on one line",
        )),
        title => Ok(title),
    }
}

impl RawHtml {
    fn validate(self, at: &str) -> Result<HtmlRules, ConfigError> {
        let item = selector_from(self.item.trim()).map_err(|problem| invalid(format!("{at}.item"), problem))?;
        let optional = |key: &str, text: &Option<String>| text.as_deref().map(|t| field(at, key, t)).transpose();
        Ok(HtmlRules {
            item_text: self.item.trim().to_string(),
            item,
            title: field(at, "title", &self.title)?,
            link: field(at, "link", &self.link)?,
            content: optional("content", &self.content)?,
            date: optional("date", &self.date)?,
            author: optional("author", &self.author)?,
            id: optional("id", &self.id)?,
            dates: dates(at, self.date_format.as_deref(), self.timezone.as_deref())?,
            feed_title: feed_title(at, self.feed_title)?,
        })
    }
}

impl RawJson {
    fn validate(self, at: &str) -> Result<JsonRules, ConfigError> {
        let optional = |key: &str, text: &Option<String>| text.as_deref().map(|t| path(at, key, t)).transpose();
        let link = match (self.link, self.link_template) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    format!("{at}.link_template"),
                    "give either link (a dot path) or link_template, not both",
                ));
            }
            (Some(link), None) => Link::Path(path(at, "link", &link)?),
            (None, Some(template)) => Link::Template(
                Template::parse(&template).map_err(|problem| invalid(format!("{at}.link_template"), problem))?,
            ),
            (None, None) => {
                return Err(invalid(
                    format!("{at}.link"),
                    "is required: a dot path to each item's url, or link_template = \"https://…/post-{id}\"",
                ));
            }
        };
        Ok(JsonRules {
            items: path(at, "items", &self.items)?,
            title: path(at, "title", &self.title)?,
            link,
            content: optional("content", &self.content)?,
            date: optional("date", &self.date)?,
            author: optional("author", &self.author)?,
            id: optional("id", &self.id)?,
            dates: dates(at, self.date_format.as_deref(), self.timezone.as_deref())?,
            feed_title: feed_title(at, self.feed_title)?,
        })
    }
}
