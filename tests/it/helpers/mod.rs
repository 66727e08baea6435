//! The one test harness: [`TestApp`] starts a flarefeed on loopback (a fake FlareSolverr, and a
//! folder, s3s-fs or moto's S3 server as the store), in the manner of zero-to-production's
//! `spawn_app()`. Every test module and the bench build their flarefeed here; the sample
//! events, the probe feed and the binary's command live here too.

pub mod counting;
pub mod fake_solver;
pub mod fixtures;
pub mod hub;
pub mod origin;
pub mod s3_server;
pub mod tools;

use std::path::Path;
use std::sync::Arc;

use axum::http::HeaderMap;
use flarefeed::config::{Config, FeedConfig, FetchMode, StoreConfig, StoreLocation};
use flarefeed::deployment::{self, Adapters, Deployment};
use flarefeed::feed;
use flarefeed::fetch::HttpFetcher;
use flarefeed::fleet::queue::{Queue, SqsQueue};
use flarefeed::handler::App;
use flarefeed::refresh::{RefreshOptions, Refresher, Report};
use flarefeed::solver::{SessionPolicy, Solver, SolverSettings};
use flarefeed::status::StatusRecord;
use flarefeed::store::{LocalStore, MemoryStore, S3Store, Store};
use lambda_http::RequestExt;
use serde_json::Value;

use fake_solver::{Action, FakeSolver, ok_reply, pre_wrapped};
use fixtures::recorded_response;
use s3_server::{MotoServer, S3Endpoint, S3Server};

/// The url of the feed most tests refresh.
pub const FEED_URL: &str = "https://news.example.test/rss.xml";
/// The feed the sample events in `events/` name (`demo`).
pub const DEMO_URL: &str = "https://www.nodeseek.com/rss.xml";
/// The function URL token in `Cargo.toml`'s cargo-lambda environment and the sample events.
pub const TOKEN: &str = "local-dev-token";

/// Where a [`TestApp`] publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Folder,
    /// s3s-fs, in-process, with fault injection.
    S3s,
    /// moto's S3 server, a subprocess.
    Moto,
    /// [`MemoryStore`]: no server, no folder.
    Memory,
}

/// Keeps whichever server or folder backs the store alive as long as the app.
#[allow(dead_code)]
enum Backing {
    Folder(tempfile::TempDir),
    S3s(S3Server),
    Moto(MotoServer),
    Memory,
}

/// A flarefeed on loopback: the fake solver, the store, and the refresher over both.
pub struct TestApp {
    pub fake: FakeSolver,
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub refresher: Refresher,
    /// The first configured feed.
    pub feed: FeedConfig,
    /// The fleet's queue, on moto, when the builder asked for one.
    pub queue_url: Option<String>,
    /// What the entry points run on: built by the composition root over the test's adapters.
    pub deployment: Deployment,
    backing: Backing,
}

/// Puts something between the refresher and the store (a test's own `Store`).
type StoreWrapper = Box<dyn FnOnce(Arc<dyn Store>) -> Arc<dyn Store>>;

/// How to build a [`TestApp`]; `TestApp::builder().start()` is a folder store, one feed `news`
/// at [`FEED_URL`], no sessions.
pub struct Builder {
    backend: Backend,
    prefix: String,
    feeds: Vec<FeedConfig>,
    wrap: Option<StoreWrapper>,
    queue: bool,
    solver: Option<Arc<dyn Solver>>,
    tick: Option<std::time::Duration>,
}

impl Builder {
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.into();
        self
    }

    pub fn feeds(mut self, feeds: Vec<FeedConfig>) -> Self {
        self.feeds = feeds;
        self
    }

    /// A FIFO queue for the fleet, on moto (which also becomes the store).
    pub fn with_queue(mut self) -> Self {
        self.backend = Backend::Moto;
        self.queue = true;
        self
    }

    /// The refresher asks `solver` (a `ScriptedSolver`, say) instead of the fake FlareSolverr.
    pub fn solver(mut self, solver: Arc<dyn Solver>) -> Self {
        self.solver = Some(solver);
        self
    }

    /// `[fleet] tick`.
    pub fn tick(mut self, tick: std::time::Duration) -> Self {
        self.tick = Some(tick);
        self
    }

    /// The refresher sees the store through `wrap` (assertions still see the real one).
    pub fn store_through(mut self, wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store> + 'static) -> Self {
        self.wrap = Some(Box::new(wrap));
        self
    }

    pub async fn start(self) -> TestApp {
        let fake = FakeSolver::start().await;
        let (store_config, store, backing): (StoreConfig, Arc<dyn Store>, Backing) = match self.backend {
            Backend::Folder => {
                let dir = tempfile::tempdir().unwrap();
                let config = StoreConfig {
                    location: StoreLocation::Dir(dir.path().into()),
                    prefix: self.prefix.clone(),
                    ..StoreConfig::default()
                };
                let store = Arc::new(LocalStore::new(dir.path(), &self.prefix));
                (config, store, Backing::Folder(dir))
            }
            Backend::S3s => {
                let s3 = S3Server::start().await;
                let config = s3.store_config(&self.prefix);
                let store = Arc::new(S3Store::with_sdk_config(&s3.sdk_config(), &s3.bucket(), &self.prefix));
                (config, store, Backing::S3s(s3))
            }
            Backend::Moto => {
                let moto = MotoServer::start().await;
                let config = moto.store_config(&self.prefix);
                let store = Arc::new(S3Store::with_sdk_config(
                    &moto.sdk_config(),
                    &moto.bucket(),
                    &self.prefix,
                ));
                (config, store, Backing::Moto(moto))
            }
            Backend::Memory => (
                StoreConfig::default(),
                Arc::new(MemoryStore::default()),
                Backing::Memory,
            ),
        };
        let solver = SolverSettings {
            url: fake.url.clone(),
            session: SessionPolicy::None,
            ..SolverSettings::default()
        };
        let defaults = flarefeed::config::FleetConfig::default();
        // Feeds go through the solver unless the test asks for direct fetching: no test may
        // reach a site's (made-up) address.
        let fetch = FetchMode::Solver;
        let feeds = self
            .feeds
            .into_iter()
            .map(|feed| FeedConfig { fetch, ..feed })
            .collect();
        let config = Arc::new(Config {
            solver,
            store: store_config,
            feeds,
            fetch: flarefeed::config::FetchConfig {
                mode: fetch,
                ..Default::default()
            },
            fleet: flarefeed::config::FleetConfig {
                tick: self.tick.unwrap_or(defaults.tick),
                ..defaults
            },
            site: Default::default(),
        });
        let seen = match self.wrap {
            Some(wrap) => wrap(store.clone()),
            None => store.clone(),
        };
        let queue_url = match (&backing, self.queue) {
            (Backing::Moto(moto), true) => Some(moto.fifo_queue("flarefeed-refresh.fifo").await),
            _ => None,
        };
        let queue = queue_url.as_ref().map(|url| match &backing {
            Backing::Moto(moto) => Arc::new(SqsQueue::with_sdk_config(&moto.sqs_sdk_config(), url)) as Arc<dyn Queue>,
            _ => unreachable!("a queue is on moto"),
        });
        let adapters = Adapters {
            solver: self.solver.unwrap_or_else(|| deployment::solver(&config.solver)),
            fetcher: Arc::new(HttpFetcher::new()),
            store: seen,
            queue,
        };
        let deployment = Deployment::assemble(config.clone(), adapters, None);
        TestApp {
            fake,
            feed: config.feeds[0].clone(),
            config,
            store,
            refresher: deployment.refresher.clone(),
            deployment,
            queue_url,
            backing,
        }
    }
}

impl TestApp {
    pub fn builder() -> Builder {
        Builder {
            backend: Backend::Folder,
            prefix: String::new(),
            feeds: vec![FeedConfig::new("news", FEED_URL)],
            wrap: None,
            queue: false,
            solver: None,
            tick: None,
        }
    }

    /// Folder store, one feed, no sessions.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// The first feed, refreshed.
    pub async fn refresh(&self, options: RefreshOptions) -> Report {
        self.refresher.refresh(&self.feed, options).await
    }

    pub fn deployment(&self) -> Deployment {
        self.deployment.clone()
    }

    /// The Lambda function over this app, with `token` as FLAREFEED_TOKEN.
    pub fn app(&self, token: Option<&str>) -> App {
        App::new(self.deployment(), token)
    }

    /// The Lambda function over this app's store, with another solver configuration.
    pub fn app_with_solver(&self, solver: SolverSettings, token: Option<&str>) -> App {
        let config = Arc::new(Config {
            solver,
            ..(*self.config).clone()
        });
        let adapters = Adapters {
            solver: deployment::solver(&config.solver),
            fetcher: Arc::new(HttpFetcher::new()),
            store: self.store.clone(),
            queue: None,
        };
        App::new(Deployment::assemble(config, adapters, None), token)
    }

    /// Publishes the probe feed, and returns its bytes: the last good copy.
    pub async fn publish_good(&self) -> Vec<u8> {
        self.fake
            .page(&self.feed.url, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
        let report = self.refresh(RefreshOptions::cli(false)).await;
        assert_eq!(report.outcome, flarefeed::refresh::Outcome::Updated, "{report:?}");
        self.published().await
    }

    /// An object's bytes (key without the prefix), through the store itself.
    pub async fn object(&self, key: &str) -> Option<Vec<u8>> {
        self.store.get(key).await.unwrap().map(|stored| stored.body)
    }

    /// The first feed's published bytes.
    pub async fn published(&self) -> Vec<u8> {
        self.object(&self.feed.key).await.expect("a published feed")
    }

    /// The first feed's status record.
    pub async fn status(&self) -> StatusRecord {
        let body = self.object(&self.feed.status_key()).await.expect("a status record");
        serde_json::from_slice(&body).unwrap()
    }

    /// The s3s server behind the store.
    pub fn s3(&self) -> &S3Server {
        match &self.backing {
            Backing::S3s(s3) => s3,
            _ => panic!("this TestApp publishes to another backend"),
        }
    }

    /// The moto server behind the store (and the queue).
    pub fn moto(&self) -> &MotoServer {
        match &self.backing {
            Backing::Moto(moto) => moto,
            _ => panic!("this TestApp publishes to another backend"),
        }
    }

    /// The folder behind the store.
    pub fn dir(&self) -> &Path {
        match &self.backing {
            Backing::Folder(dir) => dir.path(),
            _ => panic!("this TestApp publishes to another backend"),
        }
    }

    /// How many `request.get` commands the solver received.
    pub fn solver_requests(&self) -> usize {
        self.fake.log().iter().filter(|c| c["cmd"] == "request.get").count()
    }
}

/// The probe feed as the official build returns it, with its build date replaced.
pub fn rss_page(build_date: &str) -> Action {
    let original = recorded_response("pypi-3.3.21/rss_nosession.json");
    let dated = original.replace(
        "Mon, 01 Jan 2024 00:00:00 GMT</lastBuildDate>",
        &format!("{build_date}</lastBuildDate>"),
    );
    ok_reply(FEED_URL, &pre_wrapped(&dated))
}

/// The probe feed's published bytes with `build_date` as lastBuildDate: formatted, without the
/// origin's self link (a deployment without `[site] base_url` removes it).
pub fn formatted_rss(build_date: &str) -> String {
    let Action::Reply(_, body) = rss_page(build_date) else {
        unreachable!()
    };
    let reply: Value = serde_json::from_str(&body).unwrap();
    let text = feed::extract(reply["solution"]["response"].as_str().unwrap())
        .unwrap()
        .text
        .into_owned();
    feed::format(&without_origin_self_link(&text)).unwrap().to_xml()
}

/// The probe feed as a deployment without `[site] base_url` publishes it, unformatted: its
/// origin's self link removed.
pub fn without_origin_self_link(text: &str) -> String {
    let self_link = r#"<atom:link href="http://127.0.0.1:8000/rss.xml" rel="self" type="application/rss+xml"/>"#;
    assert!(text.contains(self_link), "the probe feed has its origin's self link");
    text.replacen(self_link, "", 1)
}

/// A sample event from `events/`.
pub fn event(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// `event` as lambda_http hands it to the function, with a Lambda context carrying
/// `deadline_ms` when given.
pub fn request(event: &Value, deadline_ms: Option<u64>) -> lambda_http::Request {
    let request = lambda_http::request::from_str(&event.to_string()).expect("lambda_http takes every event");
    match deadline_ms {
        Some(deadline) => {
            let mut context = lambda_http::Context::default();
            context.deadline = deadline;
            request.with_lambda_context(context)
        }
        None => request,
    }
}

/// Status, JSON body and headers of a response.
pub async fn parts(response: axum::response::Response) -> (u16, Value, HeaderMap) {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let body = serde_json::from_slice(&bytes).expect("every body is JSON");
    (parts.status.as_u16(), body, parts.headers)
}

/// The environment that keeps the binary off every address but loopback: feeds go through the
/// solver (`FLAREFEED_FETCH`), and any direct request that still happens goes to a closed
/// loopback port as its proxy, never to a made-up site's address (loopback itself bypasses it).
pub const SOLVER_ONLY: [(&str, &str); 5] = [
    ("FLAREFEED_FETCH", "solver"),
    ("HTTP_PROXY", "http://127.0.0.1:9"),
    ("HTTPS_PROXY", "http://127.0.0.1:9"),
    ("ALL_PROXY", "http://127.0.0.1:9"),
    ("NO_PROXY", "127.0.0.1,localhost"),
];

/// The binary as a child process in `dir`, with no FLAREFEED_* or AWS_* settings from the
/// outside, and [`SOLVER_ONLY`] (a test of direct fetching sets `FLAREFEED_FETCH` itself).
pub fn flarefeed_async(dir: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_flarefeed"));
    in_test_environment(&mut command, dir);
    command
}

/// [`flarefeed_async`], started by `wrapper` (`unshare --pid --fork --mount-proc`).
pub fn flarefeed_async_under(wrapper: &[&str], dir: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(wrapper[0]);
    command.args(&wrapper[1..]).arg(env!("CARGO_BIN_EXE_flarefeed"));
    in_test_environment(&mut command, dir);
    command
}

/// In `dir`, without the host's flarefeed, AWS and proxy settings, and fetching through the
/// solver only.
fn in_test_environment(command: &mut tokio::process::Command, dir: &Path) {
    command.current_dir(dir).env("RUST_LOG", "flarefeed=warn");
    for (key, _) in std::env::vars() {
        if key.starts_with("FLAREFEED_") || key.starts_with("AWS_") || key.to_ascii_lowercase().ends_with("_proxy") {
            command.env_remove(key);
        }
    }
    command.envs(SOLVER_ONLY);
}
