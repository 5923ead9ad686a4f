"""Seeded synthetic persons and episodes (住院病例) for demos, tests and benchmarks.

Everything is drawn with NumPy in whole arrays and assembled with Polars, so ten
million episodes take seconds, not minutes. The mixes (scheme, assistance
category, hospital level, diseases and their costs) are plausible orders of
magnitude, not statistics: they exist to exercise every branch of the cascade.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from gongji.batch.files import AMOUNT_COLUMNS, write_table
from gongji.core.errors import InvalidInput
from gongji.core.identity import CHECK_CHARS, CHECK_WEIGHTS, province_codes
from gongji.rules.cascade import ASSISTANCE_CATEGORIES, EPISODE_SCHEMA, HOSPITAL_LEVELS, SCHEMES

SCHEME_SHARES = {"employee": 0.35, "retiree": 0.10, "resident": 0.55}
CATEGORY_SHARES = {
    "none": 0.90,
    "destitute": 0.01,  # 特困
    "subsistence": 0.04,  # 低保
    "near_subsistence": 0.02,  # 低保边缘
    "monitored": 0.03,  # 防返贫监测
}
INCLUSIVE_SHARE = 0.30  # 惠民保 enrolment
LEVEL_SHARES = {1: 0.20, 2: 0.35, 3: 0.45}
#: Cost relative to a level-2 hospital: tertiary hospitals treat the same disease at a higher price.
LEVEL_COST_FACTOR = {1: 0.6, 2: 1.0, 3: 1.4}

#: (ICD-10, share of episodes, median total cost in yuan, lognormal sigma, median length of stay).
DISEASES = (
    ("C92.0", 0.02, 150_000, 0.6, 25),  # acute myeloid leukaemia 急性髓系白血病
    ("C83", 0.02, 90_000, 0.6, 20),  # lymphoma 淋巴瘤
    ("C22", 0.03, 80_000, 0.6, 18),  # liver cancer 肝癌
    ("C34", 0.05, 70_000, 0.6, 16),  # lung cancer 肺癌
    ("N18.5", 0.04, 60_000, 0.5, 12),  # uraemia 尿毒症
    ("I61", 0.07, 50_000, 0.7, 18),  # cerebral haemorrhage 脑出血
    ("I21", 0.08, 40_000, 0.6, 9),  # myocardial infarction 心肌梗死
    ("S72", 0.07, 35_000, 0.5, 14),  # hip fracture 股骨骨折
    ("K35", 0.10, 12_000, 0.4, 6),  # appendicitis 阑尾炎
    ("J18", 0.25, 8_000, 0.6, 8),  # pneumonia 肺炎
    ("O80", 0.10, 6_000, 0.3, 3),  # delivery 顺产
    ("E11", 0.17, 5_000, 0.5, 9),  # type 2 diabetes 2型糖尿病
)
#: Chance that an episode is for the person's main disease rather than a fresh draw (治疗多次).
SAME_DISEASE_SHARE = 0.7
#: Episodes per person-year, 1–5, geometric-ish.
EPISODE_COUNT_SHARES = (0.55, 0.22, 0.12, 0.07, 0.04)
#: Birth-year ranges by scheme, so retirees are old and employees of working age.
BIRTH_YEARS = {"employee": (1964, 2006), "retiree": (1940, 1969), "resident": (1940, 2020)}
YEAR = 2024
MIN_COST_FEN = 200_00
MAX_COST_FEN = 5_000_000_00

_EPOCH = dt.date(1970, 1, 1)
#: Positions of the 17 ID digits as powers of ten in the integer of the first 17 digits.
_DIGIT_POWERS = tuple(10 ** (16 - i) for i in range(17))


def generate_episodes(n: int, seed: int = 0, region: str = "330100", with_id_numbers: bool = True) -> pl.DataFrame:
    """`n` episodes of synthetic persons living in `region` (GB/T 2260), reproducible from `seed`.

    Columns: EPISODE_SCHEMA, plus `id_number` when `with_id_numbers`; then
    `person_key` is that number, otherwise an Int64 person index (cheap for benchmarks).
    """
    if n < 0:
        raise InvalidInput("number of episodes must not be negative", "n")
    _check_region(region)
    rng = np.random.default_rng(seed)
    counts = _episode_counts(rng, n)
    persons = len(counts)

    scheme = _draw(rng, [SCHEME_SHARES[s] for s in SCHEMES], persons)
    category = _draw(rng, [CATEGORY_SHARES[c] for c in ASSISTANCE_CATEGORIES], persons)
    enrolled = rng.random(persons) < INCLUSIVE_SHARE
    disease_shares = [d[1] for d in DISEASES]
    main_disease = _draw(rng, disease_shares, persons)

    person = np.repeat(np.arange(persons, dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    index_in_year = np.arange(n, dtype=np.int64) - np.repeat(starts, counts)
    episodes_in_year = np.repeat(counts, counts)

    disease = np.where(
        rng.random(n) < SAME_DISEASE_SHARE,
        main_disease[person],
        _draw(rng, disease_shares, n),
    )
    level = np.asarray(HOSPITAL_LEVELS, dtype=np.int8)[_draw(rng, [LEVEL_SHARES[lv] for lv in HOSPITAL_LEVELS], n)]
    admission, discharge = _stay_dates(rng, disease, index_in_year, episodes_in_year)
    class_a, class_b, out_of_catalogue = _costs(rng, disease, level)

    if with_id_numbers:
        ids = _id_numbers(rng, region, scheme)
        person_key = ids.gather(person)
    else:
        person_key = pl.Series(person)

    frame = pl.DataFrame(
        {
            "episode_id": _episode_ids(n),
            "person_key": person_key,
            "scheme": pl.Series(SCHEMES).gather(scheme[person]),
            "assistance_category": pl.Series(ASSISTANCE_CATEGORIES).gather(category[person]),
            "inclusive_enrolled": enrolled[person],
            "region": pl.repeat(region, n, eager=True),
            "hospital_level": level,
            "admission_date": pl.Series(admission).cast(pl.Date),
            "discharge_date": pl.Series(discharge).cast(pl.Date),
            "icd10": pl.Series([d[0] for d in DISEASES]).gather(disease),
            "class_a": class_a,
            "class_b": class_b,
            "out_of_catalogue": out_of_catalogue,
        }
    )
    schema = {**EPISODE_SCHEMA, "person_key": pl.String if with_id_numbers else pl.Int64}
    frame = frame.cast(schema)
    if with_id_numbers:
        frame = frame.with_columns(pl.col("person_key").alias("id_number"))
    return frame


def write_episodes(df: pl.DataFrame, path: Path | str) -> None:
    """Write episodes as a person would receive them: CSV in yuan, or Parquet in fen.

    CSV carries `id_number` and no `person_key` (the key is derived from the
    number at intake); Parquet keeps both. The format follows the extension.
    """
    if "id_number" not in df.columns:
        raise InvalidInput("episode files identify persons by id_number; generate with id numbers", "id_number")
    path = Path(path)
    columns = ["episode_id", "id_number", *(c for c in EPISODE_SCHEMA if c not in ("episode_id", "person_key"))]
    if path.suffix.lower() == ".parquet":
        columns.insert(2, "person_key")
    write_table(df.select(columns), path, AMOUNT_COLUMNS)


def _check_region(region: str) -> None:
    if not (len(region) == 6 and region.isascii() and region.isdigit()):
        raise InvalidInput(f"region must be a six-digit GB/T 2260 code, got {region!r}", "region")
    if region[:2] not in province_codes():
        raise InvalidInput(f"unknown province code {region[:2]!r}", "region")


def _draw(rng: np.random.Generator, shares: list[float], size: int) -> np.ndarray:
    """Indices into `shares` drawn with those probabilities (normalised, so rounding does not matter)."""
    p = np.asarray(shares, dtype=np.float64)
    return rng.choice(len(p), size=size, p=p / p.sum())


def _episode_counts(rng: np.random.Generator, n: int) -> np.ndarray:
    """Episodes per person, drawn until they cover `n` episodes; the last person's count is cut to fit."""
    p = np.asarray(EPISODE_COUNT_SHARES)
    mean = float(np.dot(np.arange(1, len(p) + 1), p))
    chunks, covered = [], 0
    while covered < n:
        chunk = rng.choice(np.arange(1, len(p) + 1), size=int((n - covered) / mean * 1.05) + 16, p=p / p.sum())
        chunks.append(chunk)
        covered += int(chunk.sum())
    counts = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    cumulative = np.cumsum(counts)
    last = int(np.searchsorted(cumulative, n)) if n else -1
    counts = counts[: last + 1].astype(np.int64)
    if n:
        counts[last] -= int(cumulative[last]) - n
    return counts


def _stay_dates(rng, disease, index_in_year, episodes_in_year) -> tuple[np.ndarray, np.ndarray]:
    """Admission and discharge days (since 1970-01-01), all within the year and never overlapping.

    The year is cut into as many equal slots as the person has episodes; each
    stay (1–30 days, discharge − admission) falls inside its own slot.
    """
    median_stay = np.array([d[4] for d in DISEASES], dtype=np.float64)[disease]
    stay = np.clip(np.rint(median_stay * rng.lognormal(0.0, 0.5, len(disease))), 1, 30).astype(np.int64)
    year_start = (dt.date(YEAR, 1, 1) - _EPOCH).days
    days_in_year = (dt.date(YEAR + 1, 1, 1) - dt.date(YEAR, 1, 1)).days
    slot = days_in_year // episodes_in_year
    offset = (rng.random(len(disease)) * (slot - stay)).astype(np.int64)
    admission = year_start + index_in_year * slot + offset
    return admission.astype(np.int32), (admission + stay).astype(np.int32)


def _costs(rng, disease, level) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Total cost per episode split into class A (甲类), class B (乙类) and out-of-catalogue (自费) fen."""
    median = np.array([d[2] for d in DISEASES], dtype=np.float64)[disease]
    sigma = np.array([d[3] for d in DISEASES], dtype=np.float64)[disease]
    factor = np.array([LEVEL_COST_FACTOR[lv] for lv in HOSPITAL_LEVELS])[level - 1]
    yuan = median * factor * np.exp(sigma * rng.standard_normal(len(disease)))
    total = np.clip(np.rint(yuan * 100), MIN_COST_FEN, MAX_COST_FEN).astype(np.int64)
    share_a = rng.uniform(0.55, 0.75, len(total))
    share_b = 0.15 + rng.random(len(total)) * (np.minimum(0.30, 1.0 - share_a) - 0.15)
    class_a = (total * share_a).astype(np.int64)
    class_b = (total * share_b).astype(np.int64)
    return class_a, class_b, total - class_a - class_b


def _id_numbers(rng: np.random.Generator, region: str, scheme: np.ndarray) -> pl.Series:
    """Distinct GB 11643 numbers: region code, birth date, sequence (rank among same-day births), check char."""
    low = np.array([BIRTH_YEARS[s][0] for s in SCHEMES])[scheme]
    high = np.array([BIRTH_YEARS[s][1] for s in SCHEMES])[scheme]
    first_day = np.array([(dt.date(y, 1, 1) - _EPOCH).days for y in range(1940, 2022)])
    earliest, end = first_day[low - 1940], first_day[high + 1 - 1940]
    birth = earliest + (rng.random(len(scheme)) * (end - earliest)).astype(np.int64)

    order = np.argsort(birth, kind="stable")
    sorted_birth = birth[order]
    boundaries = np.flatnonzero(np.diff(sorted_birth)) + 1
    group_start = np.zeros(len(birth), dtype=np.int64)
    group_start[boundaries] = boundaries
    sequence = np.empty(len(birth), dtype=np.int64)
    sequence[order] = np.arange(len(birth)) - np.maximum.accumulate(group_start)
    if len(sequence) and sequence.max() >= 1000:
        raise InvalidInput("too many synthetic persons share a birth date in one region (at most 1,000)", "n")

    dates = pl.Series(birth.astype(np.int32)).cast(pl.Date)
    yyyymmdd = dates.dt.strftime("%Y%m%d").cast(pl.Int64).to_numpy()
    first17 = int(region) * 10**11 + yyyymmdd * 1000 + sequence
    digits = zip(_DIGIT_POWERS, CHECK_WEIGHTS, strict=True)
    weighted = sum(((first17 // power) % 10) * weight for power, weight in digits)
    check = pl.Series(list(CHECK_CHARS)).gather(weighted % 11)
    return pl.Series(first17).cast(pl.String).str.zfill(17) + check


def _episode_ids(n: int) -> pl.Series:
    width = max(8, len(str(n)))
    return pl.select(pl.lit("E") + pl.int_range(1, n + 1, dtype=pl.Int64).cast(pl.String).str.zfill(width)).to_series()
