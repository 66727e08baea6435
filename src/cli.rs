//! The command line: the same library the Lambda runs, driven from a shell.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::feed::{self, GuardOptions};
use crate::refresh::{Outcome, RefreshOptions, Refresher, Report, StatusRecord, Trigger};

/// Fetch Cloudflare-protected feeds through FlareSolverr, check them and publish them.
#[derive(Debug, Parser)]
#[command(name = "flarefeed", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pretty-print an XML document without changing its meaning (FILE or stdin to stdout).
    Format {
        /// The document; stdin when absent or "-".
        file: Option<PathBuf>,
    },
    /// Run the publish guard on a feed document: prints its kind and item count, or why it would be refused.
    Check {
        /// The document; stdin when absent or "-".
        file: Option<PathBuf>,
        /// Refuse feeds with fewer items than this.
        #[arg(long, default_value_t = 1)]
        min_items: usize,
    },
    /// Fetch feeds through FlareSolverr and publish the good ones; one line per feed. Exit 1 if any failed.
    Refresh {
        /// Feeds to refresh, by name; all configured feeds when none are named.
        #[arg(conflicts_with = "url")]
        feeds: Vec<String>,
        /// The configuration file (else FLAREFEED_CONFIG or FLAREFEED_CONFIG_FILE).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Publish even when the feed is unchanged.
        #[arg(long)]
        force: bool,
        /// Refresh this one url, no configuration needed (solver at localhost:8191, output in ./public/).
        #[arg(long)]
        url: Option<String>,
        /// The name for --url (default: from the url's host); the feed is written as NAME.xml.
        #[arg(long, requires = "url")]
        name: Option<String>,
    },
    /// Show each feed's status record: last attempt, last success, failures, last error.
    Status {
        /// The configuration file (else FLAREFEED_CONFIG or FLAREFEED_CONFIG_FILE).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the records as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a parsed command line. `Ok(code)` for outcomes the command reports itself.
///
/// `format` and `check` are plain computation; only the commands that talk to the solver or the
/// store start an async runtime.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Format { file } => {
            let input = read_input(file.as_ref())?;
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
        Command::Check { file, min_items } => {
            let input = read_input(file.as_ref())?;
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
        Command::Refresh {
            feeds,
            config,
            force,
            url,
            name,
        } => block_on(refresh(feeds, config, force, url, name)),
        Command::Status { config, json } => block_on(status(config, json)),
    }
}

/// Runs the solver and store commands on a single-threaded runtime, all sequential refreshes need.
fn block_on<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(work)
}

async fn refresh(
    feeds: Vec<String>,
    config: Option<PathBuf>,
    force: bool,
    url: Option<String>,
    name: Option<String>,
) -> anyhow::Result<ExitCode> {
    let env = |key: &str| std::env::var(key).ok();
    let config = match url {
        Some(url) => Config::for_url(&url, name.as_deref(), config.as_deref(), &env)?,
        None => Config::load(config.as_deref(), &env)?,
    };
    let selected = match feeds.is_empty() {
        true => config.feeds.clone(),
        false => feeds
            .iter()
            .map(|name| config.feed(name).cloned())
            .collect::<Result<_, _>>()?,
    };
    let refresher = Refresher::connect(config).await;
    let options = RefreshOptions {
        deadline: None,
        trigger: Trigger::Cli,
        force,
    };
    let mut failed = false;
    for feed in &selected {
        let report = refresher.refresh(feed, options).await;
        failed |= report.outcome.is_failure();
        println!("{}", report_line(&report, &refresher.store().locate(&feed.key)));
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn status(config: Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let env = |key: &str| std::env::var(key).ok();
    let refresher = Refresher::connect(Config::load(config.as_deref(), &env)?).await;
    let records = refresher.statuses().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&records)?);
    } else {
        print!("{}", status_table(&records));
    }
    Ok(ExitCode::SUCCESS)
}

/// `name  outcome  kind, N items, B bytes, T s  → where`, or the failure with its stage.
fn report_line(report: &Report, target: &str) -> String {
    let seconds = report.total_ms as f64 / 1000.0;
    match &report.outcome {
        Outcome::Failed { stage, reason } => format!("{}  failed at {stage} ({seconds:.1} s): {reason}", report.feed),
        Outcome::Skipped { retry_after_s } => format!("{}  skipped: retry in {retry_after_s} s", report.feed),
        Outcome::Busy { retry_after_s, started } => format!(
            "{}  busy: another refresh started at {started} is in flight; it ends within {retry_after_s} s",
            report.feed
        ),
        outcome => format!(
            "{}  {}  {}, {} items, {} bytes, {seconds:.1} s  -> {target}",
            report.feed,
            outcome.name(),
            report.kind.as_deref().unwrap_or("?"),
            report.items.unwrap_or(0),
            report.bytes.unwrap_or(0),
        ),
    }
}

fn status_table(records: &[StatusRecord]) -> String {
    let header = [
        "FEED",
        "OUTCOME",
        "LAST ATTEMPT",
        "LAST SUCCESS",
        "FAILURES",
        "ITEMS",
        "BYTES",
        "LAST ERROR",
    ];
    let dash = || "-".to_string();
    let now = time::OffsetDateTime::now_utc();
    let rows: Vec<[String; 8]> = records
        .iter()
        .map(|r| {
            let outcome = match &r.in_flight {
                Some(running) if running.left(now).is_some() => format!("{} (refreshing)", r.outcome),
                _ => r.outcome.clone(),
            };
            [
                r.feed.clone(),
                outcome,
                r.last_attempt.clone().unwrap_or_else(dash),
                r.last_success.clone().unwrap_or_else(dash),
                r.consecutive_failures.to_string(),
                r.items.map_or_else(dash, |n| n.to_string()),
                r.bytes.map_or_else(dash, |n| n.to_string()),
                r.last_error.clone().unwrap_or_else(dash),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(&header.map(String::from));
    rows.iter().for_each(|row| line(row));
    out
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
    let map = unsafe { memmap2::Mmap::map(&file) }.with_context(context)?;
    Ok(Input::Mapped(map))
}
