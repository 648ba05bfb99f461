//! Allocating a payment to installments, with no I/O.
//!
//! A payment goes to the oldest unpaid installment first, and within an
//! installment to its penalty, then its interest, then its principal. A
//! payment larger than everything outstanding is refused whole: nothing is
//! allocated and nothing is kept as credit.

use crate::money::Money;

/// What one installment still owes, part by part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owed {
    pub penalty: Money,
    pub interest: Money,
    pub principal: Money,
}

impl Owed {
    pub fn total(&self) -> Money {
        self.penalty + self.interest + self.principal
    }

    /// What is left of each part once `paid` is taken off: the one
    /// definition of "still owed".
    pub fn less(self, paid: Owed) -> Owed {
        Owed {
            penalty: self.penalty - paid.penalty,
            interest: self.interest - paid.interest,
            principal: self.principal - paid.principal,
        }
    }
}

impl std::ops::Add for Owed {
    type Output = Owed;

    fn add(self, other: Owed) -> Owed {
        Owed {
            penalty: self.penalty + other.penalty,
            interest: self.interest + other.interest,
            principal: self.principal + other.principal,
        }
    }
}

impl std::ops::Sub for Owed {
    type Output = Owed;

    fn sub(self, other: Owed) -> Owed {
        self.less(other)
    }
}

/// A payment's portions: what it paid of principal, interest and fees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Portions {
    pub principal: Money,
    pub interest: Money,
    pub penalty: Money,
}

impl Portions {
    pub fn total(&self) -> Money {
        self.principal + self.interest + self.penalty
    }
}

impl From<&PaymentSplit> for Portions {
    fn from(split: &PaymentSplit) -> Portions {
        Portions {
            principal: split.principal,
            interest: split.interest,
            penalty: split.penalty,
        }
    }
}

/// What a payment pays of one installment; `index` is the installment's
/// position in the list given to [`allocate_payment`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allocation {
    pub index: usize,
    pub penalty: Money,
    pub interest: Money,
    pub principal: Money,
}

impl Allocation {
    pub fn total(&self) -> Money {
        self.penalty + self.interest + self.principal
    }
}

/// A payment spread over installments, with its totals per part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaymentSplit {
    pub allocations: Vec<Allocation>,
    pub penalty: Money,
    pub interest: Money,
    pub principal: Money,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("a payment must be a positive amount")]
    NotPositive,
    #[error("the payment exceeds the outstanding balance of {outstanding}")]
    ExceedsOutstanding { outstanding: Money },
}

/// Spreads `amount` over `owed`, which must be ordered oldest first.
pub fn allocate_payment(amount: Money, owed: &[Owed]) -> Result<PaymentSplit, AllocationError> {
    if !amount.is_positive() {
        return Err(AllocationError::NotPositive);
    }
    let outstanding: Money = owed.iter().map(Owed::total).sum();
    if amount > outstanding {
        return Err(AllocationError::ExceedsOutstanding { outstanding });
    }
    let mut left = amount;
    let mut split = PaymentSplit::default();
    for (index, installment) in owed.iter().enumerate() {
        if left.is_zero() {
            break;
        }
        let mut take = |owed_part: Money| {
            let taken = left.min(owed_part.at_least_zero());
            left -= taken;
            taken
        };
        let allocation = Allocation {
            index,
            penalty: take(installment.penalty),
            interest: take(installment.interest),
            principal: take(installment.principal),
        };
        if allocation.total().is_positive() {
            split.penalty += allocation.penalty;
            split.interest += allocation.interest;
            split.principal += allocation.principal;
            split.allocations.push(allocation);
        }
    }
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn owed(penalty: i64, interest: i64, principal: i64) -> Owed {
        Owed {
            penalty: Money::from_minor(penalty),
            interest: Money::from_minor(interest),
            principal: Money::from_minor(principal),
        }
    }

    fn parts(split: &PaymentSplit) -> Vec<(usize, i64, i64, i64)> {
        split
            .allocations
            .iter()
            .map(|a| {
                (
                    a.index,
                    a.penalty.minor(),
                    a.interest.minor(),
                    a.principal.minor(),
                )
            })
            .collect()
    }

    #[test]
    fn pays_penalty_then_interest_then_principal_oldest_first() {
        let schedule = [
            owed(500, 10_000, 78_849),
            owed(0, 9_212, 79_637),
            owed(0, 8_415, 80_434),
        ];
        let split = allocate_payment(Money::from_minor(100_000), &schedule).expect("fits");
        assert_eq!(
            parts(&split),
            vec![(0, 500, 10_000, 78_849), (1, 0, 9_212, 1_439)]
        );
        assert_eq!(
            (
                split.penalty.minor(),
                split.interest.minor(),
                split.principal.minor()
            ),
            (500, 19_212, 80_288)
        );

        let partial = allocate_payment(Money::from_minor(700), &schedule).expect("fits");
        assert_eq!(parts(&partial), vec![(0, 500, 200, 0)]);
    }

    #[test]
    fn refuses_more_than_is_owed_and_non_positive_amounts() {
        let schedule = [owed(0, 100, 900), owed(50, 0, 0)];
        assert_eq!(
            allocate_payment(Money::from_minor(1_051), &schedule),
            Err(AllocationError::ExceedsOutstanding {
                outstanding: Money::from_minor(1_050)
            })
        );
        assert!(allocate_payment(Money::from_minor(1_050), &schedule).is_ok());
        assert_eq!(
            allocate_payment(Money::ZERO, &schedule),
            Err(AllocationError::NotPositive)
        );
        assert_eq!(
            allocate_payment(Money::from_minor(-1), &schedule),
            Err(AllocationError::NotPositive)
        );
    }

    fn schedules() -> impl Strategy<Value = Vec<Owed>> {
        prop::collection::vec((0i64..5_000, 0i64..50_000, 0i64..500_000), 1..40)
            .prop_map(|rows| rows.into_iter().map(|(p, i, c)| owed(p, i, c)).collect())
    }

    proptest! {
        #[test]
        fn allocations_conserve_the_amount_and_respect_the_order(
            schedule in schedules(),
            seed in any::<u64>(),
        ) {
            let outstanding: i64 = schedule.iter().map(|o| o.total().minor()).sum();
            prop_assume!(outstanding > 0);
            // Any amount from one cent to everything owed.
            let amount = 1 + i64::try_from(seed % outstanding.unsigned_abs()).unwrap_or(0);
            let split = allocate_payment(Money::from_minor(amount), &schedule).expect("fits");

            let allocated: i64 = split.allocations.iter().map(|a| a.total().minor()).sum();
            prop_assert_eq!(allocated, amount, "every cent is allocated");
            prop_assert_eq!(split.penalty.minor() + split.interest.minor() + split.principal.minor(), amount);

            let mut paid = vec![0i64; schedule.len()];
            for pair in split.allocations.windows(2) {
                prop_assert!(pair[0].index < pair[1].index, "oldest first, each once");
            }
            for allocation in &split.allocations {
                let due = schedule[allocation.index];
                prop_assert!(allocation.penalty <= due.penalty);
                prop_assert!(allocation.interest <= due.interest);
                prop_assert!(allocation.principal <= due.principal);
                // Within an installment: interest only once the penalty is
                // paid, principal only once the interest is.
                if allocation.interest.is_positive() {
                    prop_assert_eq!(allocation.penalty, due.penalty);
                }
                if allocation.principal.is_positive() {
                    prop_assert_eq!(allocation.interest, due.interest);
                }
                paid[allocation.index] = allocation.total().minor();
            }
            // Across installments: everything before the last one touched
            // is paid in full.
            if let Some(last) = split.allocations.last() {
                for (earlier, due) in schedule[..last.index].iter().enumerate() {
                    prop_assert_eq!(paid[earlier], due.total().minor(), "installment {} skipped", earlier);
                }
            }
        }

        #[test]
        fn more_than_owed_is_always_refused(schedule in schedules(), extra in 1i64..1_000_000) {
            let outstanding: i64 = schedule.iter().map(|o| o.total().minor()).sum();
            let refused = allocate_payment(Money::from_minor(outstanding + extra), &schedule);
            prop_assert_eq!(refused, Err(AllocationError::ExceedsOutstanding { outstanding: Money::from_minor(outstanding) }));
        }
    }
}
