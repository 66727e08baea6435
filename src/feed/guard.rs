//! The publish guard: is this text a feed worth publishing over the last good copy?

use std::fmt;
use std::ops::Range;

use super::FeedError;
use super::pages::{classify_html, known_page, looks_like_html};
use super::xml::{Event, Tag, Visitor, document, local_name, walk};

/// The default cap on a solver reply: big feeds are a few MB; a runaway page must not take the Lambda's memory.
pub const DEFAULT_MAX_BYTES: usize = 32 * 1024 * 1024;

const ATOM_10: &str = "http://www.w3.org/2005/Atom";
const ATOM_03: &str = "http://purl.org/atom/ns#";
const RDF: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";

/// What the guard demands of a feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardOptions {
    /// Fewer items than this means the site sent a broken or emptied feed.
    pub min_items: usize,
    /// The largest text accepted, in bytes.
    pub max_bytes: usize,
}

impl Default for GuardOptions {
    fn default() -> Self {
        Self {
            min_items: 1,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// The kinds of feed flarefeed publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedKind {
    /// RSS 0.91–2.0, with the version as written (`None` when the root has no version).
    Rss(Option<String>),
    /// RSS 1.0 (`rdf:RDF`).
    Rdf,
    /// Atom 1.0.
    Atom10,
    /// Atom 0.3.
    Atom03,
}

impl FeedKind {
    /// The Content-Type readers should get for this kind.
    pub fn content_type(&self) -> &'static str {
        match self {
            FeedKind::Rss(_) => "application/rss+xml; charset=utf-8",
            FeedKind::Rdf => "application/rdf+xml; charset=utf-8",
            FeedKind::Atom10 | FeedKind::Atom03 => "application/atom+xml; charset=utf-8",
        }
    }
}

impl fmt::Display for FeedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedKind::Rss(Some(version)) => write!(f, "rss {version}"),
            FeedKind::Rss(None) => write!(f, "rss (no version)"),
            FeedKind::Rdf => write!(f, "rss 1.0 (rdf)"),
            FeedKind::Atom10 => write!(f, "atom 1.0"),
            FeedKind::Atom03 => write!(f, "atom 0.3"),
        }
    }
}

/// What the guard learned about an accepted feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedInfo {
    pub kind: FeedKind,
    pub items: usize,
}

impl fmt::Display for FeedInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let noun = if self.items == 1 { "item" } else { "items" };
        write!(f, "{}, {} {noun}", self.kind, self.items)
    }
}

/// Checks the whole text and accepts it only if it is a well-formed feed with enough items.
pub fn check(text: &str, options: GuardOptions) -> Result<FeedInfo, FeedError> {
    let doc = before_walk(text, options)?;
    let mut shape = Shape::new(doc);
    let walked = walk(doc, &mut shape);
    shape.finish(walked, options)
}

/// What the guard refuses before reading the document: over the size, empty, an HTML page. The
/// document to walk, after [`document`].
pub(super) fn before_walk(text: &str, options: GuardOptions) -> Result<&str, FeedError> {
    if text.len() > options.max_bytes {
        return Err(FeedError::TooLarge {
            size: text.len(),
            limit: options.max_bytes,
        });
    }
    let doc = document(text);
    if doc.is_empty() {
        return Err(FeedError::Empty);
    }
    if looks_like_html(doc) {
        return Err(classify_html(doc));
    }
    Ok(doc)
}

impl<'a> Shape<'a> {
    pub(super) fn new(src: &'a str) -> Self {
        Shape {
            src,
            kind: None,
            items: 0,
            in_channel: false,
        }
    }

    /// The verdict after the walk: a page the walk found broken named for what it is, then the
    /// root and the items.
    pub(super) fn finish(self, walked: Result<(), FeedError>, options: GuardOptions) -> Result<FeedInfo, FeedError> {
        match walked {
            Ok(()) => {}
            Err(e @ FeedError::NotWellFormed { .. }) => return Err(known_page(self.src).unwrap_or(e)),
            Err(e) => return Err(e),
        }
        let kind = self.kind.expect("walk only succeeds with a root element");
        if self.items < options.min_items {
            return Err(FeedError::TooFewItems {
                found: self.items,
                min: options.min_items,
            });
        }
        Ok(FeedInfo {
            kind,
            items: self.items,
        })
    }
}

/// Tracks the root and counts items where each kind keeps them.
pub(super) struct Shape<'a> {
    src: &'a str,
    kind: Option<FeedKind>,
    items: usize,
    in_channel: bool,
}

impl<'a> Visitor<'a> for Shape<'a> {
    fn visit(&mut self, event: &Event<'a>, _span: Range<usize>, depth: usize) -> Result<(), FeedError> {
        match event {
            Event::Start(tag) | Event::Empty(tag) => {
                let local = local_name(tag.name);
                match (depth, &self.kind) {
                    (0, _) => self.kind = Some(root_kind(self.src, tag)?),
                    (1, Some(FeedKind::Rss(_))) => {
                        self.in_channel = local == "channel" && matches!(event, Event::Start(_))
                    }
                    (1, Some(FeedKind::Atom10 | FeedKind::Atom03)) if local == "entry" => self.items += 1,
                    (1, Some(FeedKind::Rdf)) if local == "item" => self.items += 1,
                    (2, Some(FeedKind::Rss(_))) if self.in_channel && local == "item" => self.items += 1,
                    _ => {}
                }
            }
            Event::End if depth == 1 => self.in_channel = false,
            _ => {}
        }
        Ok(())
    }
}

fn root_kind(src: &str, tag: &Tag<'_>) -> Result<FeedKind, FeedError> {
    let name = tag.name;
    let local = local_name(name);
    let namespace = || {
        let key = match name.split_once(':') {
            Some((prefix, _)) => format!("xmlns:{prefix}"),
            None => "xmlns".to_string(),
        };
        tag.attribute(&key).unwrap_or_default()
    };
    match local {
        "html" | "HTML" => Err(classify_html(src)),
        "rss" if !name.contains(':') => match tag.attribute("version").map(str::to_string) {
            None => Ok(FeedKind::Rss(None)),
            Some(v) if v.starts_with("0.9") || v == "2.0" || v.starts_with("2.0.") => Ok(FeedKind::Rss(Some(v))),
            Some(v) => Err(FeedError::UnsupportedVersion {
                kind: "RSS",
                version: v,
            }),
        },
        "feed" => match namespace() {
            ATOM_10 => Ok(FeedKind::Atom10),
            ATOM_03 => Ok(FeedKind::Atom03),
            _ => Err(FeedError::NotAFeed { root: name.to_string() }),
        },
        "RDF" if namespace() == RDF => Ok(FeedKind::Rdf),
        _ => Err(FeedError::NotAFeed { root: name.to_string() }),
    }
}
