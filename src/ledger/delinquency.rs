//! How late a loan is (API.md § Delinquency): the days past due of its
//! oldest installment not fully paid and due before today, and the bucket
//! those days fall in.
//!
//! The oldest unpaid due date is kept on the loan row (`next_due_date`,
//! moved by every operation in the transaction that moves it), so a bucket
//! is a range of that date: lists filter by it with an index, and the
//! portfolio report groups by it without reading installments.

use chrono::{Days, NaiveDate};

use crate::enums::DelinquencyBucket;

/// `today − oldest_unpaid_due` in days when that is before today, else 0.
pub fn days_past_due(oldest_unpaid_due: Option<NaiveDate>, today: NaiveDate) -> i64 {
    oldest_unpaid_due
        .map(|due| (today - due).num_days())
        .filter(|days| *days > 0)
        .unwrap_or(0)
}

pub fn bucket_of(days_past_due: i64) -> DelinquencyBucket {
    match days_past_due {
        i64::MIN..=0 => DelinquencyBucket::Current,
        1..=30 => DelinquencyBucket::Days1To30,
        31..=60 => DelinquencyBucket::Days31To60,
        61..=90 => DelinquencyBucket::Days61To90,
        _ => DelinquencyBucket::Days91Plus,
    }
}

/// The oldest unpaid due dates of the loans in `bucket` on `today`, as an
/// inclusive range (`None`: open on that side).
pub fn due_dates_in(
    bucket: DelinquencyBucket,
    today: NaiveDate,
) -> (Option<NaiveDate>, Option<NaiveDate>) {
    let days_ago = |days: u64| today.checked_sub_days(Days::new(days));
    match bucket {
        DelinquencyBucket::Current => (Some(today), None),
        DelinquencyBucket::Days1To30 => (days_ago(30), days_ago(1)),
        DelinquencyBucket::Days31To60 => (days_ago(60), days_ago(31)),
        DelinquencyBucket::Days61To90 => (days_ago(90), days_ago(61)),
        DelinquencyBucket::Days91Plus => (None, days_ago(91)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn the_boundaries_fall_where_lenders_put_them() {
        let today = date("2026-06-30");
        for (days, bucket) in [
            (0, DelinquencyBucket::Current),
            (1, DelinquencyBucket::Days1To30),
            (30, DelinquencyBucket::Days1To30),
            (31, DelinquencyBucket::Days31To60),
            (60, DelinquencyBucket::Days31To60),
            (61, DelinquencyBucket::Days61To90),
            (90, DelinquencyBucket::Days61To90),
            (91, DelinquencyBucket::Days91Plus),
            (400, DelinquencyBucket::Days91Plus),
        ] {
            let due = today - chrono::Days::new(days);
            assert_eq!(days_past_due(Some(due), today), days as i64);
            assert_eq!(bucket_of(days as i64), bucket, "{days} days");
            // The date range of the bucket holds exactly these due dates.
            let (from, to) = due_dates_in(bucket, today);
            assert!(from.is_none_or(|from| from <= due), "{days}");
            assert!(to.is_none_or(|to| due <= to), "{days}");
            for other in DelinquencyBucket::ALL.iter().filter(|b| **b != bucket) {
                let (from, to) = due_dates_in(*other, today);
                assert!(
                    from.is_some_and(|from| due < from) || to.is_some_and(|to| to < due),
                    "{days} days is not in {other:?}"
                );
            }
        }
        // Due today or later, or nothing unpaid: not past due.
        assert_eq!(days_past_due(Some(date("2026-07-01")), today), 0);
        assert_eq!(days_past_due(None, today), 0);
    }
}
