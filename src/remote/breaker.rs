//! A circuit breaker: after a few consecutive failures that say the remote is unwell, the
//! remote is skipped for a while (so a dead or black-holed store costs a build a few
//! deadlines, not one per compile); then one probe is let through; a success closes it,
//! another failure opens it for twice as long, up to a cap.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

/// Failures in a row that open the breaker.
pub const TRIP_AFTER: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    Closed,
    Open,
    /// One probe is allowed (and may be in flight).
    HalfOpen,
}

impl BreakerState {
    /// As `zcfs remote status --json` spells it.
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

#[derive(Debug)]
struct Inner {
    failures: u32,
    open_until: Option<Instant>,
    open_for: Duration,
    probing: bool,
    trips: u64,
}

#[derive(Debug)]
pub struct Breaker {
    inner: Mutex<Inner>,
    first: Duration,
    max: Duration,
}

impl Breaker {
    pub fn new(first: Duration, max: Duration) -> Breaker {
        Breaker {
            inner: Mutex::new(Inner {
                failures: 0,
                open_until: None,
                open_for: first,
                probing: false,
                trips: 0,
            }),
            first,
            max: max.max(first),
        }
    }

    /// Whether a call may go to the remote now. While open: no; once the open time is
    /// over, one caller (the probe) gets `true` until it reports.
    pub fn allow(&self) -> bool {
        let mut s = self.inner.lock();
        match s.open_until {
            None => true,
            Some(until) if Instant::now() < until => false,
            Some(_) if s.probing => false,
            Some(_) => {
                s.probing = true;
                true
            }
        }
    }

    pub fn success(&self) {
        let mut s = self.inner.lock();
        s.failures = 0;
        s.open_until = None;
        s.probing = false;
        s.open_for = self.first;
    }

    /// Records a failure that says the remote is unwell. Returns true if this opened the
    /// breaker.
    pub fn failure(&self) -> bool {
        let mut s = self.inner.lock();
        if s.probing {
            // The probe failed: open again, for longer.
            s.probing = false;
            s.open_for = (s.open_for * 2).min(self.max);
            s.open_until = Some(Instant::now() + s.open_for);
            s.trips += 1;
            return true;
        }
        if s.open_until.is_some() {
            return false;
        }
        s.failures += 1;
        if s.failures >= TRIP_AFTER {
            s.open_until = Some(Instant::now() + s.open_for);
            s.trips += 1;
            return true;
        }
        false
    }

    /// A call that ended without saying anything about the remote's health (an object
    /// too large, a local error): a probe's slot is given back.
    pub fn neutral(&self) {
        self.inner.lock().probing = false;
    }

    pub fn state(&self) -> BreakerState {
        let s = self.inner.lock();
        match s.open_until {
            None => BreakerState::Closed,
            Some(until) if Instant::now() < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    pub fn trips(&self) -> u64 {
        self.inner.lock().trips
    }

    /// Time until the next probe, while open.
    pub fn retry_in(&self) -> Option<Duration> {
        let s = self.inner.lock();
        s.open_until
            .and_then(|u| u.checked_duration_since(Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_three_failures_probes_once_and_backs_off() {
        let b = Breaker::new(Duration::from_millis(40), Duration::from_millis(100));
        assert!(b.allow());
        assert!(!b.failure());
        b.success();
        for i in 0..TRIP_AFTER {
            assert!(b.allow());
            assert_eq!(b.failure(), i + 1 == TRIP_AFTER);
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.allow(), "one probe");
        assert!(!b.allow(), "only one");
        assert!(b.failure(), "the probe failed: open again");
        assert_eq!(b.trips(), 2);
        // Twice as long now: still open after the first period.
        std::thread::sleep(Duration::from_millis(50));
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow());
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow() && b.allow());
    }

    #[test]
    fn a_neutral_probe_gives_its_slot_back() {
        let b = Breaker::new(Duration::from_millis(1), Duration::from_millis(1));
        for _ in 0..TRIP_AFTER {
            b.failure();
        }
        std::thread::sleep(Duration::from_millis(5));
        assert!(b.allow());
        b.neutral();
        assert!(b.allow());
    }
}
