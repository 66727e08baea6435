//! flarefeed's integration tests: one binary, one module per concern.

mod bad_input;
mod cli;
mod common;
mod fake_solver;
mod faults;
mod feed;
mod handler;
mod lambda;
mod races;
mod refresh;
mod s3_server;
mod solver;
mod template;
mod wellformed;
