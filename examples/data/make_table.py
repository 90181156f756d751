"""Write examples/data/customers.csv, the small table examples/table.nn trains on
(deterministic: NumPy's generator seeded with 0).

    python examples/data/make_table.py

800 customers with two numeric columns (`age`, `monthly_fee`), two categorical ones
(`city`: 4 values, `plan`: basic/standard/premium) and a label `churned` (yes/no) drawn
from a logistic model of them, so that a classifier can do well only by using the
categories.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "customers.csv"
CITIES = ("Lyon", "Oslo", "Porto", "Turku")
PLANS = ("basic", "standard", "premium")


def main() -> None:
    rng = np.random.default_rng(0)
    n = 800
    age = rng.integers(18, 80, n)
    city = rng.integers(0, len(CITIES), n)
    plan = rng.integers(0, len(PLANS), n)
    fee = np.round(np.array([9.0, 19.0, 39.0])[plan] + rng.normal(0, 3, n), 2)
    # churn is likelier for basic plans, in Porto and Turku, and for the young
    logit = (
        1.5 * (plan == 0)
        - 1.5 * (plan == 2)
        + np.array([-1.0, -0.5, 1.0, 1.5])[city]
        - 0.06 * (age - 45)
        - 0.3
    )
    churned = rng.random(n) < 1 / (1 + np.exp(-3 * logit))
    with open(OUT, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["age", "city", "plan", "monthly_fee", "churned"])
        for i in range(n):
            w.writerow(
                [
                    int(age[i]),
                    CITIES[city[i]],
                    PLANS[plan[i]],
                    f"{fee[i]:.2f}",
                    "yes" if churned[i] else "no",
                ]
            )
    print(f"{OUT}: {n} rows, churn rate {churned.mean():.3f}")


if __name__ == "__main__":
    main()
