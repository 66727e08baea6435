//! The command line: the same library the Lambda runs, driven from a shell.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError};
use crate::feed::{self, GuardOptions};
use crate::refresh::{Deployment, Outcome, RefreshOptions, Report};
use crate::status::{self, StatusRecord};

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
        /// One JSON object per feed (the report the function URL returns) instead of a line.
        #[arg(long)]
        json: bool,
    },
    /// Refresh every feed on its interval until Ctrl-C: the fleet's planner and workers in one
    /// process, on the folder or S3 store, with no AWS queue. A failing feed backs off.
    Run {
        /// The configuration file (else FLAREFEED_CONFIG or FLAREFEED_CONFIG_FILE).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Refreshes at once (default: the number of solvers).
        #[arg(long, value_name = "N")]
        jobs: Option<usize>,
    },
    /// Show each feed's status record: last attempt, last success, failures, last error.
    ///
    /// Without a configuration, the records `refresh --url` left in ./public/.
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
            json,
        } => block_on(refresh(feeds, config, force, url, name, json)),
        Command::Status { config, json } => block_on(status(config, json)),
        Command::Run { config, jobs } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run_fleet(config, jobs)),
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
    json: bool,
) -> anyhow::Result<ExitCode> {
    let env = crate::config::process_env;
    let config = match url {
        Some(url) => Config::for_url(&url, name.as_deref(), config.as_deref(), &env)?,
        None => load_config(config.as_deref()).await?,
    };
    let selected = match feeds.is_empty() {
        true => config.feeds.clone(),
        false => feeds
            .iter()
            .map(|name| config.feed(name).cloned())
            .collect::<Result<_, _>>()?,
    };
    let deployment = Deployment::connect(config).await;
    let options = RefreshOptions::cli(force);
    let mut failed = false;
    for feed in &selected {
        let report = spinning(&feed.name, deployment.refresher.refresh(feed, options)).await;
        failed |= report.outcome.is_failure();
        if json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!("{}", report_line(&report));
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The configuration as the CLI finds it: `--config FILE`, `FLAREFEED_CONFIG`,
/// `FLAREFEED_CONFIG_FILE`, then `FLAREFEED_CONFIG_URL` (an S3 object or a path, read once).
async fn load_config(file: Option<&std::path::Path>) -> anyhow::Result<Config> {
    use crate::config::remote::{ConfigUrl, Watched};
    match Config::load(file, &crate::config::process_env) {
        Err(ConfigError::Missing) if let Some(url) = crate::config::process_env("FLAREFEED_CONFIG_URL") => {
            let (_, config) = Watched::open(ConfigUrl::parse(&url)?).await?;
            Ok((*config).clone())
        }
        loaded => Ok(loaded?),
    }
}

/// `flarefeed run`: until Ctrl-C (or SIGTERM), then the refreshes in flight finish and it exits 0.
async fn run_fleet(config: Option<PathBuf>, jobs: Option<usize>) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let config = load_config(config.as_deref()).await?;
    let jobs = jobs.unwrap_or(config.solver.urls.len()).max(1);
    let feeds = config.feeds.len();
    let deployment = Deployment::connect(config).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // The handlers are in place before the first refresh starts (a signal stream registers when
    // it is made, a ctrl_c() future only when first polled).
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            let _ = stop.send(true);
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
    });
    let progress = std::sync::Arc::new(crate::run::Progress::default());
    eprintln!("flarefeed: {feeds} feeds, {jobs} at once; Ctrl-C stops after the refreshes in flight");
    let live = std::io::stderr().is_terminal().then(|| {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                draw_live_line(&progress.line());
            }
        })
    });
    crate::run::run(deployment, jobs, stopped, progress.clone()).await;
    if let Some(live) = live {
        live.abort();
        clear_live_line();
    }
    println!("{}", progress.line());
    Ok(ExitCode::SUCCESS)
}

async fn status(config: Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let env = crate::config::process_env;
    let records = match load_config(config.as_deref()).await {
        Ok(config) => {
            let deployment = Deployment::connect(config).await;
            status::all(deployment.store.as_ref(), &deployment.config).await?
        }
        // As `refresh --url` does: the default folder, whatever feeds it has records for.
        Err(e) if matches!(e.downcast_ref::<ConfigError>(), Some(ConfigError::Missing)) => {
            let defaults = Config::parse("", "defaults", &env)?;
            let store = crate::store::from_config(&defaults.store).await;
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
        Err(e) => return Err(e),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&records)?);
    } else {
        print!("{}", status_table(&records));
    }
    Ok(ExitCode::SUCCESS)
}

/// `name  outcome  kind, N items, B bytes, T s  → where`, or the failure with its stage.
fn report_line(report: &Report) -> String {
    let seconds = report.total_ms as f64 / 1000.0;
    match &report.outcome {
        Outcome::Failed { stage, error } => format!("{}  failed at {stage} ({seconds:.1} s): {error}", report.feed),
        Outcome::Skipped { retry_after_s } => format!("{}  skipped: retry in {retry_after_s} s", report.feed),
        Outcome::Backoff {
            retry_after_s,
            failures,
        } => format!(
            "{}  backing off after {failures} failures: next attempt in {retry_after_s} s",
            report.feed
        ),
        Outcome::Busy { retry_after_s, started } => format!(
            "{}  busy: another refresh started at {started} is in flight; it ends within {retry_after_s} s",
            report.feed
        ),
        outcome => format!(
            "{}  {}  {}, {} items, {} bytes, {seconds:.1} s  -> {}",
            report.feed,
            outcome.name(),
            report.kind.as_deref().unwrap_or("?"),
            report.items.unwrap_or(0),
            report.bytes.unwrap_or(0),
            report.location,
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
                _ => r.outcome.to_string(),
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

/// Logs go to stderr, so that stdout stays the command's own output. Colour only on a terminal,
/// and never with `NO_COLOR` set (<https://no-color.org>): cron mail and log files get plain
/// text. `RUST_LOG` overrides the level; by default the refresh's own outcome log is off, as the
/// command prints each outcome itself, except under `run`, where it is the only word of each.
pub fn init_logging(cli: &Cli) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let default = match cli.command {
        Command::Run { .. } => "flarefeed=info",
        _ => DEFAULT_LOG,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .with_writer(|| LogWriter)
        .init();
}

/// The CLI's log level when `RUST_LOG` is not set.
pub const DEFAULT_LOG: &str = "flarefeed=info,flarefeed::outcome=off";

/// Whether the spinner's line is on the terminal now: a log line clears it first.
static SPINNER_SHOWN: AtomicBool = AtomicBool::new(false);

/// Stderr, clearing the spinner's line before a log line is written over it.
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut stderr = std::io::stderr().lock();
        if SPINNER_SHOWN.swap(false, Ordering::Relaxed) {
            stderr.write_all(CLEAR_LINE)?;
        }
        stderr.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Carriage return, then erase the line (ECMA-48 EL).
const CLEAR_LINE: &[u8] = b"\r\x1b[2K";

/// Awaits `work`, and meanwhile, on a terminal, shows the feed and the time taken so far: a
/// refresh spends 5 to 60 s waiting for the solver. Nothing is drawn through pipes or on a dumb
/// terminal.
async fn spinning<T>(feed: &str, work: impl Future<Output = T>) -> T {
    use std::io::IsTerminal;
    let dumb = std::env::var("TERM").is_ok_and(|term| term == "dumb");
    if !std::io::stderr().is_terminal() || dumb {
        return work.await;
    }
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let started = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(100));
    tokio::pin!(work);
    let mut frame = 0;
    let result = loop {
        tokio::select! {
            result = &mut work => break result,
            _ = ticks.tick() => {
                let seconds = started.elapsed().as_secs_f64();
                draw_live_line(&format!("{} {feed}  {seconds:.1} s", FRAMES[frame % FRAMES.len()]));
                frame += 1;
            }
        }
    };
    clear_live_line();
    result
}

/// Draws `text` as the terminal's live line (the spinner, `run`'s progress), in place of the
/// last one; a log line clears it first ([`LogWriter`]).
fn draw_live_line(text: &str) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(CLEAR_LINE);
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
    SPINNER_SHOWN.store(true, Ordering::Relaxed);
}

/// Erases the live line, if one is shown.
fn clear_live_line() {
    use std::io::Write;
    if SPINNER_SHOWN.swap(false, Ordering::Relaxed) {
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(CLEAR_LINE);
        let _ = stderr.flush();
    }
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
