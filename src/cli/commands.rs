//! The commands: `format` and `check` are plain computation; `refresh`, `run` and `status` talk
//! to the solver or the store, through a deployment built by [`crate::deployment`].

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::print::{self, status_table};
use super::terminal::{clear_live_line, draw_live_line, shutdown_signal, signal_exit_code, spinning};
use crate::config::{Config, ConfigError};
use crate::deployment::{self, Asked, Deployment};
use crate::feed::{self, GuardOptions};
use crate::interrupt::Interrupt;
use crate::refresh::RefreshOptions;
use crate::status;

/// `flarefeed format`: the document pretty-printed to stdout.
pub(super) fn format(file: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    let input = read_input(file)?;
    let text = match feed::decode(&input) {
        Ok(text) => text,
        Err(e) => return fail(e),
    };
    match feed::format(&text) {
        Ok(formatted) => {
            formatted
                .write_to(std::io::stdout().lock())
                .context("writing to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => fail(e),
    }
}

/// `flarefeed check`: the guard's verdict on a document.
pub(super) fn check(file: Option<&PathBuf>, min_items: usize) -> anyhow::Result<ExitCode> {
    let input = read_input(file)?;
    let options = GuardOptions {
        min_items,
        ..GuardOptions::default()
    };
    match feed::decode(&input).and_then(|text| feed::check(&text, options)) {
        Ok(info) => {
            println!("{info}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => fail(e),
    }
}

/// `flarefeed refresh`: one line (or JSON object) per feed; exit 1 if any failed, 75
/// (`EX_TEMPFAIL`) if none failed but one was busy or backing off. Ctrl-C or SIGTERM stops the
/// refresh in flight (its status record put back as it was) and the feeds not started, and
/// exits 130 or 143.
/// `refresh --url`: one feed with no configuration, and the settings it may change.
pub(super) struct OneUrl {
    pub(super) url: String,
    pub(super) name: Option<String>,
    pub(super) min_items: Option<usize>,
    /// Seconds.
    pub(super) max_timeout: Option<u64>,
}

pub(super) async fn refresh(
    feeds: Vec<String>,
    config: Option<PathBuf>,
    force: bool,
    one: Option<OneUrl>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let env = crate::config::process_env;
    let one_url = one.is_some();
    let config = match one {
        Some(one) => {
            let mut config = Config::for_url(&one.url, one.name.as_deref(), config.as_deref(), &env)?;
            if let Some(min_items) = one.min_items {
                config.feeds[0].min_items = min_items;
            }
            if let Some(seconds) = one.max_timeout {
                config.solver.max_timeout = std::time::Duration::from_secs(seconds);
            }
            config
        }
        None => deployment::load(config.as_deref()).await?.config,
    };
    let selected = match feeds.is_empty() {
        true => config.feeds.clone(),
        false => feeds
            .iter()
            .map(|name| config.feed(name).cloned())
            .collect::<Result<_, _>>()?,
    };
    let mut deployment = Deployment::connect(config, None).await;
    if one_url {
        // A one-off url is no feed of the deployment: it runs here, whatever queue is set.
        deployment.queue = None;
    }
    let options = RefreshOptions::cli(force);
    let (interrupter, interrupt) = Interrupt::channel();
    let signal = shutdown_signal()?;
    tokio::spawn(async move { interrupter.interrupt(signal.await) });
    let (mut failed, mut held_back) = (false, false);
    for feed in &selected {
        if interrupt.fired().is_some() {
            break;
        }
        let asked = deployment.ask_interruptible(feed, force, options, &interrupt);
        let report = match spinning(&feed.name, asked).await? {
            Asked::Ran(report) => report,
            Asked::Queued { queue } => {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"feed": feed.name, "queued": queue, "force": force})
                    );
                } else {
                    println!(
                        "{}  queued  to {queue}; `flarefeed status` shows its outcome once the deployment has run it",
                        feed.name,
                    );
                }
                continue;
            }
        };
        failed |= report.outcome.is_failure();
        held_back |= matches!(
            report.outcome,
            crate::outcome::Outcome::Busy { .. } | crate::outcome::Outcome::Backoff { .. }
        );
        if json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!("{report}");
        }
    }
    if let Some(signal) = interrupt.fired() {
        eprintln!("flarefeed: stopped by {signal}; feeds not started were left alone");
        return Ok(ExitCode::from(signal_exit_code(signal)));
    }
    Ok(match (failed, held_back) {
        (true, _) => ExitCode::FAILURE,
        (false, true) => ExitCode::from(EX_TEMPFAIL),
        (false, false) => ExitCode::SUCCESS,
    })
}

/// `flarefeed site`: the whole status site, from every configured feed's record.
pub(super) async fn site(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = deployment::load(config.as_deref()).await?.config;
    let store = deployment::store(&config.store).await;
    let records = status::all(store.as_ref(), &config).await?;
    let now = crate::store::store_now(store.as_ref());
    let index = crate::site::rebuild(store.as_ref(), &config, &records, now).await?;
    for key in crate::config::SITE_KEYS.iter().chain([&crate::site::INDEX_JSON]) {
        println!("{}", store.locate(key));
    }
    println!("{} feeds", index.feeds.len());
    Ok(ExitCode::SUCCESS)
}

/// `flarefeed preview`: the items the feed's rules read from its page (fetched, or `page`),
/// what was skipped and why. Nothing is written. Exit 1 when there is no item.
pub(super) async fn preview(
    name: &str,
    config: Option<PathBuf>,
    page: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = deployment::load(config.as_deref()).await?.config;
    let feed = config.feed(name)?.clone();
    let saved = match &page {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let is_json = matches!(feed.scrape, Some(crate::scrape::Rules::Json(_)));
            Some(crate::scrape::decode(&bytes, None, is_json).into_owned())
        }
        None => None,
    };
    let deployment = Deployment::connect(config, None).await;
    let previewed = spinning(&feed.name, deployment.refresher.preview(&feed, saved)).await;
    match previewed {
        Ok(preview) if json => println!(
            "{}",
            serde_json::to_string_pretty(&print::preview_json(&feed, &preview))?
        ),
        Ok(preview) => print!(
            "{}",
            print::preview(&feed, &preview, crate::store::store_now(deployment.store.as_ref()))
        ),
        Err(failure) => {
            if let Some(extraction) = &failure.extraction {
                print!("{}", print::skipped(extraction));
            }
            return fail(format_args!("{}: {}: {}", feed.name, failure.stage, failure.error));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// sysexits.h's "temporary failure; the user is invited to retry".
const EX_TEMPFAIL: u8 = 75;

/// `flarefeed run`: until Ctrl-C (or SIGTERM), then the refreshes in flight finish and it exits 0.
pub(super) async fn run(config: Option<PathBuf>, jobs: Option<usize>) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let config = deployment::load(config.as_deref()).await?.config;
    let jobs = jobs.unwrap_or(config.solver.urls.len()).max(1);
    let feeds = config.feeds.len();
    let deployment = Deployment::connect(config, None).await;
    // Registered before the first refresh starts, so that an early Ctrl-C is not lost.
    let shutdown = shutdown_signal()?;
    let progress = std::sync::Arc::new(crate::fleet::local::Progress::default());
    eprintln!("flarefeed: {feeds} feeds, {jobs} at once; Ctrl-C stops after the refreshes in flight");
    // What comes first: feeds never refreshed or overdue now, the others at their next slot.
    let mut records = Vec::with_capacity(feeds);
    for feed in &deployment.config.feeds {
        records.push(status::read(deployment.store.as_ref(), feed).await?.record);
    }
    let now = time::OffsetDateTime::now_utc();
    let start = crate::fleet::local::start(&deployment.config, &records, now);
    if !start.now.is_empty() {
        eprintln!(
            "flarefeed: {} never refreshed or overdue, refreshed now",
            start.now.len()
        );
    }
    const SHOWN: usize = 20;
    for (feed, at) in start.later.iter().take(SHOWN) {
        eprintln!("flarefeed: {feed} next at {}", crate::outcome::rfc3339(*at));
    }
    if start.later.len() > SHOWN {
        eprintln!("flarefeed: and {} more later", start.later.len() - SHOWN);
    }
    let live = std::io::stderr().is_terminal().then(|| {
        let progress = progress.clone();
        let config = deployment.config.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                let now = time::OffsetDateTime::now_utc();
                let next = config
                    .feeds
                    .iter()
                    .map(|f| (f.name.as_str(), crate::fleet::local::next_slot(f, now)))
                    .min_by_key(|(_, at)| *at);
                draw_live_line(&progress.live(next, now));
            }
        })
    });
    crate::fleet::local::serve(
        deployment.config,
        deployment.refresher,
        jobs,
        Some(start.now),
        async move {
            shutdown.await;
        },
        progress.clone(),
    )
    .await;
    if let Some(live) = live {
        live.abort();
        clear_live_line();
    }
    println!("{}", progress.line());
    Ok(ExitCode::SUCCESS)
}

/// `flarefeed status`: each feed's record. It builds only the store.
pub(super) async fn status(config: Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let env = crate::config::process_env;
    let mut configured = None;
    let records = match deployment::load(config.as_deref()).await {
        Ok(loaded) => {
            let store = deployment::store(&loaded.config.store).await;
            let records = status::all(store.as_ref(), &loaded.config).await?;
            configured = Some(loaded.config);
            records
        }
        // As `refresh --url` does: the default folder, whatever feeds it has records for.
        Err(ConfigError::Missing) => {
            let defaults = Config::parse("", "defaults", &env)?;
            let store = deployment::store(&defaults.store).await;
            let records = status::found(store.as_ref()).await?;
            if records.is_empty() {
                anyhow::bail!(
                    "{}; and {} holds no status records from `refresh --url`",
                    ConfigError::Missing,
                    store.locate("status/")
                );
            }
            records
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&records)?);
    } else {
        let style = super::print::Style {
            width: super::print::width(),
            colour: super::print::colour_wanted(),
        };
        let now = time::OffsetDateTime::now_utc();
        print!("{}", status_table(&records, configured.as_ref(), style, now));
    }
    Ok(ExitCode::SUCCESS)
}

fn fail(error: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("flarefeed: {error}");
    Ok(ExitCode::FAILURE)
}

/// The input document: a regular file is memory-mapped (no copy, and far fewer page faults than
/// reading a large feed into fresh memory); stdin, "-" and anything else is read.
enum Input {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl std::ops::Deref for Input {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Input::Mapped(map) => map,
            Input::Read(bytes) => bytes,
        }
    }
}

fn read_input(file: Option<&PathBuf>) -> anyhow::Result<Input> {
    let Some(path) = file.filter(|f| f.as_os_str() != "-") else {
        let mut input = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut input)
            .context("reading stdin")?;
        return Ok(Input::Read(input));
    };
    let context = || format!("reading {}", path.display());
    let file = std::fs::File::open(path).with_context(context)?;
    let metadata = file.metadata().with_context(context)?;
    if !metadata.is_file() || metadata.len() == 0 {
        return Ok(Input::Read(std::fs::read(path).with_context(context)?));
    }
    // SAFETY: the map is only read, for the life of this command. A file truncated by another
    // process meanwhile is outside what `format`/`check` promise, as for any tool that maps input.
    // Populated: the whole file is read in one go rather than faulted in page by page, which
    // was a tenth of `format`'s time on a 10 MB feed.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.with_context(context)?;
    Ok(Input::Mapped(map))
}
