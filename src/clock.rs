//! Where "now" comes from. Services take the time from an injected
//! [`Clock`] so that tests and jobs can run "as of" any moment.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use chrono_tz::Tz;

/// A source of the current time, truncated to microseconds: both databases
/// store microseconds, so a value read back equals the value written.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// A clock that stays where it is put; tests move it by hand.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start.trunc_subsecs(6))),
        }
    }

    pub fn set(&self, moment: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = moment.trunc_subsecs(6);
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The calendar date of `moment` in the service time zone.
pub fn local_date(moment: DateTime<Utc>, zone: Tz) -> NaiveDate {
    moment.with_timezone(&zone).date_naive()
}

pub type SharedClock = Arc<dyn Clock>;
