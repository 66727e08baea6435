//! Items from a JSON API by dot paths. The document is walked lazily: only the objects on the
//! way to the items are split into their members, and each item is parsed on its own, so a
//! large API reply is never one `serde_json::Value` tree (which can take 48 times its text).

use std::collections::HashMap;

use serde_json::Value;
use serde_json::value::RawValue;

use super::rules::{JsonRules, Link, Part, Path};
use super::{Collector, Dated, Extraction, Place, Read, ScrapeError, collapse, date};

/// Every entry of the `items` array, in order.
pub(super) fn extract(rules: &JsonRules, text: &str, place: Place<'_>) -> Result<Extraction, ScrapeError> {
    let text = text.trim_start_matches('\u{feff}');
    let root: &RawValue = serde_json::from_str(text).map_err(|e| ScrapeError::NotJson { detail: e.to_string() })?;
    let not_an_array = |found: &str| ScrapeError::NotAnArray {
        path: rules.items.text.clone(),
        found: found.to_string(),
    };
    let mut at = root;
    for (i, step) in rules.items.steps.iter().enumerate() {
        at = member(at, step).ok_or_else(|| {
            let walked = rules.items.steps[..i].join(".");
            let within = if walked.is_empty() {
                "the document".to_string()
            } else {
                format!("{walked:?}")
            };
            not_an_array(&format!("nothing: {within} has no {step:?}"))
        })?;
    }
    let entries: Vec<&RawValue> = serde_json::from_str(at.get()).map_err(|_| not_an_array(kind(at.get())))?;
    let mut collector = Collector::new(place.feed_url, None);
    let texts = (rules.title.text.as_str(), link_text(&rules.link));
    for (i, entry) in entries.into_iter().enumerate() {
        // One item's tree at a time.
        let item: Value = serde_json::from_str(entry.get()).unwrap_or(Value::Null);
        let date = match rules.date.as_ref().and_then(|path| lookup(&item, path)) {
            None | Some(Value::Null) => Dated::Undated,
            Some(Value::Number(n)) => n
                .as_f64()
                .and_then(date::from_unix)
                .map_or(Dated::Unreadable(n.to_string()), Dated::On),
            Some(Value::String(text)) if text.trim().is_empty() => Dated::Undated,
            Some(Value::String(text)) => match text.trim().parse::<f64>() {
                Ok(number) => date::from_unix(number).map_or(Dated::Unreadable(text.clone()), Dated::On),
                Err(_) => date::parse(text, &rules.dates).map_or(Dated::Unreadable(collapse(text)), Dated::On),
            },
            Some(other) => Dated::Unreadable(other.to_string().chars().take(80).collect()),
        };
        let read = Read {
            title: scalar(&item, &rules.title),
            link: match &rules.link {
                Link::Path(path) => scalar(&item, path),
                Link::Template(template) => fill(template, &item),
            },
            content: rules.content.as_ref().and_then(|path| scalar(&item, path)),
            author: rules.author.as_ref().and_then(|path| scalar(&item, path)),
            date,
            id: rules.id.as_ref().and_then(|path| scalar(&item, path)),
        };
        collector.add(i + 1, read, place.landed, texts);
    }
    Ok(collector.out)
}

fn link_text(link: &Link) -> &str {
    match link {
        Link::Path(path) => &path.text,
        Link::Template(template) => &template.text,
    }
}

/// A member of an object, or an entry of an array by its index.
fn member<'a>(value: &'a RawValue, step: &str) -> Option<&'a RawValue> {
    let text = value.get().trim_start();
    if text.starts_with('{') {
        let mut members: HashMap<String, &RawValue> = serde_json::from_str(value.get()).ok()?;
        return members.remove(step);
    }
    if text.starts_with('[') {
        let index: usize = step.parse().ok()?;
        let entries: Vec<&RawValue> = serde_json::from_str(value.get()).ok()?;
        return entries.get(index).copied();
    }
    None
}

/// What a JSON text is, for messages.
fn kind(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'"') => "a string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        _ => "a number",
    }
}

/// The value at `path` in an item.
fn lookup<'a>(item: &'a Value, path: &Path) -> Option<&'a Value> {
    path.steps.iter().try_fold(item, |at, step| match at {
        Value::Object(members) => members.get(step),
        Value::Array(entries) => step.parse::<usize>().ok().and_then(|i| entries.get(i)),
        _ => None,
    })
}

/// A string or a number at `path`, as text; anything else is nothing.
fn scalar(item: &Value, path: &Path) -> Option<String> {
    match lookup(item, path)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Characters a placeholder's value may not bring into a url as they are.
const IN_URL: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'%');

/// The template with each placeholder replaced; nothing if a value is missing.
fn fill(template: &super::Template, item: &Value) -> Option<String> {
    let mut out = String::new();
    for part in &template.parts {
        match part {
            Part::Literal(text) => out.push_str(text),
            Part::Value(path) => {
                let value = scalar(item, path)?;
                out.extend(percent_encoding::utf8_percent_encode(value.trim(), IN_URL));
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::rules::{DateRule, Template};
    use super::super::{Rules, SkipReason, extract as extract_items};
    use super::*;
    use url::Url;

    fn rules(items: &str) -> JsonRules {
        JsonRules {
            items: Path::parse(items).unwrap(),
            title: Path::parse("title").unwrap(),
            link: Link::Path(Path::parse("url").unwrap()),
            content: Some(Path::parse("excerpt").unwrap()),
            date: Some(Path::parse("created_at").unwrap()),
            author: Some(Path::parse("user.name").unwrap()),
            id: Some(Path::parse("id").unwrap()),
            dates: DateRule::default(),
            feed_title: None,
        }
    }

    const API: &str = r#"{"data": {"posts": [
        {"id": 7, "title": " 新 帖 ", "url": "/post-7-1", "excerpt": "<b>hi</b>", "created_at": 1764490500, "user": {"name": "小明"}},
        {"id": 8, "title": "ms", "url": "https://api.example/p/8", "created_at": "1764490500000"},
        {"id": 9, "title": "text date", "url": "/p/9", "created_at": "2026-11-30T08:15:00Z"},
        {"id": 10, "title": "bad date", "url": "/p/10", "created_at": "last week"},
        {"id": 11, "url": "/p/11"},
        "not an object"
    ]}}"#;

    fn api_url() -> Url {
        Url::parse("https://api.example/v1/posts?board=tech").unwrap()
    }

    #[test]
    fn items_come_from_the_array_at_the_path() {
        let got = extract(&rules("data.posts"), API, Place::at(&api_url())).unwrap();
        assert_eq!(got.matched, 6);
        assert_eq!(got.items.len(), 4);
        let first = &got.items[0];
        assert_eq!(
            (first.title.as_str(), first.link.as_str()),
            ("新 帖", "https://api.example/post-7-1")
        );
        assert_eq!(first.id, "https://api.example/v1/posts?board=tech#7");
        assert_eq!(first.author.as_deref(), Some("小明"));
        assert!(matches!(first.date, Dated::On(d) if d.timestamp() == 1_764_490_500));
        assert!(matches!(got.items[1].date, Dated::On(d) if d.timestamp() == 1_764_490_500));
        assert!(matches!(got.items[2].date, Dated::On(_)));
        assert_eq!(got.items[3].date, Dated::Unreadable("last week".into()));
        assert!(matches!(got.skipped[0].reason, SkipReason::NoTitle { .. }));
        assert_eq!(got.skipped.len(), 2);
    }

    #[test]
    fn a_template_builds_the_link_and_a_top_level_array_is_dot() {
        let mut r = rules(".");
        r.link = Link::Template(Template::parse("https://www.example.com/post-{id}-1?t={title}").unwrap());
        let got = extract(&r, r#"[{"id": 3, "title": "a b#c"}]"#, Place::at(&api_url())).unwrap();
        assert_eq!(got.items[0].link, "https://www.example.com/post-3-1?t=a%20b%23c");
    }

    #[test]
    fn a_wrong_path_says_what_it_found() {
        let error = extract(&rules("data.items"), API, Place::at(&api_url()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"data\" has no \"items\""), "{error}");
        let error = extract(&rules("data"), API, Place::at(&api_url()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("an object"), "{error}");
        let error = extract(&rules("data"), "<html>", Place::at(&api_url()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("not JSON"), "{error}");
        let empty = extract_items(&Rules::Json(rules(".")), "[]", Place::at(&api_url()))
            .unwrap_err()
            .to_string();
        assert!(empty.contains("matched nothing"), "{empty}");
    }
}
