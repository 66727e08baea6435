//! Where things are in a checked feed: its container (RSS `channel`, Atom `feed`), the
//! container's self and hub links, and each item with its span, its key and the text of the
//! fields the rules read. Found in one walk of the document (the guard's own lexer), with
//! namespaces resolved as declared, so `<atom:link>` and `<a:link>` are the same element.

use std::ops::Range;

use crate::feed::FeedError;
use crate::feed::xml::{self, Event, Tag, Visitor};

pub(crate) const ATOM: &str = "http://www.w3.org/2005/Atom";
pub(crate) const CONTENT: &str = "http://purl.org/rss/1.0/modules/content/";
const DC: &str = "http://purl.org/dc/elements/1.1/";
const RDF: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";
const RSS10: &str = "http://purl.org/rss/1.0/";
const XMLNS: &str = "http://www.w3.org/XML/1998/namespace";

/// The feed's dialect, as far as rewriting it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// RSS 0.91–2.0: items in `channel`.
    Rss,
    /// RSS 1.0: the channel and the items are siblings under `rdf:RDF`.
    Rdf,
    Atom,
}

/// What a rewrite needs to know of a document.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outline {
    pub dialect: Option<Dialect>,
    /// The root's start tag.
    pub root_tag: Range<usize>,
    /// Namespaces declared on the root: `(prefix, uri)`, `""` for the default.
    pub root_namespaces: Vec<(String, String)>,
    /// The container's start tag (RSS and RSS 1.0 `channel`, Atom `feed`): links go after it.
    pub container_tag: Range<usize>,
    /// Namespaces in scope at the container's children.
    pub container_namespaces: Vec<(String, String)>,
    /// The container's own `self` and `hub` links.
    pub links: Vec<(Range<usize>, Rel)>,
    pub items: Vec<ItemOutline>,
    /// Where an item after the last goes: after the last item, else before the end tag of the
    /// element that holds items.
    pub after_items: usize,
}

/// A link the rewrite replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rel {
    SelfLink,
    Hub,
}

/// One item (RSS `item`, Atom `entry`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ItemOutline {
    /// From its start tag to the end of its end tag.
    pub span: Range<usize>,
    /// Its start tag, and where its end tag begins.
    pub start_tag: Range<usize>,
    pub end_tag: usize,
    /// Namespaces in scope at the item: its own declarations and its ancestors'.
    pub namespaces: Vec<(String, String)>,
    pub guid: Option<String>,
    pub atom_id: Option<String>,
    pub link: Option<String>,
    pub title: String,
    pub author: String,
    pub categories: Vec<String>,
    /// description, content:encoded, summary and content, as text.
    pub content: String,
    /// The child that holds the full content (RSS `content:encoded`, Atom `content`), if any.
    pub content_element: Option<Range<usize>>,
    /// Whether it holds an entity reference other than XML's five and character references:
    /// such an item cannot be carried into another document as it is.
    pub custom_entity: bool,
    /// Whether the rules it was judged by ([`outline_judged`]) drop it.
    pub dropped: bool,
}

impl ItemOutline {
    /// How an item is known across documents: its guid, then its Atom id, then its link.
    pub fn key(&self) -> Option<&str> {
        self.guid
            .as_deref()
            .or(self.atom_id.as_deref())
            .or(self.link.as_deref())
            .filter(|k| !k.is_empty())
    }
}

/// The outline of a document the guard has accepted, with the text of every item's fields.
pub(crate) fn outline(text: &str) -> Result<Outline, FeedError> {
    outline_with(text, None)
}

/// How a rewrite judges items: whether their fields' text is read at all, and whether an item
/// stays.
#[derive(Clone, Copy)]
pub(crate) struct Judge<'j> {
    pub reads_text: bool,
    pub keeps: &'j dyn Fn(&ItemOutline) -> bool,
}

/// The outline of a document the guard has accepted, each item judged as it closes
/// ([`ItemOutline::dropped`]) and its fields' text then let go: the outline of a large feed
/// holds its items' keys, never their text (and without `reads_text`, never reads it).
pub(crate) fn outline_judged(text: &str, judge: Judge<'_>) -> Result<Outline, FeedError> {
    outline_with(text, Some(judge))
}

fn outline_with<'a>(text: &'a str, judge: Option<Judge<'a>>) -> Result<Outline, FeedError> {
    let mut outliner = Outliner {
        text,
        judge,
        open: Vec::new(),
        out: Outline::default(),
        item: None,
        field: None,
        link: None,
    };
    xml::walk(text, &mut outliner)?;
    Ok(outliner.out)
}

/// An open element: its resolved name and the namespaces it declared.
struct Open {
    ns: String,
    local: String,
    declared: Vec<(String, String)>,
}

/// The item being read, and the depth it sits at.
struct Reading {
    item: ItemOutline,
    depth: usize,
}

/// The item's child being read: its depth, its text so far (if it is read), and its start.
struct Field {
    depth: usize,
    text: String,
    /// Whether its text is read: a key's always, the rest only for rules.
    read: bool,
    start: usize,
}

struct Outliner<'a> {
    text: &'a str,
    /// How each item is judged as it closes; `None`: not at all, and every field is kept.
    judge: Option<Judge<'a>>,
    open: Vec<Open>,
    out: Outline,
    item: Option<Reading>,
    field: Option<Field>,
    /// A container-level self or hub link being read: its start, its kind, its depth.
    link: Option<(usize, Rel, usize)>,
}

impl<'a> Visitor<'a> for Outliner<'a> {
    fn visit(&mut self, event: &Event<'a>, span: Range<usize>, _depth: usize) -> Result<(), FeedError> {
        match event {
            Event::Start(tag) => self.start(tag, span, false),
            Event::Empty(tag) => self.start(tag, span, true),
            Event::End => {
                let open = self.open.pop().expect("the walk closes only open elements");
                let depth = self.open.len();
                self.end(depth, span, (&open.ns, &open.local));
            }
            Event::Text { .. } | Event::Ref => {
                let read = self.field.as_ref().is_some_and(|f| f.read);
                if !read && matches!(event, Event::Text { .. }) {
                    return Ok(());
                }
                let raw = &self.text[span];
                let decoded = unescape(raw);
                if matches!(event, Event::Ref)
                    && decoded == raw
                    && let Some(reading) = &mut self.item
                {
                    reading.item.custom_entity = true;
                }
                if let Some(field) = self.field.as_mut().filter(|f| f.read) {
                    field.text.push_str(&decoded);
                }
            }
            Event::CData => {
                if let Some(field) = self.field.as_mut().filter(|f| f.read) {
                    let raw = &self.text[span];
                    field.text.push_str(&raw["<![CDATA[".len()..raw.len() - "]]>".len()]);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Outliner<'_> {
    /// Every declaration in scope below the open elements, innermost last.
    fn in_scope(&self, own: &[(String, String)]) -> Vec<(String, String)> {
        let mut scope: Vec<(String, String)> = Vec::new();
        for declared in self.open.iter().map(|o| &o.declared).chain([&own.to_vec()]) {
            for (prefix, uri) in declared {
                scope.retain(|(p, _)| p != prefix);
                scope.push((prefix.clone(), uri.clone()));
            }
        }
        scope
    }

    fn resolve(&self, prefix: &str, own: &[(String, String)]) -> String {
        if prefix == "xml" {
            return XMLNS.into();
        }
        own.iter()
            .rev()
            .chain(self.open.iter().rev().flat_map(|o| o.declared.iter().rev()))
            .find(|(p, _)| p == prefix)
            .map(|(_, uri)| uri.clone())
            .unwrap_or_default()
    }

    fn start(&mut self, tag: &Tag<'_>, span: Range<usize>, empty: bool) {
        let declared: Vec<(String, String)> = tag
            .attributes()
            .filter_map(|(name, value)| {
                let prefix = if name == "xmlns" {
                    Some("")
                } else {
                    name.strip_prefix("xmlns:")
                }?;
                Some((prefix.to_string(), unescape(value)))
            })
            .collect();
        let (prefix, local) = tag.name.split_once(':').unwrap_or(("", tag.name));
        let ns = self.resolve(prefix, &declared);
        let depth = self.open.len();
        self.opened(tag, &span, (&ns, local), &declared, depth);
        if empty {
            self.end(depth, span, (&ns, local));
        } else {
            self.open.push(Open {
                ns,
                local: local.to_string(),
                declared,
            });
        }
    }

    /// The depth of the container's children, and of items.
    fn depths(&self) -> (usize, usize) {
        match self.out.dialect {
            Some(Dialect::Atom) => (1, 1),
            Some(Dialect::Rdf) => (2, 1),
            _ => (2, 2),
        }
    }

    fn opened(
        &mut self,
        tag: &Tag<'_>,
        span: &Range<usize>,
        (ns, local): (&str, &str),
        declared: &[(String, String)],
        depth: usize,
    ) {
        if depth == 0 {
            self.out.root_tag = span.clone();
            self.out.root_namespaces = declared.to_vec();
            self.out.dialect = match (ns, local) {
                (ATOM, "feed") => Some(Dialect::Atom),
                (RDF, "RDF") => Some(Dialect::Rdf),
                ("", "rss") => Some(Dialect::Rss),
                _ => None,
            };
            if self.out.dialect == Some(Dialect::Atom) {
                self.out.container_tag = span.clone();
                self.out.container_namespaces = declared.to_vec();
            }
            return;
        }
        let (link_depth, item_depth) = self.depths();
        if depth == 1 && local == "channel" && matches!(self.out.dialect, Some(Dialect::Rss | Dialect::Rdf)) {
            self.out.container_tag = span.clone();
            self.out.container_namespaces = self.in_scope(declared);
            return;
        }
        let in_container = match self.out.dialect {
            Some(Dialect::Atom) => true,
            _ => self.open.get(1).is_some_and(|o| o.local == "channel"),
        };
        if depth == link_depth && in_container && ns == ATOM && local == "link" && self.item.is_none() {
            let rel = match tag.attribute("rel").map(unescape).as_deref() {
                Some("self") => Some(Rel::SelfLink),
                Some("hub") => Some(Rel::Hub),
                _ => None,
            };
            if let Some(rel) = rel {
                self.link = Some((span.start, rel, depth));
            }
        }
        let is_item = match self.out.dialect {
            Some(Dialect::Atom) => ns == ATOM && local == "entry",
            Some(Dialect::Rdf) => ns == RSS10 && local == "item",
            Some(Dialect::Rss) => ns.is_empty() && local == "item",
            None => false,
        };
        if depth == item_depth && is_item && self.item.is_none() {
            self.item = Some(Reading {
                item: ItemOutline {
                    span: span.start..span.end,
                    start_tag: span.clone(),
                    end_tag: span.end,
                    namespaces: self.in_scope(declared),
                    ..Default::default()
                },
                depth,
            });
            return;
        }
        let Some(reading) = &mut self.item else {
            return;
        };
        if depth == reading.depth + 1 {
            let item = &mut reading.item;
            match (ns, local) {
                (ATOM, "link") if item.link.is_none() && matches!(tag.attribute("rel"), None | Some("alternate")) => {
                    item.link = tag.attribute("href").map(unescape);
                }
                (ATOM, "category") => item.categories.extend(tag.attribute("term").map(unescape)),
                _ => {}
            }
            let key = matches!(local, "guid" | "id" | "link");
            self.field = Some(Field {
                depth,
                text: String::new(),
                read: key || self.judge.is_none_or(|judge| judge.reads_text),
                start: span.start,
            });
        }
    }

    fn end(&mut self, depth: usize, span: Range<usize>, (ns, local): (&str, &str)) {
        if let Some((start, rel, at)) = self.link
            && at == depth
        {
            self.out.links.push((start..span.end, rel));
            self.link = None;
        }
        if let Some(field) = self.field.take_if(|f| f.depth == depth) {
            let Some(reading) = &mut self.item else {
                return;
            };
            let item = &mut reading.item;
            let text = field.text;
            let plain = ns.is_empty() || ns == RSS10;
            match (ns, local) {
                (_, "guid") if plain => item.guid = Some(text.trim().to_string()),
                (ATOM, "id") => item.atom_id = Some(text.trim().to_string()),
                (_, "link") if plain && item.link.is_none() => item.link = Some(text.trim().to_string()),
                (_, "title") if plain || ns == ATOM => item.title = text,
                (_, "author") if plain || ns == ATOM => push_line(&mut item.author, &text),
                (DC, "creator") => push_line(&mut item.author, &text),
                (_, "category") if plain => item.categories.push(text.trim().to_string()),
                (DC, "subject") => item.categories.push(text.trim().to_string()),
                (_, "description") if plain => push_line(&mut item.content, &text),
                (ATOM, "summary") => push_line(&mut item.content, &text),
                (CONTENT, "encoded") | (ATOM, "content") => {
                    push_line(&mut item.content, &text);
                    item.content_element = Some(field.start..span.end);
                }
                _ => {}
            }
            return;
        }
        if let Some(reading) = self.item.take_if(|r| r.depth == depth) {
            let mut item = reading.item;
            item.span.end = span.end;
            if span.start >= item.start_tag.end {
                item.end_tag = span.start;
            }
            if let Some(judge) = self.judge {
                item.dropped = !(judge.keeps)(&item);
                (item.title, item.author, item.content) = Default::default();
                item.categories = Vec::new();
            }
            self.out.after_items = span.end;
            self.out.items.push(item);
            return;
        }
        // The element that holds items closes: with none, a first one goes before its end tag.
        let holder = match self.out.dialect {
            Some(Dialect::Rss) => depth == 1 && local == "channel",
            Some(_) => depth == 0,
            None => false,
        };
        if holder && self.out.items.is_empty() {
            self.out.after_items = span.start;
        }
    }
}

fn push_line(into: &mut String, text: &str) {
    if !into.is_empty() {
        into.push('\n');
    }
    into.push_str(text.trim());
}

/// XML's five entities and character references decoded; anything else left as written.
pub(crate) fn unescape(raw: &str) -> String {
    match quick_xml::escape::unescape(raw) {
        Ok(text) => text.into_owned(),
        Err(_) => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rss_feed_with_atom_links_and_items() {
        let text = r#"<?xml version="1.0"?><rss version="2.0" xmlns:a="http://www.w3.org/2005/Atom" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>T</title>
<a:link rel="self" href="https://origin/rss"/><a:link rel="hub" href="https://hub/"></a:link><link>https://origin/</link>
<item><title>One &amp; <![CDATA[two]]></title><link>https://origin/1</link><guid isPermaLink="false">g1</guid><dc:creator>Ann</dc:creator><category>rust</category><description>&lt;p&gt;x&lt;/p&gt;</description></item>
<item><title>Three</title><link>https://origin/3</link></item></channel></rss>"#;
        let o = outline(text).unwrap();
        assert_eq!(o.dialect, Some(Dialect::Rss));
        assert_eq!(o.links.len(), 2);
        assert_eq!(
            &text[o.links[0].0.clone()],
            r#"<a:link rel="self" href="https://origin/rss"/>"#
        );
        assert_eq!(
            &text[o.links[1].0.clone()],
            r#"<a:link rel="hub" href="https://hub/"></a:link>"#
        );
        assert_eq!(o.items.len(), 2);
        let one = &o.items[0];
        assert_eq!((one.title.as_str(), one.key()), ("One & two", Some("g1")));
        assert_eq!(
            (one.author.as_str(), one.categories.as_slice()),
            ("Ann", &["rust".to_string()][..])
        );
        assert_eq!(one.content, "<p>x</p>");
        assert!(text[one.span.clone()].starts_with("<item>") && text[one.span.clone()].ends_with("</item>"));
        assert_eq!(&text[one.end_tag..one.span.end], "</item>");
        assert!(one.namespaces.iter().any(|(p, u)| p == "dc" && u == DC));
        assert_eq!(o.items[1].key(), Some("https://origin/3"));
        assert_eq!(&text[o.after_items..o.after_items + 10], "</channel>");
        assert!(text[o.container_tag.clone()].starts_with("<channel"));
    }

    #[test]
    fn an_atom_feed() {
        let text = r#"<feed xmlns="http://www.w3.org/2005/Atom"><id>f</id><link rel="self" href="s"/><link href="alt"/>
<entry><id>e1</id><title type="html">A</title><link rel="alternate" href="https://o/1"/><category term="go"/><author><name>Bo</name></author><content type="html">body</content></entry></feed>"#;
        let o = outline(text).unwrap();
        assert_eq!(o.dialect, Some(Dialect::Atom));
        assert_eq!(o.links.len(), 1);
        let e = &o.items[0];
        assert_eq!(
            (e.key(), e.link.as_deref(), e.author.as_str()),
            (Some("e1"), Some("https://o/1"), "Bo")
        );
        assert_eq!(e.categories, ["go"]);
        assert_eq!(
            &text[e.content_element.clone().unwrap()],
            r#"<content type="html">body</content>"#
        );
        assert_eq!(&text[o.after_items..], "</feed>");
    }

    #[test]
    fn an_empty_channel_takes_items_before_its_end() {
        let text = "<rss version=\"2.0\"><channel><title>T</title></channel></rss>";
        let o = outline(text).unwrap();
        assert_eq!(&text[o.after_items..], "</channel></rss>");
    }
}
