//! Feeds built from pages that have none (`[feeds.html]`, `[feeds.json]`), through the real
//! binary against a loopback site and the fake solver. What the page holds is read a second
//! way, by lxml's HTML parser and XPath (libxml2), and the published Atom by lxml's XML parser:
//! neither is flarefeed's own code.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::fake_solver::{Action, FakeSolver, ok_reply, pre_wrapped};
use crate::helpers::fixtures::fixture;
use crate::helpers::origin::{CHALLENGE_PAGE, Origin};
use crate::helpers::{flarefeed_async, tools};

/// The binary in `dir`, feeds fetched as the configuration says.
async fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = flarefeed_async(dir)
        .env_remove("FLAREFEED_FETCH")
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `flarefeed.toml` in `dir`, the solver at `solver`, and `feeds`.
fn config(dir: &Path, solver: &str, feeds: &str) -> String {
    let path = dir.join("flarefeed.toml");
    let text = format!("[solver]\nurl = \"{solver}\"\nsession = \"none\"\n[store]\ndir = \"public\"\n{feeds}");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn board(name: &str, url: &str) -> String {
    format!(
        r#"
[[feeds]]
name = "{name}"
url = "{url}"
[feeds.html]
item = "li.post-list-item"
title = ".post-title a"
link = ".post-title a@href"
date = "time@datetime"
author = ".info-author a"
id = "@data-pid"
"#
    )
}

fn record(dir: &Path, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(format!("public/status/{name}.json"))).unwrap()).unwrap()
}

fn published(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(format!("public/{name}.xml"))).unwrap()
}

/// No solver listens on this port.
const NO_SOLVER: &str = "http://127.0.0.1:9/v1";

/// lxml reads the page (HTML, XPath) and the published feed (XML, strictly): both as JSON.
const ORACLE: &str = r#"
import json, sys
from datetime import datetime
from urllib.parse import urljoin
from lxml import etree, html

page_file, page_url, item_xpath, title_xpath, link_xpath, date_xpath, feed_file = sys.argv[1:]
doc = html.parse(page_file).getroot()
base = doc.xpath("//base/@href")
base = urljoin(page_url, base[0]) if base else page_url
def stamp(text):
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
page = []
for item in doc.xpath(item_xpath):
    title = item.xpath(title_xpath)
    link = item.xpath(link_xpath)
    if not title or not link:
        continue
    date = item.xpath(date_xpath) if date_xpath else []
    page.append({"title": " ".join(title[0].text_content().split()),
                 "link": urljoin(base, link[0].strip()),
                 "date": stamp(date[0]) if date else None})
ns = {"a": "http://www.w3.org/2005/Atom"}
feed = etree.parse(feed_file, etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
entries = []
for entry in feed.xpath("a:entry", namespaces=ns):
    published = entry.xpath("a:published/text()", namespaces=ns)
    entries.append({"id": entry.xpath("a:id/text()", namespaces=ns)[0],
                    "title": entry.xpath("a:title/text()", namespaces=ns)[0],
                    "link": entry.xpath("a:link[@rel='alternate']/@href", namespaces=ns)[0],
                    "updated": stamp(entry.xpath("a:updated/text()", namespaces=ns)[0]),
                    "date": stamp(published[0]) if published else None,
                    "author": (entry.xpath("a:author/a:name/text()", namespaces=ns) or [None])[0],
                    "content": (entry.xpath("a:content/text()", namespaces=ns) or [None])[0]})
print(json.dumps({"page": page, "title": feed.xpath("a:title/text()", namespaces=ns)[0],
                  "id": feed.xpath("a:id/text()", namespaces=ns)[0], "entries": entries}))
"#;

/// The XPath twins of the board's selectors.
const BOARD_XPATHS: [&str; 4] = [
    "//li[contains(concat(' ', normalize-space(@class), ' '), ' post-list-item ')]",
    ".//div[contains(concat(' ', normalize-space(@class), ' '), ' post-title ')]//a",
    ".//div[contains(concat(' ', normalize-space(@class), ' '), ' post-title ')]//a/@href",
    ".//time/@datetime",
];

/// The oracle's reading of `page` at `page_url` and of the feed `name` published in `dir`.
fn oracle(dir: &Path, page: &str, page_url: &str, xpaths: [&str; 4], name: &str) -> Value {
    let page_file = dir.join("page-for-the-oracle.html");
    std::fs::write(&page_file, page).unwrap();
    let feed_file = dir.join(format!("public/{name}.xml"));
    let out = std::process::Command::new(tools::python())
        .arg("-c")
        .arg(ORACLE)
        .arg(&page_file)
        .arg(page_url)
        .args(xpaths)
        .arg(&feed_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "oracle: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A CJK forum board (relative hrefs, entities, an advert among the posts) becomes an Atom feed
/// whose entries are the page's posts in order, as lxml reads them; a second refresh, in a new
/// process, writes nothing.
#[tokio::test]
async fn a_forum_board_becomes_the_atom_feed_of_its_posts() {
    let origin = Origin::start().await;
    let page = fixture("scrape/forum-board.html");
    origin.serve("/categories/tech", "text/html; charset=utf-8", page.as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let url = origin.url("/categories/tech");
    let config = config(dir.path(), NO_SOLVER, &board("board", &url));

    let (ok, out, err) = run(dir.path(), &["refresh", "--config", &config]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("board  updated  atom 1.0, 30 items"), "{out}");
    assert!(
        out.contains("[1 of 31 skipped, 0 dates unreadable"),
        "the advert is counted: {out}"
    );
    let seen = oracle(dir.path(), &page, &url, BOARD_XPATHS, "board");
    let (page_items, entries) = (seen["page"].as_array().unwrap(), seen["entries"].as_array().unwrap());
    assert_eq!(page_items.len(), 30);
    assert_eq!(entries.len(), 30);
    for (item, entry) in page_items.iter().zip(entries) {
        assert_eq!(entry["title"], item["title"]);
        assert_eq!(entry["link"], item["link"]);
        assert_eq!(entry["date"], item["date"]);
        assert_eq!(entry["updated"], item["date"], "a dated post is updated at its date");
    }
    assert_eq!(seen["title"], "技术 - NodeSeek");
    assert_eq!(seen["id"], url);
    let first = &entries[0];
    assert_eq!(first["title"], "甲骨文 ARM 免费机开机脚本 & 讨论 <0>");
    assert_eq!(first["link"], origin.url("/post-512345-1"));
    assert_eq!(first["id"], format!("{url}#512345"));
    assert_eq!(first["author"], "用户一");
    let record = record(dir.path(), "board");
    assert_eq!(
        record["page"],
        json!({"matched": 31, "skipped": 1, "unreadable_dates": 0})
    );
    assert_eq!(record["fetched_by"], "direct");
    assert!(dir.path().join("public/status/items/board.json").exists());

    let before = published(dir.path(), "board");
    let memory = std::fs::read(dir.path().join("public/status/items/board.json")).unwrap();
    let (ok, out, err) = run(dir.path(), &["refresh", "--config", &config]).await;
    assert!(ok && out.contains("board  unchanged"), "{out}{err}");
    assert_eq!(published(dir.path(), "board"), before);
    assert_eq!(
        std::fs::read(dir.path().join("public/status/items/board.json")).unwrap(),
        memory,
        "an unchanged page writes no memory"
    );
}

/// A blog whose posts carry no date: each is dated by when flarefeed first saw it, and that
/// time holds across refreshes in new processes, for a new post (its own time), and for a post
/// that leaves the page and comes back.
#[tokio::test]
async fn first_seen_times_hold_across_processes() {
    let origin = Origin::start().await;
    let page = fixture("scrape/blog.html");
    origin.serve("/notes/", "text/html", page.as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let url = origin.url("/notes/");
    let feeds = format!(
        r#"
[[feeds]]
name = "notes"
url = "{url}"
[feeds.html]
item = "article.entry"
title = "h2 a"
link = "h2 a@href"
content = ".excerpt"
"#
    );
    let config = config(dir.path(), NO_SOLVER, &feeds);
    let xpaths = ["//article[@class='entry']", ".//h2//a", ".//h2//a/@href", ""];
    let args = ["refresh", "--config", config.as_str()];
    let refresh = || run(dir.path(), &args);
    let (ok, out, err) = refresh().await;
    assert!(ok, "{out}{err}");
    let first = oracle(dir.path(), &page, &url, xpaths, "notes");
    let entries = first["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    for (item, entry) in first["page"].as_array().unwrap().iter().zip(entries) {
        assert_eq!((&entry["title"], &entry["link"]), (&item["title"], &item["link"]));
        assert_eq!(entry["date"], Value::Null, "no date on the page, none published");
    }
    assert_eq!(entries[0]["title"], "On Rust “lifetimes”, again");
    assert_eq!(entries[0]["link"], origin.url("/notes/on-rust-lifetimes.html"));
    let content = entries[1]["content"].as_str().unwrap();
    assert!(
        content.contains(&format!("href=\"{}\"", origin.url("/about.html"))),
        "{content}"
    );
    assert!(!content.contains("script"), "{content}");
    assert_eq!(first["author"], Value::Null);
    let seen_at = entries[0]["updated"].as_i64().unwrap();
    assert!(entries.iter().all(|e| e["updated"] == seen_at));
    let bytes = published(dir.path(), "notes");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (ok, out, _) = refresh().await;
    assert!(ok && out.contains("notes  unchanged"), "{out}");
    assert_eq!(published(dir.path(), "notes"), bytes, "the same times, the same bytes");

    // A new post, at the top; then the oldest leaves the page and comes back.
    let new_post = r#"<article class="entry"><h2><a href="late.html">A late post</a></h2><div class="excerpt">new</div></article>"#;
    let with_new = page.replace("<main>\n", &format!("<main>\n{new_post}\n"));
    origin.serve("/notes/", "text/html", with_new.as_bytes());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (ok, out, _) = refresh().await;
    assert!(ok && out.contains("notes  updated"), "{out}");
    let later = oracle(dir.path(), &with_new, &url, xpaths, "notes");
    let entries = later["entries"].as_array().unwrap();
    assert_eq!(entries[0]["title"], "A late post");
    assert!(
        entries[0]["updated"].as_i64().unwrap() > seen_at,
        "a new post gets its own time"
    );
    assert!(
        entries[1..].iter().all(|e| e["updated"] == seen_at),
        "the others keep theirs"
    );

    let tea = r#"<article class="entry"><h2 class="entry-title"><a href="tea.html">Tea, properly</a></h2>"#;
    let start = with_new.find(tea).unwrap();
    let end = start + with_new[start..].find("</article>").unwrap() + "</article>".len();
    let without_tea = format!("{}{}", &with_new[..start], &with_new[end..]);
    origin.serve("/notes/", "text/html", without_tea.as_bytes());
    let (ok, out, _) = refresh().await;
    assert!(ok && out.contains("notes  updated  atom 1.0, 4 items"), "{out}");
    origin.serve("/notes/", "text/html", with_new.as_bytes());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (ok, out, _) = refresh().await;
    assert!(ok && out.contains("notes  updated  atom 1.0, 5 items"), "{out}");
    let back = oracle(dir.path(), &with_new, &url, xpaths, "notes");
    let tea = back["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["title"] == "Tea, properly")
        .unwrap()
        .clone();
    assert_eq!(
        tea["updated"], seen_at,
        "a post back within 30 days keeps its first-seen time"
    );
}

/// A redesign: the item selector finds nothing. The refresh fails at `extract`, names the
/// selector and the page's title, and the last good copy stays; so does the item memory.
#[tokio::test]
async fn a_redesigned_page_keeps_the_last_good_copy_and_names_the_selector() {
    let (origin, dir, config) = board_site().await;
    let (ok, out, err) = run(dir.path(), &["refresh", "--config", &config]).await;
    assert!(ok, "{out}{err}");
    let good = published(dir.path(), "board");
    let memory = std::fs::read(dir.path().join("public/status/items/board.json")).unwrap();

    let redesigned = redesigned();
    origin.serve("/categories/tech", "text/html", redesigned.as_bytes());
    let (ok, out, _) = run(dir.path(), &["refresh", "--config", &config]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("board  failed at extract"), "{out}");
    assert!(
        out.contains(r#"the item selector "li.post-list-item" matched nothing on the page titled "技术 - NodeSeek""#),
        "{out}"
    );
    assert_eq!(published(dir.path(), "board"), good);
    assert_eq!(
        std::fs::read(dir.path().join("public/status/items/board.json")).unwrap(),
        memory
    );
    let record = record(dir.path(), "board");
    assert!(
        record["last_error"]
            .as_str()
            .unwrap()
            .starts_with("extract: the item selector")
    );
    assert_eq!(record["outcome"], "failed");

    // Items found, but the title selector finds nothing in any: that selector is named.
    let broken_titles = fixture("scrape/forum-board.html").replace("post-title", "headline");
    origin.serve("/categories/tech", "text/html", broken_titles.as_bytes());
    let (ok, out, _) = run(dir.path(), &["refresh", "--config", &config]).await;
    assert!(!ok);
    assert!(
        out.contains(r#"all 31 items that "li.post-list-item" matched were skipped"#),
        "{out}"
    );
    assert!(out.contains("`title` (\".post-title a\")"), "{out}");
    assert_eq!(published(dir.path(), "board"), good);
}

/// A page behind a challenge (HTTP 403, or a 200 challenge page) goes to the solver, whose
/// Chrome DOM is read by the same selectors; the record says the solver fetched it.
#[tokio::test]
async fn a_challenge_in_front_of_the_page_goes_to_the_solver() {
    let origin = Origin::start().await;
    origin.serve("/walled-200", "text/html", CHALLENGE_PAGE.as_bytes());
    let fake = FakeSolver::start().await;
    let page = fixture("scrape/forum-board.html");
    let walled_403 = origin.url("/challenge");
    let walled_200 = origin.url("/walled-200");
    for url in [&walled_403, &walled_200] {
        fake.page(url, ok_reply(url, &page));
    }
    let dir = tempfile::tempdir().unwrap();
    let feeds = format!(
        "{}{}",
        board("behind-403", &walled_403),
        board("behind-200", &walled_200)
    );
    let config = config(dir.path(), &fake.url, &feeds);
    let (ok, out, err) = run(dir.path(), &["refresh", "--config", &config]).await;
    assert!(ok, "{out}{err}");
    for (name, url) in [("behind-403", &walled_403), ("behind-200", &walled_200)] {
        assert!(out.contains(&format!("{name}  updated  atom 1.0, 30 items")), "{out}");
        let record = record(dir.path(), name);
        assert_eq!(record["fetched_by"], "solver", "{name}");
        assert_eq!(record["direct"], "challenge", "{name}");
        let seen = oracle(dir.path(), &page, url, BOARD_XPATHS, name);
        assert_eq!(seen["entries"].as_array().unwrap().len(), 30);
        assert_eq!(seen["entries"][0]["link"], origin.url("/post-512345-1"));
    }
}

/// A JSON API: read directly, through the official build (Chrome's JSON view) and through the
/// PyPI build (a JSON value), it publishes the same entries.
#[tokio::test]
async fn a_json_api_publishes_by_any_route() {
    let origin = Origin::start().await;
    let api = fixture("scrape/api-posts.json");
    origin.serve("/api/posts", "application/json", api.as_bytes());
    let fake = FakeSolver::start().await;
    let (official, pypi) = (origin.url("/api/official"), origin.url("/api/pypi"));
    let json_view = pre_wrapped(&api).replace(
        "</pre></body></html>",
        "</pre><div class=\"json-formatter-container\"></div></body></html>",
    );
    fake.page(&official, ok_reply(&official, &json_view));
    let value: Value = serde_json::from_str(&api).unwrap();
    let pypi_reply =
        json!({"status": "ok", "message": "", "solution": {"url": pypi, "status": 200, "response": value}});
    fake.page(&pypi, Action::Reply(200, pypi_reply.to_string()));
    let source = |name: &str, url: &str, fetch: &str| {
        format!(
            r#"
[[feeds]]
name = "{name}"
url = "{url}"
fetch = "{fetch}"
[feeds.json]
items = "data.posts"
title = "title"
link_template = "https://forum.example/post/{{slug}}"
content = "excerpt"
date = "created_at"
author = "user.name"
id = "id"
feed_title = "站点公告"
"#
        )
    };
    let feeds = [
        source("direct", &origin.url("/api/posts"), "auto"),
        source("official", &official, "solver"),
        source("pypi", &pypi, "solver"),
    ]
    .concat();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &fake.url, &feeds);
    let (ok, out, err) = run(dir.path(), &["refresh", "--config", &config]).await;
    assert!(ok, "{out}{err}");
    for name in ["direct", "official", "pypi"] {
        assert!(out.contains(&format!("{name}  updated  atom 1.0, 3 items")), "{out}");
        let xml = String::from_utf8(published(dir.path(), name)).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let entries: Vec<_> = doc
            .root_element()
            .children()
            .filter(|n| n.has_tag_name("entry"))
            .collect();
        let text = |entry: &roxmltree::Node, tag: &str| {
            entry
                .children()
                .find(|n| n.has_tag_name(tag))
                .and_then(|n| n.text())
                .map(str::to_string)
        };
        let got: Vec<_> = entries
            .iter()
            .map(|e| (text(e, "title"), text(e, "published"), text(e, "content")))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Some("新版 API 文档发布".into()),
                    Some("2026-12-03T08:00:00+08:00".into()),
                    Some("<p>见 <a href=\"/docs\">文档</a></p>".into())
                ),
                (
                    Some("Maintenance window".into()),
                    Some("2025-12-03T00:00:00Z".into()),
                    Some("<p>Saturday 02:00 UTC</p>".into())
                ),
                (Some("毫秒时间戳".into()), Some("2025-12-02T00:00:00Z".into()), None),
            ],
            "{name}"
        );
        let ids: Vec<_> = entries.iter().map(|e| text(e, "id").unwrap()).collect();
        assert!(ids[0].ends_with("#901"), "{ids:?}");
        assert!(xml.contains("<title>站点公告</title>"), "{xml}");
        assert!(
            xml.contains("href=\"https://forum.example/post/new-api-docs\""),
            "{xml}"
        );
    }
    assert_eq!(record(dir.path(), "direct")["fetched_by"], "direct");
    assert_eq!(record(dir.path(), "official")["fetched_by"], "solver");
}

/// `preview` fetches the page, prints what would be published and what was skipped, and writes
/// nothing; with a page no item comes from, it exits 1 and says why.
#[tokio::test]
async fn preview_shows_the_items_and_writes_nothing() {
    let (origin, dir, config) = board_site().await;

    let (ok, out, err) = run(dir.path(), &["preview", "board", "--config", &config]).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.starts_with("board  \"技术 - NodeSeek\"  30 items of 31 matched (fetched direct)"),
        "{out}"
    );
    assert!(
        out.contains("2026-12-03 23:00 +00:00   甲骨文 ARM 免费机开机脚本 & 讨论 <0>"),
        "{out}"
    );
    assert!(out.contains(&origin.url("/post-512345-1")), "{out}");
    assert!(
        out.contains("item 6: no title: `title` (\".post-title a\") found nothing in it"),
        "{out}"
    );

    let (ok, out, _) = run(dir.path(), &["preview", "board", "--config", &config, "--json"]).await;
    assert!(ok);
    let previewed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(previewed["items"].as_array().unwrap().len(), 30);
    assert_eq!(previewed["items"][0]["author"], "用户一");
    assert_eq!(previewed["items"][0]["date"], "2026-12-03T23:00:07+00:00");
    assert_eq!(previewed["skipped"][0]["item"], 6);

    let saved = dir.path().join("board-saved.html");
    std::fs::write(&saved, redesigned()).unwrap();
    let (ok, out, err) = run(
        dir.path(),
        &[
            "preview",
            "board",
            "--config",
            &config,
            "--page",
            saved.to_str().unwrap(),
        ],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        err.contains("the item selector \"li.post-list-item\" matched nothing"),
        "{err}"
    );
    assert!(!dir.path().join("public").exists(), "preview wrote nothing");
}

/// The forum board served by a loopback site, and a configuration for it in a folder of its own.
async fn board_site() -> (Origin, tempfile::TempDir, String) {
    let origin = Origin::start().await;
    origin.serve(
        "/categories/tech",
        "text/html",
        fixture("scrape/forum-board.html").as_bytes(),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), NO_SOLVER, &board("board", &origin.url("/categories/tech")));
    (origin, dir, config)
}

/// The board after a redesign: new class names, so the configured selectors find nothing.
fn redesigned() -> String {
    fixture("scrape/forum-board.html")
        .replace("post-list-item", "topic-row")
        .replace("class=\"post-list\"", "class=\"topics\"")
        .replace("post-title", "topic-title")
}

/// On S3 (moto's server): the item memory is written with a conditional write beside the
/// records, once when the items change and never for an unchanged page; a changed page updates
/// it over the version read.
#[tokio::test]
async fn the_item_memory_lives_in_s3_beside_the_records() {
    use crate::helpers::s3_server::{BUCKET, MotoServer, S3Endpoint};
    let origin = Origin::start().await;
    let page = fixture("scrape/forum-board.html");
    origin.serve("/categories/tech", "text/html", page.as_bytes());
    let moto = MotoServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flarefeed.toml");
    let store = format!(
        "[store]\nbucket = \"{BUCKET}\"\nendpoint = \"{}\"\npath_style = true\nprefix = \"feeds/\"\n",
        moto.endpoint
    );
    let text = format!(
        "[solver]\nurl = \"{NO_SOLVER}\"\n{store}{}",
        board("board", &origin.url("/categories/tech"))
    );
    std::fs::write(&path, text).unwrap();
    let refresh = || async {
        let mut command = flarefeed_async(dir.path());
        command
            .env_remove("FLAREFEED_FETCH")
            .args(["refresh", "--config", path.to_str().unwrap()]);
        command.envs(moto.env());
        let out = command.output().await.unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let etag = |key: &'static str| {
        let request = moto.client().head_object().bucket(BUCKET).key(key);
        async move { request.send().await.unwrap().e_tag().unwrap().to_string() }
    };
    let out = refresh().await;
    assert!(out.contains("board  updated  atom 1.0, 30 items"), "{out}");
    let memory: Value = serde_json::from_str(&moto.text("feeds/status/items/board.json").await).unwrap();
    let url = origin.url("/categories/tech");
    assert_eq!(memory["items"].as_object().unwrap().len(), 30);
    assert!(memory["items"][format!("{url}#512345")]["first"].is_i64(), "{memory}");
    let written = etag("feeds/status/items/board.json").await;

    let out = refresh().await;
    assert!(out.contains("board  unchanged"), "{out}");
    assert_eq!(
        etag("feeds/status/items/board.json").await,
        written,
        "an unchanged page writes no memory"
    );

    let fewer = page.replace(
        "<li class=\"post-list-item\" data-pid=\"512345\">",
        "<li class=\"gone\">",
    );
    origin.serve("/categories/tech", "text/html", fewer.as_bytes());
    let out = refresh().await;
    assert!(out.contains("board  updated  atom 1.0, 29 items"), "{out}");
    let memory: Value = serde_json::from_str(&moto.text("feeds/status/items/board.json").await).unwrap();
    assert!(
        memory["items"][format!("{url}#512345")]["gone"].is_i64(),
        "the post that left is kept: {memory}"
    );
}
