//! The Atom 1.0 document (RFC 4287) of a page's items: one entry per item in page order. It is
//! written compact; the formatter makes it readable, as it does a site's feed.

use chrono::{DateTime, FixedOffset, SecondsFormat};

use super::Item;

/// What the feed says of itself.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    /// The page's url: the feed's id and its alternate link.
    pub page_url: &'a str,
    pub title: &'a str,
    /// The feed's author where an entry has none (RFC 4287 §4.1.1 asks for one): the site.
    pub site: &'a str,
}

/// An item and the time it is published with: its own date, else when it was first seen.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub item: &'a Item,
    pub updated: DateTime<FixedOffset>,
}

/// The document. Its `updated` is the latest entry's, so an unchanged page gives the same
/// bytes at every refresh.
pub fn render(head: Head<'_>, entries: &[Entry<'_>]) -> String {
    let mut out = String::with_capacity(1024 + entries.len() * 512);
    out.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    out.push_str(r#"<feed xmlns="http://www.w3.org/2005/Atom">"#);
    element(&mut out, "id", head.page_url);
    element(&mut out, "title", head.title);
    if let Some(latest) = entries.iter().map(|e| e.updated).max() {
        element(&mut out, "updated", &stamp(latest));
    }
    link(&mut out, head.page_url);
    if entries.iter().any(|e| e.item.author.is_none()) {
        out.push_str("<author>");
        element(&mut out, "name", head.site);
        out.push_str("</author>");
    }
    out.push_str(concat!(
        r#"<generator uri="https://github.com/flarefeed/flarefeed" version=""#,
        env!("CARGO_PKG_VERSION"),
        r#"">flarefeed</generator>"#
    ));
    for entry in entries {
        let item = entry.item;
        out.push_str("<entry>");
        element(&mut out, "id", &item.id);
        element(&mut out, "title", &item.title);
        link(&mut out, &item.link);
        element(&mut out, "updated", &stamp(entry.updated));
        if let super::Dated::On(date) = item.date {
            element(&mut out, "published", &stamp(date));
        }
        if let Some(author) = &item.author {
            out.push_str("<author>");
            element(&mut out, "name", author);
            out.push_str("</author>");
        }
        if let Some(content) = &item.content {
            out.push_str(r#"<content type="html">"#);
            escape(&mut out, content);
            out.push_str("</content>");
        }
        out.push_str("</entry>");
    }
    out.push_str("</feed>\n");
    out
}

fn stamp(date: DateTime<FixedOffset>) -> String {
    date.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn element(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    escape(out, text);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn link(out: &mut String, href: &str) {
    out.push_str(r#"<link rel="alternate" type="text/html" href=""#);
    escape(out, href);
    out.push_str(r#""/>"#);
}

/// Text as XML character data or an attribute value. Characters XML 1.0 cannot hold (controls
/// but tab and line breaks, lone surrogates' stand-ins U+FFFE/U+FFFF) are left out: a page may
/// carry them, and a feed with one is not well-formed.
fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Dated;
    use super::*;

    #[test]
    fn entries_in_order_and_the_feed_updated_at_the_latest() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
        let item = |id: &str, date: Dated, author: Option<&str>| Item {
            id: id.into(),
            title: format!("T <{id}> & \u{1}"),
            link: format!("https://x.example/{id}?a=1&b=2"),
            content: Some("<p>中文</p>".into()),
            author: author.map(str::to_string),
            date,
        };
        let a = item("a", Dated::On(at("2026-11-30T08:15:00+08:00")), Some("小明"));
        let b = item("b", Dated::Undated, None);
        let entries = [
            Entry {
                item: &a,
                updated: at("2026-11-30T08:15:00+08:00"),
            },
            Entry {
                item: &b,
                updated: at("2026-12-01T00:00:00Z"),
            },
        ];
        let head = Head {
            page_url: "https://x.example/board",
            title: "Board",
            site: "x.example",
        };
        let xml = render(head, &entries);
        let (info, _) = crate::feed::check_and_format(&xml, crate::feed::GuardOptions::default(), usize::MAX).unwrap();
        assert_eq!((info.kind, info.items), (crate::feed::FeedKind::Atom10, 2));
        assert!(xml.contains("<updated>2026-12-01T00:00:00Z</updated><link"), "{xml}");
        assert!(xml.contains("<title>T &lt;a&gt; &amp; </title>"));
        assert!(xml.contains(r#"href="https://x.example/a?a=1&amp;b=2""#));
        assert!(xml.contains("<content type=\"html\">&lt;p&gt;中文&lt;/p&gt;</content>"));
        assert!(xml.contains("<author><name>x.example</name></author><generator"));
        assert!(xml.find("<id>a</id>").unwrap() < xml.find("<id>b</id>").unwrap());
    }
}
