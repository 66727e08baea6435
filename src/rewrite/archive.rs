//! The archive: items that left the site's feed, kept in the published one up to `items`, and
//! at most `days` after they were first seen, newest first, each exactly as it was last
//! published. The item memory ([`crate::items`]) holds them, beside the first-seen times.

use time::OffsetDateTime;

use super::Archive;
use super::outline::{Dialect, ItemOutline};
use crate::items::Memory;

/// The dialect's name in the memory.
pub(super) fn dialect_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Rss => "rss",
        Dialect::Rdf => "rdf",
        Dialect::Atom => "atom",
    }
}

/// The item's text, self-contained: the namespaces it uses that its ancestors declared are
/// declared on its own start tag, so it means the same in another document.
pub(super) fn self_contained(item_text: &str, item: &ItemOutline) -> String {
    let start_tag_len = item.start_tag.len();
    let start_tag = &item_text[..start_tag_len];
    let mut declarations = String::new();
    for (prefix, uri) in &item.namespaces {
        let attribute = if prefix.is_empty() {
            "xmlns".to_string()
        } else {
            format!("xmlns:{prefix}")
        };
        let used = if prefix.is_empty() {
            !uri.is_empty()
        } else {
            item_text.contains(&format!("<{prefix}:")) || item_text.contains(&format!(" {prefix}:"))
        };
        if used && !start_tag.contains(&format!("{attribute}=")) {
            let uri = html_escape::encode_double_quoted_attribute(uri);
            declarations.push_str(&format!(" {attribute}=\"{uri}\""));
        }
    }
    if declarations.is_empty() {
        return item_text.to_string();
    }
    let close = if start_tag.ends_with("/>") {
        start_tag_len - 2
    } else {
        start_tag_len - 1
    };
    format!("{}{declarations}{}", &item_text[..close], &item_text[close..])
}

/// Remembers the current items as published (`published`: each kept item's key and final
/// text) and returns the archived items to publish after them, newest first; and whether the
/// memory changed.
pub(super) fn remember_and_select(
    dialect: Dialect,
    published: &[(&str, String)],
    memory: &mut Memory,
    archive: Archive,
    now: OffsetDateTime,
) -> (Vec<String>, bool) {
    let window = archive.window();
    let keys: Vec<&str> = published.iter().map(|(key, _)| *key).collect();
    let (_, mut changed) = memory.observe_keeping(&keys, now, Some(window));
    let name = dialect_name(dialect);
    for (key, xml) in published {
        let Some(seen) = memory.items.get_mut(*key) else {
            continue;
        };
        if seen.xml.as_deref() != Some(xml.as_str()) || seen.dialect.as_deref() != Some(name) {
            seen.xml = Some(xml.clone());
            seen.dialect = Some(name.to_string());
            changed = true;
        }
    }
    let at = now.unix_timestamp();
    let mut archived: Vec<((i64, u32), &String, &String)> = memory
        .items
        .iter()
        .filter(|(_, seen)| seen.gone.is_some() && seen.dialect.as_deref() == Some(name))
        .filter(|(_, seen)| at - seen.first <= window)
        .filter_map(|(key, seen)| seen.xml.as_ref().map(|xml| ((seen.first, seen.place), key, xml)))
        .collect();
    // Newest first; of items first seen together, the one higher in the site's feed first,
    // and the key last, so that the order never depends on the map's.
    archived.sort_by(|a, b| {
        (b.0.0.cmp(&a.0.0))
            .then_with(|| a.0.1.cmp(&b.0.1))
            .then_with(|| a.1.cmp(b.1))
    });
    let chosen: Vec<String> = archived
        .iter()
        .take(archive.items)
        .map(|(_, _, xml)| (*xml).clone())
        .collect();
    let kept: std::collections::HashSet<String> = archived
        .iter()
        .take(archive.items)
        .map(|(_, key, _)| (*key).clone())
        .collect();
    // What can never be published again is forgotten, riding on the next write: items past
    // the window, and those behind newer ones beyond `items` (newer items leave later).
    for (key, seen) in memory.items.iter_mut() {
        if seen.gone.is_some() && seen.xml.is_some() && !kept.contains(key) {
            seen.xml = None;
            seen.dialect = None;
        }
    }
    (chosen, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_carries_the_namespaces_it_uses() {
        let text = r#"<rss xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/"><channel><item><title>x</title><dc:creator>A</dc:creator></item></channel></rss>"#;
        let outline = super::super::outline::outline(text).unwrap();
        let item = &outline.items[0];
        let contained = self_contained(&text[item.span.clone()], item);
        assert_eq!(
            contained,
            r#"<item xmlns:dc="http://purl.org/dc/elements/1.1/"><title>x</title><dc:creator>A</dc:creator></item>"#
        );
        roxmltree::Document::parse(&contained).unwrap();
    }
}
