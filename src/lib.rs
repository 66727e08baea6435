//! flarefeed: fetch feeds that sit behind Cloudflare's bot check through FlareSolverr, check
//! that what came back really is the feed, pretty-print it and publish it where readers can
//! fetch it statically.

pub mod cli;
pub mod config;
pub mod feed;
pub mod handler;
pub mod refresh;
pub mod solver;
pub mod store;
