//! Where "now" comes from.
//!
//! Every time-dependent decision in Kairos (which instants are due, when a lease has
//! expired, what a record's timestamp is) asks a [`Clock`] rather than the operating
//! system, so that tests can hold time still, jump it across a DST change, or replay a
//! failover at an exact instant. Production code uses [`SystemClock`]; tests use
//! [`ManualClock`], whose clones share one time so a test can hand a clone to the code
//! under test and move time from outside.
//!
//! Invariants: a clock answers in UTC; zones are applied only where a schedule is read.
//! [`ManualClock`] never moves by itself.
//!
//! Deliberately not here: sleeping or waiting. Async waits use tokio's time (paused in
//! tests); this trait only answers "what time is it".

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

/// The single source of the current time, injected wherever time matters.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's wall clock: what production runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to, for deterministic tests.
///
/// Clones share the same time: advancing one advances all, so a test keeps one handle
/// and gives another to the code it drives.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock standing at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(now)),
        }
    }

    /// Moves the clock to `now`, forwards or backwards (tests of clock skew need both).
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }

    /// Moves the clock forward by `by`.
    ///
    /// # Panics
    /// If the result leaves the range chrono can represent (hundreds of thousands of
    /// years), which no test means to do.
    pub fn advance(&self, by: std::time::Duration) {
        let by = chrono::Duration::from_std(by)
            .expect("invariant: a test advances a manual clock by a representable duration");
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        let next = now
            .checked_add_signed(by)
            .expect("invariant: a test keeps a manual clock within chrono's range");
        *now = next;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A shared clock is a clock, so `Arc<dyn Clock>` can be passed wherever one is needed.
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 29, h, m, s).unwrap()
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(at(1, 0, 0));
        assert_eq!(clock.now(), at(1, 0, 0));
        assert_eq!(clock.now(), at(1, 0, 0));
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), at(1, 1, 30));
        clock.set(at(0, 30, 0));
        assert_eq!(clock.now(), at(0, 30, 0));
    }

    #[test]
    fn clones_share_one_time() {
        let clock = ManualClock::new(at(1, 0, 0));
        let handed_out: Arc<dyn Clock> = Arc::new(clock.clone());
        clock.advance(Duration::from_millis(1500));
        assert_eq!(
            handed_out.now(),
            at(1, 0, 1) + chrono::Duration::milliseconds(500)
        );
    }

    #[test]
    fn system_clock_is_recent() {
        let t = SystemClock.now();
        assert!(t > Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap());
    }
}
