//! Server-wide bounds on what clients can make the server hold (DESIGN.md convention 8,
//! design/0010): the bytes of JSON request bodies buffered at once, and how long a body may
//! take to arrive. Over the budget a request is refused at once with a throttling error, never
//! queued: a queue would only move the memory elsewhere.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub struct Limits {
    body_budget: Arc<Semaphore>,
    /// For a JSON body to arrive in full.
    pub read_timeout: Duration,
}

/// Bytes of the body budget held while a request's body is in memory.
#[derive(Debug)]
pub struct BodyReservation {
    _permit: OwnedSemaphorePermit,
}

impl Limits {
    pub fn new(body_budget: usize, read_timeout: Duration) -> Self {
        Self {
            body_budget: Arc::new(Semaphore::new(body_budget.min(Semaphore::MAX_PERMITS))),
            read_timeout,
        }
    }

    /// Reserves `bytes` of the budget; `None` when they are not available now.
    pub fn reserve_body(&self, bytes: usize) -> Option<BodyReservation> {
        let n = u32::try_from(bytes.max(1)).ok()?;
        self.body_budget
            .clone()
            .try_acquire_many_owned(n)
            .ok()
            .map(|permit| BodyReservation { _permit: permit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_shared_and_returned() {
        let limits = Limits::new(1000, Duration::from_secs(1));
        let a = limits.reserve_body(600).unwrap();
        assert!(limits.reserve_body(600).is_none(), "over the budget");
        let b = limits.reserve_body(400).unwrap();
        drop(a);
        assert!(limits.reserve_body(600).is_some(), "returned when dropped");
        drop(b);
        assert!(
            limits.reserve_body(2000).is_none(),
            "larger than the whole budget"
        );
    }
}
