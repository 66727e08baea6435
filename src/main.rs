//! The `flarefeed` binary: a thin shell around the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Under Lambda the runtime API is set, and the same binary is the function (`bootstrap`).
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
        return match runtime
            .map_err(Into::into)
            .and_then(|rt| rt.block_on(flarefeed::handler::run_lambda()))
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("flarefeed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = flarefeed::cli::Cli::parse();
    flarefeed::cli::init_logging(&cli);
    match flarefeed::cli::execute(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flarefeed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
