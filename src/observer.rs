//! Who hears what the deployment did: every refresh, every tick of the fleet, every refused
//! configuration. The Lambda wires its metrics in here ([`crate::metrics`]), so that neither
//! the refresh nor the handler knows anything of them.

use crate::outcome::Report;
use crate::status::StatusRecord;

/// Hears of every refresh, with the status record it left or found, and of the deployment's
/// other events.
pub trait Observer: Send + Sync {
    /// `record` is the feed's record after the refresh, or as it was read when the refresh
    /// stood back (busy, backoff); `None` when it could not be read.
    fn finished(&self, report: &Report, record: Option<&StatusRecord>);

    /// A tick sent `queued` due feeds to the queue and could not send `not_queued`.
    fn ticked(&self, queued: usize, not_queued: usize) {
        let _ = (queued, not_queued);
    }

    /// A configuration was refused as invalid: the last valid one runs.
    fn config_invalid(&self, error: &str) {
        let _ = error;
    }
}
