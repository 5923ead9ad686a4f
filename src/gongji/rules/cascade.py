"""The statutory cascade: basic → critical illness → medical assistance → 惠民保, two ways to run it.

`explain_person_year` settles episodes one at a time in plain Python and
explains every line; `settle_frame` settles a whole table with Polars. Both
run `rules.settle_steps` with the same parameters, so they agree to the fen.

Order of a person's episodes within a calendar year (of the discharge date):
by discharge date, then admission date, then their order in the input.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import polars as pl

from gongji.core.errors import InvalidInput
from gongji.core.money import format_yuan
from gongji.rules.params import ParameterBook, ParameterSet, assisted_terms, flat_params, load_parameter_book
from gongji.rules.rules import (
    ASSISTANCE_CATEGORIES,
    HOSPITAL_LEVELS,
    LAYERS,
    NO_CAP,
    SCHEMES,
    Band,
    ArrayOps,
    FlatParams,
    ScalarOps,
    settle_steps,
)

__all__ = [
    "ASSISTANCE_CATEGORIES",
    "EPISODE_SCHEMA",
    "HOSPITAL_LEVELS",
    "LAYERS",
    "OUTPUT_COLUMNS",
    "SCHEMES",
    "EpisodeInput",
    "Settlement",
    "explain_person_year",
    "settle_frame",
]

#: The episode table the vectorised path reads (Polars dtypes). `person_key` may be any
#: sortable dtype (Int64 in benchmarks, the HMAC hex or the ID number in files).
EPISODE_SCHEMA = {
    "episode_id": pl.String,
    "person_key": pl.String,
    "scheme": pl.String,
    "assistance_category": pl.String,
    "inclusive_enrolled": pl.Boolean,
    "region": pl.String,
    "hospital_level": pl.Int8,
    "admission_date": pl.Date,
    "discharge_date": pl.Date,
    "icd10": pl.String,
    "class_a": pl.Int64,
    "class_b": pl.Int64,
    "out_of_catalogue": pl.Int64,
}
OUTPUT_COLUMNS = ("episode_id", "total", *LAYERS, "residual")
LAYER_NAMES = {
    "basic": ("基本医保", "Basic insurance"),
    "critical_illness": ("大病保险", "Critical-illness insurance"),
    "assistance": ("医疗救助", "Medical assistance"),
    "inclusive": ("惠民保", "Inclusive commercial insurance"),
}


@lru_cache(maxsize=1)
def default_book() -> ParameterBook:
    return load_parameter_book()


@dataclass(frozen=True)
class EpisodeInput:
    """One episode as the scalar path sees it; amounts in fen."""

    episode_id: str
    person_key: str
    scheme: str
    assistance_category: str
    inclusive_enrolled: bool
    region: str
    hospital_level: int
    admission_date: dt.date
    discharge_date: dt.date
    icd10: str
    class_a: int
    class_b: int
    out_of_catalogue: int

    @property
    def total(self) -> int:
        return self.class_a + self.class_b + self.out_of_catalogue


@dataclass(frozen=True)
class Parameter:
    name: str
    value: str
    source: str


@dataclass(frozen=True)
class ExplanationLine:
    """One layer's payment, readable by a caseworker: base, parameters with sources, arithmetic."""

    layer: str
    name_zh: str
    name_en: str
    base: int
    parameters: list[Parameter]
    arithmetic: list[str]
    amount: int
    applies: bool = True


@dataclass
class Settlement:
    episode_id: str
    parameter_set: str
    amounts: dict[str, int]
    lines: list[ExplanationLine] = field(default_factory=list)

    @property
    def residual(self) -> int:
        return self.amounts["residual"]


def _check_episode(ep: EpisodeInput) -> None:
    if ep.scheme not in SCHEMES:
        raise InvalidInput(f"unknown scheme {ep.scheme!r}; one of {', '.join(SCHEMES)}", "scheme")
    if ep.assistance_category not in ASSISTANCE_CATEGORIES:
        raise InvalidInput(f"unknown assistance category {ep.assistance_category!r}", "assistance_category")
    if ep.hospital_level not in HOSPITAL_LEVELS:
        raise InvalidInput("hospital level must be 1, 2 or 3", "hospital_level")
    for name in ("class_a", "class_b", "out_of_catalogue"):
        if getattr(ep, name) < 0:
            raise InvalidInput("amount must not be negative", name)
    if ep.discharge_date < ep.admission_date:
        raise InvalidInput("discharge date is before admission date", "discharge_date")


def explain_person_year(episodes: Sequence[EpisodeInput], book: ParameterBook | None = None) -> list[Settlement]:
    """Settle episodes one at a time, carrying each person's year-to-date totals; input order kept."""
    book = book or default_book()
    for ep in episodes:
        _check_episode(ep)
    order = sorted(
        range(len(episodes)),
        key=lambda i: (episodes[i].person_key, episodes[i].discharge_date, episodes[i].admission_date, i),
    )
    running: dict[tuple[str, int], dict[str, int]] = {}
    results: dict[int, Settlement] = {}
    for i in order:
        ep = episodes[i]
        pset = book.resolve(ep.region, ep.discharge_date)
        params = flat_params(pset, ep.scheme, ep.hospital_level, ep.assistance_category, ep.inclusive_enrolled)
        year_totals = running.setdefault((ep.person_key, ep.discharge_date.year), {})

        def cumulate(name: str, amount: int, totals=year_totals) -> tuple[int, int]:
            before = totals.get(name, 0)
            totals[name] = before + amount
            return before, before + amount

        steps = settle_steps(ScalarOps, ep.class_a, ep.class_b, ep.out_of_catalogue, params, cumulate)
        amounts = {key: steps[key] for key in ("total", *LAYERS, "residual")}
        results[i] = Settlement(ep.episode_id, pset.id, amounts, _explain(ep, pset, params, steps))
    return [results[i] for i in range(len(episodes))]


def _y(fen: int) -> str:
    return "∞" if fen >= NO_CAP else "¥" + format_yuan(fen)


def _pct(bp: int) -> str:
    return f"{bp / 100:g}%"


def _explain(ep: EpisodeInput, pset: ParameterSet, p: FlatParams, s: dict) -> list[ExplanationLine]:
    """Turn the intermediate values of `settle_steps` into one readable line per layer."""
    src = pset.source_text
    basic = pset.basic[ep.scheme]
    lines = []
    later = s["admission_number"] > 1
    lines.append(
        ExplanationLine(
            "basic",
            *LAYER_NAMES["basic"],
            base=s["in_policy"],
            parameters=[
                Parameter("乙类先行自付比例 class-B self-pay share", _pct(p.class_b_selfpay_bp),
                          src(pset.class_b_selfpay_share.source)),
                Parameter(f"起付线 deductible (level {ep.hospital_level})", _y(p.basic_deductible),
                          src(basic.deductible.source)),
                Parameter("再次住院起付线比例 later-admission share", _pct(p.basic_later_share_bp),
                          src(basic.later_admission_share.source)),
                Parameter(f"报销比例 rate (level {ep.hospital_level})", _pct(p.basic_rate_bp), src(basic.rate.source)),
                Parameter("年度最高支付限额 annual cap", _y(p.basic_cap), src(basic.annual_cap.source)),
            ],
            arithmetic=[
                f"政策范围内 in-policy = {_y(ep.class_a)} + {_y(ep.class_b)} − {_y(ep.class_b)}×"
                f"{_pct(p.class_b_selfpay_bp)} = {_y(s['in_policy'])}",
                f"第{s['admission_number']}次住院 admission #{s['admission_number']}: 起付线 deductible = "
                + (f"{_y(p.basic_deductible)}×{_pct(p.basic_later_share_bp)} = " if later else "")
                + _y(s["deductible"]),
                f"应付 claim = max({_y(s['in_policy'])} − {_y(s['deductible'])}, 0) × {_pct(p.basic_rate_bp)}"
                f" = {_y(s['basic_claim'])}",
                f"年度累计 year to date {_y(s['basic_claim_before'])} → {_y(s['basic_claim_after'])}, "
                f"封顶 cap {_y(p.basic_cap)}: min(after, cap) − min(before, cap) = {_y(s['basic'])}",
            ],
            amount=s["basic"],
        )
    )

    ci = pset.critical_illness[ep.scheme]
    if ci is None:
        ci_params, ci_math = [], ["本险种无此层 not part of this scheme in this region"]
    else:
        assisted = assisted_terms(pset, ep.scheme, ep.assistance_category)
        bands = ", ".join(f"{_y(b.lower)}+: {_pct(b.rate_bp)}" for b in p.ci_bands)
        ci_params = [
            Parameter("起付线 threshold" + (" (困难群众 assisted)" if assisted else ""), _y(p.ci_threshold),
                      src((assisted or ci).threshold.source)),
            Parameter("分段比例 tiered rates" + (" (+倾斜 bonus)" if assisted else ""), bands, src(ci.bands.source)),
            Parameter("年度限额 annual cap", _y(p.ci_cap), src((assisted or ci).annual_cap.source)),
        ]
        ci_math = [
            f"本次政策内自付 in-policy self-pay = {_y(s['in_policy'])} − {_y(s['basic'])} = {_y(s['policy_selfpay'])}",
            f"年度累计 year to date {_y(s['policy_selfpay_before'])} → {_y(s['policy_selfpay_after'])}",
            f"G(x) = min(Σ bands of max(x − {_y(p.ci_threshold)}, 0), {_y(p.ci_cap)}); "
            f"G(after) − G(before) = {_y(s['critical_illness'])}",
        ]
    lines.append(
        ExplanationLine("critical_illness", ci.name_zh if ci else LAYER_NAMES["critical_illness"][0],
                        LAYER_NAMES["critical_illness"][1], s["policy_selfpay"], ci_params, ci_math,
                        s["critical_illness"], applies=ci is not None)
    )

    aid = pset.assistance.get(ep.assistance_category)
    if aid is None:
        aid_params, aid_math = [], ["非医疗救助对象 not in an assistance category"]
    else:
        aid_params = [
            Parameter(f"救助类别 category {ep.assistance_category}", "", ""),
            Parameter("年度起付线 annual deductible", _y(p.assistance_deductible), src(aid.deductible.source)),
            Parameter("救助比例 rate", _pct(p.assistance_rate_bp), src(aid.rate.source)),
            Parameter("年度救助限额 annual limit", _y(p.assistance_cap), src(aid.annual_cap.source)),
        ]
        aid_math = [
            f"政策内剩余 in-policy residual = {_y(s['policy_selfpay'])} − {_y(s['critical_illness'])}"
            f" = {_y(s['assistance_base'])}",
            f"年度累计 year to date {_y(s['assistance_base_before'])} → {_y(s['assistance_base_after'])}",
            f"H(x) = min(max(x − {_y(p.assistance_deductible)}, 0) × {_pct(p.assistance_rate_bp)}, "
            f"{_y(p.assistance_cap)}); H(after) − H(before) = {_y(s['assistance'])}",
        ]
    lines.append(
        ExplanationLine("assistance", *LAYER_NAMES["assistance"], s["assistance_base"], aid_params, aid_math,
                        s["assistance"], applies=aid is not None)
    )

    hmb = pset.inclusive
    if hmb is None or not ep.inclusive_enrolled:
        reason = "本地区无惠民保 none in this region" if hmb is None else "未参保惠民保 not enrolled"
        hmb_params, hmb_math = [], [reason]
    else:
        hmb_params = [
            Parameter("年度免赔额 annual deductible", _y(p.inclusive_deductible), src(hmb.deductible.source)),
            Parameter("目录内比例 in-catalogue rate", _pct(p.inclusive_rate_in_bp), src(hmb.rate_in_catalogue.source)),
            Parameter("目录外比例 out-of-catalogue rate", _pct(p.inclusive_rate_out_bp),
                      src(hmb.rate_out_of_catalogue.source)),
            Parameter("年度保额 annual cap", _y(p.inclusive_cap), src(hmb.annual_cap.source)),
        ]
        hmb_math = [
            f"目录内个人负担 in-catalogue residual = {_y(s['class_b_selfpay'])} + {_y(s['assistance_base'])}"
            f" − {_y(s['assistance'])} = {_y(s['catalogue_residual'])}; 目录外 out-of-catalogue "
            f"{_y(ep.out_of_catalogue)}",
            f"年度累计 year to date: 目录内 {_y(s['catalogue_residual_before'])} → "
            f"{_y(s['catalogue_residual_after'])}, 目录外 {_y(s['out_of_catalogue_before'])} → "
            f"{_y(s['out_of_catalogue_after'])}",
            f"K = min((目录内 − 免赔) × {_pct(p.inclusive_rate_in_bp)} + (目录外 − 剩余免赔) × "
            f"{_pct(p.inclusive_rate_out_bp)}, {_y(p.inclusive_cap)}); K(after) − K(before) = {_y(s['inclusive'])}",
        ]
    lines.append(
        ExplanationLine("inclusive", hmb.name_zh if hmb else LAYER_NAMES["inclusive"][0], LAYER_NAMES["inclusive"][1],
                        s["catalogue_residual"] + ep.out_of_catalogue, hmb_params, hmb_math, s["inclusive"],
                        applies=hmb is not None and ep.inclusive_enrolled)
    )
    return lines


# --- vectorised path -------------------------------------------------------------------------

#: Rows per arithmetic chunk (extended to the next person-year boundary). Chunks
#: small enough to stay in CPU cache run the formulas several times faster than
#: whole 10-million-row columns, whose temporaries each cost fresh memory.
CHUNK_ROWS = 1 << 16


def _combo_table(book: ParameterBook) -> tuple[dict[str, np.ndarray], int]:
    """Every parameter value for every (set, scheme, level, category, enrolled), as lookup arrays.

    Built with the scalar resolver `flat_params`, so both paths read identical numbers.
    """
    band_count = max(
        (len(ci.bands.bands) for s in book.sets for ci in s.critical_illness.values() if ci is not None), default=0
    )
    columns: dict[str, list[int]] = {}
    for pset in book.sets:
        for scheme in SCHEMES:
            for level in HOSPITAL_LEVELS:
                for category in ASSISTANCE_CATEGORIES:
                    for enrolled in (False, True):
                        p = flat_params(pset, scheme, level, category, enrolled)
                        bands = p.ci_bands + (Band(0, 0, 0),) * (band_count - len(p.ci_bands))
                        values = {name: getattr(p, name) for name in FlatParams.__dataclass_fields__}
                        del values["ci_bands"]
                        for k, band in enumerate(bands):
                            values[f"ci_band{k}_lower"] = band.lower
                            values[f"ci_band{k}_width"] = band.width
                            values[f"ci_band{k}_rate_bp"] = band.rate_bp
                        for name, value in values.items():
                            columns.setdefault(name, []).append(value)
    return {name: np.asarray(values, dtype=np.int64) for name, values in columns.items()}, band_count


def _set_index_expr(book: ParameterBook, regions: list[str]) -> pl.Expr:
    """Which parameter set applies to each row, from its region and discharge date."""
    expr = pl.lit(None, dtype=pl.Int64)
    for region in regions:
        for start, index in book.breakpoints(region):
            expr = pl.when((pl.col("region") == region) & (pl.col("discharge_date") >= start)).then(index).otherwise(
                expr
            )
    return expr


def _category_index(name: str, values: tuple) -> pl.Expr:
    """Position of each row's value in `values` (free when the column is already that Enum)."""
    return pl.col(name).cast(pl.Enum(values)).to_physical().cast(pl.Int64)


def _validate_frame(frame: pl.DataFrame) -> None:
    missing = [name for name in EPISODE_SCHEMA if name not in frame.columns]
    if missing:
        raise InvalidInput(f"missing columns: {', '.join(missing)}", missing[0])
    checks = {
        "scheme": ~pl.col("scheme").cast(pl.String).is_in(SCHEMES),
        "assistance_category": ~pl.col("assistance_category").cast(pl.String).is_in(ASSISTANCE_CATEGORIES),
        "hospital_level": ~pl.col("hospital_level").is_in(HOSPITAL_LEVELS),
        "class_a": pl.col("class_a") < 0,
        "class_b": pl.col("class_b") < 0,
        "out_of_catalogue": pl.col("out_of_catalogue") < 0,
        "discharge_date": pl.col("discharge_date") < pl.col("admission_date"),
        "inclusive_enrolled": pl.lit(False),
        "person_key": pl.lit(False),
    }
    bad = frame.select(
        **{name: (cond | pl.col(name).is_null()).arg_true().first() for name, cond in checks.items()}
    ).row(0, named=True)
    for name, row in bad.items():
        if row is not None:
            raise InvalidInput(f"invalid value in row {row + 1} (episode {frame['episode_id'][row]})", name)


def _chunk_bounds(group_starts: np.ndarray, rows: int) -> list[int]:
    """Chunk boundaries of about CHUNK_ROWS rows that never split a person-year."""
    bounds = [0]
    while bounds[-1] < rows:
        target = bounds[-1] + CHUNK_ROWS
        i = int(np.searchsorted(group_starts, target))
        bounds.append(int(group_starts[i]) if target < rows and i < len(group_starts) else rows)
    return bounds


def _settle_chunk(columns: dict[str, np.ndarray], table: dict[str, np.ndarray], band_count: int) -> dict:
    """Run `settle_steps` on a run of whole person-years, sorted by person and date."""
    combo = columns["combo"]
    looked_up = {name: values[combo] for name, values in table.items()}
    params = FlatParams(
        **{name: looked_up[name] for name in FlatParams.__dataclass_fields__ if name != "ci_bands"},
        ci_bands=tuple(
            Band(looked_up[f"ci_band{k}_lower"], looked_up[f"ci_band{k}_width"], looked_up[f"ci_band{k}_rate_bp"])
            for k in range(band_count)
        ),
    )
    group_starts = np.flatnonzero(columns["start"])
    group_lengths = np.diff(np.append(group_starts, len(combo)))

    def cumulate(_name: str, amount):
        """Year-to-date totals per person: a running sum minus the running sum at the group's start."""
        amount = np.broadcast_to(amount, combo.shape)
        running = np.cumsum(amount)
        after = running - np.repeat((running - amount)[group_starts], group_lengths)
        return after - amount, after

    return settle_steps(
        ArrayOps, columns["class_a"], columns["class_b"], columns["out_of_catalogue"], params, cumulate
    )


def settle_frame(episodes: pl.DataFrame, book: ParameterBook | None = None) -> pl.DataFrame:
    """Vectorised settlement of a whole episode table; one row per input row, input order kept.

    Polars validates, resolves parameter sets and orders the rows by person and
    date; the formulas then run on NumPy chunks of whole person-years; results
    are scattered back to the input order. Output columns: OUTPUT_COLUMNS,
    Int64 fen except episode_id.
    """
    book = book or default_book()
    _validate_frame(episodes)
    rows = episodes.height
    table, band_count = _combo_table(book)
    regions = episodes.get_column("region").unique().to_list()
    keyed = episodes.select(
        set_index=_set_index_expr(book, regions),
        order=pl.arg_sort_by(["person_key", "discharge_date", "admission_date"], maintain_order=True),
    )
    unresolved = keyed.get_column("set_index").is_null().arg_true()
    if len(unresolved):
        row = episodes.row(unresolved[0], named=True)
        raise InvalidInput(
            f"no statutory parameters in force for region {row['region']} on {row['discharge_date']}"
            f" (episode {row['episode_id']})",
            "discharge_date",
        )
    combo = (
        ((pl.lit(keyed.get_column("set_index")) * len(SCHEMES) + _category_index("scheme", SCHEMES))
         * len(HOSPITAL_LEVELS) + pl.col("hospital_level").cast(pl.Int64) - 1)
        * len(ASSISTANCE_CATEGORIES)
        + _category_index("assistance_category", ASSISTANCE_CATEGORIES)
    ) * 2 + pl.col("inclusive_enrolled").cast(pl.Int64)
    order = keyed.get_column("order")
    year = pl.col("discharge_date").dt.year()
    ordered = episodes.select(
        pl.col("class_a", "class_b", "out_of_catalogue", "person_key").gather(order),
        combo=combo.gather(order),
        year=year.gather(order),
    ).with_columns(
        start=((pl.col("person_key") != pl.col("person_key").shift(1)) | (pl.col("year") != pl.col("year").shift(1)))
        .fill_null(True)
    )
    arrays = {
        name: ordered.get_column(name).to_numpy()
        for name in ("class_a", "class_b", "out_of_catalogue", "combo", "start")
    }
    positions = order.to_numpy()
    settled = {name: np.empty(rows, dtype=np.int64) for name in OUTPUT_COLUMNS[1:]}
    bounds = _chunk_bounds(np.flatnonzero(arrays["start"]), rows)
    for low, high in zip(bounds[:-1], bounds[1:]):
        steps = _settle_chunk({name: values[low:high] for name, values in arrays.items()}, table, band_count)
        for name, column in settled.items():
            column[positions[low:high]] = steps[name]
    return pl.DataFrame({"episode_id": episodes.get_column("episode_id"), **settled})
