//! The command line: the same library the Lambda runs, driven from a shell. The clap types and
//! the dispatch are here; the commands in [`commands`], what they print in [`print`], and the
//! terminal's live line and logs in [`terminal`].

mod commands;
mod print;
mod terminal;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use terminal::{DEFAULT_LOG, init_logging};

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
        /// The configuration file (else FLAREFEED_CONFIG, FLAREFEED_CONFIG_FILE or FLAREFEED_CONFIG_URL).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Publish even when the feed is unchanged.
        #[arg(long)]
        force: bool,
        /// Refresh this one url, no configuration needed (solver at localhost:8191, output in ./public/).
        #[arg(long)]
        url: Option<String>,
        /// The name for --url (default: from the url's host and path); the feed is written as NAME.xml.
        #[arg(long, requires = "url")]
        name: Option<String>,
        /// With --url: refuse a feed with fewer items than this (default 1).
        #[arg(long, requires = "url", value_name = "N")]
        min_items: Option<usize>,
        /// With --url: FlareSolverr's maxTimeout, in seconds (default 60, at most 600).
        #[arg(long, requires = "url", value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=600))]
        max_timeout: Option<u64>,
        /// One JSON object per feed (the report the function URL returns) instead of a line.
        #[arg(long)]
        json: bool,
    },
    /// Refresh every feed on its interval until Ctrl-C: the fleet's planner and workers in one
    /// process, on the folder or S3 store, with no AWS queue. A failing feed backs off.
    Run {
        /// The configuration file (else FLAREFEED_CONFIG, FLAREFEED_CONFIG_FILE or FLAREFEED_CONFIG_URL).
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
        /// The configuration file (else FLAREFEED_CONFIG, FLAREFEED_CONFIG_FILE or FLAREFEED_CONFIG_URL).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the records as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the items a feed built from a page ([feeds.html] or [feeds.json]) would publish, and
    /// what was skipped and why: for writing its selectors. Writes nothing; exit 1 when no item
    /// is found.
    Preview {
        /// The feed's name.
        name: String,
        /// The configuration file (else FLAREFEED_CONFIG, FLAREFEED_CONFIG_FILE or FLAREFEED_CONFIG_URL).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Read this saved page (HTML, or JSON for [feeds.json]) instead of fetching it.
        #[arg(long, value_name = "FILE")]
        page: Option<PathBuf>,
        /// Every field of every item, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the status site (index.html, feeds.opml, index.json, badges) from every
    /// feed's record. Refreshes keep it up to date themselves; this writes it whole.
    Site {
        /// The configuration file (else FLAREFEED_CONFIG, FLAREFEED_CONFIG_FILE or FLAREFEED_CONFIG_URL).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// Runs a parsed command line. `Ok(code)` for outcomes the command reports itself.
///
/// `format` and `check` are plain computation; only the commands that talk to the solver or the
/// store start an async runtime.
pub fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Format { file } => commands::format(file.as_ref()),
        Command::Check { file, min_items } => commands::check(file.as_ref(), min_items),
        Command::Refresh {
            feeds,
            config,
            force,
            url,
            name,
            min_items,
            max_timeout,
            json,
        } => {
            let one = url.map(|url| commands::OneUrl {
                url,
                name,
                min_items,
                max_timeout,
            });
            block_on(commands::refresh(feeds, config, force, one, json))
        }
        Command::Status { config, json } => block_on(commands::status(config, json)),
        Command::Site { config } => block_on(commands::site(config)),
        Command::Preview {
            name,
            config,
            page,
            json,
        } => block_on(commands::preview(&name, config, page, json)),
        Command::Run { config, jobs } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(commands::run(config, jobs)),
    }
}

/// Runs the solver and store commands on a single-threaded runtime, all sequential refreshes need.
fn block_on<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(work)
}
