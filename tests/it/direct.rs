//! Fetching directly first (issue 16), through the real binary, against a local origin that
//! serves every class of reply ([`crate::helpers::origin`]) and the fake solver counting what
//! it is asked.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::fake_solver::FakeSolver;
use crate::helpers::origin::{ETAG, Origin};
use crate::helpers::{flarefeed_async, rss_page};

/// The binary, feeds fetched as the configuration says (`FLAREFEED_FETCH` unset).
async fn run(dir: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = flarefeed_async(dir);
    command.env_remove("FLAREFEED_FETCH").args(args);
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let out = command.output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn record(dir: &Path, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(format!("public/status/{name}.json"))).unwrap()).unwrap()
}

/// Writes `flarefeed.toml` in `dir` (`solver` is the `[solver]` table's body) and returns its
/// path.
fn config(dir: &Path, solver: &str, feeds: &str) -> String {
    let path = dir.join("flarefeed.toml");
    std::fs::write(
        &path,
        format!("[solver]\n{solver}\nsession = \"none\"\n[store]\ndir = \"public\"\n{feeds}"),
    )
    .unwrap();
    path.display().to_string()
}

/// `[solver]` at `url`.
fn solver_at(url: &str) -> String {
    format!("url = \"{url}\"")
}

/// No solver listens on this port.
const NO_SOLVER: &str = "http://127.0.0.1:9/v1";

/// A plain feed needs no solver at all (none runs here), and its second refresh is a 304 that
/// writes nothing.
#[tokio::test]
async fn a_plain_feed_never_reaches_the_solver_and_validators_make_the_next_a_304() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = origin.url("/plain.xml");
    let no_solver = [("FLAREFEED_SOLVER_URL", NO_SOLVER)];
    let (ok, stdout, stderr) = run(dir.path(), &["refresh", "--url", &url, "--name", "plain"], &no_solver).await;
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.starts_with("plain  updated  rss 2.0, 2 items"), "{stdout}");
    assert!(stdout.contains("(direct)"), "{stdout}");
    let first = record(dir.path(), "plain");
    assert_eq!(first["fetched_by"], "direct");
    assert_eq!(first["validators"]["etag"], ETAG);
    let published = dir.path().join("public/plain.xml");
    let written = std::fs::metadata(&published).unwrap().modified().unwrap();

    let (ok, stdout, _) = run(dir.path(), &["refresh", "--url", &url, "--name", "plain"], &no_solver).await;
    assert!(ok && stdout.starts_with("plain  unchanged  not modified"), "{stdout}");
    let requests = origin.requests("/plain.xml");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("if-none-match"), Some(ETAG));
    assert!(requests[1].header("if-modified-since").is_some());
    assert_eq!(
        std::fs::metadata(&published).unwrap().modified().unwrap(),
        written,
        "a 304 wrote the feed"
    );
    assert_eq!(record(dir.path(), "plain")["outcome"], "unchanged");

    // --force sends no validators and reads the feed whole.
    let (ok, stdout, _) = run(
        dir.path(),
        &["refresh", "--url", &url, "--name", "plain", "--force"],
        &no_solver,
    )
    .await;
    assert!(ok && stdout.starts_with("plain  updated"), "{stdout}");
    assert_eq!(origin.requests("/plain.xml")[2].header("if-none-match"), None);
}

/// A challenged feed reaches the solver once per refresh, and is not fetched directly again
/// until the reprobe time; `fetch = "direct"` never asks the solver; `fetch = "solver"` never
/// fetches directly.
#[tokio::test]
async fn each_route_is_taken_as_configured() {
    let origin = Origin::start().await;
    let fake = FakeSolver::start().await;
    for path in ["/challenge", "/feed.xml"] {
        fake.page(&origin.url(path), rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    }
    let dir = tempfile::tempdir().unwrap();
    let feeds = format!(
        "[[feeds]]\nname = \"walled\"\nurl = \"{}\"\n\
         [[feeds]]\nname = \"direct-only\"\nurl = \"{}\"\nfetch = \"direct\"\n\
         [[feeds]]\nname = \"solver-only\"\nurl = \"{}\"\nfetch = \"solver\"\n",
        origin.url("/challenge"),
        origin.url("/cf503"),
        origin.url("/feed.xml"),
    );
    let config = config(dir.path(), &solver_at(&fake.url), &feeds);
    for round in 1..=3 {
        let (_, stdout, stderr) = run(dir.path(), &["refresh", "--config", &config], &[]).await;
        assert!(stdout.contains("walled  "), "{stdout}{stderr}");
        let asked = |url: String| {
            fake.log()
                .iter()
                .filter(|c| c["cmd"] == "request.get" && c["url"] == url.as_str())
                .count()
        };
        assert_eq!(asked(origin.url("/challenge")), round, "once per refresh");
        assert_eq!(
            origin.requests("/challenge").len(),
            1,
            "fetched directly before the reprobe time"
        );
        assert_eq!(asked(origin.url("/cf503")), 0, "fetch = direct asked the solver");
        assert_eq!(origin.requests("/feed.xml").len(), 0, "fetch = solver fetched directly");
        assert!(stdout.contains("direct-only  failed at fetch"), "{stdout}");
    }
    let walled = record(dir.path(), "walled");
    assert_eq!(
        (walled["fetched_by"].as_str(), walled["direct"].as_str()),
        (Some("solver"), Some("challenge"))
    );
    assert!(walled["solver_until"].is_string());
    let direct_only = record(dir.path(), "direct-only");
    assert!(
        direct_only["last_error"]
            .as_str()
            .unwrap()
            .contains("Cloudflare challenge"),
        "{direct_only}"
    );
}

/// Every class a direct reply can be, as the record keeps it when the solver was needed.
#[tokio::test]
async fn each_direct_reply_is_classed() {
    let origin = Origin::start().await;
    let fake = FakeSolver::start().await;
    let cases = [
        ("challenge", "/challenge", "challenge"),
        ("cf503", "/cf503", "challenge"),
        ("blocked", "/1020", "block"),
        ("limited", "/429", "status"),
        ("missing", "/404", "status"),
        ("html", "/html", "not_a_feed"),
        ("loop", "/loop", "network"),
        ("oversize-length", "/oversize-length", "network"),
        ("oversize-chunked", "/oversize-chunked", "network"),
        ("bomb", "/bomb.gz", "network"),
    ];
    let mut feeds = String::new();
    for (name, path, _) in cases {
        fake.page(&origin.url(path), rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
        feeds.push_str(&format!(
            "[[feeds]]\nname = \"{name}\"\nurl = \"{}\"\n",
            origin.url(path)
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    // A 4 MB cap: the oversize replies and the bomb go past it.
    let solver = format!("{}\nmax_reply_mb = 4", solver_at(&fake.url));
    let config = config(dir.path(), &solver, &feeds);
    let started = Instant::now();
    let (ok, stdout, stderr) = run(dir.path(), &["refresh", "--config", &config], &[]).await;
    assert!(ok, "{stdout}{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    for (name, _, class) in cases {
        let record = record(dir.path(), name);
        assert_eq!(record["direct"], class, "{name}: {record}");
        assert_eq!(record["fetched_by"], "solver", "{name}");
    }
}

/// The site's own bytes: gzip and brotli are decoded, ISO-8859-1 without a declaration and
/// Windows-1252 by its declaration publish the same text, and a redirect chain's end is recorded.
#[tokio::test]
async fn the_sites_own_bytes_are_published_with_the_same_text() {
    let origin = Origin::start().await;
    // Windows-1252 by its declaration: the euro sign and curly quotes are bytes 0x80, 0x93, 0x94.
    let mut cp1252 = b"<?xml version=\"1.0\" encoding=\"windows-1252\"?><rss version=\"2.0\"><channel><title>".to_vec();
    cp1252.extend_from_slice(b"5 \x80, \x93quoted\x94</title><item><title>x</title></item></channel></rss>");
    origin.page("/cp1252.xml", &cp1252);
    let dir = tempfile::tempdir().unwrap();
    let feeds = format!(
        "[[feeds]]\nname = \"cp1252\"\nurl = \"{}\"\nfetch = \"direct\"\n\
         [[feeds]]\nname = \"gzip\"\nurl = \"{}\"\nfetch = \"direct\"\n\
         [[feeds]]\nname = \"brotli\"\nurl = \"{}\"\nfetch = \"direct\"\n\
         [[feeds]]\nname = \"latin1\"\nurl = \"{}\"\nfetch = \"direct\"\nmin_items = 1\n\
         [[feeds]]\nname = \"hops\"\nurl = \"{}\"\nfetch = \"direct\"\n\
         [[feeds]]\nname = \"slow\"\nurl = \"{}\"\nfetch = \"direct\"\n[fetch]\ntimeout = \"2s\"\n",
        origin.url("/cp1252.xml"),
        origin.url("/gzip.xml"),
        origin.url("/brotli.xml"),
        origin.url("/latin1.xml"),
        origin.url("/hop/9"),
        origin.url("/slow"),
    );
    let config = config(dir.path(), &solver_at(NO_SOLVER), &feeds);
    let (_, stdout, stderr) = run(dir.path(), &["refresh", "--config", &config], &[]).await;
    let published = |name: &str| std::fs::read_to_string(dir.path().join(format!("public/{name}.xml"))).unwrap();
    assert!(published("gzip").contains("<title>gzipped</title>"), "{stdout}{stderr}");
    assert!(published("brotli").contains("<title>brotli</title>"));
    let latin1 = published("latin1");
    assert!(
        latin1.contains("<title>café crème</title>") && latin1.contains("naïve"),
        "{latin1}"
    );
    let cp1252 = published("cp1252");
    assert!(cp1252.contains("<title>5 €, “quoted”</title>"), "{cp1252}");
    assert!(
        cp1252.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
        "{cp1252}"
    );
    assert_eq!(record(dir.path(), "hops")["final_url"], origin.url("/plain.xml"));
    assert!(stdout.contains("slow  failed at fetch"), "{stdout}");
    assert!(stdout.contains("within 2 s"), "{stdout}");
}

/// The user agent, the headers and the proxy reach the site; header values appear in no log,
/// record, report or published file.
#[tokio::test]
async fn request_options_reach_the_site_and_header_values_stay_secret() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A made-up host, reached only through the proxy (the origin, in forward-proxy mode).
    let feeds = format!(
        "[[feeds]]\nname = \"keyed\"\nurl = \"http://feeds.example.test/plain.xml\"\nfetch = \"direct\"\n\
         user_agent = \"my-reader/2.0\"\nproxy = \"{}\"\n[feeds.headers]\nX-Api-Key = \"s3cret-value-42\"\n",
        origin.base
    );
    let config = config(dir.path(), &solver_at(NO_SOLVER), &feeds);
    let (ok, stdout, stderr) = run(
        dir.path(),
        &["refresh", "--config", &config, "--json"],
        &[("RUST_LOG", "flarefeed=trace")],
    )
    .await;
    assert!(ok, "{stdout}{stderr}");
    let seen = origin.requests("/plain.xml");
    assert_eq!(seen.len(), 1);
    assert!(seen[0].proxied, "the proxy was not used");
    assert_eq!(seen[0].header("user-agent"), Some("my-reader/2.0"));
    assert_eq!(seen[0].header("x-api-key"), Some("s3cret-value-42"));
    assert!(seen[0].header("accept").unwrap().starts_with("application/rss+xml"));
    let record = std::fs::read_to_string(dir.path().join("public/status/keyed.json")).unwrap();
    for (what, text) in [("stdout", &stdout), ("stderr", &stderr), ("record", &record)] {
        assert!(
            !text.contains("s3cret-value-42"),
            "the header value is in the {what}: {text}"
        );
    }

    // The default user agent names flarefeed and its version.
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, _) = run(
        dir.path(),
        &["refresh", "--url", &origin.url("/feed.xml")],
        &[("FLAREFEED_SOLVER_URL", NO_SOLVER)],
    )
    .await;
    assert!(ok);
    let agent = origin.requests("/feed.xml")[0]
        .header("user-agent")
        .unwrap()
        .to_string();
    assert!(
        agent.starts_with(&format!("flarefeed/{}", env!("CARGO_PKG_VERSION"))),
        "{agent}"
    );
}

/// Issue 27, finding 1: a feed's own headers (an API key) go to its own origin only, never to
/// the host a redirect leads to, nor over an https → http downgrade; and no `Referer` carries
/// the feed's url (query token and all) anywhere.
#[tokio::test]
async fn secret_headers_and_the_referer_never_leave_the_feeds_origin() {
    let (home, elsewhere) = (Origin::start().await, Origin::start().await);
    let dir = tempfile::tempdir().unwrap();
    let feeds = format!(
        "[[feeds]]\nname = \"keyed\"\nurl = \"{}?token=t0k3n\"\nfetch = \"direct\"\n\
         [feeds.headers]\nX-Api-Key = \"s3cret-value-42\"\n",
        home.url(&format!("/redirect-to/{}", elsewhere.url("/plain.xml")))
    );
    let config = config(dir.path(), &solver_at(NO_SOLVER), &feeds);
    let (ok, stdout, stderr) = run(dir.path(), &["refresh", "--config", &config], &[]).await;
    assert!(ok, "{stdout}{stderr}");
    let asked = &home.requests(&format!("/redirect-to/{}?token=t0k3n", elsewhere.url("/plain.xml")))[0];
    assert_eq!(
        asked.header("x-api-key"),
        Some("s3cret-value-42"),
        "its own origin gets it"
    );
    let redirected = &elsewhere.requests("/plain.xml")[0];
    assert_eq!(
        redirected.header("x-api-key"),
        None,
        "the header crossed to another host"
    );
    assert_eq!(redirected.header("referer"), None, "the Referer carries the feed's url");
    assert_eq!(record(dir.path(), "keyed")["final_url"], elsewhere.url("/plain.xml"));
}

/// Issue 27, finding 2: a public feed's redirect into loopback, private or link-local space, or
/// to the metadata address, is refused before anything is sent there, with a message that says
/// so; nothing of the internal page reaches the record or the status site. A feed on the LAN
/// (here loopback) may still redirect within it. The public feed is reached through a forward
/// proxy (the origin), so its made-up host needs no DNS.
#[tokio::test]
async fn a_redirect_into_internal_space_is_refused_before_connecting() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let public = |target: &str| format!("http://feeds.example.test/redirect-to/{target}");
    let feeds = format!(
        "[[feeds]]\nname = \"to-admin\"\nurl = \"{}\"\nfetch = \"direct\"\nproxy = \"{base}\"\n\
         [[feeds]]\nname = \"to-metadata\"\nurl = \"{}\"\nfetch = \"direct\"\nproxy = \"{base}\"\n\
         [[feeds]]\nname = \"lan\"\nurl = \"{}\"\nfetch = \"direct\"\n",
        public(&origin.url("/admin")),
        public("http://169.254.169.254/latest/meta-data/"),
        origin.url(&format!("/redirect-to/{}", origin.url("/plain.xml"))),
        base = origin.base,
    );
    let config = config(dir.path(), &solver_at(NO_SOLVER), &feeds);
    let (_, stdout, stderr) = run(dir.path(), &["refresh", "--config", &config], &[]).await;
    for (feed, says) in [
        (
            "to-admin",
            "is in loopback, private or link-local address space, and the feed's own url is not",
        ),
        ("to-metadata", "169.254.169.254 is a cloud metadata address"),
    ] {
        let line = stdout.lines().find(|l| l.starts_with(feed)).unwrap_or_default();
        assert!(
            line.contains("failed at fetch") && line.contains("which is not followed"),
            "{stdout}{stderr}"
        );
        assert!(line.contains(says), "{feed}: {line}");
        let record = record(dir.path(), feed);
        assert_eq!(record["outcome"], "failed", "{record}");
    }
    assert!(origin.requests("/admin").is_empty(), "the internal page was asked for");
    assert!(origin.requests("/latest/meta-data/").is_empty());
    assert!(
        stdout.lines().any(|l| l.starts_with("lan  updated")),
        "a LAN feed redirects within the LAN: {stdout}"
    );
}

/// Issue 27, findings 4 and 5, through the binary: a server that ignores If-None-Match and
/// always sends one ETag gets its changed feed published at every refresh (the old one is not
/// frozen); and a site that answers 304 to everything, to a first refresh or `--force`, fails
/// saying so, with no `last_success` and no file, where it printed "not modified".
#[tokio::test]
async fn a_constant_etag_freezes_nothing_and_an_unasked_304_fails() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let feeds = format!(
        "[[feeds]]\nname = \"constant\"\nurl = \"{}\"\nfetch = \"direct\"\n\
         [[feeds]]\nname = \"always304\"\nurl = \"{}\"\nfetch = \"direct\"\n",
        origin.url("/constant-etag.xml"),
        origin.url("/always-304"),
    );
    let config = config(dir.path(), &solver_at(NO_SOLVER), &feeds);
    let published = || std::fs::read_to_string(dir.path().join("public/constant.xml")).unwrap();
    let (_, stdout, _) = run(dir.path(), &["refresh", "--config", &config], &[]).await;
    assert!(stdout.contains("constant  updated"), "{stdout}");
    let first = published();
    let (_, stdout, _) = run(dir.path(), &["refresh", "constant", "--config", &config], &[]).await;
    assert!(stdout.contains("constant  updated"), "{stdout}");
    assert_ne!(published(), first, "the changed feed was not published");
    let sent = origin.requests("/constant-etag.xml");
    assert_eq!(sent[1].header("if-none-match"), Some("\"constant\""));

    for args in [
        &["refresh", "always304", "--config", &config][..],
        &["refresh", "always304", "--force", "--config", &config],
    ] {
        let (ok, stdout, _) = run(dir.path(), args, &[]).await;
        assert!(!ok, "{stdout}");
        assert!(
            stdout.contains("always304  failed at fetch") && stdout.contains("sent no validators"),
            "{stdout}"
        );
        assert!(!stdout.contains("not modified"), "{stdout}");
    }
    let record = record(dir.path(), "always304");
    assert_eq!(
        (record["outcome"].as_str(), record["last_success"].is_null()),
        (Some("failed"), true)
    );
    assert!(!dir.path().join("public/always304.xml").exists());
}
