//! What flarefeed adds on top of the solver's reply (extract, guard, format, fingerprint, store),
//! and how long the Lambda function takes to start.
//!
//! The fake FlareSolverr answers at once, so a refresh's time is flarefeed's own. Feeds come from
//! `bench/genfeed.py` (in `FLAREFEED_BENCH_DIR`, else generated into a temp folder). Prints
//! Markdown tables; each measures its baseline in the same run: just receiving the reply, and
//! curl making the function's first Runtime API request.

/// The tests' harness: the same fake FlareSolverr, S3 server and `TestApp`.
#[allow(dead_code)]
#[path = "../tests/it/helpers/mod.rs"]
mod helpers;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use flarefeed::config::FeedConfig;
use flarefeed::refresh::{Outcome, RefreshOptions};
use helpers::fake_solver::{Action, FakeSolver, ok_reply, pre_wrapped};
use helpers::s3_server::{S3Endpoint, S3Server};
use helpers::{Backend, TestApp};

const RUNS: usize = 15;
/// Process starts are cheap and noisy: more of them.
const STARTS: usize = 51;
const FEED_URL: &str = "https://bench.example.test/rss.xml";

#[tokio::main]
async fn main() {
    let dir = match std::env::var_os("FLAREFEED_BENCH_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join("flarefeed-bench"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    match std::env::args().nth(1).as_deref() {
        Some("cold-start") => cold_start(&dir).await,
        Some("fleet") => fleet_capacity().await,
        Some("direct") => direct_against_solver(&dir).await,
        Some("walk") => one_walk(&dir),
        _ => refresh_overhead(&dir).await,
    }
}

/// The guard and the formatter as a refresh runs them: two walks (`check`, then `format_within`)
/// against one (`check_and_format`), median of 9 each, interleaved, in the same run.
fn one_walk(dir: &Path) {
    use flarefeed::feed::{self, GuardOptions};
    println!("| feed | two walks | one walk | one / two |");
    println!("|---|---:|---:|---:|");
    for size in ["1M", "10M"] {
        let text = feed(dir, size);
        let options = GuardOptions {
            min_items: 1,
            max_bytes: usize::MAX,
        };
        let (mut two, mut one) = (Vec::new(), Vec::new());
        for _ in 0..9 {
            let began = Instant::now();
            let info = feed::check(&text, options).unwrap();
            let formatted = feed::format_within(&text, usize::MAX).unwrap();
            two.push(began.elapsed());
            std::hint::black_box((info, formatted));
            let began = Instant::now();
            let both = feed::check_and_format(&text, options, usize::MAX).unwrap();
            one.push(began.elapsed());
            std::hint::black_box(both);
        }
        let (two, one) = (median(two), median(one));
        println!(
            "| {} MB | {:.1} ms | {:.1} ms | {:.2} |",
            text.len() / 1_000_000,
            two.as_secs_f64() * 1e3,
            one.as_secs_f64() * 1e3,
            one.as_secs_f64() / two.as_secs_f64()
        );
    }
}

async fn refresh_overhead(dir: &Path) {
    let small = feed(dir, "100K");
    let large = feed(dir, "5M");
    let cases = [
        ("100 KB feed, `<pre>` view", small.len(), pre_wrapped(&small)),
        ("5 MB feed, XML viewer page", large.len(), xml_viewer(&large)),
    ];

    println!(
        "| case | solver reply | baseline: receive reply | refresh (median) | refresh (max) | peak RSS, whole `flarefeed refresh` |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, feed_bytes, page) in cases {
        let Action::Reply(_, reply) = ok_reply(FEED_URL, &page) else {
            unreachable!()
        };
        let reply_bytes = reply.len();
        let app = TestApp::builder()
            .backend(Backend::S3s)
            .feeds(vec![FeedConfig::new("bench", FEED_URL)])
            .start()
            .await;
        app.fake.page(FEED_URL, Action::Reply(200, reply));
        let options = RefreshOptions::cli(true);

        let baseline = median(time_runs(|| receive_only(&app.fake.url)).await);
        let mut refreshes = Vec::with_capacity(RUNS);
        for i in 0..RUNS + 2 {
            let started = Instant::now();
            let report = app.refresh(options).await;
            let took = started.elapsed();
            assert_eq!(report.outcome, Outcome::Updated, "{report:?}");
            if i >= 2 {
                refreshes.push(took);
            }
        }
        let rss = peak_rss(&app.fake, app.s3(), dir);
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
    let flarefeed::config::Bucket { bucket, endpoint, .. } = s3.bucket();
    std::fs::write(
        &config,
        format!(
            "[solver]\nurl = \"{}\"\nsession = \"none\"\n[store]\nbucket = \"{bucket}\"\nendpoint = \"{}\"\npath_style = true\n[[feeds]]\nname = \"bench\"\nurl = \"{FEED_URL}\"\nfetch = \"solver\"\n",
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

/// Process start to the function's first `GET /2018-06-01/runtime/invocation/next`, against a
/// Runtime API on loopback that records the request and never answers it: everything the
/// function does before it can take an event (configuration, logging, the S3 client). Baseline:
/// curl sending the same request, the floor for any process that makes one HTTP request.
async fn cold_start(dir: &Path) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap().to_string();
    let (arrived, mut arrivals) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let arrived = arrived.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut chunk = [0u8; 1024];
                while let Ok(n) = socket.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&chunk[..n]);
                    if head.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                if String::from_utf8_lossy(&head).contains("/runtime/invocation/next") {
                    let _ = arrived.send(Instant::now());
                }
                // Held open, unanswered, until the process is killed.
                let _ = socket.read(&mut chunk).await;
            });
        }
    });

    let folder = format!(
        "[solver]\nurl = \"http://127.0.0.1:8191/v1\"\n[store]\ndir = \"{}\"\n[[feeds]]\nname = \"bench\"\nurl = \"{FEED_URL}\"\n",
        dir.join("cold-start").display()
    );
    let bucket = format!(
        "[solver]\nurl = \"http://127.0.0.1:8191/v1\"\n[store]\nbucket = \"bench\"\nendpoint = \"http://127.0.0.1:9\"\npath_style = true\n[[feeds]]\nname = \"bench\"\nurl = \"{FEED_URL}\"\n"
    );
    let function = |binary: &str, config: &str| {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("AWS_LAMBDA_FUNCTION_NAME", "flarefeed")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/flarefeed")
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("FLAREFEED_CONFIG", config)
            .env("FLAREFEED_TOKEN", "bench");
        command
    };
    let mut curl = Command::new("curl");
    curl.args(["-s", &format!("http://{api}/2018-06-01/runtime/invocation/next")]);
    let this = env!("CARGO_BIN_EXE_flarefeed");
    let mut cases = vec![
        ("baseline: curl, the same first request".to_string(), curl),
        ("flarefeed, folder store".into(), function(this, &folder)),
        ("flarefeed, S3 store (SDK client built)".into(), function(this, &bucket)),
    ];
    // Another build to compare with, in the same run (an older commit's release binary).
    if let Ok(other) = std::env::var("FLAREFEED_BENCH_OTHER") {
        cases.push((format!("{other}, folder store"), function(&other, &folder)));
        cases.push((format!("{other}, S3 store"), function(&other, &bucket)));
    }

    println!("| process ({STARTS} starts each) | to first `/next`, median | p90 | vs curl |");
    println!("|---|---:|---:|---:|");
    let mut baseline = None;
    for (name, mut command) in cases {
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut times = Vec::with_capacity(STARTS);
        for i in 0..STARTS + 2 {
            let started = Instant::now();
            let mut child = command.spawn().expect("the process starts");
            let at = tokio::time::timeout(Duration::from_secs(10), arrivals.recv())
                .await
                .expect("the first /next arrives within 10 s")
                .unwrap();
            child.kill().unwrap();
            child.wait().unwrap();
            if i >= 2 {
                times.push(at - started);
            }
        }
        times.sort();
        let p90 = times[(times.len() * 9).div_ceil(10) - 1];
        let median = median(times);
        let ratio = baseline.map_or_else(
            || "1.0×".to_string(),
            |b: Duration| format!("{:.1}×", median.as_secs_f64() / b.as_secs_f64()),
        );
        baseline.get_or_insert(median);
        println!("| {name} | {:.1} ms | {:.1} ms | {ratio} |", ms(median), ms(p90));
    }
}

/// One refresh of a 100 KB feed fetched directly from a site on loopback, against the same feed
/// through a solver that takes a realistic 3 s, and the 304 path; the baseline, measured in the
/// same run, is one plain GET of the feed.
async fn direct_against_solver(dir: &Path) {
    use flarefeed::config::{Config, FetchMode, StoreConfig, StoreLocation};
    use flarefeed::deployment::{Adapters, Deployment};
    use flarefeed::fetch::HttpFetcher;
    use flarefeed::solver::ScriptedSolver;
    use helpers::origin::Origin;
    use std::sync::Arc;

    let small = feed(dir, "100K");
    let origin = Origin::start().await;
    origin.page("/bench.xml", small.as_bytes());
    let url = origin.url("/bench.xml");
    let folder = tempfile::tempdir().unwrap();
    let deployment = |fetch: FetchMode, solver: Arc<ScriptedSolver>| {
        let feed = FeedConfig {
            fetch,
            ..FeedConfig::new("bench", &url)
        };
        let config = Config {
            store: StoreConfig {
                location: StoreLocation::Dir(folder.path().into()),
                ..StoreConfig::default()
            },
            feeds: vec![feed],
            ..Config::default()
        };
        let adapters = Adapters {
            solver,
            fetcher: Arc::new(HttpFetcher::new()),
            store: Arc::new(flarefeed::store::LocalStore::new(folder.path(), "")),
            queue: None,
        };
        Deployment::assemble(Arc::new(config), adapters, None)
    };
    let solver = Arc::new(ScriptedSolver::default());
    solver.always(&url, &small);
    solver.delay(Duration::from_secs(3));
    let direct = deployment(FetchMode::Direct, solver.clone());
    let through_solver = deployment(FetchMode::Solver, solver.clone());

    let client = reqwest::Client::new();
    let baseline = median(
        time_runs(|| async {
            let body = client.get(&url).send().await.unwrap().bytes().await.unwrap();
            assert_eq!(body.len(), small.len());
        })
        .await,
    );
    let timed = |deployment: &Deployment, options: RefreshOptions, runs: usize, expected: Outcome| {
        let refresher = deployment.refresher.clone();
        let feed = deployment.config.feeds[0].clone();
        async move {
            let mut times = Vec::new();
            for i in 0..runs + 1 {
                let started = Instant::now();
                let report = refresher.refresh(&feed, options).await;
                let took = started.elapsed();
                assert_eq!(report.outcome, expected, "{report:?}");
                if i >= 1 {
                    times.push(took);
                }
            }
            median(times)
        }
    };
    // Forced: each refresh reads, checks, formats and writes the whole feed.
    let direct_full = timed(&direct, RefreshOptions::cli(true), RUNS, Outcome::Updated).await;
    // Conditional: the site answers 304, nothing is read or written but the record.
    let not_modified = timed(&direct, RefreshOptions::scheduled(None), RUNS, Outcome::Unchanged).await;
    let solved = timed(&through_solver, RefreshOptions::cli(true), 3, Outcome::Updated).await;
    println!("| 100 KB feed, one refresh | median | vs a plain GET | vs the solver path |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, took: Duration| {
        println!(
            "| {name} | {:.1} ms | {:.1}× | {:.4}× |",
            ms(took),
            took.as_secs_f64() / baseline.as_secs_f64(),
            took.as_secs_f64() / solved.as_secs_f64()
        );
    };
    row("baseline: a plain GET of the feed", baseline);
    row(
        "direct (`fetch = \"direct\"`, forced: read, check, format, write)",
        direct_full,
    );
    row("direct, 304 (validators from the last 200)", not_modified);
    row("through a solver that takes 3 s", solved);
    assert!(
        origin
            .requests("/bench.xml")
            .iter()
            .any(|s| s.header("if-none-match").is_some())
    );
}

/// The fleet's capacity: how long planning a tick takes, how evenly 1,000 feeds at 15 minutes
/// load the minutes, and how many solver slots keep up with a solver at 3 s a request. The last
/// is run at 1/60 of real time (15 s intervals, 50 ms a request: the same ratio) with `flarefeed
/// run`'s engine on a folder store, for two intervals.
async fn fleet_capacity() {
    use flarefeed::config::{Config, FeedConfig, FleetConfig};
    use flarefeed::deployment::{Adapters, Deployment};
    use flarefeed::fleet;
    use flarefeed::solver::ScriptedSolver;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    // `fetch = "auto"` throughout: with no plain feeds every direct request meets a challenge
    // once, and the feed then goes straight to the solver, as today's fleet does.
    let feeds = |interval: Duration| -> Vec<FeedConfig> {
        (0..1000)
            .map(|i| FeedConfig {
                interval,
                ..FeedConfig::new(&format!("feed-{i}"), &format!("https://site-{i}.test/feed"))
            })
            .collect()
    };
    let config = Config {
        feeds: feeds(Duration::from_secs(900)),
        ..Config::default()
    };
    let start = 1_800_000_000;
    let mut plans = Vec::new();
    let mut per_minute = Vec::new();
    for minute in 1..=15 {
        let at = start + minute * 60;
        let began = Instant::now();
        let due = fleet::plan(&config, at, Duration::from_secs(60));
        plans.push(began.elapsed());
        drop(due);
        // The slots of the minute itself: the tick's window overlaps the one before.
        per_minute.push(fleet::due_in(&config, at, Duration::from_secs(60)).count());
    }
    let mean = 1000.0 / 15.0;
    println!("| 1,000 feeds at 15m | value |");
    println!("|---|---:|");
    println!(
        "| planning one tick (median of 15) | {:.0} µs |",
        median(plans).as_secs_f64() * 1e6
    );
    println!(
        "| feeds a minute: least, mean, most | {}, {mean:.1}, {} ({:.2}x the mean) |",
        per_minute.iter().min().unwrap(),
        per_minute.iter().max().unwrap(),
        *per_minute.iter().max().unwrap() as f64 / mean
    );
    println!();

    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/feeds/rich.xml")).unwrap();
    println!(
        "| plain feeds | slots (`--jobs`) | refreshes due | done | waiting at the end | keeps up | solver requests |"
    );
    println!("|---:|---:|---:|---:|---:|---|---:|");
    for (plain_percent, jobs) in [(0, 2), (0, 3), (0, 4), (0, 6), (80, 1), (80, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn flarefeed::store::Store> = Arc::new(flarefeed::store::LocalStore::new(dir.path(), ""));
        let config = Arc::new(Config {
            solver: Default::default(),
            store: flarefeed::config::StoreConfig {
                location: flarefeed::config::StoreLocation::Dir(dir.path().into()),
                ..Default::default()
            },
            feeds: feeds(Duration::from_secs(15)),
            fleet: FleetConfig {
                tick: Duration::from_secs(1),
                ..FleetConfig::default()
            },
            ..Config::default()
        });
        // A solver at 50 ms a request, answering every feed with the same page; the plain share
        // of the sites answers a direct request with it (a direct GET of tens of milliseconds
        // is under a millisecond at this scale), the rest with a challenge.
        let solver = Arc::new(ScriptedSolver::default());
        solver.delay(Duration::from_millis(50));
        let fetcher = Arc::new(flarefeed::fetch::ScriptedFetcher::default());
        for (i, feed) in config.feeds.iter().enumerate() {
            solver.always(&feed.url, &page);
            if i * 100 < plain_percent * config.feeds.len() {
                fetcher.always(
                    &feed.url,
                    flarefeed::fetch::ScriptedFetcher::document(&feed.url, &page, None),
                );
            } else {
                let challenge =
                    flarefeed::fetch::classify_status(&feed.url, 403, Some("cloudflare"), Some("challenge"), None, "");
                fetcher.always(&feed.url, Err(challenge));
            }
        }
        let adapters = Adapters {
            solver: solver.clone(),
            fetcher,
            store,
            queue: None,
        };
        let deployment = Deployment::assemble(config, adapters, None);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let progress = Arc::new(flarefeed::fleet::local::Progress::default());
        let shutdown = async move {
            let _ = stopped.await;
        };
        let running = tokio::spawn(flarefeed::fleet::local::serve(
            deployment.config,
            deployment.refresher,
            jobs,
            None,
            shutdown,
            progress.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(30)).await;
        let done = [
            &progress.updated,
            &progress.unchanged,
            &progress.failed,
            &progress.skipped,
        ]
        .iter()
        .map(|n| n.load(Ordering::Relaxed))
        .sum::<usize>();
        let due = progress.due.load(Ordering::Relaxed);
        let waiting = due - done - progress.in_flight.lock().unwrap().len();
        stop.send(()).unwrap();
        running.await.unwrap();
        let keeps_up = waiting <= jobs * 2;
        println!(
            "| {plain_percent} % | {jobs} | {due} | {done} | {waiting} | {} | {} |",
            if keeps_up { "yes" } else { "no" },
            solver.requests()
        );
    }
}
