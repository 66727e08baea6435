//! The `flarefeed` binary: a thin shell around the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = flarefeed::cli::Cli::parse();
    match flarefeed::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flarefeed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
