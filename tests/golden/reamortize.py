#!/usr/bin/env python3
"""Golden figures for the schedule that replaces a loan's open installments
after a prepayment (API.md § Prepayments), computed with exact decimals and
independently of the Rust code. `src/schedule.rs` asserts what this prints.

    python3 tests/golden/reamortize.py
"""
from decimal import Decimal, ROUND_HALF_EVEN, ROUND_DOWN, getcontext

getcontext().prec = 60
CENT = Decimal("0.01")


def cents(x):
    return x.quantize(CENT, rounding=ROUND_HALF_EVEN)


def annuity(base, r, n):
    growth = (1 + r) ** n
    return cents(base * r * growth / (growth - 1))


def keep_count(base, annual, n):
    """REDUCE_INSTALLMENT: n installments, the annuity amount for base."""
    r = Decimal(annual) / 1200
    rows = []
    if r == 0:
        part = (base / n).quantize(CENT, rounding=ROUND_DOWN)
        rows = [(part, Decimal(0))] * (n - 1) + [(base - part * (n - 1), Decimal(0))]
        return part, rows
    amount = annuity(base, r, n)
    balance = base
    for k in range(1, n + 1):
        interest = cents(balance * r)
        principal = balance if k == n else min(amount - interest, balance)
        balance -= principal
        rows.append((principal, interest))
    return amount, rows


def keep_amount(base, annual, amount):
    """REDUCE_TERM: installments of `amount` until the last, which takes
    what principal is left plus its interest."""
    r = Decimal(annual) / 1200
    rows = []
    balance = base
    while balance > 0:
        interest = cents(balance * r)
        if balance + interest <= amount:
            rows.append((balance, interest))
            balance = Decimal(0)
        else:
            rows.append((amount - interest, interest))
            balance -= amount - interest
    return amount, rows


CASES = [
    ("golden loan, 2000.00 prepaid after #1, REDUCE_INSTALLMENT", keep_count, Decimal("7211.51"), "12", 11),
    ("golden loan, 2000.00 prepaid after #1, REDUCE_TERM", keep_amount, Decimal("7211.51"), "12", Decimal("888.49")),
    ("0 %, 1200.00/12, 250.00 prepaid after #1, REDUCE_INSTALLMENT", keep_count, Decimal("850.00"), "0", 11),
    ("0 %, 1200.00/12, 250.00 prepaid after #1, REDUCE_TERM", keep_amount, Decimal("850.00"), "0", Decimal("100.00")),
    ("360 months at 6.5 %, 200000.00 left, REDUCE_INSTALLMENT", keep_count, Decimal("200000.00"), "6.5", 359),
    ("360 months at 6.5 %, 200000.00 left, REDUCE_TERM", keep_amount, Decimal("200000.00"), "6.5", Decimal("1580.17")),
    ("a prepayment that leaves one installment, REDUCE_TERM", keep_amount, Decimal("500.00"), "12", Decimal("888.49")),
]

for name, rule, base, annual, arg in CASES:
    amount, rows = rule(base, annual, arg)
    total_interest = sum(i for _, i in rows)
    first, last = rows[0], rows[-1]
    print(f"{name}: amount {amount}, {len(rows)} installments, "
          f"first {first[0]}+{first[1]}, last {last[0]}+{last[1]}, "
          f"interest {total_interest}, principal {sum(p for p, _ in rows)}")
