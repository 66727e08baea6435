//! flarefeed: fetch feeds that sit behind Cloudflare's bot check through FlareSolverr, check
//! that what came back really is the feed, pretty-print it and publish it where readers can
//! fetch it statically.
//!
//! # Layout
//!
//! From the entry points down; each module imports only from modules below it.
//!
//! - Entry points: [`cli`] (the `flarefeed` commands) and [`handler`] (the Lambda function:
//!   schedules, the fleet's tick and worker, the function URL).
//! - [`deployment`]: the composition root. It finds the configuration, builds the adapters
//!   and the [`refresh::Refresher`] over them, once, and decides whether a refresh asked for is
//!   queued or run here ([`deployment::Deployment::ask`]).
//! - [`fleet`]: many feeds on one schedule: the planner, the queue (SQS) and its one message
//!   type, and `flarefeed run`'s engine in one process.
//! - [`metrics`]: CloudWatch EMF lines, an [`observer::Observer`] the Lambda wires in.
//! - [`refresh`]: one refresh of one feed: acquire the lease, attempt (the route, direct or
//!   through the solver, a feed built from its page, the publish), release the lease with the
//!   finished record; and `preview`, the same fetch and reading with nothing written.
//! - [`site`]: the status site beside the feeds, updated by a refresh whose summary changed.
//! - [`observer`]: who hears of every refresh and tick, so that neither knows of metrics.
//! - [`status`]: the per-feed status record and its transitions, the lease that lets one
//!   refresh of a feed run at a time, and the record's lag.
//! - [`outcome`]: what a refresh did, worded once.
//! - Ports and their adapters: [`fetch`] (a direct GET), [`solver`] (FlareSolverr, a pool of
//!   them) and [`store`] (S3, a folder). With the `test-util` feature each port has a public
//!   fake: `ScriptedFetcher`, `ScriptedSolver`, `MemoryStore` and `MemoryQueue`, as tokio's
//!   `test-util` does for time.
//! - [`config`]: the TOML configuration: its types, the raw TOML and its validation, its
//!   sources and environment, and its S3 watch.
//! - [`rewrite`]: what readers get: the published feed's own self and hub links, block and
//!   allow rules, the archive and full text, as edits to the checked document.
//! - [`items`]: the item memory: when each item was first seen, archived items and articles.
//! - [`scrape`]: a feed built from a page that has none: items read by CSS selectors or JSON
//!   paths, their dates, and the Atom document they become.
//! - [`feed`]: extracting the feed from a solver's page, the guard, and the formatter.
//! - [`interrupt`]: the CLI's Ctrl-C, which a refresh watches while it waits on the network.
//! - [`redact`]: urls without their secrets, and site or solver text as one escaped line, for
//!   every message.

pub mod cli;
pub mod config;
pub mod deployment;
pub mod feed;
pub mod fetch;
pub mod fleet;
pub mod handler;
pub mod interrupt;
pub mod items;
pub mod metrics;
pub mod observer;
pub mod outcome;
pub mod redact;
pub mod refresh;
pub mod rewrite;
pub mod scrape;
pub mod site;
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
