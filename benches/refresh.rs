//! What flarefeed adds on top of the solver's reply: extract, guard, format, fingerprint, store.
//!
//! The fake FlareSolverr answers at once, so a refresh's time is flarefeed's own. Feeds come from
//! `bench/genfeed.py` (in `FLAREFEED_BENCH_DIR`, else generated into a temp folder). Prints a
//! Markdown table; the same run measures a baseline (just receiving the reply) for comparison.

#[allow(dead_code)]
#[path = "../tests/it/fake_solver.rs"]
mod fake_solver;
#[allow(dead_code)]
#[path = "../tests/it/s3_server.rs"]
mod s3_server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_solver::{Action, FakeSolver, ok_reply, pre_wrapped};
use flarefeed::config::{Config, FeedConfig};
use flarefeed::refresh::{Outcome, RefreshOptions, Refresher, Trigger};
use flarefeed::solver::{FlareSolverr, SessionPolicy, SolverSettings};
use flarefeed::store::S3Store;
use s3_server::S3Server;

const RUNS: usize = 15;
const FEED_URL: &str = "https://bench.example.test/rss.xml";

#[tokio::main]
async fn main() {
    let dir = match std::env::var_os("FLAREFEED_BENCH_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join("flarefeed-bench"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    let small = feed(&dir, "100K");
    let large = feed(&dir, "5M");
    let cases = [
        ("100 KB feed, `<pre>` view", small.len(), pre_wrapped(&small)),
        ("5 MB feed, XML viewer page", large.len(), xml_viewer(&large)),
    ];

    println!(
        "| case | solver reply | baseline: receive reply | refresh (median) | refresh (max) | peak RSS, whole `flarefeed refresh` |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, feed_bytes, page) in cases {
        let fake = FakeSolver::start().await;
        let Action::Reply(_, reply) = ok_reply(FEED_URL, &page) else {
            unreachable!()
        };
        let reply_bytes = reply.len();
        fake.page(FEED_URL, Action::Reply(200, reply));
        let s3 = S3Server::start().await;
        let config = Config {
            solver: SolverSettings {
                url: fake.url.clone(),
                session: SessionPolicy::None,
                ..SolverSettings::default()
            },
            store: s3.store_config(""),
            feeds: vec![FeedConfig::new("bench", FEED_URL)],
        };
        let store = S3Store::with_sdk_config(&s3.sdk_config(), &config.store);
        let feed = config.feeds[0].clone();
        let refresher = Refresher::new(
            Arc::new(FlareSolverr::new(config.solver.clone())),
            Arc::new(store),
            Arc::new(config.clone()),
        );
        let options = RefreshOptions {
            deadline: None,
            trigger: Trigger::Cli,
            force: true,
        };

        let baseline = median(time_runs(|| receive_only(&fake.url)).await);
        let mut refreshes = Vec::with_capacity(RUNS);
        for i in 0..RUNS + 2 {
            let started = Instant::now();
            let report = refresher.refresh(&feed, options).await;
            let took = started.elapsed();
            assert_eq!(report.outcome, Outcome::Updated, "{report:?}");
            if i >= 2 {
                refreshes.push(took);
            }
        }
        let rss = peak_rss(&fake, &s3, &dir);
        let max = refreshes.iter().max().copied().unwrap();
        println!(
            "| {name} ({:.1} MB) | {:.1} MB | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
            feed_bytes as f64 / 1e6,
            reply_bytes as f64 / 1e6,
            ms(baseline),
            ms(median(refreshes)),
            ms(max),
            rss.map_or_else(
                || "n/a (no /usr/bin/time)".into(),
                |(rss, wall)| format!("{:.1} MB ({:.0} ms)", rss as f64 / 1e6, ms(wall))
            ),
        );
    }
}

fn feed(dir: &Path, size: &str) -> String {
    let path = dir.join(format!("feed-{size}.xml"));
    if !path.exists() {
        let status = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/genfeed.py"))
            .arg(size)
            .arg(&path)
            .status()
            .expect("python3 runs bench/genfeed.py");
        assert!(status.success());
    }
    std::fs::read_to_string(path).unwrap()
}

/// Chrome's XML viewer page for `feed`, shaped like the recorded one: the re-serialised document
/// in a hidden `<div>`, then the viewer's own escaped and span-wrapped rendering of it.
fn xml_viewer(feed: &str) -> String {
    let body = feed.split_once("?>").map_or(feed, |(_, rest)| rest).trim_start();
    let body = body.replacen("<rss ", "<rss xmlns=\"\" ", 1);
    let mut page = String::with_capacity(feed.len() * 3);
    page.push_str("<html xmlns=\"http://www.w3.org/1999/xhtml\"><head><style id=\"xml-viewer-style\">div.header { border-bottom: 2px solid black; }</style></head><body><div id=\"webkit-xml-viewer-source-xml\">");
    page.push_str(&body);
    page.push_str("</div><div class=\"header\"><span>This XML file does not appear to have any style information associated with it. The document tree is shown below.</span><br /></div><div class=\"pretty-print\">");
    for tag in body.split('<').filter(|t| !t.is_empty()) {
        let escaped = tag.replace('&', "&amp;").replace('>', "&gt;");
        page.push_str("<div class=\"line\"><span class=\"html-tag\">&lt;");
        page.push_str(&escaped);
        page.push_str("</span></div>");
    }
    page.push_str("</div></body></html>");
    page
}

/// The baseline: one request.get round trip with the whole reply read, nothing else.
async fn receive_only(url: &str) {
    let body = reqwest::Client::new()
        .post(url)
        .json(&serde_json::json!({"cmd": "request.get", "url": FEED_URL}))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(!body.is_empty());
}

async fn time_runs<F: Future<Output = ()>>(mut run: impl FnMut() -> F) -> Vec<Duration> {
    let mut times = Vec::with_capacity(RUNS);
    for i in 0..RUNS + 2 {
        let started = Instant::now();
        run().await;
        if i >= 2 {
            times.push(started.elapsed());
        }
    }
    times
}

/// Peak RSS and wall time of the real binary doing the same refresh, median of three.
fn peak_rss(fake: &FakeSolver, s3: &S3Server, dir: &Path) -> Option<(u64, Duration)> {
    if !Path::new("/usr/bin/time").exists() {
        return None;
    }
    let config = dir.join("bench.toml");
    let s3_config = s3.store_config("");
    let flarefeed::config::StoreLocation::Bucket { bucket, endpoint, .. } = &s3_config.location else {
        unreachable!()
    };
    std::fs::write(
        &config,
        format!(
            "[solver]\nurl = \"{}\"\nsession = \"none\"\n[store]\nbucket = \"{bucket}\"\nendpoint = \"{}\"\npath_style = true\n[[feeds]]\nname = \"bench\"\nurl = \"{FEED_URL}\"\n",
            fake.url,
            endpoint.as_deref().unwrap()
        ),
    )
    .unwrap();
    let mut samples: Vec<(u64, Duration)> = (0..3)
        .map(|_| {
            let out = Command::new("/usr/bin/time")
                .arg("-v")
                .arg(env!("CARGO_BIN_EXE_flarefeed"))
                .args(["refresh", "--force", "--config"])
                .arg(&config)
                .envs(s3.env())
                .env("RUST_LOG", "flarefeed=warn")
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let stderr = String::from_utf8_lossy(&out.stderr);
            let field = |name: &str| {
                stderr
                    .lines()
                    .find_map(|l| l.trim().strip_prefix(name))
                    .unwrap()
                    .trim()
                    .to_string()
            };
            let rss_kb: u64 = field("Maximum resident set size (kbytes):").parse().unwrap();
            let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):");
            let seconds: f64 = wall
                .split(':')
                .rev()
                .enumerate()
                .map(|(i, p)| p.parse::<f64>().unwrap() * 60f64.powi(i as i32))
                .sum();
            (rss_kb * 1024, Duration::from_secs_f64(seconds))
        })
        .collect();
    samples.sort();
    Some(samples[1])
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
