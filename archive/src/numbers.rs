//! Fragment numbers (spec §6): fixed-width decimal strings, so that text order is numeric order,
//! strictly increasing in issue order, unique across streams, and never reused after a restart.
//! A number is the issuing millisecond × 10^6 plus a counter: after a restart the clock has
//! moved past every number issued before (and the catalog's greatest number is a floor too).

use std::sync::Mutex;

use kinescope_api::{FragmentNumber, Timestamp};

/// Digits of every number Kinescope issues (u64 fits in 20).
pub const WIDTH: usize = 20;
const PER_MILLISECOND: u64 = 1_000_000;

/// Issues fragment numbers.
#[derive(Debug)]
pub struct FragmentNumbers {
    last: Mutex<u64>,
}

impl FragmentNumbers {
    /// Starts above `floor` (the greatest number already recorded).
    pub fn new(floor: Option<&FragmentNumber>) -> Self {
        let last = floor.and_then(|n| n.as_str().parse().ok()).unwrap_or(0);
        Self {
            last: Mutex::new(last),
        }
    }

    /// The next number, issued at `now`.
    pub fn next(&self, now: Timestamp) -> FragmentNumber {
        let mut last = self.last.lock().expect("not poisoned");
        let from_clock = u64::try_from(now.as_millis())
            .unwrap_or(0)
            .saturating_mul(PER_MILLISECOND);
        *last = from_clock.max(last.saturating_add(1));
        FragmentNumber::parse(&format!("{:0WIDTH$}", *last)).expect("digits")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_increasing_fixed_width_and_above_the_floor() {
        let n = FragmentNumbers::new(None);
        let t = Timestamp::from_millis(1_795_774_093_274);
        let a = n.next(t);
        let b = n.next(t);
        assert_eq!(a.as_str(), "01795774093274000000");
        assert_eq!(b.as_str(), "01795774093274000001");
        // The clock going backwards does not make numbers go backwards.
        let c = n.next(Timestamp::from_millis(1_000));
        assert!(c > b && c.as_str().len() == WIDTH);
        // After a restart with a slow clock, the recorded floor still wins.
        let restarted = FragmentNumbers::new(Some(&c));
        assert!(restarted.next(Timestamp::from_millis(5)) > c);
    }
}
