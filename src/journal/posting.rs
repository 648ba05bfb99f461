//! What the journal books for each money event, with no I/O: the one
//! definition of every entry's lines (API.md § The journal).
//!
//! A posted payment credits the accounts its portions paid; everything
//! that later changes those portions (a replay moving them, a reversal
//! taking them back) books exactly the difference, so that the lines of a
//! payment's entries always add up to its current portions.

use chrono::NaiveDate;
use uuid::Uuid;

use super::accounts::Account;
use crate::enums::EntryKind;
use crate::ledger::Portions;
use crate::money::Money;

/// Something that moved money, as the journal books it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoneyEvent {
    /// A loan approved: its principal paid out, on its approval date.
    Disbursed {
        loan_id: Uuid,
        principal: Money,
        on: NaiveDate,
    },
    /// A payment recorded, with the portions it was allocated.
    Repaid {
        loan_id: Uuid,
        payment_id: Uuid,
        amount: Money,
        portions: Portions,
        value_date: NaiveDate,
    },
    /// A payment reversed: everything booked for it so far (its portions
    /// just before) taken back.
    Reversed {
        loan_id: Uuid,
        payment_id: Uuid,
        amount: Money,
        portions: Portions,
    },
    /// A replay moved another payment's portions.
    Moved {
        loan_id: Uuid,
        payment_id: Uuid,
        before: Portions,
        after: Portions,
    },
    /// A loan written off: its unpaid principal to losses.
    WrittenOff { loan_id: Uuid, principal: Money },
    /// A payment on a written-off loan: all of it recovered, whatever its
    /// portions.
    Recovered {
        loan_id: Uuid,
        payment_id: Uuid,
        amount: Money,
        value_date: NaiveDate,
    },
    /// A recovery reversed: its entry mirrored.
    RecoveryReversed {
        loan_id: Uuid,
        payment_id: Uuid,
        amount: Money,
    },
}

/// One line of an entry: one of `debit`, `credit` above zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub account: Account,
    pub debit: Money,
    pub credit: Money,
}

impl Line {
    /// The line of a signed amount on `account` (a debit above zero, a
    /// credit below); none for zero.
    pub fn of_signed(account: Account, net: Money) -> Option<Line> {
        (!net.is_zero()).then(|| Line {
            account,
            debit: net.at_least_zero(),
            credit: (Money::ZERO - net).at_least_zero(),
        })
    }

    /// The line as a signed amount: its debit, or its credit negated.
    pub fn signed(&self) -> Money {
        self.debit - self.credit
    }
}

/// An entry about to be posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub kind: EntryKind,
    pub loan_id: Uuid,
    pub payment_id: Option<Uuid>,
    pub value_date: NaiveDate,
    /// In code order, no zero line, debits equal to credits.
    pub lines: Vec<Line>,
}

/// An entry whose debits and credits would differ: a bug, refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {kind:?} entry would not balance: {debits} debited, {credits} credited")]
pub struct Unbalanced {
    pub kind: EntryKind,
    pub debits: Money,
    pub credits: Money,
}

/// The entry `event` books on `booking_date`; `None` when every line would
/// be zero (nothing moved).
pub fn entry_for(
    event: &MoneyEvent,
    booking_date: NaiveDate,
) -> Result<Option<NewEntry>, Unbalanced> {
    let Booking {
        kind,
        loan_id,
        payment_id,
        value_date,
        amounts,
    } = event.booking(booking_date);
    let lines = lines_of(&amounts);
    if lines.is_empty() {
        return Ok(None);
    }
    let debits: Money = lines.iter().map(|line| line.debit).sum();
    let credits: Money = lines.iter().map(|line| line.credit).sum();
    if debits != credits {
        return Err(Unbalanced {
            kind,
            debits,
            credits,
        });
    }
    Ok(Some(NewEntry {
        kind,
        loan_id,
        payment_id,
        value_date,
        lines,
    }))
}

/// An event's entry before its lines are made: the amounts signed, a
/// debit above zero and a credit below.
struct Booking {
    kind: EntryKind,
    loan_id: Uuid,
    payment_id: Option<Uuid>,
    value_date: NaiveDate,
    amounts: Amounts,
}

impl Booking {
    fn of_loan(kind: EntryKind, loan_id: Uuid, value_date: NaiveDate, amounts: Amounts) -> Self {
        Booking {
            kind,
            loan_id,
            payment_id: None,
            value_date,
            amounts,
        }
    }

    fn of_payment(
        kind: EntryKind,
        (loan_id, payment_id): (Uuid, Uuid),
        value_date: NaiveDate,
        amounts: Amounts,
    ) -> Self {
        Booking {
            kind,
            loan_id,
            payment_id: Some(payment_id),
            value_date,
            amounts,
        }
    }
}

/// Signed amounts per account: a debit above zero, a credit below.
type Amounts = Vec<(Account, Money)>;

/// `amount` debited to one account and credited to another.
fn transfer(debit: Account, credit: Account, amount: Money) -> Amounts {
    vec![(debit, amount), (credit, Money::ZERO - amount)]
}

impl MoneyEvent {
    fn booking(&self, booking_date: NaiveDate) -> Booking {
        use Account::{Cash, LoanLosses, LoansReceivable, Recoveries};
        match *self {
            MoneyEvent::Disbursed {
                loan_id,
                principal,
                on,
            } => Booking::of_loan(
                EntryKind::Disbursement,
                loan_id,
                on,
                transfer(LoansReceivable, Cash, principal),
            ),
            MoneyEvent::Repaid {
                loan_id,
                payment_id,
                amount,
                portions,
                value_date,
            } => Booking::of_payment(
                EntryKind::Repayment,
                (loan_id, payment_id),
                value_date,
                signed_portions(amount, portions, -1),
            ),
            MoneyEvent::Reversed {
                loan_id,
                payment_id,
                amount,
                portions,
            } => Booking::of_payment(
                EntryKind::Reversal,
                (loan_id, payment_id),
                booking_date,
                signed_portions(amount, portions, 1),
            ),
            MoneyEvent::WrittenOff { loan_id, principal } => Booking::of_loan(
                EntryKind::WriteOff,
                loan_id,
                booking_date,
                transfer(LoanLosses, LoansReceivable, principal),
            ),
            MoneyEvent::Recovered {
                loan_id,
                payment_id,
                amount,
                value_date,
            } => Booking::of_payment(
                EntryKind::Recovery,
                (loan_id, payment_id),
                value_date,
                transfer(Cash, Recoveries, amount),
            ),
            MoneyEvent::RecoveryReversed {
                loan_id,
                payment_id,
                amount,
            } => Booking::of_payment(
                EntryKind::Reversal,
                (loan_id, payment_id),
                booking_date,
                transfer(Recoveries, Cash, amount),
            ),
            MoneyEvent::Moved {
                loan_id,
                payment_id,
                before,
                after,
            } => Booking::of_payment(
                EntryKind::Adjustment,
                (loan_id, payment_id),
                booking_date,
                moved_portions(before, after),
            ),
        }
    }
}

/// What an adjustment books when a payment's portions move: more of a
/// portion now is more credited to its account.
fn moved_portions(before: Portions, after: Portions) -> Amounts {
    vec![
        (Account::LoansReceivable, before.principal - after.principal),
        (Account::InterestIncome, before.interest - after.interest),
        (Account::FeeIncome, before.penalty - after.penalty),
    ]
}

/// A payment's money as signed amounts: cash on one side, its portions on
/// the other. `direction` −1 books it (cash debited, portions credited),
/// +1 takes it back.
fn signed_portions(amount: Money, portions: Portions, direction: i64) -> Vec<(Account, Money)> {
    let signed = |money: Money| {
        if direction < 0 {
            Money::ZERO - money
        } else {
            money
        }
    };
    vec![
        (Account::Cash, Money::ZERO - signed(amount)),
        (Account::LoansReceivable, signed(portions.principal)),
        (Account::InterestIncome, signed(portions.interest)),
        (Account::FeeIncome, signed(portions.penalty)),
    ]
}

/// Signed amounts as lines, one per account in code order, zero ones left
/// out.
fn lines_of(amounts: &[(Account, Money)]) -> Vec<Line> {
    Account::ALL
        .iter()
        .filter_map(|account| {
            let net: Money = amounts
                .iter()
                .filter(|(of, _)| of == account)
                .map(|(_, amount)| *amount)
                .sum();
            Line::of_signed(*account, net)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    fn cents(minor: i64) -> Money {
        Money::from_minor(minor)
    }

    fn portions(principal: i64, interest: i64, penalty: i64) -> Portions {
        Portions {
            principal: cents(principal),
            interest: cents(interest),
            penalty: cents(penalty),
        }
    }

    fn shown(entry: &NewEntry) -> Vec<(&'static str, i64, i64)> {
        entry
            .lines
            .iter()
            .map(|line| (line.account.code(), line.debit.minor(), line.credit.minor()))
            .collect()
    }

    #[test]
    fn each_event_books_its_contract_lines() {
        let (loan_id, payment_id) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let today = date("2026-03-01");
        let disbursed = entry_for(
            &MoneyEvent::Disbursed {
                loan_id,
                principal: cents(1_000_000),
                on: date("2026-01-15"),
            },
            today,
        )
        .expect("balanced")
        .expect("lines");
        assert_eq!(disbursed.kind, EntryKind::Disbursement);
        assert_eq!(disbursed.value_date, date("2026-01-15"));
        assert_eq!(
            shown(&disbursed),
            vec![("1000", 0, 1_000_000), ("1100", 1_000_000, 0)]
        );

        // 888.49 paid 788.49 of principal and 100.00 of interest.
        let repaid = entry_for(
            &MoneyEvent::Repaid {
                loan_id,
                payment_id,
                amount: cents(88_849),
                portions: portions(78_849, 10_000, 0),
                value_date: date("2026-02-15"),
            },
            today,
        )
        .expect("balanced")
        .expect("lines");
        assert_eq!(
            shown(&repaid),
            vec![
                ("1000", 88_849, 0),
                ("1100", 0, 78_849),
                ("4000", 0, 10_000)
            ]
        );
        assert_eq!(repaid.value_date, date("2026-02-15"));

        // A fee of 5.00 waived from a payment that had paid it moves to
        // principal.
        let moved = entry_for(
            &MoneyEvent::Moved {
                loan_id,
                payment_id,
                before: portions(10_000, 0, 500),
                after: portions(10_500, 0, 0),
            },
            today,
        )
        .expect("balanced")
        .expect("lines");
        assert_eq!(moved.kind, EntryKind::Adjustment);
        assert_eq!(shown(&moved), vec![("1100", 0, 500), ("4100", 500, 0)]);
        assert_eq!(moved.value_date, today);

        let reversed = entry_for(
            &MoneyEvent::Reversed {
                loan_id,
                payment_id,
                amount: cents(10_500),
                portions: portions(10_500, 0, 0),
            },
            today,
        )
        .expect("balanced")
        .expect("lines");
        assert_eq!(
            shown(&reversed),
            vec![("1000", 0, 10_500), ("1100", 10_500, 0)]
        );
    }

    #[test]
    fn nothing_moved_is_no_entry_and_an_unbalanced_one_is_refused() {
        let (loan_id, payment_id) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let same = portions(100, 20, 0);
        assert_eq!(
            entry_for(
                &MoneyEvent::Moved {
                    loan_id,
                    payment_id,
                    before: same,
                    after: same
                },
                date("2026-03-01")
            ),
            Ok(None)
        );
        assert!(
            entry_for(
                &MoneyEvent::Repaid {
                    loan_id,
                    payment_id,
                    amount: cents(100),
                    portions: portions(90, 0, 0),
                    value_date: date("2026-03-01"),
                },
                date("2026-03-01")
            )
            .is_err()
        );
    }
}
