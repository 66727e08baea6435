//! What readers get, through the real binary: self and hub links, WebSub pings to a hub on
//! loopback, the archive, block and allow rules, and full text from article pages on a loopback
//! site (one that answers 404, one behind a challenge the fake solver passes). The published
//! feeds are read back by roxmltree, not by flarefeed.

use std::path::Path;

use serde_json::Value;

use crate::helpers::fake_solver::{FakeSolver, ok_reply};
use crate::helpers::flarefeed_async;
use crate::helpers::hub::FakeHub;
use crate::helpers::origin::Origin;

/// No solver listens on this port.
const NO_SOLVER: &str = "http://127.0.0.1:9/v1";

async fn refresh(dir: &Path, config: &str) -> String {
    let out = flarefeed_async(dir)
        .env_remove("FLAREFEED_FETCH")
        .args(["refresh", "--config", config])
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn config(dir: &Path, text: &str) -> String {
    let path = dir.join("flarefeed.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn published(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("public/{name}.xml"))).unwrap()
}

fn record(dir: &Path, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(format!("public/status/{name}.json"))).unwrap()).unwrap()
}

/// An RSS feed of `items` (`(guid, title, link)`), with its origin's self and hub links.
fn rss(items: &[(&str, &str, &str)]) -> String {
    let items: String = items
        .iter()
        .map(|(guid, title, link)| {
            format!(
                "<item><title>{title}</title><link>{link}</link><guid isPermaLink=\"false\">{guid}</guid><dc:creator>Ann</dc:creator><description>Own text of {guid}</description></item>"
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Origin</title><link>https://origin.example/</link><description>d</description><atom:link href="https://origin.example/rss.xml" rel="self" type="application/rss+xml"/><atom:link href="https://origin-hub.example/" rel="hub"/>{items}</channel></rss>"#
    )
}

/// An Atom feed of `entries` (`(id, title)`), with its origin's self and hub links.
fn atom(entries: &[(&str, &str)]) -> String {
    let entries: String = entries
        .iter()
        .map(|(id, title)| {
            format!("<entry><id>{id}</id><title>{title}</title><updated>2026-12-01T00:00:00Z</updated><link href=\"https://origin.example/{id}\"/></entry>")
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><id>urn:origin</id><title>Origin</title><updated>2026-12-01T00:00:00Z</updated><author><name>A</name></author><link rel="self" href="https://origin.example/atom.xml"/><link rel="hub" href="https://origin-hub.example/"/>{entries}</feed>"#
    )
}

/// `(rel, href)` of the container's links, and the items' titles, as roxmltree reads them.
fn read(xml: &str) -> (Vec<(String, String)>, Vec<String>) {
    let doc = roxmltree::Document::parse(xml).unwrap();
    let root = doc.root_element();
    let container = if root.has_tag_name("rss") {
        root.children().find(|n| n.has_tag_name("channel")).unwrap()
    } else {
        root
    };
    let atom = "http://www.w3.org/2005/Atom";
    let links = container
        .children()
        .filter(|n| {
            n.has_tag_name((atom, "link")) && n.attribute("rel") != Some("alternate") && n.attribute("rel").is_some()
        })
        .map(|n| {
            (
                n.attribute("rel").unwrap().to_string(),
                n.attribute("href").unwrap().to_string(),
            )
        })
        .collect();
    let titles = container
        .children()
        .filter(|n| n.has_tag_name("item") || n.has_tag_name((atom, "entry")))
        .map(|n| {
            n.children()
                .find(|c| c.tag_name().name() == "title")
                .unwrap()
                .text()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    (links, titles)
}

/// Without `base_url` the origin's self and hub links are gone; with it and a hub, each feed
/// carries its own public url as self and the hub, in RSS (the namespace declared) and Atom.
#[tokio::test]
async fn self_and_hub_links_point_at_the_published_feed() {
    let origin = Origin::start().await;
    origin.serve(
        "/rss.xml",
        "application/rss+xml",
        rss(&[("a", "A", "https://origin.example/a")]).as_bytes(),
    );
    origin.serve("/atom.xml", "application/atom+xml", atom(&[("e1", "E1")]).as_bytes());
    let feeds = format!(
        "[[feeds]]\nname = \"news\"\nurl = \"{}\"\n[[feeds]]\nname = \"blog\"\nurl = \"{}\"\nkey = \"blogs/blog.atom\"\n",
        origin.url("/rss.xml"),
        origin.url("/atom.xml")
    );
    let bare = tempfile::tempdir().unwrap();
    let cfg = config(bare.path(), &format!("[solver]\nurl = \"{NO_SOLVER}\"\n{feeds}"));
    let out = refresh(bare.path(), &cfg).await;
    assert!(out.contains("news  updated") && out.contains("blog  updated"), "{out}");
    for file in ["news.xml", "blogs/blog.atom"] {
        let xml = std::fs::read_to_string(bare.path().join("public").join(file)).unwrap();
        let (links, titles) = read(&xml);
        assert!(
            links.is_empty(),
            "{file}: the origin's self and hub links are removed: {links:?}"
        );
        assert_eq!(titles.len(), 1);
    }

    let hub = FakeHub::start().await;
    let linked = tempfile::tempdir().unwrap();
    let site = format!(
        "[site]\nbase_url = \"https://feeds.example/\"\nwebsub_hub = \"{}\"\n[store]\ndir = \"public\"\nprefix = \"f/\"\n",
        hub.url
    );
    let cfg = config(
        linked.path(),
        &format!("[solver]\nurl = \"{NO_SOLVER}\"\n{site}{feeds}"),
    );
    let out = refresh(linked.path(), &cfg).await;
    assert!(out.contains("news  updated"), "{out}");
    let news = std::fs::read_to_string(linked.path().join("public/f/news.xml")).unwrap();
    let (links, _) = read(&news);
    assert_eq!(
        links,
        [
            ("self".to_string(), "https://feeds.example/f/news.xml".to_string()),
            ("hub".to_string(), hub.url.clone())
        ]
    );
    let blog = std::fs::read_to_string(linked.path().join("public/f/blogs/blog.atom")).unwrap();
    let (links, _) = read(&blog);
    assert_eq!(
        links[0],
        (
            "self".to_string(),
            "https://feeds.example/f/blogs/blog.atom".to_string()
        )
    );
    assert!(blog.contains(r#"type="application/atom+xml""#), "{blog}");
    let pinged: Vec<String> = hub.pings().into_iter().map(|(_, body)| body).collect();
    assert_eq!(pinged.len(), 2, "{pinged:?}");
    assert!(pinged.contains(&"hub.mode=publish&hub.url=https%3A%2F%2Ffeeds.example%2Ff%2Fnews.xml".to_string()));
}

/// One ping per publish that changed the feed, none for an unchanged one; a failing hub is
/// counted in the record and never fails the refresh.
#[tokio::test]
async fn the_hub_is_pinged_once_per_change() {
    let origin = Origin::start().await;
    let hub = FakeHub::start().await;
    origin.serve(
        "/rss.xml",
        "application/rss+xml",
        rss(&[("a", "A", "https://o/a")]).as_bytes(),
    );
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[solver]\nurl = \"{NO_SOLVER}\"\n[site]\nbase_url = \"https://feeds.example/\"\nwebsub_hub = \"{}\"\n[[feeds]]\nname = \"news\"\nurl = \"{}\"\n",
        hub.url,
        origin.url("/rss.xml")
    );
    let cfg = config(dir.path(), &text);
    assert!(refresh(dir.path(), &cfg).await.contains("news  updated"));
    assert_eq!(hub.pings().len(), 1);
    let (content_type, body) = &hub.pings()[0];
    assert_eq!(content_type, "application/x-www-form-urlencoded");
    assert_eq!(body, "hub.mode=publish&hub.url=https%3A%2F%2Ffeeds.example%2Fnews.xml");
    assert!(refresh(dir.path(), &cfg).await.contains("news  unchanged"));
    assert_eq!(hub.pings().len(), 1, "an unchanged refresh sends nothing");
    let forced = flarefeed_async(dir.path())
        .env_remove("FLAREFEED_FETCH")
        .args(["refresh", "--force", "--config", &cfg])
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&forced.stdout).contains("news  updated"));
    assert_eq!(
        hub.pings().len(),
        1,
        "a forced publish of the same feed changes nothing for the hub"
    );

    hub.fail(true);
    origin.serve(
        "/rss.xml",
        "application/rss+xml",
        rss(&[("b", "B", "https://o/b")]).as_bytes(),
    );
    let out = refresh(dir.path(), &cfg).await;
    assert!(out.contains("news  updated"), "a failing hub fails nothing: {out}");
    assert_eq!(hub.pings().len(), 2);
    let failing = record(dir.path(), "news");
    assert_eq!(failing["hub_failures"], 1);
    assert!(failing["hub_error"].as_str().unwrap().contains("500"), "{failing}");

    hub.fail(false);
    origin.serve(
        "/rss.xml",
        "application/rss+xml",
        rss(&[("c", "C", "https://o/c")]).as_bytes(),
    );
    assert!(refresh(dir.path(), &cfg).await.contains("news  updated"));
    assert_eq!(hub.pings().len(), 3);
    assert_eq!(
        record(dir.path(), "news").get("hub_failures"),
        None,
        "a ping that works clears the count"
    );
}

/// Items that left the site's feed stay, newest first, exactly as last published, up to
/// `items`; and no longer than `days` after they were first seen.
#[tokio::test]
async fn the_archive_keeps_dropped_items_within_both_bounds() {
    let origin = Origin::start().await;
    fn item(g: &'static str) -> (&'static str, &'static str, &'static str) {
        (g, g, "https://o/x")
    }
    origin.serve(
        "/rss.xml",
        "application/rss+xml",
        rss(&[item("A"), item("B"), item("C")]).as_bytes(),
    );
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[solver]\nurl = \"{NO_SOLVER}\"\n[[feeds]]\nname = \"news\"\nurl = \"{}\"\narchive = {{ items = 2, days = 1 }}\n",
        origin.url("/rss.xml")
    );
    let cfg = config(dir.path(), &text);
    assert!(
        refresh(dir.path(), &cfg)
            .await
            .contains("news  updated  rss 2.0, 3 items")
    );
    let first = published(dir.path(), "news");
    let a_as_published = {
        let start = first.find("<item>").unwrap();
        first[start..start + first[start..].find("</item>").unwrap() + 7].to_string()
    };

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    origin.serve(
        "/rss.xml",
        "application/rss+xml",
        rss(&[item("B"), item("C"), item("D")]).as_bytes(),
    );
    let out = refresh(dir.path(), &cfg).await;
    assert!(out.contains("news  updated  rss 2.0, 4 items"), "{out}");
    let (_, titles) = read(&published(dir.path(), "news"));
    assert_eq!(titles, ["B", "C", "D", "A"]);
    assert!(
        published(dir.path(), "news")
            .contains(&a_as_published.replace("<item>", "<item xmlns:dc=\"http://purl.org/dc/elements/1.1/\">")),
        "A is published exactly as it was, carrying the namespace it uses"
    );
    assert!(
        refresh(dir.path(), &cfg).await.contains("news  unchanged"),
        "the same origin, the same bytes"
    );

    // Two more leave: at most two archived, newest first: D (first seen after the others),
    // then A, above B and C on the site when the three were first seen together.
    origin.serve("/rss.xml", "application/rss+xml", rss(&[item("E")]).as_bytes());
    let out = refresh(dir.path(), &cfg).await;
    assert!(out.contains("news  updated"), "{out}");
    let (_, titles) = read(&published(dir.path(), "news"));
    assert_eq!(titles, ["E", "D", "A"]);

    // A day after A was first seen it leaves the archive (its first-seen time moved back, as a
    // day passing would).
    let memory_path = dir.path().join("public/status/items/news.json");
    let mut memory: Value = serde_json::from_slice(&std::fs::read(&memory_path).unwrap()).unwrap();
    let a = &mut memory["items"]["A"]["first"];
    *a = Value::from(a.as_i64().unwrap() - 86_401);
    std::fs::write(&memory_path, serde_json::to_vec(&memory).unwrap()).unwrap();
    let out = refresh(dir.path(), &cfg).await;
    assert!(out.contains("news  updated  rss 2.0, 2 items"), "{out}");
    let (_, titles) = read(&published(dir.path(), "news"));
    assert_eq!(titles, ["E", "D"]);
}

/// Atom works the same: entries known by their id.
#[tokio::test]
async fn the_archive_keeps_atom_entries() {
    let origin = Origin::start().await;
    origin.serve(
        "/atom.xml",
        "application/atom+xml",
        atom(&[("e1", "One"), ("e2", "Two")]).as_bytes(),
    );
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[solver]\nurl = \"{NO_SOLVER}\"\n[[feeds]]\nname = \"blog\"\nurl = \"{}\"\narchive = {{ items = 10, days = 30 }}\n",
        origin.url("/atom.xml")
    );
    let cfg = config(dir.path(), &text);
    assert!(refresh(dir.path(), &cfg).await.contains("blog  updated"));
    origin.serve("/atom.xml", "application/atom+xml", atom(&[("e3", "Three")]).as_bytes());
    assert!(
        refresh(dir.path(), &cfg)
            .await
            .contains("blog  updated  atom 1.0, 3 items")
    );
    let (_, titles) = read(&published(dir.path(), "blog"));
    assert_eq!(titles, ["Three", "One", "Two"]);
}

/// Block rules drop what matches; with allow rules only what matches one stays; the record
/// counts what was dropped.
#[tokio::test]
async fn block_and_allow_rules() {
    let origin = Origin::start().await;
    let items = [
        ("1", "Rust 1.95 released", "https://o/1"),
        ("2", "SPONSORED: rust hosting", "https://o/2"),
        ("3", "Go 1.30", "https://o/3"),
        ("4", "tokio 2.0", "https://o/4"),
    ];
    origin.serve("/rss.xml", "application/rss+xml", rss(&items).as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[solver]\nurl = \"{NO_SOLVER}\"\n[[feeds]]\nname = \"news\"\nurl = \"{}\"\n[[feeds.rules]]\nblock = \"(?i)sponsored\"\nfield = \"title\"\n[[feeds.rules]]\nallow = \"(?i)rust|tokio\"\n",
        origin.url("/rss.xml")
    );
    let cfg = config(dir.path(), &text);
    let out = refresh(dir.path(), &cfg).await;
    assert!(out.contains("news  updated  rss 2.0, 2 items"), "{out}");
    let (_, titles) = read(&published(dir.path(), "news"));
    assert_eq!(titles, ["Rust 1.95 released", "tokio 2.0"]);
    assert_eq!(record(dir.path(), "news")["rules_dropped"], 2);

    let bad = config(dir.path(), &text.replace("(?i)sponsored", "(unclosed"));
    let out = refresh(dir.path(), &bad).await;
    assert!(
        out.contains("`feeds[0].rules[0]`") && out.contains("not a regex"),
        "{out}"
    );
}

/// Full text: each article fetched once, at most `max_per_refresh` a refresh, over several
/// refreshes; a walled article through the solver; a 404 keeps the item's own text and is tried
/// three times in all; the same origin then publishes the same bytes.
#[tokio::test]
async fn full_text_fetches_each_article_once() {
    let origin = Origin::start().await;
    let fake = FakeSolver::start().await;
    let article = |n: &str| {
        format!(
            "<html><head><title>{n}</title></head><body><nav>menu</nav><article><div class=\"post-body\"><p>Full text of {n} <a href=\"/more\">more</a></p><script>x()</script></div></article></body></html>"
        )
    };
    origin.serve("/articles/1", "text/html", article("one").as_bytes());
    origin.serve("/articles/2", "text/html", article("two").as_bytes());
    let walled = origin.url("/challenge");
    fake.page(&walled, ok_reply(&walled, &article("walled")));
    let items = [
        ("1", "One", origin.url("/articles/1")),
        ("2", "Two", origin.url("/articles/2")),
        ("3", "Missing", origin.url("/404")),
        ("4", "Walled", walled.clone()),
    ];
    let items: Vec<(&str, &str, &str)> = items.iter().map(|(g, t, l)| (*g, *t, l.as_str())).collect();
    origin.serve("/rss.xml", "application/rss+xml", rss(&items).as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[solver]\nurl = \"{}\"\nsession = \"none\"\n[[feeds]]\nname = \"news\"\nurl = \"{}\"\n[feeds.full_text]\nselector = \"article .post-body\"\nmax_per_refresh = 2\n",
        fake.url,
        origin.url("/rss.xml")
    );
    let cfg = config(dir.path(), &text);
    let content_of = |xml: &str, guid: &str| -> Option<String> {
        let doc = roxmltree::Document::parse(xml).unwrap();
        let item = doc
            .descendants()
            .find(|n| n.has_tag_name("item") && n.children().any(|c| c.has_tag_name("guid") && c.text() == Some(guid)))
            .unwrap();
        item.children()
            .find(|c| c.has_tag_name(("http://purl.org/rss/1.0/modules/content/", "encoded")))
            .and_then(|c| c.text().map(str::to_string))
    };

    let out = refresh(dir.path(), &cfg).await;
    assert!(out.contains("news  updated"), "{out}");
    let xml = published(dir.path(), "news");
    assert_eq!(
        content_of(&xml, "1").as_deref(),
        Some(format!("<p>Full text of one <a href=\"{}\">more</a></p>", origin.url("/more")).as_str())
    );
    assert!(content_of(&xml, "2").is_some());
    assert_eq!(content_of(&xml, "3"), None, "beyond max_per_refresh: waits");
    assert_eq!(
        record(dir.path(), "news")["articles"],
        serde_json::json!({"cached": 2, "failed": 0, "waiting": 2})
    );

    let out = refresh(dir.path(), &cfg).await;
    assert!(out.contains("news  updated"), "{out}");
    let xml = published(dir.path(), "news");
    assert_eq!(content_of(&xml, "3"), None, "a 404 keeps the item's own text");
    assert!(xml.contains("Own text of 3"));
    assert!(
        content_of(&xml, "4").unwrap().contains("Full text of walled"),
        "through the solver"
    );
    assert_eq!(
        record(dir.path(), "news")["articles"],
        serde_json::json!({"cached": 3, "failed": 1, "waiting": 0})
    );

    for _ in 0..3 {
        refresh(dir.path(), &cfg).await;
    }
    assert_eq!(origin.requests("/articles/1").len(), 1, "each article fetched once");
    assert_eq!(origin.requests("/articles/2").len(), 1);
    assert_eq!(
        origin.requests("/404").len(),
        3,
        "a failing article is tried three times in all"
    );
    let solved = fake.log().iter().filter(|c| c["url"] == walled.as_str()).count();
    assert_eq!(solved, 1, "the walled article went to the solver once");
    let before = published(dir.path(), "news");
    let out = refresh(dir.path(), &cfg).await;
    assert!(out.contains("news  unchanged"), "{out}");
    assert_eq!(published(dir.path(), "news"), before);
}

/// A feed with none of these options and no self or hub link is published exactly as the
/// formatter alone makes it.
#[tokio::test]
async fn a_feed_without_options_or_links_is_published_as_before() {
    let origin = Origin::start().await;
    let text = rss(&[("a", "A", "https://o/a")])
        .replace(r#"<atom:link href="https://origin.example/rss.xml" rel="self" type="application/rss+xml"/><atom:link href="https://origin-hub.example/" rel="hub"/>"#, "");
    origin.serve("/rss.xml", "application/rss+xml", text.as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "[solver]\nurl = \"{NO_SOLVER}\"\n[[feeds]]\nname = \"news\"\nurl = \"{}\"\n",
            origin.url("/rss.xml")
        ),
    );
    assert!(refresh(dir.path(), &cfg).await.contains("news  updated"));
    assert_eq!(
        published(dir.path(), "news"),
        flarefeed::feed::format(&text).unwrap().to_xml()
    );
}

/// A feed built from a page gets its self link too, and keeps its dropped items.
#[tokio::test]
async fn a_feed_built_from_a_page_gets_the_same() {
    let origin = Origin::start().await;
    let page = |posts: &[&str]| {
        let items: String = posts
            .iter()
            .map(|p| format!("<li class=\"post\"><a href=\"/t/{p}\">{p}</a></li>"))
            .collect();
        format!("<html><head><title>Board</title></head><body><ul>{items}</ul></body></html>")
    };
    origin.serve("/board", "text/html", page(&["p1", "p2"]).as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[solver]\nurl = \"{NO_SOLVER}\"\n[site]\nbase_url = \"https://feeds.example/\"\n[[feeds]]\nname = \"board\"\nurl = \"{}\"\narchive = {{ items = 5 }}\n[feeds.html]\nitem = \"li.post\"\ntitle = \"a\"\nlink = \"a@href\"\n",
        origin.url("/board")
    );
    let cfg = config(dir.path(), &text);
    assert!(
        refresh(dir.path(), &cfg)
            .await
            .contains("board  updated  atom 1.0, 2 items")
    );
    let (links, _) = read(&published(dir.path(), "board"));
    assert_eq!(
        links,
        [("self".to_string(), "https://feeds.example/board.xml".to_string())]
    );
    origin.serve("/board", "text/html", page(&["p3"]).as_bytes());
    let out = refresh(dir.path(), &cfg).await;
    assert!(out.contains("board  updated  atom 1.0, 3 items"), "{out}");
    let (_, titles) = read(&published(dir.path(), "board"));
    assert_eq!(titles, ["p3", "p1", "p2"]);
}

/// Every store request a refresh makes, by key.
#[derive(Default)]
struct Counted {
    reads: std::sync::Mutex<Vec<String>>,
    writes: std::sync::Mutex<Vec<String>>,
}

struct CountingStore {
    inner: std::sync::Arc<dyn flarefeed::store::Store>,
    counted: std::sync::Arc<Counted>,
}

#[async_trait::async_trait]
impl flarefeed::store::Store for CountingStore {
    async fn head(&self, key: &str) -> Result<Option<flarefeed::store::ObjectInfo>, flarefeed::store::StoreError> {
        self.counted.reads.lock().unwrap().push(key.into());
        self.inner.head(key).await
    }

    async fn get(&self, key: &str) -> Result<Option<flarefeed::store::Stored>, flarefeed::store::StoreError> {
        self.counted.reads.lock().unwrap().push(key.into());
        self.inner.get(key).await
    }

    async fn put(
        &self,
        key: &str,
        body: flarefeed::store::Body,
        options: flarefeed::store::PutOptions<'_>,
    ) -> Result<flarefeed::store::Version, flarefeed::store::StoreError> {
        self.counted.writes.lock().unwrap().push(key.into());
        self.inner.put(key, body, options).await
    }

    async fn list(&self, folder: &str) -> Result<Vec<String>, flarefeed::store::StoreError> {
        self.inner.list(folder).await
    }

    fn locate(&self, key: &str) -> String {
        self.inner.locate(key)
    }

    fn clock_offset(&self) -> Option<time::Duration> {
        self.inner.clock_offset()
    }
}

impl Counted {
    /// The requests since the last call, the status site's left out: `(reads, writes)`.
    fn take(&self) -> (Vec<String>, Vec<String>) {
        let feeds_and_records = |keys: Vec<String>| -> Vec<String> {
            keys.into_iter()
                .filter(|k| {
                    !k.starts_with("index.") && k != "status/index.json" && k != "feeds.opml" && !k.ends_with(".svg")
                })
                .collect()
        };
        let reads = std::mem::take(&mut *self.reads.lock().unwrap());
        let writes = std::mem::take(&mut *self.writes.lock().unwrap());
        (feeds_and_records(reads), feeds_and_records(writes))
    }
}

/// The item memory's cost, on moto's S3, for a queued refresh of a feed with an archive, full
/// text and rules: a change writes the memory once before the feed; an unchanged refresh reads
/// the record and the memory and writes nothing.
#[tokio::test]
async fn the_item_memory_costs_one_read_and_no_write_when_nothing_changed() {
    use crate::helpers::{Backend, FEED_URL, TestApp};
    use flarefeed::config::FeedConfig;
    use flarefeed::outcome::Outcome;
    use flarefeed::refresh::RefreshOptions;
    let counted = std::sync::Arc::new(Counted::default());
    let seen = counted.clone();
    let feed = FeedConfig {
        archive: Some(flarefeed::rewrite::Archive { items: 50, days: 30 }),
        full_text: Some(flarefeed::rewrite::FullText {
            selector_text: "article".into(),
            selector: flarefeed::scrape::selector_from("article").unwrap(),
            max_per_refresh: 5,
        }),
        rules: vec![flarefeed::rewrite::Rule::parse(Some("(?i)sponsored"), None, None).unwrap()],
        ..FeedConfig::new("news", FEED_URL)
    };
    let test = TestApp::builder()
        .backend(Backend::Moto)
        .feeds(vec![feed])
        .store_through(move |inner| std::sync::Arc::new(CountingStore { inner, counted: seen }))
        .start()
        .await;
    let article_url = "https://origin.example.test/a";
    test.fake.page(
        article_url,
        ok_reply(article_url, "<html><body><article><p>Full</p></article></body></html>"),
    );
    test.fake
        .page(FEED_URL, ok_reply(FEED_URL, &rss(&[("a", "A", article_url)])));

    let first = test.refresh(RefreshOptions::queued(None)).await;
    assert_eq!(first.outcome, Outcome::Updated);
    let (reads, writes) = counted.take();
    assert_eq!(
        writes,
        ["status/items/news.json", "news.xml", "status/news.json"],
        "{writes:?}"
    );
    assert_eq!(
        reads,
        ["status/news.json", "news.xml", "status/items/news.json"],
        "{reads:?}"
    );

    for _ in 0..3 {
        let again = test.refresh(RefreshOptions::queued(None)).await;
        assert_eq!(again.outcome, Outcome::Unchanged);
        let (reads, writes) = counted.take();
        assert_eq!(
            reads,
            ["status/news.json", "status/items/news.json"],
            "one read more: the memory"
        );
        assert!(writes.is_empty(), "{writes:?}");
    }
}
