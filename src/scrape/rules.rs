//! What a feed built from a page reads: the `[feeds.html]` selectors or the `[feeds.json]`
//! paths, each parsed once, when the configuration is loaded, so a refresh never meets a
//! selector that does not parse.

use chrono::FixedOffset;
use scraper::Selector;

/// How to read items out of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rules {
    Html(HtmlRules),
    Json(JsonRules),
}

impl Rules {
    /// The title the configuration gives the feed, if any.
    pub fn feed_title(&self) -> Option<&str> {
        match self {
            Rules::Html(rules) => rules.feed_title.as_deref(),
            Rules::Json(rules) => rules.feed_title.as_deref(),
        }
    }
}

/// `[feeds.html]`: CSS selectors, one item per match of `item`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtmlRules {
    /// Its text, for messages.
    pub item_text: String,
    pub item: Selector,
    pub title: Field,
    pub link: Field,
    pub content: Option<Field>,
    pub date: Option<Field>,
    pub author: Option<Field>,
    /// Default: the absolute link.
    pub id: Option<Field>,
    pub dates: DateRule,
    pub feed_title: Option<String>,
}

/// One value read from an item: the text (or, with `@attr`, an attribute) of the first element
/// in the item that `selector` matches, or of the item itself when there is no selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// As written, for messages.
    pub text: String,
    pub selector: Option<Selector>,
    pub attribute: Option<String>,
}

impl Field {
    /// `"a.title"`, `"a.title@href"`, `"@data-id"`. The `@` that starts the attribute is the
    /// last one outside brackets and quotes, so `a[href^="mailto:x@y"]` stays a selector.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("is empty: write a CSS selector, \"selector@attribute\" or \"@attribute\"".into());
        }
        let (selector, attribute) = match attribute_at(trimmed) {
            Some(at) => (trimmed[..at].trim(), Some(&trimmed[at + 1..])),
            None => (trimmed, None),
        };
        if let Some(name) = attribute
            && !is_attribute_name(name)
        {
            return Err(format!("{name:?} after '@' is not an attribute name"));
        }
        let selector = match selector {
            "" => None,
            css => Some(selector_from(css)?),
        };
        Ok(Self {
            text: trimmed.to_string(),
            selector,
            attribute: attribute.map(str::to_ascii_lowercase),
        })
    }
}

/// A CSS selector, or a message that says where it stops parsing.
pub fn selector_from(css: &str) -> Result<Selector, String> {
    Selector::parse(css).map_err(|e| format!("{css:?} is not a CSS selector: {e}"))
}

/// Where the attribute's `@` is: the last one outside `[…]`, `(…)` and quotes.
fn attribute_at(text: &str) -> Option<usize> {
    let (mut depth, mut quote, mut at) = (0usize, None::<char>, None);
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '(') => depth += 1,
            (None, ']' | ')') => depth = depth.saturating_sub(1),
            (None, '@') if depth == 0 => at = Some(i),
            _ => {}
        }
    }
    at
}

/// An HTML attribute name as selectors write them (`href`, `data-id`, `xlink:href`).
fn is_attribute_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
}

/// `[feeds.json]`: dot paths into an API's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonRules {
    /// The array of items; empty for a top-level array (`"."`).
    pub items: Path,
    pub title: Path,
    pub link: Link,
    pub content: Option<Path>,
    pub date: Option<Path>,
    pub author: Option<Path>,
    /// Default: the absolute link.
    pub id: Option<Path>,
    pub dates: DateRule,
    pub feed_title: Option<String>,
}

/// A dot path: `data.posts`, `user.name`, `tags.0`; a number indexes an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub text: String,
    pub steps: Vec<String>,
}

impl Path {
    /// `"."` is the value itself.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "." {
            return Ok(Self {
                text: text.into(),
                steps: Vec::new(),
            });
        }
        let steps: Vec<String> = text.split('.').map(str::to_string).collect();
        if steps.iter().any(String::is_empty) {
            return Err(format!(
                "{text:?} is not a dot path: write keys joined by '.' (\"data.posts\"), or \".\" for the whole document"
            ));
        }
        Ok(Self {
            text: text.into(),
            steps,
        })
    }
}

/// Where an item's link comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Path(Path),
    /// `https://www.example.com/post-{id}-1`: each `{dot.path}` replaced by the item's value.
    Template(Template),
}

/// A link template, split into literal text and paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub text: String,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Value(Path),
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .map(|at| open + at)
                .ok_or_else(|| format!("{text:?} opens a '{{' that is never closed"))?;
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            parts.push(Part::Value(Path::parse(&rest[open + 1..close])?));
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("{text:?} closes a '}}' that was never opened"));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        if !parts.iter().any(|p| matches!(p, Part::Value(_))) {
            return Err(format!(
                "{text:?} has no {{placeholder}}: every item would get the same link; write {{id}} where the item's id goes"
            ));
        }
        Ok(Self {
            text: text.into(),
            parts,
        })
    }
}

/// How an item's date is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateRule {
    /// A strftime format (chrono's), else RFC 3339, RFC 2822 and ISO 8601 are tried.
    pub format: Option<String>,
    /// The offset of a date that carries none.
    pub offset: FixedOffset,
}

impl Default for DateRule {
    fn default() -> Self {
        Self {
            format: None,
            offset: FixedOffset::east_opt(0).expect("UTC is an offset"),
        }
    }
}

impl DateRule {
    /// `format` checked by parsing a sample with it, `timezone` as `+08:00`, `-0500` or `UTC`.
    pub fn parse(format: Option<&str>, timezone: Option<&str>) -> Result<Self, (&'static str, String)> {
        let mut rule = DateRule::default();
        if let Some(format) = format {
            let items: Vec<_> = chrono::format::StrftimeItems::new(format).collect();
            if items.iter().any(|item| matches!(item, chrono::format::Item::Error)) {
                return Err((
                    "date_format",
                    format!("{format:?} is not a strftime format (chrono's: %Y-%m-%d %H:%M, %d/%m/%Y, …)"),
                ));
            }
            rule.format = Some(format.to_string());
        }
        if let Some(zone) = timezone {
            rule.offset = parse_offset(zone).ok_or_else(|| {
                (
                    "timezone",
                    format!("{zone:?} is not an offset: write \"+08:00\", \"-05:00\" or \"UTC\""),
                )
            })?;
        }
        Ok(rule)
    }
}

/// `UTC`, `Z`, `+08:00`, `+0800`, `-5`.
fn parse_offset(text: &str) -> Option<FixedOffset> {
    let text = text.trim();
    if matches!(text.to_ascii_uppercase().as_str(), "UTC" | "Z" | "GMT") {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || digits.is_empty() || digits.len() > 4 || rest.len() > 5 {
        return None;
    }
    let (hours, minutes) = match digits.len() {
        1 | 2 => (digits.parse::<i32>().ok()?, 0),
        3 => (digits[..1].parse::<i32>().ok()?, digits[1..].parse::<i32>().ok()?),
        _ => (digits[..2].parse::<i32>().ok()?, digits[2..].parse::<i32>().ok()?),
    };
    if hours > 14 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_splits_at_the_last_at_outside_brackets() {
        let f = Field::parse("a.title@href").unwrap();
        assert!(f.selector.is_some());
        assert_eq!(f.attribute.as_deref(), Some("href"));
        let own = Field::parse("@data-id").unwrap();
        assert!(own.selector.is_none());
        assert_eq!(own.attribute.as_deref(), Some("data-id"));
        let quoted = Field::parse(r#"a[href^="mailto:x@y"]"#).unwrap();
        assert_eq!(quoted.attribute, None);
        let both = Field::parse(r#"a[href^="mailto:x@y"]@href"#).unwrap();
        assert_eq!(both.attribute.as_deref(), Some("href"));
        assert!(Field::parse("a..b").unwrap_err().contains("not a CSS selector"));
        assert!(Field::parse("a@").unwrap_err().contains("not an attribute name"));
        assert!(Field::parse("  ").is_err());
    }

    #[test]
    fn paths_and_templates() {
        assert_eq!(Path::parse("data.posts").unwrap().steps, ["data", "posts"]);
        assert!(Path::parse(".").unwrap().steps.is_empty());
        assert!(Path::parse("data..posts").is_err());
        let t = Template::parse("https://x.example/post-{id}-{page.n}").unwrap();
        assert_eq!(t.parts.len(), 4);
        assert!(Template::parse("https://x.example/{id").is_err());
        assert!(
            Template::parse("https://x.example/")
                .unwrap_err()
                .contains("placeholder")
        );
    }

    #[test]
    fn offsets_and_formats() {
        let rule = DateRule::parse(Some("%d/%m/%Y %H:%M"), Some("+08:00")).unwrap();
        assert_eq!(rule.offset.local_minus_utc(), 8 * 3600);
        for (zone, seconds) in [("UTC", 0), ("-0530", -(5 * 3600 + 1800)), ("+9", 9 * 3600)] {
            assert_eq!(parse_offset(zone).unwrap().local_minus_utc(), seconds, "{zone}");
        }
        for bad in ["Asia/Shanghai", "+25:00", "8", "+08:99"] {
            assert!(parse_offset(bad).is_none(), "{bad}");
        }
        assert_eq!(DateRule::parse(Some("%Q"), None).unwrap_err().0, "date_format");
    }
}
