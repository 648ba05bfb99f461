#!/usr/bin/env python3
"""Golden payoff quotes and settlements of the golden loan (API.md
§ Settlement), computed with exact decimals and independently of the Rust
code. `tests/api/settlement.rs` asserts what this prints.

The golden loan: 10 000.00 at 12 % a year over 12 months, first due
2026-02-15; late fee 5 % of what is unpaid at the end of the due date.

    python3 tests/golden/payoff.py
"""
from datetime import date
from decimal import Decimal, ROUND_HALF_EVEN, getcontext

getcontext().prec = 60
CENT = Decimal("0.01")
FEE = Decimal("0.05")


def cents(x):
    return x.quantize(CENT, rounding=ROUND_HALF_EVEN)


def add_month(d, day):
    year, month = (d.year + (d.month // 12), d.month % 12 + 1)
    for candidate in (day, 30, 29, 28):
        try:
            return date(year, month, candidate)
        except ValueError:
            continue


def annuity_schedule(base, annual, n, first_due, number=1):
    r = Decimal(annual) / 1200
    growth = (1 + r) ** n
    amount = cents(base * r * growth / (growth - 1))
    rows, balance, due = [], base, first_due
    for k in range(n):
        interest = cents(balance * r)
        principal = balance if k == n - 1 else amount - interest
        balance -= principal
        rows.append({"number": number + k, "due": due, "principal": principal, "interest": interest})
        due = add_month(due, first_due.day)
    return amount, rows


def level_schedule(base, annual, amount, first_due, number):
    r = Decimal(annual) / 1200
    rows, balance, due = [], base, first_due
    while balance > 0:
        interest = cents(balance * r)
        principal = balance if balance + interest <= amount else amount - interest
        balance -= principal
        rows.append({"number": number + len(rows), "due": due, "principal": principal, "interest": interest})
        due = add_month(due, first_due.day)
    return rows


def quote(rows, paid_through, as_of):
    """rows: the schedule; paid_through: installments paid in full on
    time; nothing else paid. Returns (principal, interest, penalties)."""
    principal = interest = penalties = Decimal(0)
    start = date(2026, 1, 15)  # the golden loan's first period starts here
    current_seen = False
    for row in rows:
        if row["number"] <= paid_through:
            start = row["due"]
            continue
        principal += row["principal"]
        if row["due"] <= as_of:
            interest += row["interest"]
            if row["due"] < as_of:  # its fee day (grace 0) ended before as_of
                penalties += cents(FEE * (row["principal"] + row["interest"]))
        elif not current_seen:
            current_seen = True
            length = (row["due"] - start).days
            elapsed = min(max((as_of - start).days, 0), length)
            interest += cents(row["interest"] * elapsed / length)
        start = row["due"]
    return principal, interest, penalties


def show(name, figures, unpaid_interest):
    """unpaid_interest: the schedule's interest not yet paid."""
    principal, interest, penalties = figures
    total = principal + interest + penalties
    print(f"{name}: principal {principal}, interest {interest}, penalties {penalties}, "
          f"total {total}; settling waives {unpaid_interest - interest} of interest")


amount, golden = annuity_schedule(Decimal("10000.00"), "12", 12, date(2026, 2, 15))
all_interest = sum(r["interest"] for r in golden)
print(f"golden loan: installment {amount}, interest {all_interest}")
show("quote on 2026-01-15, the approval day", quote(golden, 0, date(2026, 1, 15)), all_interest)
show("quote on 2026-01-30", quote(golden, 0, date(2026, 1, 30)), all_interest)
show("quote on 2026-02-20, #1 unpaid (fee charged 2026-02-16)", quote(golden, 0, date(2026, 2, 20)), all_interest)

# #1 paid on its due date with 2000.00 more, REDUCE_TERM: the open
# installments #2.. are replaced by 888.49 a month on 9211.51 − 2000.00.
shorter = golden[:1] + level_schedule(Decimal("7211.51"), "12", amount, date(2026, 3, 15), 2)
short_interest = sum(r["interest"] for r in shorter)
last = shorter[-1]
print(f"REDUCE_TERM on 2026-02-15: {len(shorter)} installments, last #{last['number']} due {last['due']} "
      f"{last['principal']}+{last['interest']}, total payable {Decimal('10000.00') + short_interest}")
show("then a quote on 2026-03-01", quote(shorter, 1, date(2026, 3, 1)), short_interest - shorter[0]["interest"])
