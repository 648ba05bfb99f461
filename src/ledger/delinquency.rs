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

/// The days past due each bucket holds, inclusive (`None`: no upper
/// limit), in bucket order: the one definition of the bucket limits, from
/// which the Rust rule, the lists' date ranges and the report's SQL are
/// all made.
const DAYS_IN_BUCKET: [(DelinquencyBucket, u64, Option<u64>); 5] = [
    (DelinquencyBucket::Current, 0, Some(0)),
    (DelinquencyBucket::Days1To30, 1, Some(30)),
    (DelinquencyBucket::Days31To60, 31, Some(60)),
    (DelinquencyBucket::Days61To90, 61, Some(90)),
    (DelinquencyBucket::Days91Plus, 91, None),
];

pub fn bucket_of(days_past_due: i64) -> DelinquencyBucket {
    let days = u64::try_from(days_past_due).unwrap_or(0);
    DAYS_IN_BUCKET
        .iter()
        .find(|(_, from, to)| days >= *from && to.is_none_or(|to| days <= to))
        .map_or(DelinquencyBucket::Days91Plus, |(bucket, _, _)| *bucket)
}

/// The oldest unpaid due dates of the loans in `bucket` on `today`, as an
/// inclusive range (`None`: open on that side). A loan is current when
/// its oldest unpaid due date is today or later.
pub fn due_dates_in(
    bucket: DelinquencyBucket,
    today: NaiveDate,
) -> (Option<NaiveDate>, Option<NaiveDate>) {
    let days_ago = |days: u64| today.checked_sub_days(Days::new(days));
    let Some((_, from, to)) = DAYS_IN_BUCKET.iter().find(|(b, _, _)| *b == bucket) else {
        return (None, None);
    };
    let earliest = to.and_then(days_ago);
    let latest = if *from == 0 { None } else { days_ago(*from) };
    match bucket {
        DelinquencyBucket::Current => (Some(today), None),
        _ => (earliest, latest),
    }
}

/// The bucket of a loan row in SQL: a `CASE` over `next_due_date` (the
/// oldest unpaid due date; a loan without one is current), with `{pN}`
/// placeholders for the dates it compares with, which it returns in order.
pub fn bucket_sql(today: NaiveDate) -> (String, Vec<NaiveDate>) {
    let mut sql = String::from("CASE");
    let mut dates = Vec::new();
    for (bucket, _, to) in DAYS_IN_BUCKET {
        let Some(to) = to else {
            sql.push_str(&format!(" ELSE '{}' END", bucket.as_str()));
            return (sql, dates);
        };
        dates.push(today.checked_sub_days(Days::new(to)).unwrap_or(today));
        let null_is_current = if bucket == DelinquencyBucket::Current {
            "next_due_date IS NULL OR "
        } else {
            ""
        };
        sql.push_str(&format!(
            " WHEN {null_is_current}next_due_date >= {{p{}}} THEN '{}'",
            dates.len(),
            bucket.as_str()
        ));
    }
    sql.push_str(" END");
    (sql, dates)
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
        let (sql, dates) = bucket_sql(today);
        assert_eq!(
            sql,
            "CASE WHEN next_due_date IS NULL OR next_due_date >= {p1} THEN 'CURRENT' \
             WHEN next_due_date >= {p2} THEN '1-30' WHEN next_due_date >= {p3} THEN '31-60' \
             WHEN next_due_date >= {p4} THEN '61-90' ELSE '91+' END"
        );
        assert_eq!(
            dates,
            vec![
                today,
                date("2026-05-31"),
                date("2026-05-01"),
                date("2026-04-01")
            ]
        );
        // Due today or later, or nothing unpaid: not past due.
        assert_eq!(days_past_due(Some(date("2026-07-01")), today), 0);
        assert_eq!(days_past_due(None, today), 0);
    }
}
