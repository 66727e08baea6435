//! The `flarefeed` binary: a thin shell around the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Under Lambda the runtime API is set, and the same binary is the function (`bootstrap`).
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
        return match runtime
            .map_err(Into::into)
            .and_then(|rt| rt.block_on(flarefeed::handler::run()))
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("flarefeed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Logs go to stderr so stdout stays the command's own output; RUST_LOG overrides the level.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("flarefeed=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = flarefeed::cli::Cli::parse();
    match flarefeed::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flarefeed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
