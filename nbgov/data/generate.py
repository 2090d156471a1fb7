"""Deterministic example tables for the notebooks, the workshop and the docs.

Everything is drawn from ``numpy.random.default_rng(seed)``, so the same call gives
the same rows on every machine: notebooks that regenerate their data replay
exactly, and no example ever downloads anything.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PLANS = ("basic", "silver", "gold")
REGIONS = ("north", "south", "east", "west")
CONTRACTS = ("monthly", "annual")
ADMISSION_TYPES = ("emergency", "urgent", "elective")
DEPARTMENTS = ("cardiology", "oncology", "orthopedics", "general")

# Float columns a purely numeric model can use (one 2-D float input).
CUSTOMER_NUMERIC_FEATURES = (
    "age",
    "income",
    "tenure_months",
    "monthly_charges",
    "support_calls",
    "last_login_days",
)
HOSPITAL_NUMERIC_FEATURES = (
    "age",
    "bmi",
    "systolic_bp",
    "glucose",
    "num_procedures",
    "num_medications",
    "prior_admissions",
    "is_emergency",
)


def customers(n: int = 2_000, seed: int = 42) -> pd.DataFrame:
    """A subscription-business customers table with a ``churned`` label.

    Ten features of mixed types (floats, strings, a boolean) and a label that
    depends on them in a way a small model can learn, so scores are meaningful.
    """
    rng = np.random.default_rng(seed)
    plan = rng.choice(np.array(PLANS, dtype=object), n, p=[0.5, 0.3, 0.2])
    contract = rng.choice(np.array(CONTRACTS, dtype=object), n, p=[0.65, 0.35])
    frame = pd.DataFrame(
        {
            "id": np.arange(1, n + 1, dtype=np.int64),
            "age": rng.integers(18, 85, n).astype(np.float64),
            "income": rng.normal(52_000, 16_000, n).clip(8_000, None).round(0),
            "tenure_months": rng.integers(0, 72, n).astype(np.float64),
            "plan": plan,
            "region": rng.choice(np.array(REGIONS, dtype=object), n),
            "contract": contract,
            "monthly_charges": (
                np.select([plan == "basic", plan == "silver"], [25.0, 45.0], 70.0)
                + rng.normal(0, 6, n)
            ).round(2),
            "support_calls": rng.poisson(1.5, n).astype(np.float64),
            "last_login_days": rng.exponential(12, n).round(0),
            "paperless": rng.random(n) < 0.6,
        }
    )
    logit = (
        -1.6
        + 0.8 * frame.support_calls
        - 0.06 * frame.tenure_months
        + 0.07 * frame.last_login_days
        + 0.02 * (frame.age - 45)
        - 0.00002 * (frame.income - 52_000)
        + np.where(frame.contract == "monthly", 1.4, -1.2)
        + frame.plan.map({"basic": 0.5, "silver": 0.0, "gold": -0.7}).astype(np.float64)
    )
    probability = 1.0 / (1.0 + np.exp(-logit))
    frame["churned"] = (rng.random(n) < probability).astype(np.int64)
    return frame


def hospital_stays(n: int = 5_000, seed: int = 7) -> pd.DataFrame:
    """Hospital admissions with a ``length_of_stay`` (days) and ``readmitted`` label.

    Shaped like the length-of-stay scenario of the Raven paper: mostly numeric
    clinical features, a few categories, and a target a tree ensemble predicts well.
    """
    rng = np.random.default_rng(seed)
    admission = rng.choice(np.array(ADMISSION_TYPES, dtype=object), n, p=[0.45, 0.2, 0.35])
    age = rng.integers(0, 95, n).astype(np.float64)
    frame = pd.DataFrame(
        {
            "stay_id": np.arange(1, n + 1, dtype=np.int64),
            "age": age,
            "sex": rng.choice(np.array(("F", "M"), dtype=object), n),
            "admission_type": admission,
            "department": rng.choice(np.array(DEPARTMENTS, dtype=object), n),
            "bmi": rng.normal(27, 5, n).clip(14, 55).round(1),
            "systolic_bp": rng.normal(125 + 0.25 * age, 15, n).round(0),
            "glucose": rng.lognormal(np.log(105), 0.25, n).round(0),
            "num_procedures": rng.poisson(1.2 + (admission == "elective") * 1.0, n).astype(np.float64),
            "num_medications": rng.poisson(6 + age / 15, n).astype(np.float64),
            "prior_admissions": rng.poisson(0.3 + age / 60, n).astype(np.float64),
            "is_emergency": (admission == "emergency").astype(np.float64),
        }
    )
    stay = (
        1.5
        + 0.035 * frame.age
        + 0.9 * frame.num_procedures
        + 0.15 * frame.num_medications
        + 0.8 * frame.prior_admissions
        + 1.6 * frame.is_emergency
        + 0.02 * (frame.glucose - 105).clip(0, None)
        + 0.05 * (frame.bmi - 27).clip(0, None)
        + np.where(frame.age > 70, 1.5, 0.0) * frame.is_emergency
    )
    frame["length_of_stay"] = (stay * rng.lognormal(0, 0.25, n)).round(1)
    readmit_logit = -2.2 + 0.5 * frame.prior_admissions + 0.08 * frame.length_of_stay
    frame["readmitted"] = (rng.random(n) < 1 / (1 + np.exp(-readmit_logit))).astype(np.int64)
    return frame
