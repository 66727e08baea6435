//! flarefeed: fetch feeds that sit behind Cloudflare's bot check through FlareSolverr, check
//! that what came back really is the feed, pretty-print it and publish it where readers can
//! fetch it statically.

pub mod cli;
pub mod config;
pub mod feed;
pub mod fleet;
pub mod handler;
pub mod metrics;
pub mod queue;
pub mod refresh;
pub mod run;
pub mod solver;
pub mod status;
pub mod store;

/// An error with its causes, `a: b: c`: the HTTP clients' own messages rarely say
/// "connection refused" or "access denied" without them.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
