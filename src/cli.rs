//! The command line: the same library the Lambda runs, driven from a shell.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::feed::{self, GuardOptions};

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
}

/// Runs a parsed command line. `Ok(code)` for outcomes the command reports itself.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Format { file } => {
            let input = read_input(file.as_ref())?;
            match feed::format_bytes(&input) {
                Ok(formatted) => {
                    std::io::stdout()
                        .lock()
                        .write_all(formatted.xml.as_bytes())
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
    }
}

fn fail(error: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("flarefeed: {error}");
    Ok(ExitCode::FAILURE)
}

fn read_input(file: Option<&PathBuf>) -> anyhow::Result<Vec<u8>> {
    match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display())),
        None => {
            let mut input = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut input)
                .context("reading stdin")?;
            Ok(input)
        }
    }
}
