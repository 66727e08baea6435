//! flarefeed's integration tests: one binary, one module per concern.

mod bad_input;
mod cli;
mod direct;
mod faults;
mod feed;
mod fleet;
mod handler;
mod helpers;
mod lambda;
mod pages;
mod races;
mod readers;
mod refresh;
mod site;
mod solver;
mod store;
mod template;
mod wellformed;
