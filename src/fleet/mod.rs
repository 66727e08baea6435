//! Many feeds on one schedule: the planner ([`plan`]) decides which feeds each tick makes due,
//! the queue ([`queue`]) carries them to the workers (SQS on AWS), and [`local`] runs planner
//! and workers in one process for `flarefeed run`. A failing feed's backoff is the status
//! record's to decide ([`crate::status::StatusRecord::gate`]).

pub mod local;
pub mod plan;
pub mod queue;

pub use plan::{Due, due_in, due_slot, phase, plan};
