//! The status site (issue 19): written by refreshes through the real binary into a folder and
//! into S3 (moto), kept by conditional writes when refreshes finish together, and rendered by a
//! real browser (Debian's headless Chromium).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use flarefeed::config::FeedConfig;
use flarefeed::refresh::{Outcome, RefreshOptions};
use serde_json::Value;

use crate::helpers::fake_solver::{FakeSolver, error_reply};
use crate::helpers::s3_server::{BUCKET, MotoServer, S3Endpoint};
use crate::helpers::{Backend, FEED_URL, TestApp, flarefeed_async, rss_page};

/// The four files a refresh writes, beside the feeds.
const FILES: [&str; 4] = ["index.html", "feeds.opml", "index.json", "status/good.svg"];

/// A secret in a feed's url: userinfo and a query token, neither of which may reach the site.
const SECRET_URL: &str = "https://reader:hunter2@secret.example.test/feed.xml?token=s3cr3t";

fn config_text(solver: &str, store: &str) -> String {
    format!(
        "[solver]\nurl = \"{solver}\"\nsession = \"none\"\n{store}\n[site]\ntitle = \"Test feeds <&>\"\n\
         [[feeds]]\nname = \"good\"\nurl = \"{FEED_URL}\"\n\
         [[feeds]]\nname = \"bad\"\nurl = \"https://bad.example.test/feed\"\n\
         [[feeds]]\nname = \"secret\"\nurl = \"{SECRET_URL}\"\n\
         [[feeds]]\nname = \"later\"\nurl = \"https://later.example.test/feed\"\n"
    )
}

/// Runs `flarefeed refresh good bad secret` in `dir` against `fake`: good publishes, bad and
/// secret fail, later is never refreshed.
async fn refresh(dir: &Path, config: &Path, env: &[(&'static str, String)]) {
    let out = flarefeed_async(dir)
        .args(["refresh", "good", "bad", "secret", "--config"])
        .arg(config)
        .envs(env.iter().cloned())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
}

fn fake_with_one_good_feed(fake: &FakeSolver) {
    fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    fake.page(
        "https://bad.example.test/feed",
        error_reply("Error: Error solving the challenge. Cloudflare has blocked this request."),
    );
    fake.page(
        SECRET_URL,
        error_reply("Error: Error solving the challenge. Timeout after 5.0 seconds."),
    );
}

/// What every site file must show, wherever it was written.
fn check_site(file: impl Fn(&str) -> Option<Vec<u8>>) {
    for name in FILES {
        let body = file(name).unwrap_or_else(|| panic!("{name} was not written"));
        let text = String::from_utf8(body).unwrap();
        for secret in ["hunter2", "reader:", "s3cr3t", "token="] {
            assert!(!text.contains(secret), "{name} holds {secret:?}:\n{text}");
        }
    }
    let index: Value = serde_json::from_slice(&file("index.json").unwrap()).unwrap();
    let state = |name: &str| {
        index["feeds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {index}"))["state"]
            .clone()
    };
    assert_eq!(state("good"), "ok");
    assert_eq!(state("bad"), "failing");
    assert_eq!(state("secret"), "failing");
    assert_eq!(state("later"), "never");
    let opml = String::from_utf8(file("feeds.opml").unwrap()).unwrap();
    assert!(opml.contains("xmlUrl=\"good.xml\""), "{opml}");
    for unpublished in ["bad", "secret", "later"] {
        assert!(!opml.contains(&format!("text=\"{unpublished}\"")), "{opml}");
    }
    let html = String::from_utf8(file("index.html").unwrap()).unwrap();
    assert!(
        html.contains("<title>Test feeds &lt;&amp;&gt;</title>"),
        "the title is escaped"
    );
    assert!(html.contains("Cloudflare blocked FlareSolverr"), "the error is shown");
    let badge = String::from_utf8(file("status/good.svg").unwrap()).unwrap();
    assert!(badge.starts_with("<svg") && badge.contains(">ok<"), "{badge}");
    let failing = String::from_utf8(file("status/bad.svg").unwrap()).unwrap();
    assert!(failing.contains(">failing<"), "{failing}");
}

/// Refreshes into a folder through the real binary: all four files, the states, the OPML of
/// published feeds only, no secret anywhere.
#[tokio::test]
async fn refreshes_write_the_site_into_a_folder() {
    let fake = FakeSolver::start().await;
    fake_with_one_good_feed(&fake);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flarefeed.toml");
    std::fs::write(&config, config_text(&fake.url, "[store]\ndir = \"out\"")).unwrap();
    refresh(dir.path(), &config, &[]).await;
    check_site(|name| std::fs::read(dir.path().join("out").join(name)).ok());
}

/// The same into S3, on moto, through the real binary; and the pages' headers.
#[tokio::test]
async fn refreshes_write_the_site_into_s3() {
    let fake = FakeSolver::start().await;
    fake_with_one_good_feed(&fake);
    let moto = MotoServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flarefeed.toml");
    let store = format!(
        "[store]\nbucket = \"{BUCKET}\"\nendpoint = \"{}\"\npath_style = true\nprefix = \"feeds/\"",
        moto.endpoint
    );
    std::fs::write(&config, config_text(&fake.url, &store)).unwrap();
    refresh(dir.path(), &config, &moto.env()).await;
    let client = moto.client();
    let mut objects = std::collections::HashMap::new();
    for name in FILES.iter().copied().chain(["status/bad.svg"]) {
        let object = client
            .get_object()
            .bucket(BUCKET)
            .key(format!("feeds/{name}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("feeds/{name}: {e:?}"));
        if name == "index.html" {
            assert_eq!(object.content_type(), Some("text/html; charset=utf-8"));
            assert_eq!(object.cache_control(), Some("public, max-age=60"));
        }
        let body = object.body.collect().await.unwrap().into_bytes().to_vec();
        objects.insert(name.to_string(), body);
    }
    check_site(|name| objects.get(name).cloned());
}

/// Refreshes that finish together all land in index.json, on each store: the
/// conditional write is retried on conflict.
#[tokio::test]
async fn refreshes_finishing_together_lose_no_index_entry() {
    for backend in [Backend::Folder, Backend::S3s, Backend::Moto] {
        let feeds: Vec<FeedConfig> = (0..8)
            .map(|i| FeedConfig::new(&format!("feed-{i}"), &format!("https://site-{i}.example.test/feed")))
            .collect();
        let test = Arc::new(TestApp::builder().backend(backend).feeds(feeds.clone()).start().await);
        for feed in &feeds {
            test.fake.page(&feed.url, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
        }
        let deployment = test.deployment();
        let refreshes = feeds.iter().map(|feed| {
            let refresher = deployment.refresher.clone();
            let feed = feed.clone();
            tokio::spawn(async move { refresher.refresh(&feed, RefreshOptions::cli(false)).await })
        });
        for report in futures_join(refreshes).await {
            assert_eq!(report.outcome, Outcome::Updated, "{backend:?}");
        }
        let index: Value = serde_json::from_slice(&test.object("index.json").await.unwrap()).unwrap();
        assert_eq!(feeds_ok(&index), feeds.len(), "{backend:?}: {index}");
        let html = String::from_utf8(test.object("index.html").await.unwrap()).unwrap();
        assert_eq!(html.matches("data-state=\"ok\"").count(), feeds.len(), "{backend:?}");
    }
}

/// How many feeds of a `index.json` are ok.
fn feeds_ok(index: &Value) -> usize {
    index["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["state"] == "ok")
        .count()
}

async fn futures_join<T: Send + 'static>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}

/// What a refresh costs the site: an unchanged one nothing; a changed one that moves no state
/// and no published feed one GET and two PUTs (the page and the index).
#[tokio::test]
async fn the_site_costs_one_get_and_two_puts_per_change_and_nothing_otherwise() {
    let test = TestApp::builder().backend(Backend::S3s).start().await;
    test.publish_good().await;
    let site_requests = |log: &[(String, String)]| {
        log.iter()
            .filter(|(_, path)| {
                path.ends_with("/index.html")
                    || path.ends_with("/feeds.opml")
                    || path.ends_with("/index.json")
                    || path.ends_with(".svg")
            })
            .map(|(method, path)| format!("{method} {}", path.rsplit('/').next().unwrap()))
            .collect::<Vec<_>>()
    };
    let before = test.s3().log().len();
    let unchanged = test.refresh(RefreshOptions::cli(false)).await;
    assert_eq!(unchanged.outcome, Outcome::Unchanged);
    assert_eq!(site_requests(&test.s3().log()[before..]), Vec::<String>::new());

    test.fake.then(error_reply(
        "Error: Error solving the challenge. Timeout after 5.0 seconds.",
    ));
    test.refresh(RefreshOptions::cli(false)).await;
    test.fake.then(error_reply(
        "Error: Error solving the challenge. Timeout after 5.0 seconds.",
    ));
    let before = test.s3().log().len();
    test.refresh(RefreshOptions::cli(false)).await;
    let second_failure = site_requests(&test.s3().log()[before..]);
    assert_eq!(
        second_failure,
        ["GET index.json", "PUT index.html", "PUT index.json"],
        "failing to failing: one GET, two PUTs"
    );
}

/// A thousand feeds with full histories and long errors stay under 1 MB of index.
#[test]
fn a_thousand_feeds_fit_the_index_in_a_megabyte() {
    use flarefeed::site::{FeedSummary, Index};
    use flarefeed::status::{AttemptMark, StatusRecord};
    let now = time::OffsetDateTime::now_utc();
    let feeds = (0..1000)
        .map(|i| {
            let feed = FeedConfig::new(
                &format!("feed-number-{i:04}"),
                &format!("https://site-{i}.example.test/rss.xml?x=1"),
            );
            let mut record = StatusRecord::never(&feed);
            record.last_attempt = Some(now);
            record.last_success = Some(now);
            record.consecutive_failures = 3;
            record.last_error = Some(format!(
                "solver: {}",
                "FlareSolverr could not solve the challenge in time; ".repeat(4)
            ));
            for k in 0..90 {
                record.remember(
                    now,
                    if k % 3 == 0 {
                        AttemptMark::Failed
                    } else {
                        AttemptMark::Updated
                    },
                    3000,
                );
            }
            FeedSummary::of(&feed, &record, now)
        })
        .collect();
    let index = Index {
        title: "flarefeed".into(),
        generated: now,
        feeds,
    };
    let bytes = serde_json::to_vec(&index).unwrap().len();
    assert!(bytes < 1_000_000, "{bytes} bytes");
}

/// The page in a real browser: Debian's headless Chromium loads it from the folder, and its DOM
/// has every feed, with its state and its link. The screenshot goes to the test's own folder of
/// the target directory, `CARGO_TARGET_TMPDIR/site-screenshot.png`, wherever `CARGO_TARGET_DIR`
/// puts it (`bench/screenshot` puts one in the README).
#[tokio::test]
async fn the_page_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    write_fixed_site(&out).await;
    let page = out.join("index.html");
    let dom = chromium(&["--dump-dom", &format!("file://{}", page.display())]).await;
    for (name, state) in [("good", "ok"), ("bad", "failing"), ("old", "stale"), ("later", "never")] {
        let row = dom
            .find(&format!("id=\"feed-{name}\""))
            .unwrap_or_else(|| panic!("{name} is not in the DOM:\n{dom}"));
        let row = &dom[row..row + dom[row..].find("</tr>").unwrap()];
        assert!(row.contains(&format!("data-state=\"{state}\"")), "{name}: {row}");
    }
    assert!(
        dom.contains("<a href=\"good.xml\">good</a>"),
        "the published feed is linked"
    );
    assert!(
        !dom.contains("<a href=\"later.xml\""),
        "a feed never published is not linked"
    );
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the site's text stays text"
    );
    assert!(!dom.contains("<script>alert(1)</script>"));
    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("site-screenshot.png");
    chromium(&[
        &format!("--screenshot={}", screenshot.display()),
        "--window-size=1280,560",
        &format!("file://{}", page.display()),
    ])
    .await;
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a screenshot of {} bytes",
        png.len()
    );
}

/// Writes the site of four feeds with fixed records into `out`, through `flarefeed site`.
pub async fn write_fixed_site(out: &Path) {
    use flarefeed::status::{self, AttemptMark, StatusRecord};
    use flarefeed::store::{Condition, LocalStore};
    let store = LocalStore::new(out, "");
    let now = time::OffsetDateTime::now_utc();
    let hours = |h: i64| now - time::Duration::hours(h);
    let mut feeds = Vec::new();
    for (name, failures, success) in [
        ("good", 0, Some(hours(0))),
        ("bad", 4, Some(hours(30))),
        ("old", 0, Some(hours(20))),
        ("later", 0, None),
    ] {
        let feed = FeedConfig::new(name, &format!("https://{name}.example.test/feed.xml?key=k3y"));
        feeds.push(feed.clone());
        if success.is_none() {
            continue;
        }
        let mut record = StatusRecord::never(&feed);
        record.last_attempt = Some(hours(0));
        record.last_success = success;
        record.consecutive_failures = failures;
        record.items = Some(25);
        record.bytes = Some(48_213);
        record.sha256 = Some("ab".into());
        if failures > 0 {
            record.last_error =
                Some("guard: the solver returned an HTML page titled \"<script>alert(1)</script>\"".into());
        }
        for k in 0..90 {
            let mark = match (failures, k % 9) {
                (0, 0) => AttemptMark::Updated,
                (0, _) => AttemptMark::Unchanged,
                (_, k) if k < 4 => AttemptMark::Failed,
                _ => AttemptMark::Unchanged,
            };
            record.remember(hours(0), mark, 2000);
        }
        status::write(&store, &feed, &record, Condition::Any).await.unwrap();
        std::fs::write(out.join(&feed.key), b"<rss/>").unwrap();
    }
    let mut toml = format!("[store]\ndir = \"{}\"\n[site]\ntitle = \"My feeds\"\n", out.display());
    for feed in &feeds {
        toml.push_str(&format!(
            "[[feeds]]\nname = \"{}\"\nurl = \"{}\"\ninterval = \"1h\"\n",
            feed.name, feed.url
        ));
    }
    let config = out.join("flarefeed.toml");
    std::fs::write(&config, toml).unwrap();
    let written = flarefeed_async(out)
        .args(["site", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert!(written.status.success(), "{}", String::from_utf8_lossy(&written.stderr));
}

/// Headless Chromium with `args`; its stdout. Debian's `chromium` (`.ci/run` installs it).
async fn chromium(args: &[&str]) -> String {
    let binary = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {b}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("no chromium: install Debian's chromium (apt-get install chromium), as .ci/run does");
    let profile = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(binary)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .env("HOME", profile.path())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Four `flarefeed refresh` processes at once, one feed each, into one folder: every feed is in
/// the index and on the page (the folder's conditional writes, between processes).
#[tokio::test]
async fn refresh_processes_at_once_lose_no_index_entry() {
    let fake = FakeSolver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flarefeed.toml");
    let mut toml = format!(
        "[solver]\nurl = \"{}\"\nsession = \"none\"\n[store]\ndir = \"out\"\n",
        fake.url
    );
    for i in 0..4 {
        let url = format!("https://site-{i}.example.test/feed");
        fake.page(&url, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
        toml.push_str(&format!("[[feeds]]\nname = \"feed-{i}\"\nurl = \"{url}\"\n"));
    }
    std::fs::write(&config, toml).unwrap();
    let children: Vec<_> = (0..4)
        .map(|i| {
            flarefeed_async(dir.path())
                .args(["refresh", &format!("feed-{i}"), "--config"])
                .arg(&config)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
    let index: Value = serde_json::from_slice(&std::fs::read(dir.path().join("out/index.json")).unwrap()).unwrap();
    assert_eq!(feeds_ok(&index), 4, "{index}");
    let html = std::fs::read_to_string(dir.path().join("out/index.html")).unwrap();
    assert_eq!(html.matches("data-state=\"ok\"").count(), 4);
}

/// A record from a build before the site (no history) brings its feed onto the site at its first
/// refresh here, changed or not; after that, an unchanged refresh writes nothing again.
#[tokio::test]
async fn records_from_before_the_site_join_it_at_their_first_refresh() {
    let test = TestApp::builder().backend(Backend::S3s).start().await;
    test.publish_good().await;
    let mut record: Value = serde_json::from_slice(&test.object("status/news.json").await.unwrap()).unwrap();
    record.as_object_mut().unwrap().remove("history");
    test.s3()
        .put("status/news.json", serde_json::to_vec(&record).unwrap())
        .await;
    let puts_of_index = |test: &TestApp| test.s3().puts_of("index.json");
    let before = puts_of_index(&test);
    assert_eq!(
        test.refresh(RefreshOptions::cli(false)).await.outcome,
        Outcome::Unchanged
    );
    assert_eq!(
        puts_of_index(&test),
        before + 1,
        "written once, for the record without history"
    );
    assert_eq!(
        test.refresh(RefreshOptions::cli(false)).await.outcome,
        Outcome::Unchanged
    );
    assert_eq!(puts_of_index(&test), before + 1, "and not again");
}

/// Issue 27, finding 9: a site that could not be written after a feed recovered is written by
/// the next refresh, though that one changes nothing: the page stops saying `failing`.
#[tokio::test]
async fn a_site_that_could_not_be_written_is_written_by_the_next_refresh() {
    use crate::helpers::s3_server::Fault;
    let test = TestApp::builder().backend(Backend::S3s).start().await;
    test.publish_good().await;
    test.fake.then(error_reply(
        "Error: Error solving the challenge. Timeout after 5.0 seconds.",
    ));
    test.refresh(RefreshOptions::cli(false)).await;
    let page = || async { String::from_utf8(test.object("index.html").await.unwrap()).unwrap() };
    assert!(page().await.contains("data-state=\"failing\""));

    // The feed recovers, and the page cannot be written.
    test.s3().set_fault(Some(Fault::DenyPutOf("index.html".into())));
    test.fake
        .then(crate::helpers::rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let recovered = test.refresh(RefreshOptions::cli(false)).await;
    assert!(!recovered.outcome.is_failure(), "{:?}", recovered.outcome);
    assert!(page().await.contains("data-state=\"failing\""), "the page was written");
    assert!(test.status().await.site_behind, "the record says the site is behind");

    // The next refresh changes nothing, and writes the site all the same.
    test.s3().set_fault(None);
    test.fake
        .then(crate::helpers::rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let unchanged = test.refresh(RefreshOptions::queued(None)).await;
    assert_eq!(unchanged.outcome, Outcome::Unchanged);
    assert!(page().await.contains("data-state=\"ok\""), "{}", page().await);
    assert!(!test.status().await.site_behind);
}

/// A store in which a refresh's update of the site's index lands between `flarefeed site`'s
/// read of the index and its write.
struct RefreshLandsMeanwhile {
    inner: flarefeed::store::MemoryStore,
    newer: std::sync::Mutex<Option<Vec<u8>>>,
}

#[async_trait::async_trait]
impl flarefeed::store::Store for RefreshLandsMeanwhile {
    async fn head(&self, key: &str) -> Result<Option<flarefeed::store::ObjectInfo>, flarefeed::store::StoreError> {
        self.inner.head(key).await
    }

    async fn get(&self, key: &str) -> Result<Option<flarefeed::store::Stored>, flarefeed::store::StoreError> {
        let read = self.inner.get(key).await;
        let newer = self.newer.lock().unwrap().take();
        if let Some(body) = newer.filter(|_| key == "index.json") {
            let options = flarefeed::store::PutOptions {
                content_type: "application/json",
                cache_control: "no-cache",
                sha256: None,
                condition: flarefeed::store::Condition::Any,
            };
            self.inner.put(key, body.into(), options).await?;
        }
        read
    }

    async fn put(
        &self,
        key: &str,
        body: flarefeed::store::Body,
        options: flarefeed::store::PutOptions<'_>,
    ) -> Result<flarefeed::store::Version, flarefeed::store::StoreError> {
        self.inner.put(key, body, options).await
    }

    async fn list(&self, folder: &str) -> Result<Vec<String>, flarefeed::store::StoreError> {
        self.inner.list(folder).await
    }

    fn locate(&self, key: &str) -> String {
        self.inner.locate(key)
    }
}

/// Issue 27, finding 9: `flarefeed site` writes the index over the one it read, never over a
/// refresh's update that landed meanwhile: the feed that refresh attempted keeps its newer
/// summary.
#[tokio::test]
async fn a_rebuilt_site_keeps_an_update_that_landed_meanwhile() {
    use flarefeed::config::Config;
    use flarefeed::site::{FeedSummary, Index, State};
    use flarefeed::status::StatusRecord;
    let now = time::OffsetDateTime::now_utc();
    let feed = FeedConfig::new("news", "https://news.example.test/feed");
    let config = Config {
        feeds: vec![feed.clone()],
        ..Config::default()
    };
    let landed = Index {
        title: "t".into(),
        generated: now,
        feeds: vec![FeedSummary {
            state: State::Failing,
            last_attempt: Some(now),
            failures: 1,
            ..FeedSummary::never(&feed)
        }],
    };
    let store = RefreshLandsMeanwhile {
        inner: flarefeed::store::MemoryStore::default(),
        newer: std::sync::Mutex::new(Some(serde_json::to_vec(&landed).unwrap())),
    };
    // The records as `flarefeed site` read them, before that refresh.
    let mut record = StatusRecord::never(&feed);
    record.last_attempt = Some(now - time::Duration::minutes(5));
    record.last_success = record.last_attempt;
    let index = flarefeed::site::rebuild(&store, &config, &[record], now).await.unwrap();
    assert_eq!(index.feeds[0].state, State::Failing, "{index:?}");
    let stored: Index = serde_json::from_slice(
        &flarefeed::store::Store::get(&store, "index.json")
            .await
            .unwrap()
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(stored.feeds[0].failures, 1, "the refresh's update was written over");
}

/// The site's summary moved beside the page (issue 27): the first update after an upgrade
/// carries every feed of the summary an earlier build kept at `status/index.json`.
#[tokio::test]
async fn the_summary_an_earlier_build_kept_is_carried_over() {
    use flarefeed::config::Config;
    use flarefeed::site::{FeedSummary, Index, State};
    use flarefeed::status::StatusRecord;
    use flarefeed::store::{Condition, MemoryStore, PutOptions, Store};
    let now = time::OffsetDateTime::now_utc();
    let (a, b) = (
        FeedConfig::new("a", "https://a.example.test/feed"),
        FeedConfig::new("b", "https://b.example.test/feed"),
    );
    let config = Config {
        feeds: vec![a.clone(), b.clone()],
        ..Config::default()
    };
    let legacy = Index {
        title: "t".into(),
        generated: now,
        feeds: vec![
            FeedSummary::never(&a),
            FeedSummary {
                state: State::Ok,
                last_attempt: Some(now),
                last_success: Some(now),
                sha256: Some("b-sha".into()),
                ..FeedSummary::never(&b)
            },
        ],
    };
    let store = MemoryStore::default();
    let options = PutOptions {
        content_type: "application/json",
        cache_control: "no-cache",
        sha256: None,
        condition: Condition::Any,
    };
    let body = serde_json::to_vec(&legacy).unwrap();
    store.put("status/index.json", body.into(), options).await.unwrap();
    let mut record = StatusRecord::never(&a);
    record.last_attempt = Some(now);
    record.last_success = Some(now);
    flarefeed::site::update(&store, &config, &a, None, &record, now)
        .await
        .unwrap();
    let index: Index = serde_json::from_slice(&store.get("index.json").await.unwrap().unwrap().body).unwrap();
    assert_eq!(index.feeds[1].sha256.as_deref(), Some("b-sha"), "{index:?}");
    assert_eq!(index.feeds[0].state, State::Ok);
}
