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
from gongji.core.messages import Text
from gongji.core.money import format_yuan
from gongji.rules.params import (
    ParameterBook,
    ParameterSet,
    assisted_terms,
    check_region,
    flat_params,
    load_parameter_book,
)
from gongji.rules.rules import (
    ASSISTANCE_CATEGORIES,
    HOSPITAL_LEVELS,
    LAYERS,
    NO_CAP,
    SCHEMES,
    ArrayOps,
    Band,
    FlatParams,
    ScalarOps,
    class_b_selfpay,
    settle_steps,
    within_limit,
)

__all__ = [
    "AMOUNT_OUTPUT_COLUMNS",
    "ASSISTANCE_CATEGORIES",
    "EPISODE_SCHEMA",
    "HOSPITAL_LEVELS",
    "LAYERS",
    "OUTPUT_COLUMNS",
    "SCHEMES",
    "EpisodeInput",
    "RecordedEpisode",
    "Settlement",
    "YearToDate",
    "explain_person_year",
    "recorded_year",
    "settle_episode",
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
AMOUNT_OUTPUT_COLUMNS = ("total", *LAYERS, "residual")
#: One row per episode: the parameter set applied, then every amount in fen.
OUTPUT_COLUMNS = ("episode_id", "parameter_set", *AMOUNT_OUTPUT_COLUMNS)
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
    name: Text
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
    arithmetic: list[Text]
    amount: int
    applies: bool = True


@dataclass
class Settlement:
    episode_id: str
    parameter_set: str
    amounts: dict[str, int]
    lines: list[ExplanationLine] = field(default_factory=list)
    #: Why this set applies when it is not the region's own (e.g. the national default), else None.
    parameter_note: Text | None = None

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
    check_region(ep.region)
    for name in ("class_a", "class_b", "out_of_catalogue"):
        if getattr(ep, name) < 0:
            raise InvalidInput("amount must not be negative", name)
    if ep.discharge_date < ep.admission_date:
        raise InvalidInput("discharge date is before admission date", "discharge_date")


class YearToDate:
    """One person-year so far on the scalar path: running bases and what each layer has recorded."""

    def __init__(self, totals: dict[str, int] | None = None):
        self.totals = dict(totals or {})

    def cumulate(self, name: str, amount: int) -> tuple[int, int]:
        before = self.totals.get(name, 0)
        self.totals[name] = before + amount
        return before, before + amount

    def pay(self, layer: str, claim: int, cap: int) -> tuple[int, int]:
        before = self.totals.get(f"paid:{layer}", 0)
        payment = within_limit(ScalarOps, claim, cap, before)
        self.totals[f"paid:{layer}"] = before + payment
        return before, payment

    def paid(self, layer: str) -> int:
        return self.totals.get(f"paid:{layer}", 0)


@dataclass(frozen=True)
class RecordedEpisode:
    """An episode already settled for the person-year, with what each statutory layer recorded for it."""

    episode: EpisodeInput
    parameter_set: str
    paid: dict[str, int]


def recorded_year(settled: Sequence[RecordedEpisode], book: ParameterBook) -> YearToDate:
    """The person-year as the coverage registry records it, in the form `settle_steps` accumulates.

    Each base is a sum over the settled episodes of quantities fixed by the
    episode's cost and the payments actually recorded, whatever order the
    episodes were settled in.
    """
    year = YearToDate()
    by_id = {pset.id: pset for pset in book.sets}
    for item in settled:
        ep, paid = item.episode, {layer: item.paid.get(layer, 0) for layer in LAYERS}
        pset = by_id.get(item.parameter_set) or book.resolve(ep.region, ep.discharge_date)
        selfpay_b = class_b_selfpay(ep.class_b, pset.class_b_selfpay_share.value)
        in_policy = ep.class_a + ep.class_b - selfpay_b
        policy_selfpay = in_policy - paid["basic"]
        assistance_base = policy_selfpay - paid["critical_illness"]
        year.cumulate("admissions", 1)
        year.cumulate("policy_selfpay", policy_selfpay)
        year.cumulate("assistance_base", assistance_base)
        year.cumulate("catalogue_residual", selfpay_b + assistance_base - paid["assistance"])
        year.cumulate("out_of_catalogue", ep.out_of_catalogue)
        for layer in LAYERS:
            year.totals[f"paid:{layer}"] = year.paid(layer) + paid[layer]
    return year


def settle_episode(ep: EpisodeInput, book: ParameterBook, year: YearToDate) -> Settlement:
    """Settle one episode against the person-year so far (which it then joins), and explain every line."""
    _check_episode(ep)
    pset, note = book.resolve_with_note(ep.region, ep.discharge_date)
    params = flat_params(pset, ep.scheme, ep.hospital_level, ep.assistance_category, ep.inclusive_enrolled)
    steps = settle_steps(ScalarOps, ep.class_a, ep.class_b, ep.out_of_catalogue, params, year)
    amounts = {key: steps[key] for key in ("total", *LAYERS, "residual")}
    return Settlement(ep.episode_id, pset.id, amounts, _explain(ep, pset, params, steps), note)


def explain_person_year(episodes: Sequence[EpisodeInput], book: ParameterBook | None = None) -> list[Settlement]:
    """Settle episodes one at a time in discharge order, carrying each person's year; input order kept."""
    book = book or default_book()
    for ep in episodes:
        _check_episode(ep)
    order = sorted(
        range(len(episodes)),
        key=lambda i: (episodes[i].person_key, episodes[i].discharge_date, episodes[i].admission_date, i),
    )
    years: dict[tuple[str, int], YearToDate] = {}
    results: dict[int, Settlement] = {}
    for i in order:
        ep = episodes[i]
        year = years.setdefault((ep.person_key, ep.discharge_date.year), YearToDate())
        results[i] = settle_episode(ep, book, year)
    return [results[i] for i in range(len(episodes))]


def _y(fen: int) -> str:
    return "∞" if fen >= NO_CAP else "¥" + format_yuan(fen)


def _pct(bp: int) -> str:
    return f"{bp / 100:g}%"


def _limit_step(s: dict, layer: str, cap: int) -> Text:
    return Text(
        "paid this year before {before}; annual limit {cap}: min({claim}, {cap} − {before}), not below 0 = {amount}",
        {"before": _y(s[f"{layer}_paid_before"]), "cap": _y(cap), "claim": _y(s[f"{layer}_claim"]),
         "amount": _y(s[layer])},
    )


def _explain(ep: EpisodeInput, pset: ParameterSet, p: FlatParams, s: dict) -> list[ExplanationLine]:
    """Turn the intermediate values of `settle_steps` into one readable line per layer."""
    src = pset.source_text
    basic = pset.basic[ep.scheme]
    lines = []
    later = s["admission_number"] > 1
    level = {"level": str(ep.hospital_level)}
    lines.append(
        ExplanationLine(
            "basic",
            *LAYER_NAMES["basic"],
            base=s["in_policy"],
            parameters=[
                Parameter(Text("class-B self-pay share"), _pct(p.class_b_selfpay_bp),
                          src(pset.class_b_selfpay_share.source)),
                Parameter(Text("deductible (level {level} hospital)", level), _y(p.basic_deductible),
                          src(basic.deductible.source)),
                Parameter(Text("later-admission share of the deductible"), _pct(p.basic_later_share_bp),
                          src(basic.later_admission_share.source)),
                Parameter(Text("reimbursement rate (level {level} hospital)", level), _pct(p.basic_rate_bp),
                          src(basic.rate.source)),
                Parameter(Text("annual cap"), _y(p.basic_cap), src(basic.annual_cap.source)),
            ],
            arithmetic=[
                Text("in-policy cost = {a} + {b} − {b} × {share} = {in_policy}",
                     {"a": _y(ep.class_a), "b": _y(ep.class_b), "share": _pct(p.class_b_selfpay_bp),
                      "in_policy": _y(s["in_policy"])}),
                Text("admission no. {n} this year: deductible = {full} × {share} = {deductible}" if later
                     else "admission no. {n} this year: deductible = {deductible}",
                     {"n": str(s["admission_number"]), "full": _y(p.basic_deductible),
                      "share": _pct(p.basic_later_share_bp), "deductible": _y(s["deductible"])}),
                Text("claim = max({in_policy} − {deductible}, 0) × {rate} = {claim}",
                     {"in_policy": _y(s["in_policy"]), "deductible": _y(s["deductible"]),
                      "rate": _pct(p.basic_rate_bp), "claim": _y(s["basic_claim"])}),
                _limit_step(s, "basic", p.basic_cap),
            ],
            amount=s["basic"],
        )
    )

    ci = pset.critical_illness[ep.scheme]
    if ci is None:
        ci_params, ci_math = [], [Text("not part of this scheme in this region")]
    else:
        assisted = assisted_terms(pset, ep.scheme, ep.assistance_category)
        bands = ", ".join(f"{_y(b.lower)}+: {_pct(b.rate_bp)}" for b in p.ci_bands)
        ci_params = [
            Parameter(Text("threshold (assisted people)" if assisted else "threshold"), _y(p.ci_threshold),
                      src((assisted or ci).threshold.source)),
            Parameter(Text("tiered rates (with the assisted bonus)" if assisted else "tiered rates"), bands,
                      src(ci.bands.source)),
            Parameter(Text("annual cap"), _y(p.ci_cap), src((assisted or ci).annual_cap.source)),
        ]
        ci_math = [
            Text("in-policy self-pay = {in_policy} − {basic} = {selfpay}",
                 {"in_policy": _y(s["in_policy"]), "basic": _y(s["basic"]), "selfpay": _y(s["policy_selfpay"])}),
            Text("year to date {before} → {after}",
                 {"before": _y(s["policy_selfpay_before"]), "after": _y(s["policy_selfpay_after"])}),
            Text("G(x) = Σ bands of max(x − {threshold}, 0); claim = G(after) − G(before) = {claim}",
                 {"threshold": _y(p.ci_threshold), "claim": _y(s["critical_illness_claim"])}),
            _limit_step(s, "critical_illness", p.ci_cap),
        ]
    lines.append(
        ExplanationLine("critical_illness", ci.name_zh if ci else LAYER_NAMES["critical_illness"][0],
                        LAYER_NAMES["critical_illness"][1], s["policy_selfpay"], ci_params, ci_math,
                        s["critical_illness"], applies=ci is not None)
    )

    aid = pset.assistance.get(ep.assistance_category)
    if aid is None:
        aid_params, aid_math = [], [Text("not in an assistance category")]
    else:
        aid_params = [
            Parameter(Text("annual deductible"), _y(p.assistance_deductible), src(aid.deductible.source)),
            Parameter(Text("assistance rate"), _pct(p.assistance_rate_bp), src(aid.rate.source)),
            Parameter(Text("annual limit"), _y(p.assistance_cap), src(aid.annual_cap.source)),
        ]
        aid_math = [
            Text("in-policy residual = {selfpay} − {ci} = {base}",
                 {"selfpay": _y(s["policy_selfpay"]), "ci": _y(s["critical_illness"]),
                  "base": _y(s["assistance_base"])}),
            Text("year to date {before} → {after}",
                 {"before": _y(s["assistance_base_before"]), "after": _y(s["assistance_base_after"])}),
            Text("H(x) = max(x − {deductible}, 0) × {rate}; claim = H(after) − H(before) = {claim}",
                 {"deductible": _y(p.assistance_deductible), "rate": _pct(p.assistance_rate_bp),
                  "claim": _y(s["assistance_claim"])}),
            _limit_step(s, "assistance", p.assistance_cap),
        ]
    lines.append(
        ExplanationLine("assistance", *LAYER_NAMES["assistance"], s["assistance_base"], aid_params, aid_math,
                        s["assistance"], applies=aid is not None)
    )

    hmb = pset.inclusive
    if hmb is None or not ep.inclusive_enrolled:
        reason = Text("none in this region" if hmb is None else "not enrolled")
        hmb_params, hmb_math = [], [reason]
    else:
        hmb_params = [
            Parameter(Text("annual deductible"), _y(p.inclusive_deductible), src(hmb.deductible.source)),
            Parameter(Text("in-catalogue rate"), _pct(p.inclusive_rate_in_bp), src(hmb.rate_in_catalogue.source)),
            Parameter(Text("out-of-catalogue rate"), _pct(p.inclusive_rate_out_bp),
                      src(hmb.rate_out_of_catalogue.source)),
            Parameter(Text("annual cap"), _y(p.inclusive_cap), src(hmb.annual_cap.source)),
        ]
        hmb_math = [
            Text("in-catalogue residual = {selfpay_b} + {base} − {aid} = {residual}; out of catalogue {out}",
                 {"selfpay_b": _y(s["class_b_selfpay"]), "base": _y(s["assistance_base"]),
                  "aid": _y(s["assistance"]), "residual": _y(s["catalogue_residual"]),
                  "out": _y(ep.out_of_catalogue)}),
            Text("year to date: in catalogue {in_before} → {in_after}, out of catalogue {out_before} → {out_after}",
                 {"in_before": _y(s["catalogue_residual_before"]), "in_after": _y(s["catalogue_residual_after"]),
                  "out_before": _y(s["out_of_catalogue_before"]), "out_after": _y(s["out_of_catalogue_after"])}),
            Text("K = (in catalogue − deductible) × {rate_in} + (out of catalogue − deductible left) × {rate_out}; "
                 "claim = K(after) − K(before) = {claim}",
                 {"rate_in": _pct(p.inclusive_rate_in_bp), "rate_out": _pct(p.inclusive_rate_out_bp),
                  "claim": _y(s["inclusive_claim"])}),
            _limit_step(s, "inclusive", p.inclusive_cap),
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


class _ColumnYear:
    """Person-years as columns: rows sorted by person, year and date; `starts` marks each year's first row.

    Running bases are grouped cumulative sums. What a layer pays depends on
    what it paid for the year's earlier episodes (P_k = P_k-1 + within_limit).
    Under one limit for the whole person-year — nearly always — that
    recurrence has the closed form P_k = min(Σ claims so far, limit), since
    claims are never negative; person-years whose limit changes mid-year walk
    their episodes' positions (all first episodes at once, then all second
    ones, …), a handful of steps over the few rows concerned.
    """

    def __init__(self, starts: np.ndarray):
        self.rows = len(starts)
        self.group_starts = np.flatnonzero(starts)
        self.group_lengths = np.diff(np.append(self.group_starts, self.rows))
        self.position = np.arange(self.rows) - np.repeat(self.group_starts, self.group_lengths)

    def cumulate(self, _name: str, amount):
        amount = np.broadcast_to(amount, (self.rows,))
        running = np.cumsum(amount)
        after = running - np.repeat((running - amount)[self.group_starts], self.group_lengths)
        return after - amount, after

    def pay(self, _layer: str, claim, cap):
        claim = np.broadcast_to(claim, (self.rows,))
        cap = np.broadcast_to(cap, (self.rows,))
        claimed_before, _ = self.cumulate("claims", claim)
        before = np.minimum(claimed_before, cap)
        varying = cap != np.repeat(cap[self.group_starts], self.group_lengths)
        if varying.any():
            in_varying_year = np.repeat(np.logical_or.reduceat(varying, self.group_starts), self.group_lengths)
            rows = np.flatnonzero(in_varying_year & (self.position > 0))
            payment = within_limit(ArrayOps, claim, cap, before)
            for position in range(1, int(self.position[rows].max()) + 1 if len(rows) else 1):
                at = rows[self.position[rows] == position]
                before[at] = before[at - 1] + payment[at - 1]
                payment[at] = within_limit(ArrayOps, claim[at], cap[at], before[at])
            return before, payment
        return before, within_limit(ArrayOps, claim, cap, before)


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
    return settle_steps(
        ArrayOps, columns["class_a"], columns["class_b"], columns["out_of_catalogue"], params,
        _ColumnYear(columns["start"]),
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
    for region in regions:
        try:
            check_region(region)
        except InvalidInput as error:
            row = int(episodes.get_column("region").eq_missing(region).arg_true()[0])
            raise InvalidInput(
                f"{error.detail} in row {row + 1} (episode {episodes['episode_id'][row]})", "region"
            ) from None
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
    settled = {name: np.empty(rows, dtype=np.int64) for name in AMOUNT_OUTPUT_COLUMNS}
    bounds = _chunk_bounds(np.flatnonzero(arrays["start"]), rows)
    for low, high in zip(bounds[:-1], bounds[1:]):
        steps = _settle_chunk({name: values[low:high] for name, values in arrays.items()}, table, band_count)
        for name, column in settled.items():
            column[positions[low:high]] = steps[name]
    set_ids = pl.Series([pset.id for pset in book.sets], dtype=pl.String)
    return pl.DataFrame(
        {
            "episode_id": episodes.get_column("episode_id"),
            "parameter_set": set_ids.gather(keyed.get_column("set_index")),
            **settled,
        }
    )
