//! Items from an HTML page by CSS selectors, with html5ever (the Servo engine's parser, through
//! `scraper`): a page is parsed as a browser parses it, so Chrome's DOM from the solver and the
//! site's own bytes give the same items.

use std::fmt::Write;
use std::sync::LazyLock;

use scraper::node::Node;
use scraper::{ElementRef, Html, Selector};
use url::Url;

use super::rules::{Field, HtmlRules};
use super::{Collector, Dated, Extraction, Place, Read, collapse, date};

static TITLE: LazyLock<Selector> = LazyLock::new(|| Selector::parse("title").expect("a valid selector"));
static BASE: LazyLock<Selector> = LazyLock::new(|| Selector::parse("base[href]").expect("a valid selector"));

/// Every item `rules.item` matches, in page order.
pub(super) fn extract(rules: &HtmlRules, page: &str, place: Place<'_>) -> Extraction {
    let html = Html::parse_document(page);
    let page_title = html
        .select(&TITLE)
        .next()
        .map(|title| collapse(&title.text().collect::<String>()))
        .filter(|title| !title.is_empty());
    let base = base_of(&html, place.landed);
    let mut collector = Collector::new(place.feed_url, page_title);
    let texts = (rules.title.text.as_str(), rules.link.text.as_str());
    for (i, item) in html.select(&rules.item).enumerate() {
        let date = match rules.date.as_ref().and_then(|field| value(item, field)) {
            None => Dated::Undated,
            Some(text) if text.trim().is_empty() => Dated::Undated,
            Some(text) => date::parse(&text, &rules.dates).map_or(Dated::Unreadable(collapse(&text)), Dated::On),
        };
        let read = Read {
            title: value(item, &rules.title),
            link: value(item, &rules.link),
            content: rules.content.as_ref().and_then(|field| content(item, field, &base)),
            author: rules.author.as_ref().and_then(|field| value(item, field)),
            date,
            id: rules.id.as_ref().and_then(|field| value(item, field)),
        };
        collector.add(i + 1, read, &base, texts);
    }
    collector.out
}

/// The inner HTML of `selector`'s first match in `page` (an article), its links made absolute
/// against `page_url` and `<base href>`, as an item's `content` is; `None` if nothing matches.
pub(super) fn first_inner_html(page: &str, selector: &Selector, page_url: &Url) -> Option<String> {
    let html = Html::parse_document(page);
    let base = base_of(&html, page_url);
    let element = html.select(selector).next()?;
    let mut out = String::new();
    for child in element.children() {
        serialize(child, &base, &mut out);
    }
    Some(out.trim().to_string()).filter(|content| !content.is_empty())
}

/// What relative links resolve against: `<base href>`, itself relative to the page, else the
/// page's url.
fn base_of(html: &Html, page_url: &Url) -> Url {
    html.select(&BASE)
        .next()
        .and_then(|base| base.attr("href"))
        .and_then(|href| page_url.join(href.trim()).ok())
        .unwrap_or_else(|| page_url.clone())
}

/// The element a field reads in `item`: the first match below it, or the item itself.
fn target<'a>(item: ElementRef<'a>, field: &Field) -> Option<ElementRef<'a>> {
    match &field.selector {
        None => Some(item),
        Some(selector) => item.select(selector).next(),
    }
}

/// A field's text (all the element's text) or attribute.
fn value(item: ElementRef<'_>, field: &Field) -> Option<String> {
    let element = target(item, field)?;
    match &field.attribute {
        Some(name) => element.attr(name).map(str::to_string),
        None => Some(element.text().collect()),
    }
}

/// The `content` field: the element's inner HTML, or an attribute's value as escaped text.
fn content(item: ElementRef<'_>, field: &Field, base: &Url) -> Option<String> {
    let element = target(item, field)?;
    if let Some(name) = &field.attribute {
        return element
            .attr(name)
            .map(|text| html_escape::encode_text(text).into_owned());
    }
    let mut out = String::new();
    for child in element.children() {
        serialize(child, base, &mut out);
    }
    Some(out.trim().to_string())
}

/// Elements whose content is not part of an article, and a reader would drop anyway.
const LEFT_OUT: [&str; 6] = ["script", "style", "noscript", "template", "iframe", "object"];

/// HTML's void elements: no end tag.
const VOID: [&str; 14] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr",
];

/// Attributes that hold a url, made absolute: the feed is read far from the page.
const URL_ATTRIBUTES: [&str; 5] = ["href", "src", "poster", "cite", "action"];

/// One node as HTML, with its urls absolute, `on…` handlers and left-out elements dropped.
fn serialize(node: ego_tree::NodeRef<'_, Node>, base: &Url, out: &mut String) {
    match node.value() {
        Node::Text(text) => out.push_str(&html_escape::encode_text(&**text)),
        Node::Element(element) => {
            let name = element.name();
            if LEFT_OUT.contains(&name) {
                return;
            }
            let _ = write!(out, "<{name}");
            for (attribute, value) in element.attrs() {
                if attribute.starts_with("on") {
                    continue;
                }
                let value = if URL_ATTRIBUTES.contains(&attribute) {
                    absolute(value, base)
                } else if attribute == "srcset" {
                    srcset(value, base)
                } else {
                    value.to_string()
                };
                let _ = write!(
                    out,
                    " {attribute}=\"{}\"",
                    html_escape::encode_double_quoted_attribute(&value)
                );
            }
            out.push('>');
            if VOID.contains(&name) {
                return;
            }
            for child in node.children() {
                serialize(child, base, out);
            }
            let _ = write!(out, "</{name}>");
        }
        // Comments, doctypes and processing instructions say nothing to a reader.
        _ => {}
    }
}

/// A url attribute, resolved; one that does not resolve (or a `javascript:` url) is kept or
/// dropped as a browser would show it: kept when it has a scheme, emptied when it is script.
fn absolute(value: &str, base: &Url) -> String {
    match base.join(value.trim()) {
        Ok(url) if url.scheme() == "javascript" => String::new(),
        Ok(url) => url.to_string(),
        Err(_) => value.to_string(),
    }
}

/// `srcset`: each candidate's url resolved, its descriptor kept.
fn srcset(value: &str, base: &Url) -> String {
    value
        .split(',')
        .map(|candidate| {
            let candidate = candidate.trim();
            match candidate.split_once(char::is_whitespace) {
                Some((url, descriptor)) => format!("{} {}", absolute(url, base), descriptor.trim()),
                None => absolute(candidate, base),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::rules::{DateRule, selector_from};
    use super::super::{Rules, ScrapeError, SkipReason, extract as extract_items};
    use super::*;

    fn rules(item: &str, title: &str, link: &str) -> HtmlRules {
        HtmlRules {
            item_text: item.into(),
            item: selector_from(item).unwrap(),
            title: Field::parse(title).unwrap(),
            link: Field::parse(link).unwrap(),
            content: None,
            date: None,
            author: None,
            id: None,
            dates: DateRule::default(),
            feed_title: None,
        }
    }

    const PAGE: &str = r#"<!doctype html><html><head><title> 技术 &amp; 分享 - Forum </title><base href="/board/"></head><body>
<ul>
<li class="post" data-id="101"><a class="title" href="t/101?x=1&amp;y=2">第一 &lt;帖&gt;
  标题</a><time datetime="2026-11-30T08:15:00+08:00">2h</time>
  <div class="summary"><p onclick="x()">看 <a href="/u/7">这里</a><img src="i.png" srcset="a.png 1x, /b.png 2x"></p><script>evil()</script></div></li>
<li class="post" data-id="102"><a class="title" href="https://elsewhere.example/p">Second</a><time>yesterday</time></li>
<li class="post" data-id="103"><span>no title link</span></li>
<li class="post" data-id="101"><a class="title" href="t/101b">Pinned again</a></li>
</ul></body></html>"#;

    fn page_url() -> Url {
        Url::parse("https://forum.example/categories/tech").unwrap()
    }

    #[test]
    fn items_follow_the_page_with_links_resolved_against_base() {
        let mut r = rules("li.post", "a.title", "a.title@href");
        r.id = Some(Field::parse("@data-id").unwrap());
        r.date = Some(Field::parse("time@datetime").unwrap());
        r.content = Some(Field::parse("div.summary").unwrap());
        let got = extract(&r, PAGE, Place::at(&page_url()));
        assert_eq!(got.page_title.as_deref(), Some("技术 & 分享 - Forum"));
        assert_eq!(got.matched, 4);
        assert_eq!(got.items.len(), 2);
        let first = &got.items[0];
        assert_eq!(first.title, "第一 <帖> 标题");
        assert_eq!(first.link, "https://forum.example/board/t/101?x=1&y=2");
        assert_eq!(first.id, "https://forum.example/categories/tech#101");
        assert_eq!(
            first.content.as_deref(),
            Some(
                r#"<p>看 <a href="https://forum.example/u/7">这里</a><img src="https://forum.example/board/i.png" srcset="https://forum.example/board/a.png 1x, https://forum.example/b.png 2x"></p>"#
            )
        );
        assert!(matches!(first.date, Dated::On(d) if d.to_rfc3339() == "2026-11-30T08:15:00+08:00"));
        // No datetime attribute: no date; the text is not read instead.
        assert_eq!(got.items[1].date, Dated::Undated);
        assert_eq!(got.skipped.len(), 2);
        assert!(matches!(got.skipped[0].reason, SkipReason::NoTitle { .. }));
        assert_eq!(got.skipped[0].position, 3);
        assert!(matches!(got.skipped[1].reason, SkipReason::DuplicateId { .. }));
    }

    #[test]
    fn an_unreadable_date_is_kept_as_text_and_counted() {
        let mut r = rules("li.post", "a.title", "a.title@href");
        r.date = Some(Field::parse("time").unwrap());
        let got = extract(&r, PAGE, Place::at(&page_url()));
        assert_eq!(got.items[1].date, Dated::Unreadable("yesterday".into()));
        assert_eq!(got.unreadable_dates(), 2);
    }

    #[test]
    fn no_match_names_the_selector_and_the_page() {
        let r = Rules::Html(rules("article.entry", "h2", "a@href"));
        let error = extract_items(&r, PAGE, Place::at(&page_url())).unwrap_err();
        assert!(matches!(&error, ScrapeError::NoItems { title: Some(t), .. } if t.contains("Forum")));
        assert!(error.to_string().contains("\"article.entry\""), "{error}");
    }

    #[test]
    fn every_item_skipped_names_the_field() {
        let r = Rules::Html(rules("li.post", "h3.gone", "a.title@href"));
        let error = extract_items(&r, PAGE, Place::at(&page_url())).unwrap_err().to_string();
        assert!(
            error.contains("all 4 items") && error.contains("`title` (\"h3.gone\")"),
            "{error}"
        );
    }
}
