//! What flarefeed changes in a feed for its readers, after the guard accepted it and before the
//! formatter: the origin's self and hub links replaced by the published feed's own, the block
//! and allow rules, archived items, and full text.
//!
//! A rewrite is a list of edits to the checked document (spans removed, text inserted), so all
//! it does not touch stays byte for byte as the site wrote it; a feed that needs none is not
//! rewritten at all, and publishes the same bytes as before these options existed.

mod archive;
mod full_text;
pub(crate) mod outline;
mod rules;

use std::ops::Range;

use time::OffsetDateTime;

use crate::items::Memory;

pub(crate) use rules::keeps;
pub use rules::{Rule, RuleAction, RuleField};

use outline::{ATOM, Dialect, Outline};

/// `archive`: items that left the site's feed stay in the published one, up to `items`, and
/// at most `days` after they were first seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Archive {
    pub items: usize,
    pub days: u32,
}

impl Archive {
    pub const MAX_ITEMS: usize = 1000;
    pub const MAX_DAYS: u32 = 3650;

    /// How long after it was first seen an item may stay archived, in seconds: what the item
    /// memory keeps an archived item for.
    pub fn window(&self) -> i64 {
        i64::from(self.days) * 86_400
    }
}

impl Default for Archive {
    fn default() -> Self {
        Self { items: 100, days: 30 }
    }
}

/// `[feeds.full_text]`: each item's article fetched once, and its first match of `selector`
/// published as the item's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullText {
    pub selector_text: String,
    pub selector: scraper::Selector,
    pub max_per_refresh: usize,
}

impl FullText {
    pub const DEFAULT_PER_REFRESH: usize = 5;
    pub const MAX_PER_REFRESH: usize = 50;
}

/// How a feed is rewritten for its readers; the same plan, document and memory give the same
/// bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plan<'a> {
    /// The published feed's own url (`[site] base_url`, the prefix and the key): its self link.
    /// Without it the origin's self links are removed.
    pub self_url: Option<&'a str>,
    /// `[site] websub_hub`: the hub link every feed carries.
    pub hub: Option<&'a str>,
    pub rules: &'a [Rule],
    /// Keep items that left the site's feed (needs the memory).
    pub archive: Option<Archive>,
    /// Publish each item's cached article as its content (needs the memory).
    pub full_text: bool,
}

impl Plan<'_> {
    /// Whether the item memory takes part.
    pub fn needs_memory(&self) -> bool {
        self.archive.is_some() || self.full_text
    }
}

/// What a rewrite did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewritten {
    /// The document for readers; `None`: the site's own, unchanged.
    pub text: Option<String>,
    /// Items the rules dropped.
    pub dropped: usize,
    /// Archived items published after the site's.
    pub archived: usize,
    /// Items published with their article.
    pub full_text: usize,
    /// The memory changed, and must be written before the feed.
    pub memory_changed: bool,
}

/// Whether `text` may hold something a plan with no options changes: a self or hub link. A
/// cheap look before the walk, so that a feed with neither costs nothing.
fn may_hold_links(text: &str) -> bool {
    let bytes = text.as_bytes();
    memchr::memmem::find_iter(bytes, b"rel=").any(|at| {
        let rest = &bytes[at + 4..bytes.len().min(at + 10)];
        let rest = rest
            .strip_prefix(b"\"")
            .or_else(|| rest.strip_prefix(b"'"))
            .unwrap_or(rest);
        rest.starts_with(b"self") || rest.starts_with(b"hub")
    })
}

/// `text` rewritten by `plan`, with `memory` (the feed's item memory, when the plan needs it)
/// brought up to date at `now`.
pub fn apply(
    text: &str,
    plan: &Plan<'_>,
    memory: Option<&mut Memory>,
    now: OffsetDateTime,
) -> Result<Rewritten, crate::feed::FeedError> {
    let Rewrite { edits, mut done } = work_out(text, plan, memory, now)?;
    if !edits.is_empty() {
        done.text = Some(splice(text, edits));
    }
    Ok(done)
}

/// A rewrite worked out and not yet made: [`Rewrite::make`] makes it in the text's own buffer,
/// so a refresh never holds the site's document and the one for readers together.
#[derive(Debug)]
pub struct Rewrite {
    edits: Vec<Edit>,
    /// What it does, `text` aside.
    pub done: Rewritten,
}

impl Rewrite {
    /// Whether it changes the text at all.
    pub fn changes_text(&self) -> bool {
        !self.edits.is_empty()
    }

    /// `text` (the text it was worked out on) rewritten, in its own buffer.
    pub fn make(self, text: String) -> (String, Rewritten) {
        (splice_in_place(text, self.edits), self.done)
    }
}

/// [`apply`] worked out on `text`, to be made by [`Rewrite::make`].
pub fn work_out(
    text: &str,
    plan: &Plan<'_>,
    memory: Option<&mut Memory>,
    now: OffsetDateTime,
) -> Result<Rewrite, crate::feed::FeedError> {
    let mut rewritten = Rewritten::default();
    let nothing = |done| Rewrite {
        edits: Vec::new(),
        done,
    };
    let wanted = plan.self_url.is_some() || plan.hub.is_some() || !plan.rules.is_empty() || plan.needs_memory();
    if !wanted && !may_hold_links(text) {
        return Ok(nothing(rewritten));
    }
    let judge = outline::Judge {
        reads_text: !plan.rules.is_empty(),
        keeps: &|item| rules::keeps(plan.rules, item),
    };
    let outline = outline::outline_judged(text, judge)?;
    let Some(dialect) = outline.dialect else {
        return Ok(nothing(rewritten));
    };
    let mut edits: Vec<Edit> = Vec::new();
    for (span, _) in &outline.links {
        edits.push(Edit::remove(span.clone()));
    }
    let links = own_links(text, &outline, dialect, plan, &mut edits);
    if !links.is_empty() {
        edits.push(Edit::insert(outline.container_tag.end, links));
    }
    let mut published: Vec<(&str, String)> = Vec::new();
    for item in &outline.items {
        if item.dropped {
            edits.push(Edit::remove(item.span.clone()));
            rewritten.dropped += 1;
            continue;
        }
        let own = &text[item.span.clone()];
        let article = item
            .key()
            .filter(|_| plan.full_text)
            .and_then(|key| memory.as_deref().and_then(|m| m.items.get(key)))
            .and_then(|seen| seen.article.as_deref());
        let final_text = match article {
            Some(article) => {
                rewritten.full_text += 1;
                let with = full_text::with_article(own, item, dialect, article);
                edits.push(Edit {
                    span: item.span.clone(),
                    text: with.clone(),
                });
                std::borrow::Cow::Owned(with)
            }
            None => std::borrow::Cow::Borrowed(own),
        };
        if let Some(key) = item.key().filter(|_| plan.archive.is_some() && !item.custom_entity) {
            // Offsets of the item's own start tag hold in its final text: edits are inside.
            published.push((key, archive::self_contained(&final_text, item)));
        }
    }
    if let (Some(archive), Some(memory)) = (plan.archive, memory) {
        let (archived, changed) = archive::remember_and_select(dialect, &published, memory, archive, now);
        rewritten.memory_changed = changed;
        rewritten.archived = archived.len();
        if !archived.is_empty() {
            edits.push(Edit::insert(outline.after_items, archived.concat()));
        }
    }
    Ok(Rewrite {
        edits: kept(edits),
        done: rewritten,
    })
}

/// The self and hub links the feed carries, in the dialect's own form; a namespace declaration
/// for RSS's `atom:` prefix goes on the root when it has none.
fn own_links(text: &str, outline: &Outline, dialect: Dialect, plan: &Plan<'_>, edits: &mut Vec<Edit>) -> String {
    let wanted: Vec<(&str, &str)> = [("self", plan.self_url), ("hub", plan.hub)]
        .into_iter()
        .filter_map(|(rel, href)| href.map(|h| (rel, h)))
        .collect();
    if wanted.is_empty() {
        return String::new();
    }
    let bound = outline
        .container_namespaces
        .iter()
        .rev()
        .find(|(_, uri)| uri == ATOM)
        .map(|(prefix, _)| prefix.clone());
    let (name, local_declaration) = match bound {
        Some(prefix) if prefix.is_empty() => ("link".to_string(), ""),
        Some(prefix) => (format!("{prefix}:link"), ""),
        None if !outline.container_namespaces.iter().any(|(p, _)| p == "atom") => {
            // The root's start tag ends in `>`: the declaration goes just before it.
            let end = outline.root_tag.end - 1;
            let at = if text[..end].ends_with('/') { end - 1 } else { end };
            edits.push(Edit::insert(at, format!(" xmlns:atom=\"{ATOM}\"")));
            ("atom:link".to_string(), "")
        }
        None => ("link".to_string(), " xmlns=\"http://www.w3.org/2005/Atom\""),
    };
    let kind = match dialect {
        Dialect::Rss => "application/rss+xml",
        Dialect::Rdf => "application/rdf+xml",
        Dialect::Atom => "application/atom+xml",
    };
    let mut out = String::new();
    for (rel, href) in wanted {
        let href = html_escape::encode_double_quoted_attribute(href);
        out.push_str(&format!("<{name}{local_declaration} rel=\"{rel}\" href=\"{href}\""));
        if rel == "self" {
            out.push_str(&format!(" type=\"{kind}\""));
        }
        out.push_str("/>");
    }
    out
}

/// One change to the document: the span replaced by the text (an insertion is an empty span).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Edit {
    span: Range<usize>,
    text: String,
}

impl Edit {
    fn remove(span: Range<usize>) -> Self {
        Self {
            span,
            text: String::new(),
        }
    }

    fn insert(at: usize, text: String) -> Self {
        Self { span: at..at, text }
    }
}

/// The edits in order, less any inside a span another removes (dropped with it).
fn kept(mut edits: Vec<Edit>) -> Vec<Edit> {
    edits.sort_by_key(|e| (e.span.start, e.span.end));
    let mut at = 0;
    edits.retain(|edit| {
        let keep = edit.span.start >= at;
        if keep {
            at = edit.span.end;
        }
        keep
    });
    edits
}

/// The document with the edits (in order, none inside another, as [`kept`] leaves them) made.
fn splice(text: &str, edits: Vec<Edit>) -> String {
    let mut out = String::with_capacity(text.len() + edits.iter().map(|e| e.text.len()).sum::<usize>());
    let mut at = 0;
    for edit in edits {
        out.push_str(&text[at..edit.span.start]);
        out.push_str(&edit.text);
        at = edit.span.end;
    }
    out.push_str(&text[at..]);
    out
}

/// [`splice`] in the text's own buffer. Each run of the text between edits moves to where it
/// ends up: first those that move towards the start, in order, then those that move towards
/// the end, last first, so that no run is written over before it has moved (a run's place is
/// after every earlier run's place and before every later one's); then the edits' texts go into
/// the gaps. The buffer grows only by what the edits add in all.
fn splice_in_place(text: String, edits: Vec<Edit>) -> String {
    if edits.is_empty() {
        return text;
    }
    let old_len = text.len();
    let added: usize = edits.iter().map(|e| e.text.len()).sum();
    let removed: usize = edits.iter().map(|e| e.span.len()).sum();
    let new_len = old_len + added - removed;
    // (source, destination) of each run between edits, and where each edit's text goes.
    let mut runs = Vec::with_capacity(edits.len() + 1);
    let mut texts = Vec::with_capacity(edits.len());
    let (mut at, mut to) = (0, 0);
    for edit in &edits {
        runs.push((at..edit.span.start, to));
        to += edit.span.start - at;
        texts.push(to);
        to += edit.text.len();
        at = edit.span.end;
    }
    runs.push((at..old_len, to));
    let mut bytes = text.into_bytes();
    bytes.resize(old_len.max(new_len), 0);
    for (source, to) in runs.iter().filter(|(source, to)| *to <= source.start) {
        bytes.copy_within(source.clone(), *to);
    }
    for (source, to) in runs.iter().rev().filter(|(source, to)| *to > source.start) {
        bytes.copy_within(source.clone(), *to);
    }
    for (edit, to) in edits.iter().zip(texts) {
        bytes[to..to + edit.text.len()].copy_from_slice(edit.text.as_bytes());
    }
    bytes.truncate(new_len);
    String::from_utf8(bytes).expect("runs of the text and the edits' texts, whole characters each")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSS: &str = r#"<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><link>https://o/</link>
<item><title>Rust news</title><link>https://o/1</link></item>
<item><title>Sponsored: buy</title><link>https://o/2</link></item></channel></rss>"#;

    fn run(text: &str, plan: &Plan<'_>) -> Option<String> {
        apply(text, plan, None, OffsetDateTime::UNIX_EPOCH).unwrap().text
    }

    /// Splicing in the text's own buffer makes what splicing into a copy makes, for edits that
    /// grow, shrink, insert and remove anywhere, nested ones included.
    #[test]
    fn splicing_in_place_makes_what_a_copy_makes() {
        let text = "<rss><channel>中文，ab<item>一</item><item>二</item><item>three</item></channel></rss>";
        let mut seed = 7u64;
        let mut next = |n: usize| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        let boundaries: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
        for round in 0..2000 {
            let mut edits = Vec::new();
            for _ in 0..1 + next(5) {
                let (a, b) = (boundaries[next(boundaries.len())], boundaries[next(boundaries.len())]);
                let replacement = ["", "x", "<atom:link rel=\"self\"/>", "長い長い置換テキスト"][next(4)];
                edits.push(Edit {
                    span: a.min(b)..a.max(b),
                    text: replacement.to_string(),
                });
            }
            let edits = kept(edits);
            let expected = splice(text, edits.clone());
            assert_eq!(
                splice_in_place(text.to_string(), edits.clone()),
                expected,
                "round {round}: {edits:?}"
            );
        }
    }

    #[test]
    fn nothing_to_do_is_no_rewrite() {
        assert_eq!(run(RSS, &Plan::default()), None);
        let atom = r#"<feed xmlns="http://www.w3.org/2005/Atom"><link rel="alternate" href="x"/></feed>"#;
        assert_eq!(run(atom, &Plan::default()), None);
    }

    #[test]
    fn rss_gets_its_self_and_hub_links_with_the_namespace() {
        let plan = Plan {
            self_url: Some("https://feeds.example/news.xml"),
            hub: Some("https://hub.example/"),
            ..Plan::default()
        };
        let text = run(RSS, &plan).unwrap();
        assert!(text.starts_with(r#"<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel><atom:link rel="self" href="https://feeds.example/news.xml" type="application/rss+xml"/><atom:link rel="hub" href="https://hub.example/"/><title>"#), "{text}");
        roxmltree::Document::parse(&text).unwrap();
    }

    #[test]
    fn the_origins_links_are_replaced_and_removed_without_a_base_url() {
        let rss = r#"<rss version="2.0" xmlns:a="http://www.w3.org/2005/Atom"><channel><a:link href="https://origin/rss" rel="self"/><title>T</title><a:link rel='hub' href="https://origin-hub/"/></channel></rss>"#;
        let text = run(rss, &Plan::default()).unwrap();
        assert_eq!(
            text,
            r#"<rss version="2.0" xmlns:a="http://www.w3.org/2005/Atom"><channel><title>T</title></channel></rss>"#
        );
        let plan = Plan {
            self_url: Some("https://feeds.example/n.xml"),
            ..Plan::default()
        };
        let text = run(rss, &plan).unwrap();
        assert_eq!(
            text,
            r#"<rss version="2.0" xmlns:a="http://www.w3.org/2005/Atom"><channel><a:link rel="self" href="https://feeds.example/n.xml" type="application/rss+xml"/><title>T</title></channel></rss>"#
        );
        let atom = r#"<feed xmlns="http://www.w3.org/2005/Atom"><id>x</id><link rel="self" href="https://origin/atom"/><entry><link rel="self" href="kept"/></entry></feed>"#;
        let text = run(atom, &plan).unwrap();
        assert_eq!(
            text,
            r#"<feed xmlns="http://www.w3.org/2005/Atom"><link rel="self" href="https://feeds.example/n.xml" type="application/atom+xml"/><id>x</id><entry><link rel="self" href="kept"/></entry></feed>"#
        );
    }

    #[test]
    fn rules_drop_items() {
        let rules = [Rule::parse(Some("(?i)sponsored"), None, None).unwrap()];
        let plan = Plan {
            rules: &rules,
            ..Plan::default()
        };
        let rewritten = apply(RSS, &plan, None, OffsetDateTime::UNIX_EPOCH).unwrap();
        assert_eq!(rewritten.dropped, 1);
        let text = rewritten.text.unwrap();
        assert!(text.contains("Rust news") && !text.contains("Sponsored"), "{text}");
    }
}
