//! The composition root: where the configuration is found, and the one place the adapters (the
//! solver or solver pool, the store, the queue) and the [`Refresher`] over them are built.
//!
//! Every entry point (the CLI's commands, the Lambda function, the tests and the bench) gets its
//! [`Deployment`] here, so each builds what it needs once and nothing else: `flarefeed status`
//! builds only the store ([`store`]).

use std::path::Path;
use std::sync::Arc;

use crate::config::remote::{ConfigUrl, Watched};
use crate::config::{Config, ConfigError, FeedConfig, StoreConfig, process_env};
use crate::fetch::{Fetcher, HttpFetcher};
use crate::fleet::queue::{Queue, QueueError, SqsQueue};
use crate::interrupt::Interrupt;
use crate::observer::Observer;
use crate::outcome::Report;
use crate::refresh::{RefreshOptions, Refresher};
use crate::solver::{FlareSolverr, Solver, SolverPool, SolverSettings};
use crate::store::{LocalStore, S3Store, Store};

/// A configuration as found, and, when it came from `FLAREFEED_CONFIG_URL`, the watch that
/// follows it as it changes.
pub struct Loaded {
    pub config: Config,
    pub watched: Option<Watched>,
    /// Why the configuration object was refused, when this runs on its last valid copy.
    pub refused: Option<ConfigError>,
}

/// Finds the configuration, in this order, the first source present winning:
/// 1. `--config FILE` (the CLI only);
/// 2. `FLAREFEED_CONFIG`, inline TOML;
/// 3. `FLAREFEED_CONFIG_FILE`, a path;
/// 4. `FLAREFEED_CONFIG_URL`, an `s3://bucket/key` object or a path, read now and, on Lambda,
///    followed as it changes.
///
/// Then the single-setting overrides apply (`FLAREFEED_SOLVER_URL`, `FLAREFEED_BUCKET`,
/// `FLAREFEED_QUEUE_URL`). With none of the four, [`ConfigError::Missing`].
pub async fn load(file: Option<&Path>) -> Result<Loaded, ConfigError> {
    match Config::load(file, &process_env) {
        Err(ConfigError::Missing) if let Some(url) = process_env("FLAREFEED_CONFIG_URL") => {
            let opened = Watched::open(ConfigUrl::parse(&url)?, S3Store::timeouts()).await?;
            Ok(Loaded {
                config: (*opened.config).clone(),
                watched: Some(opened.watched),
                refused: opened.refused,
            })
        }
        loaded => Ok(Loaded {
            config: loaded?,
            watched: None,
            refused: None,
        }),
    }
}

/// What an entry point runs on: the configuration, the store, the refresher over the solver and
/// the store, and the fleet's queue when one is configured.
#[derive(Clone)]
pub struct Deployment {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub refresher: Refresher,
    pub queue: Option<Arc<dyn Queue>>,
    /// Hears of every refresh and tick (the Lambda's metrics).
    pub observer: Option<Arc<dyn Observer>>,
}

/// The ports a deployment runs on: the real adapters ([`Adapters::connect`]) or a test's.
#[derive(Clone)]
pub struct Adapters {
    pub solver: Arc<dyn Solver>,
    /// Direct requests to the sites.
    pub fetcher: Arc<dyn Fetcher>,
    pub store: Arc<dyn Store>,
    pub queue: Option<Arc<dyn Queue>>,
}

impl Adapters {
    /// The real adapters for `config`: FlareSolverr over HTTP (a pool for several urls), S3 or
    /// a folder, and SQS when `[fleet] queue_url` is set. Expensive clients are built here, once.
    pub async fn connect(config: &Config) -> Self {
        let queue = match &config.fleet.queue_url {
            Some(url) => Some(SqsQueue::connect(url).await),
            None => None,
        };
        Self {
            solver: solver(&config.solver),
            fetcher: Arc::new(HttpFetcher::new()),
            store: store(&config.store).await,
            queue,
        }
    }
}

impl Deployment {
    /// The real adapters for `config`; `observer` hears of every refresh (the Lambda's metrics).
    pub async fn connect(config: Config, observer: Option<Arc<dyn Observer>>) -> Self {
        let adapters = Adapters::connect(&config).await;
        Self::assemble(Arc::new(config), adapters, observer)
    }

    /// A deployment over the given adapters: the one place a [`Refresher`] is built.
    pub fn assemble(config: Arc<Config>, adapters: Adapters, observer: Option<Arc<dyn Observer>>) -> Self {
        let refresher = Refresher::new(
            adapters.solver,
            adapters.fetcher,
            adapters.store.clone(),
            config.clone(),
            observer.clone(),
        );
        Self {
            config,
            store: adapters.store,
            refresher,
            queue: adapters.queue,
            observer,
        }
    }
}

/// What became of a refresh asked for ([`Deployment::ask`]).
#[derive(Debug)]
pub enum Asked {
    /// Sent into the feed's message group of the queue (named, without secrets), for the
    /// deployment's worker to run.
    Queued { queue: String },
    /// Run here: its report.
    Ran(Box<Report>),
}

impl Deployment {
    /// A refresh of `feed` asked for (the function URL, `flarefeed refresh`, a schedule naming
    /// a feed): the one "queue it or run it here" decision. With a queue, every refresh of a
    /// feed runs in its FIFO message group, which is what keeps two from running at once
    /// (queued refreshes write no claim), so this one is sent there (`force` goes with it);
    /// without one it runs here with `options`.
    pub async fn ask(&self, feed: &FeedConfig, force: bool, options: RefreshOptions) -> Result<Asked, QueueError> {
        self.ask_with(feed, force, options, None).await
    }

    /// [`Deployment::ask`], with a refresh run here stopped when `interrupt` fires
    /// ([`Refresher::refresh_interruptible`]).
    pub async fn ask_interruptible(
        &self,
        feed: &FeedConfig,
        force: bool,
        options: RefreshOptions,
        interrupt: &Interrupt,
    ) -> Result<Asked, QueueError> {
        self.ask_with(feed, force, options, Some(interrupt)).await
    }

    async fn ask_with(
        &self,
        feed: &FeedConfig,
        force: bool,
        options: RefreshOptions,
        interrupt: Option<&Interrupt>,
    ) -> Result<Asked, QueueError> {
        if let Some(queue) = &self.queue {
            queue.ask(&feed.name, force).await?;
            return Ok(Asked::Queued { queue: queue.locate() });
        }
        let report = match interrupt {
            Some(interrupt) => self.refresher.refresh_interruptible(feed, options, interrupt).await,
            None => self.refresher.refresh(feed, options).await,
        };
        Ok(Asked::Ran(Box::new(report)))
    }
}

/// The solver the settings name: one FlareSolverr, or a pool of them.
pub fn solver(settings: &SolverSettings) -> Arc<dyn Solver> {
    match settings.urls.len() {
        0 | 1 => Arc::new(FlareSolverr::new(settings.clone())),
        _ => Arc::new(SolverPool::new(settings)),
    }
}

/// Only the store, for commands that read records: the AWS SDK's default chain for S3.
pub async fn store(config: &StoreConfig) -> Arc<dyn Store> {
    use crate::config::StoreLocation;
    match &config.location {
        StoreLocation::Dir(dir) => Arc::new(LocalStore::new(dir, &config.prefix)),
        StoreLocation::Bucket(bucket) => Arc::new(S3Store::connect(bucket, &config.prefix).await),
    }
}
